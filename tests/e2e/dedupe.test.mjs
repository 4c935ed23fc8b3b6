// Duplicate detection: an idempotencyKey repeated within the window is
// acknowledged but delivered once, and a client resending after a forkd crash
// does not double its events — both also across a SIGKILL and restart.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
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

test('keys outlive the log segments that held them, across a crash', async () => {
  // A scan of the log's tail finds nothing here: the key journal must.
  const { dir, config } = tempConfig(`
wal: { segment_bytes: 64KiB }
dedupe: { window: 1h, recover_bytes: 0 }
destinations:
  logs: { type: file, path: ./out.jsonl, batch: { max_wait: 5ms } }
`);
  try {
    let forkd = await startForkd(config);
    let c = createClient({ endpoint: endpointFor(dir) });
    await c.routeData({ first: true }, 'logs', { idempotencyKey: 'old-key', ack: 'delivered' });
    // Enough traffic to roll and delete the segment that held it.
    const filler = { pad: 'p'.repeat(1000) };
    for (let round = 0; round < 4; round++) {
      await Promise.all(Array.from({ length: 100 }, () => c.routeData(filler, 'logs', { ack: 'delivered' })));
    }
    await new Promise((r) => setTimeout(r, 2500)); // a journal sync and a deletion tick
    const { readdirSync } = await import('node:fs');
    const segments = readdirSync(path.join(dir, '.fork/wal'));
    assert.ok(!segments.includes('00000000000000000001.log'), `the first segment is deleted: ${segments}`);
    await c.close();
    await forkd.stop('SIGKILL');

    forkd = await startForkd(config);
    c = createClient({ endpoint: endpointFor(dir) });
    const again = await c.routeData({ second: true }, 'logs', { idempotencyKey: 'old-key', ack: 'delivered' });
    assert.equal(again.id, 'old-key');
    await c.close();
    assert.equal((await forkd.stop()).code, 0);
    const recs = readJsonl(path.join(dir, 'out.jsonl')).filter((r) => r._fork_id === 'old-key');
    assert.deepEqual(recs, [{ _fork_id: 'old-key', first: true }]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
