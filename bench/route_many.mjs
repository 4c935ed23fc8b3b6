// routeMany against routeData, in the same run, into one forkd (fsync'd log,
// file destination, ack 'accepted'): durable events/s from one Node process
// and the JS-thread time per event, for calls of --sizes events each, with
// --window events in flight. The target: ≥ 300 000 durable events/s.
// Prints figures and ratios; never fails on timing.
//
//   node bench/route_many.mjs [--events 1000000] [--window 20000] [--sizes 100,1000] [--json FILE]
import { rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { parseArgs } from 'node:util';
import { createClient } from '../js/index.mjs';
import { purchases } from './workload.mjs';
import { startForkd, tempConfig } from '../scripts/lib/forkd.mjs';

const { values } = parseArgs({
  options: {
    events: { type: 'string', default: '1000000' },
    window: { type: 'string', default: '20000' },
    sizes: { type: 'string', default: '100,1000' },
    json: { type: 'string' },
  },
});
const N = Number(values.events);
const WINDOW = Number(values.window);
const SIZES = values.sizes.split(',').map(Number);

const CONFIG = `
data_dir: ./.fork
wal: { fsync: batch }
destinations:
  logs: { type: file, format: jsonl, path: ./out/events.jsonl, rotate: 256MiB }
`;

const fmt = (n, d = 0) => n.toLocaleString('en-US', { maximumFractionDigits: d, minimumFractionDigits: d });

// routeData with WINDOW calls in flight: the peer.
async function viaRouteData(client, events) {
  let syncNs = 0n;
  const t0 = performance.now();
  for (let i = 0; i < events.length; i += WINDOW) {
    const end = Math.min(events.length, i + WINDOW);
    const batch = new Array(end - i);
    const s0 = process.hrtime.bigint();
    for (let j = i; j < end; j++) batch[j - i] = client.routeData(events[j], 'logs');
    syncNs += process.hrtime.bigint() - s0;
    await Promise.all(batch);
  }
  const ms = performance.now() - t0;
  return { eventsPerSec: events.length / (ms / 1000), jsNsPerEvent: Number(syncNs) / events.length };
}

// routeMany of `size` events per call, WINDOW events in flight.
async function viaRouteMany(client, events, size) {
  let syncNs = 0n;
  const calls = [];
  for (let i = 0; i < events.length; i += size) calls.push(events.slice(i, i + size));
  const perWindow = Math.max(1, Math.floor(WINDOW / size));
  const t0 = performance.now();
  for (let c = 0; c < calls.length; c += perWindow) {
    const inFlight = [];
    const s0 = process.hrtime.bigint();
    for (let k = c; k < Math.min(calls.length, c + perWindow); k++) inFlight.push(client.routeMany(calls[k], 'logs'));
    syncNs += process.hrtime.bigint() - s0;
    await Promise.all(inFlight);
  }
  const ms = performance.now() - t0;
  return { eventsPerSec: events.length / (ms / 1000), jsNsPerEvent: Number(syncNs) / events.length };
}

const events = Array.from({ length: N }, purchases(99));
const { dir, config } = tempConfig(CONFIG, 'fork-bench-many-');
console.log(`routeMany bench: ${fmt(N)} reference purchase events, ${fmt(WINDOW)} in flight, wal.fsync batch, file sink, ack accepted`);
console.log(`machine: ${os.cpus().length} cores (${os.cpus()[0].model}), node ${process.version}\n`);
const forkd = await startForkd(config);
const client = createClient({ endpoint: `ipc://${dir}/.fork/fork.sock`, maxInFlight: WINDOW * 2, timeoutMs: 60000 });
try {
  await client.routeData(events[0], 'logs');
  // Warm both paths, then measure each twice, alternating; the better round counts.
  await viaRouteData(client, events.slice(0, 50000));
  await viaRouteMany(client, events.slice(0, 50000), SIZES[0]);
  const results = { routeData: [], routeMany: Object.fromEntries(SIZES.map((s) => [s, []])) };
  for (let round = 0; round < 2; round++) {
    results.routeData.push(await viaRouteData(client, events));
    for (const s of SIZES) results.routeMany[s].push(await viaRouteMany(client, events, s));
  }
  const best = (rs) => rs.reduce((a, b) => (b.eventsPerSec > a.eventsPerSec ? b : a));
  const rd = best(results.routeData);
  const rows = [['routeData, one event per call (the peer)', rd, '']];
  const many = {};
  for (const s of SIZES) {
    many[s] = best(results.routeMany[s]);
    rows.push([`routeMany, ${fmt(s)} events per call`, many[s], 'target ≥ 300,000 events/s']);
  }
  const w = Math.max(...rows.map((r) => r[0].length));
  console.log(`${''.padEnd(w)}  ${'events/s'.padStart(10)}  ${'vs routeData'.padStart(12)}  ${'JS ns/event'.padStart(11)}`);
  for (const [label, r, target] of rows) {
    console.log(
      `${label.padEnd(w)}  ${fmt(r.eventsPerSec).padStart(10)}  ${(fmt(r.eventsPerSec / rd.eventsPerSec, 2) + 'x').padStart(12)}  ${fmt(r.jsNsPerEvent).padStart(11)}  ${target}`,
    );
  }
  if (values.json) {
    writeFileSync(
      values.json,
      JSON.stringify({ bench: 'route_many', events: N, window: WINDOW, routeData: rd, routeMany: many }, null, 2) + '\n',
    );
  }
} finally {
  await client.close();
  await forkd.stop();
  rmSync(dir, { recursive: true, force: true });
}
