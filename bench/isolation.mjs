// Isolation under an outage: a file destination and an HTTP destination are
// fed the same events at a fixed rate; the HTTP server is up for a baseline,
// then down for the outage, then up again. Reports the file destination's
// end-to-end latency (send -> line in its file) in each phase and their ratio,
// forkd's RSS at the start and end of the outage, and the HTTP destination's
// drain rate after recovery.
//
//   node bench/isolation.mjs [--rate 20000] [--baseline 20] [--outage 60]
//
// Figures only: it never fails on timing.
import http from 'node:http';
import { Worker } from 'node:worker_threads';
import { readFileSync, rmSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { createClient } from '../js/index.mjs';
import { startForkd, tempConfig } from '../scripts/lib/forkd.mjs';
import { purchases, percentile } from './workload.mjs';

const { values: args } = parseArgs({
  options: {
    rate: { type: 'string', default: '20000' },
    baseline: { type: 'string', default: '20' },
    outage: { type: 'string', default: '60' },
  },
});
const RATE = Number(args.rate);
const BASELINE_S = Number(args.baseline);
const OUTAGE_S = Number(args.outage);

// The HTTP target: counts records; "down" closes the listener and every socket.
let received = 0;
const sockets = new Set();
const server = http.createServer((req, res) => {
  let n = 0;
  req.on('data', (chunk) => {
    for (const b of chunk) if (b === 10) n++;
  });
  req.on('end', () => {
    received += n;
    res.end('ok');
  });
});
server.keepAliveTimeout = 60000;
server.on('connection', (s) => {
  sockets.add(s);
  s.on('close', () => sockets.delete(s));
});
await new Promise((r) => server.listen(0, '127.0.0.1', r));
const port = server.address().port;
const down = () => new Promise((r) => {
  server.close(() => r());
  for (const s of sockets) s.destroy();
});
const up = () => new Promise((r) => server.listen(port, '127.0.0.1', r));

const { dir, config } = tempConfig(`destinations:
  file:
    type: file
    path: ./file.jsonl
    batch: { max_wait: 20ms }
    priority: high
  hooks:
    type: http
    url: http://127.0.0.1:${port}/events
    batch: { max_events: 2000, max_wait: 50ms }
    retry: { initial: 100ms, max: 2s }
    breaker: { failures: 5, cooldown: 1s }
    backlog: { max_bytes: 4GiB }
`, 'fork-bench-iso-');
const forkd = await startForkd(config);
const rss = () => {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${forkd.pid}/status`, 'utf8'));
  return Number(m[1]) / 1024;
};

// The tailer runs in a worker so that reading the file does not delay sends.
const tailer = new Worker(new URL('./tail_latency.mjs', import.meta.url), {
  workerData: { path: `${dir}/file.jsonl` },
});
let phase = 'warmup';
const latencies = { baseline: [], outage: [] };
tailer.on('message', (m) => {
  if (latencies[m.phase]) latencies[m.phase].push(...m.latencies);
});
const setPhase = (p) => {
  phase = p;
  tailer.postMessage({ phase: p });
};

const client = createClient({ endpoint: `ipc://${dir}/.fork/fork.sock`, maxInFlight: 200000 });
const next = purchases(7);
let sent = 0;
let failed = 0;
let stop = false;
// Paced sends: every 5 ms, whatever is due.
const t0 = performance.now();
const pump = new Promise((resolve) => {
  const tick = () => {
    if (stop) return resolve();
    const due = Math.floor(((performance.now() - t0) * RATE) / 1000);
    for (; sent < due; sent++) {
      const p = next();
      p.t = performance.timeOrigin + performance.now();
      client.routeData(p, ['file', 'hooks']).catch(() => failed++);
    }
    setTimeout(tick, 5);
  };
  tick();
});
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

console.log(`isolation: ${RATE} events/s to [file, hooks]; 3 s warm-up, baseline ${BASELINE_S} s, HTTP down ${OUTAGE_S} s`);
await sleep(3000);  // warm-up, not measured
setPhase('baseline');
await sleep(BASELINE_S * 1000);
setPhase('outage');
await down();
const outageStartSent = sent;
await sleep(2000);  // the breaker opens, the backlog starts
const rssStart = rss();
await sleep(OUTAGE_S * 1000 - 2000);
const rssEnd = rss();
setPhase('after');
stop = true;
await pump;
const behind = sent - received;
const tRecover = performance.now();
await up();
const receivedAtRecovery = received;
while (received < sent - failed && performance.now() - tRecover < 600000) await sleep(50);
const drainS = (performance.now() - tRecover) / 1000;
const drained = received - receivedAtRecovery;
await client.close();
tailer.postMessage({ phase: 'stop' });
await sleep(300);
await tailer.terminate();
await forkd.stop();
server.close();
for (const s of sockets) s.destroy();

const show = (name, xs) => {
  xs.sort((a, b) => a - b);
  return { name, n: xs.length, p50: percentile(xs, 50), p99: percentile(xs, 99), max: xs[xs.length - 1] ?? 0 };
};
const b = show('baseline', latencies.baseline);
const o = show('outage', latencies.outage);
const f = (x) => x.toFixed(1);
console.log(`file destination end-to-end latency (ms):`);
console.log(`  baseline (HTTP up):   n=${b.n} p50 ${f(b.p50)} p99 ${f(b.p99)} max ${f(b.max)}`);
console.log(`  outage (HTTP down):   n=${o.n} p50 ${f(o.p50)} p99 ${f(o.p99)} max ${f(o.max)}`);
console.log(`  p99 ratio outage/baseline: ${(o.p99 / b.p99).toFixed(2)}x (target <= 1.1x)`);
console.log(`forkd RSS: outage start ${f(rssStart)} MiB, end ${f(rssEnd)} MiB (${(((rssEnd - rssStart) / rssStart) * 100).toFixed(1)}%; target within 10%)`);
console.log(`HTTP backlog at recovery: ${behind} events (${sent - outageStartSent} sent during the outage); drained ${drained} in ${drainS.toFixed(1)} s = ${Math.round(drained / drainS)} events/s (${(drained / drainS / RATE).toFixed(1)}x the send rate)`);
console.log(`sent ${sent}, refused ${failed}, HTTP received ${received}`);
rmSync(dir, { recursive: true, force: true });
