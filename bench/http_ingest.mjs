// HTTP ingest (POST /v1/events) against the ZeroMQ path (the addon), in the
// same run, on the same forkd: the reference purchase events, sent in batches
// of --batch as JSON arrays over --connections keep-alive connections (each
// with one request in flight), then the same number through routeData with a
// window of in-flight calls. Both wait for ack 'accepted' (durable in the
// log). JSON.stringify of each batch counts, as a caller pays it.
// Prints figures; never fails on timing.
//
//   node bench/http_ingest.mjs [--events 200000] [--batch 100] [--connections 4]
import http from 'node:http';
import { rmSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { createClient } from '../js/index.mjs';
import { purchases, percentile } from './workload.mjs';
import { startForkd, tempConfig } from '../scripts/lib/forkd.mjs';

const { values } = parseArgs({
  options: {
    events: { type: 'string', default: '200000' },
    batch: { type: 'string', default: '100' },
    connections: { type: 'string', default: '4' },
    window: { type: 'string', default: '20000' },
  },
});
const N = Number(values.events);
const BATCH = Number(values.batch);
const CONNS = Number(values.connections);
const TOKEN = 'bench-http-ingest-token-0123456789';

const port = 20000 + Math.floor(Math.random() * 20000);
const CONFIG = `
data_dir: ./.fork
wal: { fsync: batch, batch_ms: 2 }
http_ingest: { listen: 127.0.0.1:${port}, token: ${TOKEN}, threads: ${Math.max(CONNS, 4)} }
destinations:
  logs: { type: file, format: jsonl, path: ./out/events.jsonl, rotate: 256MiB }
`;

const fmt = (n, d = 0) => n.toLocaleString('en-US', { maximumFractionDigits: d, minimumFractionDigits: d });

function postBatch(agent, body) {
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: '127.0.0.1',
        port,
        path: '/v1/events',
        method: 'POST',
        agent,
        headers: {
          'content-type': 'application/json',
          'content-length': Buffer.byteLength(body),
          authorization: `Bearer ${TOKEN}`,
        },
      },
      (res) => {
        const chunks = [];
        res.on('data', (c) => chunks.push(c));
        res.on('end', () => {
          if (res.statusCode !== 200) reject(new Error(`HTTP ${res.statusCode}: ${Buffer.concat(chunks)}`));
          else resolve(Buffer.concat(chunks));
        });
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

async function benchHttp(events) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: CONNS });
  const batches = [];
  for (let i = 0; i < events.length; i += BATCH) batches.push(events.slice(i, i + BATCH));
  // Warm up: one batch per connection.
  await Promise.all(
    Array.from({ length: CONNS }, () =>
      postBatch(agent, JSON.stringify(batches[0].map((payload) => ({ payload, destination: 'logs' })))),
    ),
  );
  let next = 0;
  const latencies = [];
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: CONNS }, async () => {
      while (next < batches.length) {
        const b = batches[next++];
        const body = JSON.stringify(b.map((payload) => ({ payload, destination: 'logs' })));
        const s = performance.now();
        const answer = await postBatch(agent, body);
        latencies.push(performance.now() - s);
        if (answer[0] !== 0x5b) throw new Error(`unexpected answer ${answer}`);
      }
    }),
  );
  const ms = performance.now() - t0;
  agent.destroy();
  latencies.sort((a, b) => a - b);
  return { perSec: (events.length / ms) * 1000, ms, p50: percentile(latencies, 0.5), p99: percentile(latencies, 0.99) };
}

async function benchZmq(endpoint, events) {
  const client = createClient({ endpoint, maxInFlight: Number(values.window) * 2 });
  await client.routeData(events[0], 'logs');
  const t0 = performance.now();
  let inFlight = [];
  for (let i = 0; i < events.length; i++) {
    inFlight.push(client.routeData(events[i], 'logs'));
    if (inFlight.length >= Number(values.window)) {
      await Promise.all(inFlight);
      inFlight = [];
    }
  }
  await Promise.all(inFlight);
  const ms = performance.now() - t0;
  await client.close();
  return { perSec: (events.length / ms) * 1000, ms };
}

const { dir, config } = tempConfig(CONFIG, 'fork-bench-http-');
const forkd = await startForkd(config);
try {
  const next = purchases(42);
  const events = Array.from({ length: N }, () => next());
  const h = await benchHttp(events);
  const z = await benchZmq(`ipc://${dir}/.fork/fork.sock`, events);
  console.log(`HTTP ingest vs the addon (ZeroMQ), ${fmt(N)} purchase events each, ack 'accepted', one forkd`);
  console.log(
    `  HTTP   ${fmt(h.perSec)} events/s  (batches of ${BATCH}, ${CONNS} keep-alive connections; ` +
      `request p50 ${fmt(h.p50, 2)} ms, p99 ${fmt(h.p99, 2)} ms)`,
  );
  console.log(`  ZeroMQ ${fmt(z.perSec)} events/s  (routeData, window ${values.window})`);
  console.log(`  HTTP / ZeroMQ: ${fmt(h.perSec / z.perSec, 2)}`);
} finally {
  await forkd.stop();
  rmSync(dir, { recursive: true, force: true });
}
