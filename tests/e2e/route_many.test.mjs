// routeMany against real forkd processes: through the addon and through the
// HTTP client (forkd's HTTP ingest), every acknowledged event stored once
// with its receipt id; idempotencyKeys deduplicated on a second call; a call
// whose events end differently (ack 'delivered', some dead-lettered by a
// validate transform) rejects with each event's own result; and three forkd
// (three app replicas) sent the same keyed calls into one SQLite table give
// the table one forkd gives.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { ForkError, createClient } from '../../js/index.mjs';
import { startForkd, tempConfig, endpointFor, readJsonl, freePort } from './helpers.mjs';

const TOKEN = 'route-many-test-token-0123456789';
let dir, forkd, addon, http;

before(async () => {
  const port = await freePort();
  let config;
  ({ dir, config } = tempConfig(`
http_ingest: { listen: 127.0.0.1:${port}, token: ${TOKEN}, max_body: 256KiB }
dedupe: { window: 1h }
destinations:
  logs: { type: file, path: ./out/logs.jsonl, batch: { max_wait: 10ms } }
  checked:
    type: file
    path: ./out/checked.jsonl
    batch: { max_wait: 10ms }
    transforms:
      - validate: { required: [total], on_fail: dead_letter }
`, 'fork-route-many-'));
  forkd = await startForkd(config);
  addon = createClient({ endpoint: endpointFor(dir), timeoutMs: 10000 });
  http = createClient({ httpEndpoint: `http://127.0.0.1:${port}`, token: TOKEN, timeoutMs: 10000 });
});

after(async () => {
  await addon?.close(0);
  await http?.close(0);
  if (forkd) assert.equal((await forkd.stop()).code, 0, forkd.stderr());
  rmSync(dir, { recursive: true, force: true });
});

