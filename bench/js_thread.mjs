// JS-thread cost of routeData: how long the caller's thread spends per call
// (validate, encode, queue, create the promise), measured with forkd absent
// (events queue up; nothing is sent) so only the caller's side is timed.
// Prints ns/call; never passes or fails on time.
//
//   node bench/js_thread.mjs [calls per round]
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createClient } from 'fork-router';

const N = Number(process.argv[2] ?? 50000);
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

async function round(label, call) {
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
for (const [label, call] of Object.entries(cases)) {
  await round(label, call); // warm up
  let best = Infinity;
  for (let r = 0; r < 3; r++) best = Math.min(best, await round(label, call));
  console.log(`${label.padEnd(62)} ${best.toFixed(0).padStart(6)} ns/call (JS thread)`);
}
