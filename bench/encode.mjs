// JS-thread cost of encoding the reference purchase event: the addon's
// encoder (encodeForTest: encode + copy into a new Buffer; encodedSize: the
// encode alone, which is what routeData does) against msgpackr.pack().
// Prints ns/op and ratios; never passes or fails on time.
//
//   node bench/encode.mjs [iterations]
import { createRequire } from 'node:module';
import { pack } from 'msgpackr';

const require = createRequire(import.meta.url);
const binding = require('../js/loader.cjs').load();

const N = Number(process.argv[2] ?? 300000);
const EVENTS = 1024;

// Same seed, same stream (mulberry32).
function rng(seed) {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function purchases(n, seed = 42) {
  const r = rng(seed);
  const hex = (len) => Array.from({ length: len }, () => Math.floor(r() * 16).toString(16)).join('');
  const out = [];
  for (let i = 0; i < n; i++) {
    const items = [0, 1].map(() => ({
      sku: `SKU-${hex(6)}`,
      qty: 1 + Math.floor(r() * 4),
      price: Math.round(r() * 20000) / 100,
    }));
    out.push({
      event: 'purchase',
      orderId: `ord_${hex(12)}`,
      userId: `usr_${hex(8)}`,
      amount: Math.round(items.reduce((s, it) => s + it.qty * it.price, 0) * 100) / 100,
      currency: ['USD', 'EUR', 'GBP'][Math.floor(r() * 3)],
      items,
      ts: 1700000000000 + Math.floor(r() * 1e9),
      campaign: ['spring', 'summer', 'none'][Math.floor(r() * 3)],
      ok: true,
    });
  }
  return out;
}

const events = purchases(EVENTS);

function bench(name, fn) {
  for (let i = 0; i < 50000; i++) fn(events[i % EVENTS]); // warm up
  let best = Infinity;
  for (let round = 0; round < 5; round++) {
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < N; i++) fn(events[i % EVENTS]);
    const ns = Number(process.hrtime.bigint() - t0) / N;
    best = Math.min(best, ns);
  }
  return best;
}

let sink = 0;
const results = {
  'msgpackr.pack (payload only)': bench('msgpackr', (e) => (sink += pack(e).length)),
  'encodeForTest (event, Buffer copy)': bench('encodeForTest', (e) => (sink += binding.encodeForTest(e, 'analytics').length)),
  'encodedSize (event, encode only)': bench('encodedSize', (e) => (sink += binding.encodedSize(e, 'analytics'))),
};
const base = results['msgpackr.pack (payload only)'];
console.log(`reference purchase event: ${pack(events[0]).length} bytes as msgpack (msgpackr), ` +
  `${binding.encodedSize(events[0], 'analytics')} bytes as a Fork event; ${N} iterations, best of 5`);
for (const [name, ns] of Object.entries(results)) {
  console.log(`${name.padEnd(38)} ${ns.toFixed(0).padStart(6)} ns/op  ${(ns / base).toFixed(2)}x msgpackr`);
}
if (sink === 0) console.log('');
