// Time from start to accepting events, for a log of a given size (default
// 1 GiB) left by a SIGKILL: recovery reads only the newest segments, so this
// should not grow with the log. Prints figures; never fails on timing.
//
//   node bench/recovery.mjs [--gib 1]
import { mkdirSync, writeFileSync, rmSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { parseArgs } from 'node:util';
import path from 'node:path';
import { pack } from 'msgpackr';
import * as zmq from 'zeromq';
import { createClient } from '../js/index.mjs';
import { startForkd, tempConfig } from '../scripts/lib/forkd.mjs';

const { values } = parseArgs({ options: { gib: { type: 'string', default: '1' } } });
const target = Number(values.gib) * (1 << 30);

// The destination cannot open its output (its directory is a file), so its
// cursor stays at the start and every segment is kept.
const { dir, config } = tempConfig(`
wal: { fsync: never, segment_bytes: 64MiB }
destinations:
  stuck: { type: file, path: ./blocker/out.jsonl, retry: { initial: 1s, max: 1s } }
`, 'fork-recovery-');
writeFileSync(path.join(dir, 'blocker'), 'not a directory');
const endpoint = `ipc://${dir}/.fork/fork.sock`;

let forkd = await startForkd(config);
const id = randomBytes(16);
const s = new zmq.Dealer({ routingId: id.toString('latin1'), linger: 0 });
s.routingId = id;
s.connect(endpoint);
await s.send(Buffer.concat([Buffer.from([1, 1]), pack({ client: id, protocol: 1, agent: 'bench' })]));
await s.receive();
const ev = pack([['stuck'], null, null, { blob: 'x'.repeat(2000) }]);
const FRAME = 1000;
const parts = [];
const hdr = Buffer.alloc(14);
hdr[0] = 1;
hdr[1] = 3;
parts.push(hdr);
for (let i = 0; i < FRAME; i++) {
  const h = Buffer.alloc(5);
  h.writeUInt32LE(ev.length, 1);
  parts.push(h, ev);
}
const frame = Buffer.concat(parts);
let seq = 1;
let acked = 0;
const events = Math.ceil(target / (ev.length + 47));
const t0 = performance.now();
while (seq <= events) {
  // A fresh copy per send: zeromq may still hold the previous buffer.
  const f = Buffer.from(frame);
  f.writeBigUInt64LE(BigInt(seq), 2);
  f.writeUInt32LE(FRAME, 10);
  await s.send(f);
  seq += FRAME;
  while (seq - 1 - acked > 20 * FRAME) {
    const [m] = await s.receive();
    if (m[1] === 4) acked = Number(m.readBigUInt64LE(14 + 16 * (m.readUInt32LE(2) - 1)));
  }
}
while (acked < seq - 1) {
  const [m] = await s.receive();
  if (m[1] === 4) acked = Number(m.readBigUInt64LE(14 + 16 * (m.readUInt32LE(2) - 1)));
}
s.close();
const fill = (performance.now() - t0) / 1000;
await forkd.stop('SIGKILL');

const t1 = performance.now();
forkd = await startForkd(config);
const listening = performance.now() - t1;
const client = createClient({ endpoint });
await client.routeData({ after: 'restart' }, 'stuck');
const accepting = performance.now() - t1;
await client.close();
const recovered = forkd.stderr().match(/log recovered in (\d+) ms: (\d+) segments, (\d+) bytes/);
const dedupe = forkd.stderr().match(/from (\d+) recent entries in (\d+) ms/);
await forkd.stop('SIGKILL');
rmSync(dir, { recursive: true, force: true });

console.log(`log written: ${(acked * (ev.length + 47) / (1 << 30)).toFixed(2)} GiB, ${acked.toLocaleString()} events in ${fill.toFixed(1)} s (fsync never)`);
console.log(`after SIGKILL: ${recovered?.[2]} segments, ${(Number(recovered?.[3]) / (1 << 30)).toFixed(2)} GiB`);
console.log(`  log recovery                ${recovered?.[1]} ms`);
console.log(`  dedupe state from the tail  ${dedupe?.[2]} ms (${Number(dedupe?.[1]).toLocaleString()} entries)`);
console.log(`  start to listening          ${listening.toFixed(0)} ms`);
console.log(`  start to first ack          ${accepting.toFixed(0)} ms   target ≤ 2000 ms`);
