// JS-thread cost of encoding the reference purchase event: routeData's JS
// encoder (js/encoder.cjs, what routeData uses for plain data), the addon's
// C++ encoder (encodeForTest: encode + copy into a new Buffer; encodedSize:
// the encode alone, what routeData hands Dates, BigInts and binary to)
// against msgpackr.pack().
// Prints ns/op and ratios; never passes or fails on time.
//
//   node bench/encode.mjs [iterations] [--json FILE]
//
// --json FILE also writes the figures to FILE as one JSON object.
import { writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { parseArgs } from 'node:util';
import { pack } from 'msgpackr';
import { purchases } from './workload.mjs';

const require = createRequire(import.meta.url);
const binding = require('../js/loader.cjs').load();
const encoder = require('../js/encoder.cjs');

const { values: args, positionals } = parseArgs({ options: { json: { type: 'string' } }, allowPositionals: true });
const N = Number(positionals[0] ?? 300000);
const EVENTS = 1024;

const next = purchases(42);
const events = Array.from({ length: EVENTS }, () => next());

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
  'JS encoder (event, encode only)': bench('js', (e) => (sink += encoder.encodeEvent(e, 'analytics', undefined, undefined))),
};
const base = results['msgpackr.pack (payload only)'];
console.log(`reference purchase event: ${pack(events[0]).length} bytes as msgpack (msgpackr), ` +
  `${binding.encodedSize(events[0], 'analytics')} bytes as a Fork event; ${N} iterations, best of 5`);
for (const [name, ns] of Object.entries(results)) {
  console.log(`${name.padEnd(38)} ${ns.toFixed(0).padStart(6)} ns/op  ${(ns / base).toFixed(2)}x msgpackr`);
}
if (sink === 0) console.log('');
if (args.json) {
  writeFileSync(args.json, JSON.stringify({
    bench: 'encode',
    iterations: N,
    payloadBytes: pack(events[0]).length,
    eventBytes: binding.encodedSize(events[0], 'analytics'),
    nsPerOp: { pack: base, encodeForTest: results['encodeForTest (event, Buffer copy)'], encodedSize: results['encodedSize (event, encode only)'], js: results['JS encoder (event, encode only)'] },
  }, null, 2) + '\n');
}
