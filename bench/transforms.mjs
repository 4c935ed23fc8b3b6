// Routing, transforms and aggregation: forkd's compiled steps against the
// same work done the obvious way in Node (msgpackr decode, plain JS, encode),
// on the same reference events, in the same run.
//
//   node bench/transforms.mjs [--events 200000] [--rounds 5]
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Packr } from 'msgpackr';
import { purchases } from './workload.mjs';
import { ROOT } from '../scripts/lib/forkd.mjs';

const arg = (name, def) => {
  const i = process.argv.indexOf(name);
  return i > 0 ? Number(process.argv[i + 1]) : def;
};
const N = arg('--events', 200000);
const ROUNDS = arg('--rounds', 5);
const BIN = path.join(ROOT, 'build', 'bin', 'fork_bench_transforms');
if (!fs.existsSync(BIN)) {
  console.error(`missing ${BIN}: run npm run build`);
  process.exit(2);
}

// The reference events, with userId drawn from 1 000 values so that the
// aggregate has 1 000 groups.
const packr = new Packr({ useRecords: false });
const next = purchases(42);
const payloads = [];
for (let i = 0; i < N; i++) {
  const e = next();
  e.userId = `user-${i % 1000}`;
  payloads.push(packr.pack(e));
}
const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'fork-bench-')), 'events.bin');
const parts = [];
for (const p of payloads) {
  const len = Buffer.alloc(4);
  len.writeUInt32LE(p.length);
  parts.push(len, p);
}
fs.writeFileSync(file, Buffer.concat(parts));

const fork = {};
for (const line of execFileSync(BIN, [file, String(ROUNDS)], { encoding: 'utf8' }).trim().split('\n')) {
  const r = JSON.parse(line);
  fork[r.name] = r;
}
fs.rmSync(path.dirname(file), { recursive: true, force: true });

// The same work in Node.
function best(fn) {
  let min = Infinity;
  for (let r = 0; r < ROUNDS; r++) {
    const t0 = process.hrtime.bigint();
    fn();
    min = Math.min(min, Number(process.hrtime.bigint() - t0) / 1e9);
  }
  return (min * 1e9) / N;
}
const route = (e) => {
  const to = [];
  if (e.event === 'purchase') to.push('production', 'analytics', 'revenue', 'logs');
  if (e.event === 'purchase' && e.amount > 1000) to.push('alerts');
  return to;
};
let sink = 0;
const js = {
  route_only: best(() => {
    for (const p of payloads) sink += route(packr.unpack(p)).length;
  }),
  route_plus_5_steps: best(() => {
    for (let i = 0; i < N; i++) {
      const e = packr.unpack(payloads[i]);
      sink += route(e).length;
      const out = { ...e };
      out.total = out.amount;
      delete out.amount;
      out.source = 'web';
      out.total = Number(out.total);
      out.received_at = new Date(1795300000000 + i / 1000).toISOString();
      if (out.total > 0) sink += packr.pack(out).length;
    }
  }),
  route_plus_5_steps_with_hash: best(() => {
    for (const p of payloads) {
      const e = packr.unpack(p);
      sink += route(e).length;
      const out = { ...e };
      delete out.card;
      if (out.user) delete out.user.email;
      out.userId = createHash('sha256').update('s3cret' + out.userId).digest('hex');
      out.total = out.amount;
      delete out.amount;
      out.source = 'web';
      out.total = Number(out.total);
      sink += packr.pack(out).length;
    }
  }),
  aggregate_1d_by_user: best(() => {
    const groups = new Map();
    for (const p of payloads) {
      const e = packr.unpack(p);
      const day = Math.floor(e.ts / 86400000) * 86400000;
      const key = `${day}|${e.userId}`;
      let g = groups.get(key);
      if (!g) groups.set(key, (g = { revenue: 0, orders: 0, top: -Infinity }));
      g.revenue += e.amount;
      g.orders += 1;
      if (e.amount > g.top) g.top = e.amount;
    }
    sink += groups.size;
  }),
};
// What a Node program would do for one JSON line of a stored event.
const jsonlPeer = best(() => {
  for (const p of payloads) sink += (JSON.stringify({ _fork_id: 'order-17', ...packr.unpack(p) }) + '\n').length;
});
if (sink === 42) console.log('');

console.log(`${N} reference events, best of ${ROUNDS} rounds; ${fork.aggregate_groups.groups} aggregate groups`);
console.log('scenario                        forkd ns/event   Node ns/event   forkd events/s   speedup');
for (const name of Object.keys(js)) {
  const f = fork[name].ns_per_event;
  console.log(
    `${name.padEnd(32)}${f.toFixed(0).padStart(14)}${js[name].toFixed(0).padStart(16)}` +
      `${Math.round(1e9 / f).toLocaleString('en-US').padStart(17)}${(js[name] / f).toFixed(1).padStart(9)}x`,
  );
}
// Per-entry costs inside a pipeline: the check every log reader makes of a
// stored event, and the JSON line a file destination writes for it.
// The JSON line's peer: msgpackr.unpack and JSON.stringify.
for (const name of ['stored_event_check', 'jsonl_line']) {
  const f = fork[name].ns_per_event;
  const peer = name === 'jsonl_line' ? jsonlPeer : undefined;
  console.log(`${name.padEnd(32)}${f.toFixed(0).padStart(14)}${(peer === undefined ? '-' : peer.toFixed(0)).padStart(16)}` +
    `${Math.round(1e9 / f).toLocaleString('en-US').padStart(17)}${peer === undefined ? '' : `${(peer / f).toFixed(1).padStart(9)}x`}`);
}
