// Stream destinations at scale: N subscribers (default 1000) on one `stream`
// destination while events arrive at R per second (default 1000) for D
// seconds. Prints the latency from each event's acknowledgement (routeData
// with ack: 'accepted') to its arrival at every subscriber (p50, p99, max),
// records lost or repeated, and forkd's RSS (VmHWM, the peak). The peer,
// measured in the same run with the same subscribers and load: a plain
// Node.js SSE broadcaster (one http server writing each event to every
// connection; no log, no resumption). Never fails on timing.
//
//   node bench/streams.mjs [--subscribers 1000] [--rate 1000] [--seconds 10]
import { fork } from 'node:child_process';
import { readFileSync, rmSync } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { createClient } from '../js/index.mjs';
import { startForkd, tempConfig } from '../scripts/lib/forkd.mjs';
import { freePort } from '../scripts/lib/nextjs-app.mjs';

const { values } = parseArgs({
  options: {
    subscribers: { type: 'string', default: '1000' },
    rate: { type: 'string', default: '1000' },
    seconds: { type: 'string', default: '10' },
    child: { type: 'string' },
  },
});
const SUBS = Number(values.subscribers);
const RATE = Number(values.rate);
const SECONDS = Number(values.seconds);
const EVENTS = RATE * SECONDS;
const CHILDREN = 2;
const now = () => performance.timeOrigin + performance.now();

// ---- a subscriber process: `count` connections, arrival times by event index
if (values.child) {
  const { url, count } = JSON.parse(values.child);
  const arrivals = [];
  let open = 0;
  for (let c = 0; c < count; c++) {
    const times = new Float64Array(EVENTS).fill(NaN);
    let dups = 0;
    arrivals.push({ times, get dups() { return dups; }, get counted() { return counted; }, get measured() { return measured; } });
    let ready = false;
    let last = null;
    let counted = 0;
    const measured = c % 10 === 0;
    const connect = () => {
      const headers = last === null ? {} : { 'Last-Event-ID': last };
      http
        .get(url, { agent: false, headers }, (res) => {
          if (!ready) {
            ready = true;
            open++;
            if (open === count) process.send({ ready: true });
          }
          let buf = '';
          if (!measured) {
            // The others only read: counting messages is enough for lost and
            // repeated (the measured ones check each index).
            res.on('data', (d) => {
              for (let at = d.indexOf('\n\n'); at >= 0; at = d.indexOf('\n\n', at + 2)) counted++;
            });
            res.on('end', () => setTimeout(connect, 100));
            return;
          }
          res.setEncoding('utf8');
          res.on('data', (d) => {
            buf += d;
            let end;
            while ((end = buf.indexOf('\n\n')) >= 0) {
              const msg = buf.slice(0, end);
              buf = buf.slice(end + 2);
              const at = msg.indexOf('"i":');
              if (at < 0) continue;
              const idAt = msg.indexOf('id: ');
              if (idAt >= 0) last = msg.slice(idAt + 4, msg.indexOf('\n', idAt));
              const i = parseInt(msg.slice(at + 4), 10);
              if (i >= 0 && i < EVENTS) {
                if (!Number.isNaN(times[i])) dups++;
                else times[i] = now();
              }
            }
          });
          res.on('end', () => setTimeout(connect, 100));
        })
        // Like a browser's EventSource: try again (a full listen queue resets a connect).
        .on('error', () => setTimeout(connect, 50 + Math.random() * 200));
    };
    // Connections open a few at a time, as clients arrive.
    setTimeout(connect, c * 5);
  }
  process.on('message', (m) => {
    if (!m.acks) return;
    const acks = m.acks;
    const lat = [];
    let lost = 0;
    let dups = 0;
    let n = 0;
    for (const a of arrivals) {
      if (!a.measured) {
        // Every message but the first (retry:) is a record.
        const got = a.counted - 1;
        n += got;
        if (got < EVENTS) lost += EVENTS - got;
        else dups += got - EVENTS;
        continue;
      }
      dups += a.dups;
      n += EVENTS;
      for (let i = 0; i < EVENTS; i++) {
        if (Number.isNaN(a.times[i])) lost++;
        else lat.push(a.times[i] - acks[i]);
      }
    }
    lat.sort((x, y) => x - y);
    const q = (p) => lat[Math.min(lat.length - 1, Math.floor(p * lat.length))];
    process.send({ result: { n, p50: q(0.5), p99: q(0.99), max: lat.at(-1), lost, dups } });
  });
} else {
  await main();
}

