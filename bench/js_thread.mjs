// JS-thread cost of routeData: how long the caller's thread spends per call
// (validate, encode, queue, create the promise), measured with forkd absent
// (events queue up; nothing is sent) so only the caller's side is timed.
// Then routeData(event, 'analytics') against msgpackr.pack() of the same
// object, the floor for turning it into bytes in JS, for the purchase below
// and for a 2 KB nested order (bench/workload.mjs nestedOrder).
// Prints ns/call; never passes or fails on time.
//
//   node bench/js_thread.mjs [calls per round] [--json FILE]
//
// --json FILE also writes the figures to FILE as one JSON object.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import v8 from 'node:v8';
import vm from 'node:vm';
import { pack } from 'msgpackr';
import { createClient } from 'fork-router';
import { nestedOrder } from './workload.mjs';

const { values: args, positionals } = parseArgs({ options: { json: { type: 'string' } }, allowPositionals: true });
const N = Number(positionals[0] ?? 50000);
const endpoint = `ipc://${join(mkdtempSync(join(tmpdir(), 'fork-bench-')), 'none.sock')}`;
const purchase = {
  event: 'purchase',
  orderId: 'ord_8f3a2c1b9d0e',
  userId: 'usr_4b2e9a1c',
  amount: 151.47,
  currency: 'EUR',
  items: [
    { sku: 'SKU-1a2b3c', qty: 2, price: 20.5 },
    { sku: 'SKU-4d5e6f', qty: 1, price: 110.47 },
  ],
  ts: 1700000000123,
  campaign: 'spring',
  ok: true,
};

// Each timed round starts from a collected heap, so that one round's
// garbage (50 000 promises and their events) is not collected in the next
// round's time, whichever kind it is.
v8.setFlagsFromString('--expose-gc');
const gc = vm.runInNewContext('gc');
async function round(label, call) {
  gc();
  const client = createClient({ endpoint, timeoutMs: 60000, maxInFlight: N + 1, maxInFlightBytes: 1 << 30 });
  const promises = new Array(N);
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < N; i++) promises[i] = call(client);
  const ns = Number(process.hrtime.bigint() - t0) / N;
  for (const p of promises) p.catch(() => {});
  await client.close(1);
  return ns;
}

const cases = {
  "routeData(p, 'analytics')": (c) => c.routeData(purchase, 'analytics'),
  "routeData(p, ['production','analytics','logs'])": (c) => c.routeData(purchase, ['production', 'analytics', 'logs']),
  "routeData(p, 'analytics', { timestamp: true, ack: 'none' })": (c) =>
    c.routeData(purchase, 'analytics', { timestamp: true, ack: 'none' }),
};
const calls = {};
for (const [label, call] of Object.entries(cases)) {
  await round(label, call); // warm up
  let best = Infinity;
  for (let r = 0; r < 3; r++) best = Math.min(best, await round(label, call));
  calls[label] = best;
  console.log(`${label.padEnd(62)} ${best.toFixed(0).padStart(6)} ns/call (JS thread)`);
}

// msgpackr.pack() of the same object, timed as the calls are: N in a row.
// The two alternate, seven rounds each after a warm-up, and the best of each
// makes the ratio: a slow spell of a shared machine then meets both rather
// than one (the medians' ratio is printed beside it, to show the spread).
const ROUNDS = 7;
function packRound(payload) {
  gc();
  let bytes = 0;
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < N; i++) bytes += pack(payload).length;
  const ns = Number(process.hrtime.bigint() - t0) / N;
  return bytes > 0 ? ns : Infinity;
}
const median = (v) => [...v].sort((a, b) => a - b)[v.length >> 1];
async function versusPack(payload) {
  const call = (c) => c.routeData(payload, 'analytics');
  await round('', call);
  packRound(payload);
  const routes = [];
  const packs = [];
  for (let r = 0; r < ROUNDS; r++) {
    routes.push(await round('', call));
    packs.push(packRound(payload));
  }
  const routeNs = Math.min(...routes);
  const packNs = Math.min(...packs);
  return {
    bytes: pack(payload).length,
    routeDataNsPerCall: routeNs,
    packNsPerOp: packNs,
    ratio: routeNs / packNs,
    medianRatio: median(routes) / median(packs),
  };
}
const versus = { reference: await versusPack(purchase), nested2k: await versusPack(nestedOrder()) };
console.log('');
for (const [name, v] of Object.entries({ 'reference purchase': versus.reference, '2 KB nested order': versus.nested2k })) {
  console.log(
    `${`${name}, ${v.bytes} B: routeData(e, 'analytics') / pack(e)`.padEnd(64)} ` +
      `${v.routeDataNsPerCall.toFixed(0).padStart(6)} / ${v.packNsPerOp.toFixed(0)} ns = ${v.ratio.toFixed(2)}x msgpackr (target <= 1.0x; medians ${v.medianRatio.toFixed(2)}x)`,
  );
}

if (args.json) {
  writeFileSync(args.json, JSON.stringify({ bench: 'js_thread', calls: N, nsPerCall: calls, versusPack: versus }, null, 2) + '\n');
}
