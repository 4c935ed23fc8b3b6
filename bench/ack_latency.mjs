// Group commit: the ack latency of routeData at steady rates, and the
// throughput at full load, with the log's adaptive group commit (the
// default: no linger; a commit starts as soon as none is in flight, so an
// idle log syncs an event at once and a busy one batches what arrived
// during the previous fdatasync) against a fixed linger (`wal.batch_ms`,
// 2 ms: what forkd did before), measured in the same run on the same disk.
// Each rate runs against a fresh forkd with one file destination,
// `ack: 'accepted'`, `wal.fsync: batch`. Prints figures; never fails on
// timing.
//
//   node bench/ack_latency.mjs [--seconds 5] [--rates 100,1000,10000,100000] [--linger 2] [--json FILE]
//
// --json FILE also writes the figures to FILE as one JSON object.
import { rmSync, writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { createClient } from '../js/index.mjs';
import { purchases, percentile } from './workload.mjs';
import { startForkd, tempConfig } from '../scripts/lib/forkd.mjs';

const { values } = parseArgs({
  options: {
    seconds: { type: 'string', default: '5' },
    rates: { type: 'string', default: '100,1000,10000,100000' },
    linger: { type: 'string', default: '2' },
    'full-events': { type: 'string', default: '300000' },
    json: { type: 'string' },
  },
});
const SECONDS = Number(values.seconds);
const RATES = values.rates.split(',').map(Number);
const FULL = Number(values['full-events']);

const config = (batchMs) => `
data_dir: ./.fork
wal: { fsync: batch${batchMs === null ? '' : `, batch_ms: ${batchMs}`} }
destinations:
  logs: { type: file, format: jsonl, path: ./out/events.jsonl, rotate: 256MiB }
`;

async function withForkd(batchMs, fn) {
  const { dir, config: file } = tempConfig(config(batchMs), 'fork-bench-ack-');
  const forkd = await startForkd(file);
  try {
    return await fn(`ipc://${dir}/.fork/fork.sock`);
  } finally {
    await forkd.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

// Sends at `rate` for SECONDS; each call's time from routeData to its ack.
async function paced(endpoint, rate) {
  const client = createClient({ endpoint, maxInFlight: 200000 });
  const next = purchases(7);
  await client.routeData(next(), 'logs');
  const lat = [];
  const total = Math.max(50, Math.round(rate * SECONDS));
  const t0 = performance.now();
  const pending = [];
  for (let sent = 0; sent < total; ) {
    const due = Math.min(total, Math.floor(((performance.now() - t0) / 1000) * rate) + 1);
    for (; sent < due; sent++) {
      const s = performance.now();
      pending.push(client.routeData(next(), 'logs').then(() => lat.push(performance.now() - s)));
    }
    const wait = ((sent / rate) * 1000) - (performance.now() - t0);
    await new Promise((r) => setTimeout(r, Math.max(0, Math.min(wait, 5))));
  }
  await Promise.all(pending);
  const seconds = (performance.now() - t0) / 1000;
  await client.close();
  lat.sort((a, b) => a - b);
  return { p50: percentile(lat, 50), p99: percentile(lat, 99), p999: percentile(lat, 99.9), n: lat.length, achieved: lat.length / seconds };
}

// As fast as it goes: FULL events with a window of 20 000 in flight.
async function full(endpoint) {
  const client = createClient({ endpoint, maxInFlight: 40000 });
  const next = purchases(11);
  const events = Array.from({ length: FULL }, next);
  await client.routeData(next(), 'logs');
  const t0 = performance.now();
  const inflight = new Set();
  for (const e of events) {
    const p = client.routeData(e, 'logs').then(() => inflight.delete(p));
    inflight.add(p);
    if (inflight.size >= 20000) await Promise.race(inflight);
  }
  await Promise.all(inflight);
  const eps = FULL / ((performance.now() - t0) / 1000);
  await client.close();
  return eps;
}

const fmt = (n, d = 0) => n.toLocaleString('en-US', { maximumFractionDigits: d, minimumFractionDigits: d });
const LINGER = Number(values.linger);
console.log(`ack latency: routeData → durable ack, ${SECONDS} s per rate, file sink, wal.fsync batch`);
console.log(`adaptive group commit (default) vs a fixed ${LINGER} ms linger (wal.batch_ms: ${LINGER})\n`);
const rows = [];
for (const rate of RATES) {
  const a = await withForkd(null, (ep) => paced(ep, rate));
  const f = await withForkd(LINGER, (ep) => paced(ep, rate));
  rows.push({ rate, a, f });
  console.log(
    `${fmt(rate).padStart(8)} ev/s  adaptive p50 ${fmt(a.p50, 2)} p99 ${fmt(a.p99, 2)} p99.9 ${fmt(a.p999, 2)} ms` +
      ` (achieved ${fmt(a.achieved)} ev/s) | linger ${LINGER} ms p50 ${fmt(f.p50, 2)} p99 ${fmt(f.p99, 2)} p99.9 ${fmt(f.p999, 2)} ms`,
  );
}
const fa = await withForkd(null, full);
const ff = await withForkd(LINGER, full);
console.log(`\nfull load (${fmt(FULL)} events, 20 000 in flight): adaptive ${fmt(fa)} ev/s, linger ${LINGER} ms ${fmt(ff)} ev/s, ratio ${fmt(fa / ff, 2)}×`);
console.log('targets: p50 ≤ 1 ms at 100 ev/s; p99 ≤ 5 ms at 10 000 ev/s; no loss of throughput at full load');
if (values.json) {
  const figures = {
    bench: 'ack_latency',
    seconds: SECONDS,
    lingerMs: LINGER,
    rates: rows.map(({ rate, a, f }) => ({ rate, adaptive: a, linger: f })),
    fullLoad: { events: FULL, adaptive: fa, linger: ff, ratio: fa / ff },
  };
  writeFileSync(values.json, JSON.stringify(figures, null, 2) + '\n');
}