async function subscribers(url) {
  const kids = [];
  for (let k = 0; k < CHILDREN; k++) {
    const child = fork(new URL(import.meta.url).pathname, [
      '--child', JSON.stringify({ url, count: Math.ceil(SUBS / CHILDREN) }),
      '--subscribers', String(SUBS), '--rate', String(RATE), '--seconds', String(SECONDS),
    ]);
    kids.push(child);
  }
  await Promise.all(kids.map((c) => new Promise((resolve, reject) => c.on('message', (m) => (m.ready ? resolve() : m.error && reject(new Error(m.error)))))));
  return {
    async results(acks) {
      const rs = await Promise.all(kids.map((c) => new Promise((resolve) => { c.on('message', (m) => m.result && resolve(m.result)); c.send({ acks }); })));
      for (const c of kids) c.kill();
      const merged = { n: 0, p50: 0, p99: 0, max: 0, lost: 0, dups: 0 };
      for (const r of rs) {
        merged.n += r.n; merged.lost += r.lost; merged.dups += r.dups;
        merged.p50 = Math.max(merged.p50, r.p50); merged.p99 = Math.max(merged.p99, r.p99); merged.max = Math.max(merged.max, r.max);
      }
      return merged;
    },
  };
}

// Paced sends; acks[i] is when event i was acknowledged.
async function produce(send) {
  const acks = new Float64Array(EVENTS);
  const t0 = now();
  const pending = [];
  for (let i = 0; i < EVENTS; i++) {
    const due = t0 + (i * 1000) / RATE;
    const wait = due - now();
    if (wait > 1) await new Promise((r) => setTimeout(r, wait));
    pending.push(send(i).then(() => (acks[i] = now())));
  }
  await Promise.all(pending);
  await new Promise((r) => setTimeout(r, 1000));  // the last ones reach everyone
  return acks;
}

function hwm(pid) {
  const s = readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(s.match(/VmHWM:\s+(\d+)/)[1]) * 1024;
}

async function main() {
  console.log(`stream bench: ${SUBS} subscribers, ${RATE} events/s for ${SECONDS} s (${EVENTS} events)`);
  // ---- forkd
  const port = await freePort();
  const { dir, config } = tempConfig(
    `data_dir: ./.fork\nadmin: 127.0.0.1:${port}\ndestinations:\n  ticker: { type: stream, public: true, buffer: 10000, max_subscribers: ${SUBS + 10}, batch: { max_wait: 1ms } }\n`,
    'fork-bench-streams-',
  );
  const forkd = await startForkd(config);
  const client = createClient({ endpoint: `ipc://${path.join(dir, '.fork', 'fork.sock')}` });
  const subs = await subscribers(`http://127.0.0.1:${port}/streams/ticker`);
  const acks = await produce((i) => client.routeData({ i, amount: 12.5, sku: 'sku-123' }, 'ticker'));
  const fork_ = await subs.results(Array.from(acks));
  const rss = hwm(forkd.proc.pid);
  await client.close();
  await forkd.stop();
  rmSync(dir, { recursive: true, force: true });

  // ---- the peer: a plain Node SSE broadcaster in its own process
  const peer = fork(new URL('./streams_peer.mjs', import.meta.url).pathname);
  const peerPort = await new Promise((resolve) => peer.on('message', (m) => m.port && resolve(m.port)));
  const psubs = await subscribers(`http://127.0.0.1:${peerPort}/`);
  const packs = await produce((i) => new Promise((resolve) => {
    peer.send({ i, record: JSON.stringify({ i, amount: 12.5, sku: 'sku-123' }) });
    resolve();
  }));
  const peer_ = await psubs.results(Array.from(packs));
  const peerRss = await new Promise((resolve) => { peer.on('message', (m) => m.hwm && resolve(m.hwm)); peer.send({ hwm: true }); });
  peer.kill();

  const row = (name, r, mem) =>
    console.log(`${name.padEnd(28)} p50 ${r.p50.toFixed(2)} ms  p99 ${r.p99.toFixed(2)} ms  max ${r.max.toFixed(1)} ms  deliveries ${r.n}  lost ${r.lost}  repeated ${r.dups}  peak RSS ${(mem / 1048576).toFixed(1)} MiB`);
  row('forkd stream', fork_, rss);
  row('peer: Node SSE broadcaster', peer_, peerRss);
  console.log(`ratios forkd/peer: p50 ${(fork_.p50 / peer_.p50).toFixed(2)}x  p99 ${(fork_.p99 / peer_.p99).toFixed(2)}x  RSS ${(rss / peerRss).toFixed(2)}x`);
  console.log(`targets: p99 <= 50 ms (${fork_.p99 <= 50 ? 'met' : 'not met'}), RSS <= 128 MiB (${rss <= 128 * 1048576 ? 'met' : 'not met'})`);
}
