// Duplicate detection: an idempotencyKey repeated within the window is
// acknowledged but delivered once to each destination (the same key to
// another destination reaches it), and a client resending after a forkd crash
// does not double its events — both also across a SIGKILL and restart.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { pack } from 'msgpackr';
import { createClient } from '../../js/index.mjs';
import { startForkd, tempConfig, readJsonl, endpointFor } from './helpers.mjs';
import { rawClient, routeFrame } from './wire.mjs';

const CONFIG = `
dedupe: { window: 1h }
destinations:
  logs: { type: file, path: ./out.jsonl, batch: { max_wait: 10ms } }
`;

test('a repeated idempotencyKey is acknowledged again but delivered once, across a crash', async () => {
  const { dir, config } = tempConfig(CONFIG);
  try {
    let forkd = await startForkd(config);
    const a = createClient({ endpoint: endpointFor(dir) });
    const b = createClient({ endpoint: endpointFor(dir) });
    const r1 = await a.routeData({ order: 1 }, 'logs', { idempotencyKey: 'order-1' });
    const r2 = await a.routeData({ order: 1, again: true }, 'logs', { idempotencyKey: 'order-1' });
    const r3 = await b.routeData({ order: 1, other: 'client' }, 'logs', { idempotencyKey: 'order-1' });
    // Repeats sent before the first is durable are acknowledged once it is.
    const burst = await Promise.all(
      Array.from({ length: 20 }, (_, i) => a.routeData({ order: 2, i }, 'logs', { idempotencyKey: 'order-2' })),
    );
    for (const r of [r1, r2, r3]) assert.equal(r.id, 'order-1');
    for (const r of burst) assert.equal(r.id, 'order-2');
    await a.close();
    await b.close();
    await forkd.stop('SIGKILL');

    forkd = await startForkd(config);
    const c = createClient({ endpoint: endpointFor(dir) });
    const r4 = await c.routeData({ order: 1, after: 'crash' }, 'logs', { idempotencyKey: 'order-1' });
    assert.equal(r4.id, 'order-1');
    await c.routeData({ order: 3 }, 'logs', { idempotencyKey: 'order-3', ack: 'delivered' });
    await c.close();
    assert.equal((await forkd.stop()).code, 0);

    const recs = readJsonl(path.join(dir, 'out.jsonl'));
    assert.deepEqual(recs.map((r) => r._fork_id).sort(), ['order-1', 'order-2', 'order-3']);
    assert.deepEqual(recs.find((r) => r._fork_id === 'order-1'), { _fork_id: 'order-1', order: 1 });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

// Reads ack frames until every sequence number in [first, last] is acked.
async function expectAck(s, first, last) {
  const acked = new Set();
  while (acked.size < last - first + 1) {
    const [m] = await s.receive();
    assert.equal(m[1], 4, `expected an ack, got frame type ${m[1]}`);
    for (let k = 0; k < m.readUInt32LE(2); k++) {
      const a = Number(m.readBigUInt64LE(6 + 16 * k));
      const b = Number(m.readBigUInt64LE(14 + 16 * k));
      for (let q = a; q <= b; q++) {
        assert.ok(q >= first && q <= last, `unexpected ack for ${q}`);
        acked.add(q);
      }
    }
  }
}

test('a client resending after forkd was killed does not double its events', async () => {
  const { dir, config } = tempConfig(CONFIG);
  try {
    const id = randomBytes(16);
    const events = [1, 2, 3].map((i) => pack([['logs'], null, null, { resent: i }]));
    let forkd = await startForkd(config);
    let s = await rawClient(endpointFor(dir), id);
    await s.send(routeFrame(1, events));
    await expectAck(s, 1, 3);
    s.close();
    await forkd.stop('SIGKILL');

    // The ack could have been lost in the crash: the client resends.
    forkd = await startForkd(config);
    assert.match(forkd.stderr(), /dedupe: remembered 1 clients/);
    s = await rawClient(endpointFor(dir), id);
    await s.send(routeFrame(1, [...events, pack([['logs'], null, null, { resent: 4 }])]));
    await expectAck(s, 1, 4);
    s.close();
    assert.equal((await forkd.stop()).code, 0);
    const recs = readJsonl(path.join(dir, 'out.jsonl'));
    assert.deepEqual(recs.map((r) => r.resent), [1, 2, 3, 4]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('keys outlive the log segments that held them, across a crash, each with its destination', async () => {
  // A scan of the log's tail finds nothing here: the key journal must.
  const { dir, config } = tempConfig(`
wal: { segment_bytes: 64KiB, retention: { max_age: 0 } }
dedupe: { window: 1h, recover_bytes: 0 }
destinations:
  logs: { type: file, path: ./out.jsonl, batch: { max_wait: 5ms } }
  other: { type: file, path: ./other.jsonl, batch: { max_wait: 5ms } }
`);
  try {
    let forkd = await startForkd(config);
    let c = createClient({ endpoint: endpointFor(dir) });
    await c.routeData({ first: true }, 'logs', { idempotencyKey: 'old-key', ack: 'delivered' });
    // Enough traffic to roll and delete the segment that held it.
    // Both destinations get it: one that has nothing of its own does not
    // move its cursor, and would keep the segment.
    const filler = { pad: 'p'.repeat(1000) };
    const both = ['logs', 'other'];
    for (let round = 0; round < 4; round++) {
      await Promise.all(Array.from({ length: 100 }, () => c.routeData(filler, both, { ack: 'delivered' })));
    }
    // A journal sync and a deletion tick: forkd keeps a segment until the
    // journal holds its keys, so once it is gone the key is journaled.
    const { readdirSync } = await import('node:fs');
    let segments;
    for (const deadline = Date.now() + 20000; ; await new Promise((r) => setTimeout(r, 50))) {
      segments = readdirSync(path.join(dir, '.fork/wal'));
      if (!segments.includes('00000000000000000001.log') || Date.now() > deadline) break;
    }
    assert.ok(!segments.includes('00000000000000000001.log'), `the first segment is deleted within 20 s: ${segments}`);
    await c.close();
    await forkd.stop('SIGKILL');

    forkd = await startForkd(config);
    c = createClient({ endpoint: endpointFor(dir) });
    const again = await c.routeData({ second: true }, 'logs', { idempotencyKey: 'old-key', ack: 'delivered' });
    assert.equal(again.id, 'old-key');
    // The journal says which destination had the key: another one gets it.
    await c.routeData({ third: true }, ['logs', 'other'], { idempotencyKey: 'old-key', ack: 'delivered' });
    await c.close();
    assert.equal((await forkd.stop()).code, 0);
    const recs = readJsonl(path.join(dir, 'out.jsonl')).filter((r) => r._fork_id === 'old-key');
    assert.deepEqual(recs, [{ _fork_id: 'old-key', first: true }]);
    assert.deepEqual(readJsonl(path.join(dir, 'other.jsonl')).filter((r) => r._fork_id === 'old-key'),
      [{ _fork_id: 'old-key', third: true }]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a key dedupes per destination: each destination gets it once, also across a SIGKILL', async () => {
  // After the first crash the keys are in the journal (synced), after the
  // second perhaps only in the log's tail; both say which destinations had
  // each key. The test above takes the log's tail out of the picture.
  const { dir, config } = tempConfig(`
dedupe: { window: 1h, recover_bytes: 0 }
destinations:
  a: { type: file, path: ./a.jsonl, batch: { max_wait: 5ms } }
  b: { type: file, path: ./b.jsonl, batch: { max_wait: 5ms } }
  c: { type: file, path: ./c.jsonl, batch: { max_wait: 5ms } }
routes:
  - { when: 'step == 1', to: [a, b] }
  - { when: 'step == 2', to: [b, c] }
`);
  let forkd;
  try {
    forkd = await startForkd(config);
    let c = createClient({ endpoint: endpointFor(dir) });
    // The same key to two destinations reaches both.
    assert.deepEqual(await c.routeData({ k: 1, n: 1 }, 'a', { idempotencyKey: 'k1' }),
      { id: 'k1', ack: 'accepted', destinations: ['a'] });
    await c.routeData({ k: 1, n: 2 }, 'b', { idempotencyKey: 'k1' });
    // Twice to one destination: acknowledged, and with 'delivered' the
    // repeat resolves once the first is delivered.
    const again = await c.routeData({ k: 1, n: 3 }, 'a', { idempotencyKey: 'k1', ack: 'delivered' });
    assert.deepEqual(again, { id: 'k1', ack: 'delivered', destinations: ['a'], outcomes: { a: 'delivered' } });
    // [a, b] and then [b, c]: only c is new; the receipt names what was asked.
    await c.routeData({ k: 2, n: 1 }, ['a', 'b'], { idempotencyKey: 'k2' });
    const k2 = await c.routeData({ k: 2, n: 2 }, ['b', 'c'], { idempotencyKey: 'k2', ack: 'delivered' });
    assert.deepEqual(k2, { id: 'k2', ack: 'delivered', destinations: ['b', 'c'], outcomes: { b: 'delivered', c: 'delivered' } });
    // No destination named: per destination the routes chose.
    assert.deepEqual((await c.routeData({ k: 6, step: 1 }, undefined, { idempotencyKey: 'k6' })).destinations,
      ['a', 'b']);
    assert.deepEqual((await c.routeData({ k: 6, step: 2 }, undefined, { idempotencyKey: 'k6' })).destinations,
      ['b', 'c']);
    // Repeats sent before the first is durable resolve too.
    const burst = await Promise.all(Array.from({ length: 10 }, (_, i) =>
      c.routeData({ k: 3, i }, 'a', { idempotencyKey: 'k3', ack: i % 2 ? 'delivered' : 'accepted' })));
    assert.ok(burst.every((r) => r.id === 'k3'));
    await new Promise((r) => setTimeout(r, 1500)); // a key journal sync
    await c.close();
    await forkd.stop('SIGKILL');

    forkd = await startForkd(config);
    c = createClient({ endpoint: endpointFor(dir) });
    await c.routeData({ k: 1, n: 4 }, 'a', { idempotencyKey: 'k1', ack: 'delivered' });  // deduped
    await c.routeData({ k: 3, after: 'crash' }, ['a', 'b'], { idempotencyKey: 'k3' });  // b is new
    await c.routeData({ k: 5, n: 1 }, 'a', { idempotencyKey: 'k5' });
    await c.close();
    await forkd.stop('SIGKILL');  // k5 is in the log's tail, perhaps not yet in the journal

    forkd = await startForkd(config);
    c = createClient({ endpoint: endpointFor(dir) });
    await c.routeData({ k: 5, n: 2 }, 'a', { idempotencyKey: 'k5' });  // deduped
    await c.routeData({ k: 5, n: 3 }, ['a', 'b'], { idempotencyKey: 'k5', ack: 'delivered' });  // b is new
    await c.routeData({ k: 2, n: 3 }, ['a', 'b', 'c'], { idempotencyKey: 'k2' });  // deduped
    await c.close();
    assert.equal((await forkd.stop()).code, 0);

    // Each destination's file, drained: which events it got, each once.
    const got = (name) => readJsonl(path.join(dir, `${name}.jsonl`))
      .map((r) => `${r._fork_id}:${r.n ?? r.step ?? r.after ?? r.i}`).sort();
    assert.deepEqual(got('a'), ['k1:1', 'k2:1', 'k3:0', 'k5:1', 'k6:1']);
    assert.deepEqual(got('b'), ['k1:2', 'k2:1', 'k3:crash', 'k5:3', 'k6:1']);
    assert.deepEqual(got('c'), ['k2:2', 'k6:2']);
  } finally {
    if (forkd) await forkd.stop('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
});

// CRC32C (Castagnoli), masked as forkd's on-disk records store it.
const CRC_TABLE = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
  return c >>> 0;
});
function maskedCrc32c(buf) {
  let c = 0xffffffff;
  for (const b of buf) c = CRC_TABLE[(c ^ b) & 0xff] ^ (c >>> 8);
  c = (c ^ 0xffffffff) >>> 0;
  return ((((c >>> 15) | (c << 17)) >>> 0) + 0xa282ead8) >>> 0;
}

// A key journal record of version 1: crc lsn recv_us len:u16 key.
function v1Record(key, lsn, recvUs) {
  const k = Buffer.from(key);
  const r = Buffer.alloc(22 + k.length);
  r.writeBigUInt64LE(BigInt(lsn), 4);
  r.writeBigInt64LE(BigInt(recvUs), 12);
  r.writeUInt16LE(k.length, 20);
  k.copy(r, 22);
  r.writeUInt32LE(maskedCrc32c(r.subarray(4)), 0);
  return r;
}

test('a key journal of the earlier format is read: its keys hold for every destination', async () => {
  const { dir, config } = tempConfig(`
dedupe: { window: 1h }
destinations:
  a: { type: file, path: ./a.jsonl, batch: { max_wait: 5ms } }
  b: { type: file, path: ./b.jsonl, batch: { max_wait: 5ms } }
`);
  let forkd;
  try {
    forkd = await startForkd(config);
    let c = createClient({ endpoint: endpointFor(dir) });
    await c.routeData({ first: true }, 'a', { idempotencyKey: 'legacy' });  // lsn 1
    await c.close();
    assert.equal((await forkd.stop()).code, 0);
    // What a forkd of the earlier format leaves: the key without its
    // destination, and a sync marker (len 0) past the log's one entry.
    const journal = path.join(dir, '.fork/dedupe/keys.journal');
    writeFileSync(journal, Buffer.concat([v1Record('legacy', 1, Date.now() * 1000), v1Record('', 2, 0)]));

    forkd = await startForkd(config);
    // The journal's key for every destination, the log's for a.
    assert.match(forkd.stderr(), /remembered 1 clients and 2 \(idempotency key, destination\) pairs/);
    assert.equal(readFileSync(journal).subarray(0, 8).toString('latin1'), 'FORKKEY\x02');
    c = createClient({ endpoint: endpointFor(dir) });
    const r = await c.routeData({ again: true }, ['a', 'b'], { idempotencyKey: 'legacy', ack: 'delivered' });
    assert.deepEqual(r, { id: 'legacy', ack: 'delivered', destinations: ['a', 'b'], outcomes: { a: 'delivered', b: 'delivered' } });
    await c.routeData({ fresh: true }, ['a', 'b'], { idempotencyKey: 'new' });
    await c.close();
    assert.equal((await forkd.stop()).code, 0);
    const ids = (name) => readJsonl(path.join(dir, `${name}.jsonl`)).map((x) => x._fork_id);
    assert.deepEqual(ids('a'), ['legacy', 'new']);
    assert.deepEqual(ids('b'), ['new']);
  } finally {
    if (forkd) await forkd.stop('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
});
