// ack: 'delivered' tells the truth: it resolves once every destination the
// event reached has it in its store, with receipt.outcomes saying per
// destination what became of it; a destination that dead-lettered or shed the
// record makes the call reject with FORK_REJECTED naming the destination and
// the reason. Real forkd, real addon; a client that does not read outcomes
// (an older addon, spoken to here over a raw socket) gets a nack instead.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import path from 'node:path';
import { existsSync, mkdirSync, rmSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { randomBytes } from 'node:crypto';
import { pack, unpack } from 'msgpackr';
import { Dealer } from 'zeromq';
import { createClient, ForkError } from '../../js/index.mjs';
import { startForkd, tempConfig, endpointFor, readJsonl } from './helpers.mjs';

// A port nobody listens on: the `web` store is down for the whole run.
async function closedPort() {
  return new Promise((resolve) => {
    const srv = net.createServer();
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

const configFor = (port) => `
data_dir: ./.fork
wal: { fsync: batch, batch_ms: 2 }
destinations:
  production: { type: file, path: ./out/production.jsonl, batch: { max_wait: 10ms } }
  analytics:
    type: file
    path: ./out/analytics.jsonl
    batch: { max_wait: 10ms }
    transforms:
      - validate: { required: [total], on_fail: dead_letter }
  sampled:
    type: file
    path: ./out/sampled.jsonl
    batch: { max_wait: 10ms }
    transforms:
      - filter: 'total > 100'
  web:
    type: http
    url: http://127.0.0.1:${port}/events
    connect_timeout: 1s
    retry: { initial: 50ms, max: 200ms }
    backlog: { max_events: 5, policy: shed }
routes:
  - { when: 'kind == "routed"', to: [production, sampled] }
`;

let dir, forkd, client;
const read = (name) => {
  const p = path.join(dir, 'out', `${name}.jsonl`);
  return existsSync(p) ? readJsonl(p) : [];
};
const letters = (name) => {
  const p = path.join(dir, '.fork', 'dead_letters', `${name}.jsonl`);
  return existsSync(p) ? readJsonl(p) : [];
};

before(async () => {
  let config;
  ({ dir, config } = tempConfig(configFor(await closedPort()), 'fork-outcomes-'));
  forkd = await startForkd(config);
  client = createClient({ endpoint: endpointFor(dir), timeoutMs: 10000 });
});

after(async () => {
  await client?.close(0);
  if (forkd) {
    const r = await forkd.stop('SIGTERM');
    assert.equal(r.code, 0, `forkd exits 0 on SIGTERM:\n${forkd.stderr()}`);
  }
  rmSync(dir, { recursive: true, force: true });
});

test("plain delivery: the receipt's outcomes say 'delivered' for every destination", async () => {
  const r = await client.routeData({ total: 7 }, ['production', 'analytics'], { ack: 'delivered' });
  assert.equal(r.ack, 'delivered');
  assert.deepEqual(r.outcomes, { production: 'delivered', analytics: 'delivered' });
  // 'delivered' means in the store.
  assert.ok(read('production').some((x) => x._fork_id === r.id), 'production holds it');
  assert.ok(read('analytics').some((x) => x._fork_id === r.id), 'analytics holds it');
  // Only 'delivered' receipts carry outcomes.
  const accepted = await client.routeData({ total: 8 }, 'production');
  assert.equal(accepted.ack, 'accepted');
  assert.equal('outcomes' in accepted, false, 'an accepted receipt has no outcomes');
});

test('a validate step that dead-letters: FORK_REJECTED names the destination and the reason; the other destination delivered', async () => {
  const err = await client
    .routeData({ n: 1 }, ['production', 'analytics'], { ack: 'delivered', idempotencyKey: 'no-total' })
    .then(
      (r) => assert.fail(`resolved: ${JSON.stringify(r)}`),
      (e) => e,
    );
  assert.ok(err instanceof ForkError, String(err));
  assert.equal(err.code, 'FORK_REJECTED');
  assert.equal(err.id, 'no-total');
  assert.equal(err.destination, 'analytics');
  assert.match(err.reason, /validate: total: required field is missing/);
  assert.deepEqual(err.outcomes, { production: 'delivered', analytics: 'dead_letter' });
  assert.match(err.message, /destination 'analytics' did not store the event \(dead_letter\): validate: total/);
  // When the call settles, both ends are true: production has it, analytics' dead letters do.
  assert.ok(read('production').some((x) => x._fork_id === 'no-total'), 'production holds it');
  assert.ok(!read('analytics').some((x) => x._fork_id === 'no-total'), 'analytics does not');
  const dl = letters('analytics').find((l) => l._fork_id === 'no-total');
  assert.ok(dl, 'the dead letter is written when the call rejects');
  assert.match(dl.reason, /total: required field is missing/);
});

test("a filter: not an error; the receipt says { sampled: 'filtered', production: 'delivered' }", async () => {
  const small = await client.routeData({ total: 5 }, ['sampled', 'production'], { ack: 'delivered' });
  assert.deepEqual(small.outcomes, { sampled: 'filtered', production: 'delivered' });
  const big = await client.routeData({ total: 500 }, ['sampled', 'production'], { ack: 'delivered' });
  assert.deepEqual(big.outcomes, { sampled: 'delivered', production: 'delivered' });
  assert.deepEqual(read('sampled').map((x) => x._fork_id), [big.id]);
  // Destinations the routes chose get outcomes too.
  const routed = await client.routeData({ kind: 'routed', total: 1 }, undefined, { ack: 'delivered' });
  assert.deepEqual([...routed.destinations].sort(), ['production', 'sampled']);
  assert.deepEqual(routed.outcomes, { production: 'delivered', sampled: 'filtered' });
});

test('a shed quota: FORK_REJECTED with the reason shed, for every call the destination skipped', { timeout: 30000 }, async () => {
  // One frame, one commit: all ten are read in one batch the store refuses,
  // which holds 10 entries against a quota of 5.
  const calls = Array.from({ length: 10 }, (_, i) =>
    client.routeData({ total: i }, i === 0 ? ['production', 'web'] : 'web', { ack: 'delivered' }),
  );
  const settled = await Promise.allSettled(calls);
  for (const [i, s] of settled.entries()) {
    assert.equal(s.status, 'rejected', `call ${i} resolved: ${JSON.stringify(s.value)}`);
    const err = s.reason;
    assert.equal(err.code, 'FORK_REJECTED', `call ${i}: ${err.message}`);
    assert.equal(err.destination, 'web');
    assert.match(err.reason, /^shed: backlog over its quota/);
    assert.match(err.message, /destination 'web' did not store the event \(shed\)/);
    assert.deepEqual(err.outcomes, i === 0 ? { production: 'delivered', web: 'shed' } : { web: 'shed' });
  }
  const sheds = letters('web').filter((l) => l.shed);
  assert.ok(sheds.reduce((n, l) => n + l.shed.events, 0) >= 10, `the shed range is recorded: ${JSON.stringify(sheds)}`);
});

test("a cursor commit that fails holds 'delivered' back until a commit succeeds", { timeout: 30000 }, async () => {
  // The cursor is written to <name>.cursor.tmp, then renamed: a directory in
  // that place makes every commit fail, whoever runs the test.
  const tmp = path.join(dir, '.fork', 'cursors', 'production.cursor.tmp');
  mkdirSync(tmp);
  let settled = false;
  const call = client.routeData({ total: 3 }, 'production', { ack: 'delivered', timeoutMs: 20000 });
  call.then(
    () => (settled = true),
    () => (settled = true),
  );
  try {
    const t0 = Date.now();
    while (!read('production').some((x) => x.total === 3)) {
      assert.ok(Date.now() - t0 < 10000, 'the record reaches the file');
      await sleep(20);
    }
    await sleep(1500);
    assert.equal(settled, false, "flushed but not committed: 'delivered' waits");
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
  const r = await call;
  assert.deepEqual(r.outcomes, { production: 'delivered' }, 'settled once the retried commit succeeds');
});

// An addon that does not read outcomes: hello without `outcomes`. It cannot
// be told "filtered", so that reads as delivered; a record not stored is a
// nack with the same words.
test('a client that reads no outcomes gets a nack for a dead-lettered record and delivered for a filtered one', async () => {
  const id = Buffer.concat([Buffer.from([1]), randomBytes(15)]);
  const sock = new Dealer({ routingId: id.toString('latin1'), receiveTimeout: 10000, linger: 0 });
  sock.routingId = id;
  sock.connect(endpointFor(dir));
  try {
    const frame = (type, body) => Buffer.concat([Buffer.from([1, type]), body]);
    await sock.send(frame(1, pack({ client: id, protocol: 1, agent: 'older-client/0' })));
    const [welcome] = await sock.receive();
    assert.equal(welcome[1], 2, 'a welcome');
    assert.equal(unpack(welcome.subarray(2)).outcomes, true, 'forkd says it reports outcomes');

    const entry = (dests, payload) => {
      const ev = pack([dests, null, null, payload]);
      const h = Buffer.alloc(5);
      h[0] = 1; // wants 'delivered'
      h.writeUInt32LE(ev.length, 1);
      return Buffer.concat([h, ev]);
    };
    const head = Buffer.alloc(12);
    head.writeBigUInt64LE(1n, 0);
    head.writeUInt32LE(2, 8);
    await sock.send(frame(3, Buffer.concat([head, entry(['analytics'], { n: 1 }), entry(['sampled'], { total: 1 })])));

    const settled = new Map(); // seq -> 'delivered' | [code, message]
    const deadline = Date.now() + 10000;
    while (settled.size < 2) {
      assert.ok(Date.now() < deadline, `settled so far: ${JSON.stringify([...settled])}`);
      const [f] = await sock.receive();
      if (f[1] === 6) {
        // A client that did not ask gets no trailer.
        const n = f.readUInt32LE(2);
        assert.equal(f.length, 2 + 4 + 16 * n, 'a delivered frame without a trailer');
        for (let i = 0; i < n; i++) {
          const first = f.readBigUInt64LE(6 + 16 * i);
          const last = f.readBigUInt64LE(14 + 16 * i);
          for (let s = first; s <= last; s++) settled.set(Number(s), 'delivered');
        }
      } else if (f[1] === 5) {
        const first = Number(f.readBigUInt64LE(2));
        settled.set(first, unpack(f.subarray(18)));
      }
    }
    const [code, message] = settled.get(1);
    assert.equal(code, 'FORK_REJECTED');
    assert.match(message, /destination 'analytics' did not store the event \(dead_letter\): validate: total/);
    assert.equal(settled.get(2), 'delivered', 'filtered reads as delivered');
  } finally {
    sock.close();
  }
});