async function until(what, fn, ms = 10000) {
  const end = Date.now() + ms;
  for (;;) {
    const v = fn();
    if (v) return v;
    if (Date.now() > end) assert.fail(`${what} within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

const stored = () => readJsonl(`${dir}/out/logs.jsonl`);

for (const [name, client] of [['the addon', () => addon], ['the HTTP client', () => http]]) {
  test(`${name}: 20 calls of 500 events each resolve with a receipt per payload, in order; each event is stored once under its receipt id`, async () => {
    const tag = name.replace(/\W/g, '');
    const receipts = [];
    for (let c = 0; c < 20; c++) {
      const payloads = Array.from({ length: 500 }, (_, i) => ({ tag, n: c * 500 + i }));
      const r = await client().routeMany(payloads, 'logs');
      assert.equal(r.length, 500);
      for (const x of r) {
        assert.equal(x.ack, 'accepted');
        assert.deepEqual(x.destinations, ['logs']);
      }
      receipts.push(...r);
    }
    assert.equal(new Set(receipts.map((r) => r.id)).size, 10000, 'ids are distinct');
    const rows = await until('10 000 rows', () => {
      const mine = stored().filter((r) => r.tag === tag);
      return mine.length >= 10000 && mine;
    });
    assert.equal(rows.length, 10000, 'none twice');
    const byId = new Map(rows.map((r) => [r._fork_id, r.n]));
    receipts.forEach((r, n) => assert.equal(byId.get(r.id), n, `receipt ${n} names the row of payload ${n}`));
  });

  test(`${name}: idempotencyKeys: the same call again resolves with the same ids and stores nothing twice`, async () => {
    const tag = `keys-${name.replace(/\W/g, '')}`;
    const payloads = Array.from({ length: 300 }, (_, n) => ({ tag, n }));
    const idempotencyKeys = payloads.map((p) => `${p.tag}-${p.n}`);
    const first = await client().routeMany(payloads, 'logs', { idempotencyKeys });
    const again = await client().routeMany(payloads, 'logs', { idempotencyKeys });
    assert.deepEqual(first.map((r) => r.id), idempotencyKeys);
    assert.deepEqual(again.map((r) => r.id), idempotencyKeys);
    await addon.routeData({ tag: `${tag}-end` }, 'logs');
    await until('the marker after both calls', () => stored().some((r) => r.tag === `${tag}-end`));
    await new Promise((r) => setTimeout(r, 200));
    const rows = stored().filter((r) => r.tag === tag);
    assert.equal(rows.length, 300, `each keyed event once (${rows.length} rows)`);
  });

  test(`${name}: ack 'delivered' with some events dead-lettered: the call rejects with the first failure's index, and results holds each event's receipt or error`, async () => {
    const tag = `mixed-${name.replace(/\W/g, '')}`;
    const payloads = Array.from({ length: 20 }, (_, n) => (n % 7 === 3 ? { tag, n } : { tag, n, total: n }));
    const err = await client().routeMany(payloads, 'checked', { ack: 'delivered' }).then(
      () => assert.fail('resolved'),
      (e) => e,
    );
    assert.ok(err instanceof ForkError, String(err));
    assert.equal(err.index, 3);
    assert.match(err.message, /^routeMany: 3 of 20 events failed; payloads\[3\]: /);
    assert.equal(err.results.length, 20);
    err.results.forEach((r, n) => {
      if (n % 7 === 3) {
        assert.ok(r instanceof ForkError, `payload ${n}: an error`);
        assert.equal(r.destination, 'checked');
        assert.equal(r.outcomes.checked, 'dead_letter');
      } else {
        assert.equal(r.ack, 'delivered', `payload ${n}: delivered`);
      }
    });
    assert.equal(err.code, err.results[3].code);
    const rows = readJsonl(`${dir}/out/checked.jsonl`).filter((r) => r.tag === tag);
    assert.deepEqual(rows.map((r) => r.n).sort((a, b) => a - b), payloads.filter((p) => p.total !== undefined).map((p) => p.n));
  });
}

test('the HTTP client: a body past http_ingest.max_body is refused whole, FORK_TOO_LARGE, nothing stored', async () => {
  const tag = 'too-big';
  const payloads = Array.from({ length: 2000 }, (_, n) => ({ tag, n, pad: 'x'.repeat(200) }));
  const err = await http.routeMany(payloads, 'logs').then(() => assert.fail('resolved'), (e) => e);
  assert.ok(err instanceof ForkError, String(err));
  assert.equal(err.code, 'FORK_TOO_LARGE');
  assert.match(err.message, /^routeMany: /);
  await addon.routeData({ tag: 'too-big-end' }, 'logs');
  await until('the marker', () => stored().some((r) => r.tag === 'too-big-end'));
  assert.equal(stored().filter((r) => r.tag === tag).length, 0);
});

test('the addon: a call holding a Date and a BigInt (left by the JS encoder to the C++ one) is stored the same way', async () => {
  const tag = 'cxx-path';
  const payloads = Array.from({ length: 50 }, (_, n) => ({ tag, n, at: new Date(Date.UTC(2026, 0, 1, 0, 0, n)), big: BigInt(n) * 1000n }));
  const receipts = await addon.routeMany(payloads, 'logs');
  assert.equal(receipts.length, 50);
  const rows = await until('50 rows', () => {
    const mine = stored().filter((r) => r.tag === tag);
    return mine.length >= 50 && mine;
  });
  const byId = new Map(rows.map((r) => [r._fork_id, r]));
  receipts.forEach((r, n) => {
    const row = byId.get(r.id);
    assert.equal(row.n, n);
    assert.equal(new Date(row.at).getTime(), Date.UTC(2026, 0, 1, 0, 0, n), JSON.stringify(row));
    assert.equal(row.big, n * 1000, JSON.stringify(row));
  });
});

test('an unknown destination: forkd refuses each event; the call rejects FORK_UNKNOWN_DESTINATION naming it', async () => {
  const err = await addon.routeMany([{ a: 1 }, { a: 2 }], 'nowhere').then(() => assert.fail('resolved'), (e) => e);
  assert.equal(err.code, 'FORK_UNKNOWN_DESTINATION');
  assert.equal(err.results.length, 2);
  assert.ok(err.results.every((r) => r.code === 'FORK_UNKNOWN_DESTINATION' && r.destination === 'nowhere'));
});

test('three forkd (three app replicas) sent the same keyed routeMany calls into one SQLite table hold what one forkd holds: each event once', async () => {
  const root = mkdtempSync(path.join(tmpdir(), 'fork-route-many-replicas-'));
  const db = path.join(root, 'shared.db');
  const nodes = [];
  try {
    for (const instance of ['a', 'b', 'c']) {
      const { dir: d, config } = tempConfig(`
instance: ${instance}
destinations:
  orders: { type: sqlite, path: ${db}, table: orders, batch: { max_wait: 10ms } }
`, `fork-route-many-${instance}-`);
      const f = await startForkd(config);
      nodes.push({ dir: d, forkd: f, client: createClient({ endpoint: endpointFor(d), timeoutMs: 10000 }) });
    }
    const payloads = Array.from({ length: 1000 }, (_, n) => ({ orderId: `o${n}`, amount: n }));
    const idempotencyKeys = payloads.map((p) => p.orderId);
    // Each replica gets every event (a retry after a failover, say), in its own order of calls.
    await Promise.all(nodes.map(async ({ client }, k) => {
      for (let c = 0; c < 10; c++) {
        const at = ((c + k * 3) % 10) * 100;
        const r = await client.routeMany(payloads.slice(at, at + 100), 'orders', {
          ack: 'delivered',
          idempotencyKeys: idempotencyKeys.slice(at, at + 100),
        });
        assert.deepEqual(r.map((x) => x.id), idempotencyKeys.slice(at, at + 100));
      }
    }));
    const rows = new Database(db, { readonly: true }).prepare('SELECT _fork_id, amount FROM orders ORDER BY amount').all();
    assert.equal(rows.length, 1000, `${rows.length} rows`);
    rows.forEach((r, n) => {
      assert.equal(r._fork_id, `o${n}`);
      assert.equal(r.amount, n);
    });
  } finally {
    for (const n of nodes) {
      await n.client.close(0);
      assert.equal((await n.forkd.stop()).code, 0, n.forkd.stderr());
      rmSync(n.dir, { recursive: true, force: true });
    }
    rmSync(root, { recursive: true, force: true });
  }
});
