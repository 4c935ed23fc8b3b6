// The sqlite sink, against real SQLite files read back with better-sqlite3:
// append, upsert idempotency, type mapping with nested values, declared
// columns and `extra`, a constraint violation (only that record in dead
// letters), hostile field names and values, a kill -9 mid-run, daily
// aggregate totals equal to what was acknowledged, appends into a table
// made without a unique _fork_id, and the migration of a single-instance
// aggregate table to the merged layout.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, rmSync } from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { createClient } from '../../js/index.mjs';
import { startForkd, tempConfig, endpointFor, readJsonl } from './helpers.mjs';
import { purchases } from '../../bench/workload.mjs';

const HEAD = 'data_dir: ./.fork\n';

async function withForkd(yaml, fn) {
  const { dir, config } = tempConfig(yaml, 'fork-sqlite-');
  let forkd;
  let client;
  try {
    forkd = await startForkd(config);
    client = createClient({ endpoint: endpointFor(dir), timeoutMs: 10000 });
    const stop = async () => {
      await client.close();
      const r = await forkd.stop('SIGTERM');
      assert.equal(r.code, 0, forkd.stderr());
    };
    const restart = async () => {
      forkd = await startForkd(config);
      client = createClient({ endpoint: endpointFor(dir), timeoutMs: 10000 });
      return { forkd, client };
    };
    const db = (name = 'out.db') => new Database(path.join(dir, name), { readonly: true, fileMustExist: true });
    return await fn({ dir, config, get forkd() { return forkd; }, get client() { return client; }, stop, restart, db });
  } finally {
    if (client) await client.close(0);
    if (forkd) await forkd.stop('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
}

test('append: every acknowledged event once, types mapped, nested values as JSON text', async () => {
  const yaml = `${HEAD}destinations:\n  orders: { type: sqlite, path: ./out.db, table: orders }\n`;
  await withForkd(yaml, async ({ client, stop, db }) => {
    const next = purchases(11);
    const sent = [];
    for (let i = 0; i < 2000; i++) sent.push([next(), null]);
    const receipts = await Promise.all(sent.map(([p]) => client.routeData(p, 'orders')));
    await stop();
    const d = db();
    const cols = d.prepare("SELECT name, type, pk FROM pragma_table_info('orders')").all();
    assert.deepEqual(cols.map((c) => [c.name, c.type]), [
      ['_fork_id', 'TEXT'], ['event', 'TEXT'], ['orderId', 'TEXT'], ['userId', 'TEXT'], ['amount', 'REAL'],
      ['currency', 'TEXT'], ['items', 'TEXT'], ['ts', 'INTEGER'], ['campaign', 'TEXT'], ['ok', 'INTEGER'],
      ['extra', 'TEXT'],
    ]);
    assert.equal(cols[0].pk, 1, '_fork_id is the primary key');
    const rows = d.prepare('SELECT * FROM orders').all();
    assert.equal(rows.length, 2000);
    const byId = new Map(rows.map((r) => [r._fork_id, r]));
    receipts.forEach((r, i) => {
      const row = byId.get(r.id);
      const p = sent[i][0];
      assert.ok(row, `row for ${r.id}`);
      assert.equal(row.orderId, p.orderId);
      assert.equal(row.amount, p.amount);
      assert.equal(row.ts, p.ts);
      assert.equal(row.ok, 1);
      assert.deepEqual(JSON.parse(row.items), p.items);
      assert.equal(row.extra, null);
    });
    assert.equal(d.prepare("SELECT json_extract(items, '$[0].qty') q FROM orders LIMIT 1").get().q >= 1, true);
    d.close();
  });
});

test('upsert: the same events twice give the same rows; a later version of a key wins', async () => {
  const yaml = `${HEAD}destinations:
  users:
    type: sqlite
    path: ./out.db
    table: users
    mode: upsert
    key: userId
    columns: { userId: text, name: text, visits: integer, profile: json }
`;
  await withForkd(yaml, async ({ client, stop, db }) => {
    const v1 = Array.from({ length: 50 }, (_, i) => ({ userId: `u${i}`, name: `n${i}`, visits: 1, profile: { tags: ['a'] } }));
    for (const p of v1) await client.routeData(p, 'users');
    for (const p of v1) await client.routeData(p, 'users');  // the same again
    await client.routeData({ userId: 'u7', name: 'Sue', visits: 2, profile: { tags: ['b', 'c'] }, plan: 'pro' }, 'users', { ack: 'delivered' });
    await stop();
    const d = db();
    assert.equal(d.prepare('SELECT count(*) n FROM users').get().n, 50);
    const sue = d.prepare("SELECT * FROM users WHERE userId = 'u7'").get();
    assert.equal(sue.name, 'Sue');
    assert.equal(sue.visits, 2);
    assert.deepEqual(JSON.parse(sue.profile), { tags: ['b', 'c'] });
    assert.deepEqual(JSON.parse(sue.extra), { plan: 'pro' }, 'a field without a column lands in extra');
    assert.equal(d.prepare("SELECT name FROM users WHERE userId = 'u8'").get().name, 'n8');
    d.close();
  });
});

test('extra: false refuses a record with an unknown field; a constraint violation dead-letters only that record', async () => {
  const yaml = `${HEAD}destinations:
  strict:
    type: sqlite
    path: ./out.db
    table: strict
    extra: false
    columns: { orderId: text, total: real }
  checked:
    type: sqlite
    path: ./checked.db
    table: checked
    columns: { orderId: text, total: real }
`;
  await withForkd(yaml, async ({ dir, client, stop, db, forkd }) => {
    const ids = [];
    for (let i = 0; i < 20; i++) {
      const p = i === 13 ? { orderId: 'o13', total: 1, surprise: true } : { orderId: `o${i}`, total: i };
      ids.push((await client.routeData(p, 'strict')).id);
    }
    await stop();
    const d = db();
    const rows = d.prepare('SELECT _fork_id FROM strict').all().map((r) => r._fork_id);
    assert.equal(rows.length, 19);
    assert.ok(!rows.includes(ids[13]));
    d.close();
    const dl = readJsonl(path.join(dir, '.fork/dead_letters/strict.jsonl'));
    assert.equal(dl.length, 1, JSON.stringify(dl));
    assert.equal(dl[0]._fork_id, ids[13]);
    assert.match(dl[0].reason, /field "surprise" has no column in the table \(and extra: false\)/);
  });

  // A NOT NULL / CHECK constraint on a table the user made.
  const { dir, config } = tempConfig(yaml, 'fork-sqlite-');
  try {
    const pre = new Database(path.join(dir, 'checked.db'));
    pre.exec('CREATE TABLE checked (_fork_id TEXT PRIMARY KEY, orderId TEXT NOT NULL, total REAL CHECK (total >= 0), extra TEXT)');
    pre.close();
    const forkd = await startForkd(config);
    const client = createClient({ endpoint: endpointFor(dir) });
    const sent = [];
    for (let i = 0; i < 300; i++) sent.push({ orderId: `o${i}`, total: i === 150 ? -5 : i });
    const settled = await Promise.allSettled(sent.map((p) => client.routeData(p, 'checked', { ack: 'delivered' })));
    await client.close();
    // The record the store refuses rejects its call, with the store's reason.
    const refused = settled[150].reason;
    assert.equal(refused?.code, 'FORK_REJECTED', `call 150: ${JSON.stringify(settled[150])}`);
    assert.equal(refused.destination, 'checked');
    assert.match(refused.reason, /CHECK constraint failed/);
    assert.deepEqual(refused.outcomes, { checked: 'dead_letter' });
    const receipts = settled.map((s) => s.value ?? { id: s.reason.id });
    assert.equal(settled.filter((s) => s.status === 'rejected').length, 1, 'only that call rejects');
    assert.equal((await forkd.stop()).code, 0);
    const d = new Database(path.join(dir, 'checked.db'), { readonly: true });
    const have = new Set(d.prepare('SELECT _fork_id FROM checked').all().map((r) => r._fork_id));
    d.close();
    assert.equal(have.size, 299);
    assert.ok(!have.has(receipts[150].id));
    const dl = readJsonl(path.join(dir, '.fork/dead_letters/checked.jsonl'));
    assert.deepEqual(dl.map((l) => l._fork_id), [receipts[150].id], 'only the bad record');
    assert.match(dl[0].reason, /CHECK constraint failed/);
    assert.deepEqual(dl[0].payload, { orderId: 'o150', total: -5 });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('hostile field names and values are stored verbatim, never run', async () => {
  const yaml = `${HEAD}destinations:\n  t: { type: sqlite, path: ./out.db, table: 'odd"; DROP TABLE x; --' }\n`;
  await withForkd(yaml, async ({ client, stop, db }) => {
    const evil = {
      'name"); DROP TABLE t; --': "Robert'); DROP TABLE students;--",
      'quote"s': 'a"b\'c\\d',
      plain: 'ünïcødé ✓ 😀',
      '': 'empty key',
    };
    const r = await client.routeData(evil, 't', { ack: 'delivered' });
    await client.routeData({ plain: 'second', later: 'x"y' }, 't', { ack: 'delivered' });
    await stop();
    const d = db();
    const tables = d.prepare("SELECT name FROM sqlite_master WHERE type = 'table'").all().map((t) => t.name);
    assert.deepEqual(tables, ['odd"; DROP TABLE x; --']);
    const row = d.prepare('SELECT * FROM "odd""; DROP TABLE x; --" WHERE _fork_id = ?').get(r.id);
    assert.equal(row['name"); DROP TABLE t; --'], "Robert'); DROP TABLE students;--");
    assert.equal(row['quote"s'], 'a"b\'c\\d');
    assert.equal(row.plain, 'ünïcødé ✓ 😀');
    const second = d.prepare('SELECT extra FROM "odd""; DROP TABLE x; --" WHERE plain = ?').get('second');
    assert.deepEqual(JSON.parse(second.extra), { later: 'x"y' });
    d.close();
  });
});

test('kill -9 mid-run: nothing acknowledged is lost, nothing doubled', async () => {
  const yaml = `${HEAD}destinations:\n  orders: { type: sqlite, path: ./out.db, table: orders, batch: { max_events: 500 } }\n`;
  await withForkd(yaml, async ({ client, restart, stop, db, forkd }) => {
    const next = purchases(5);
    const acked = [];
    const inflight = [];
    for (let i = 0; i < 20000; i++) inflight.push(client.routeData(next(), 'orders').then((r) => acked.push(r.id), () => {}));
    // Mid-run: once some are acknowledged (however slow the host), most still in flight.
    for (const deadline = Date.now() + 10000; acked.length < 50; await new Promise((r) => setTimeout(r, 5))) {
      assert.ok(Date.now() < deadline, `50 acknowledgements within 10 s (${acked.length})`);
    }
    forkd.proc.kill('SIGKILL');
    await Promise.allSettled(inflight);
    await client.close(0);
    const again = await restart();
    // Everything acknowledged before the kill, plus a new event after it.
    const last = await again.client.routeData(next(), 'orders', { ack: 'delivered' });
    acked.push(last.id);
    await stop();
    const d = db();
    const rows = d.prepare('SELECT _fork_id FROM orders').all().map((r) => r._fork_id);
    d.close();
    const have = new Set(rows);
    assert.equal(rows.length, have.size, 'no duplicates');
    const missing = acked.filter((id) => !have.has(id));
    assert.deepEqual(missing, [], `${missing.length} acknowledged events missing`);
    assert.ok(acked.length > 1, `some events were acknowledged (${acked.length})`);
  });
});

test('daily aggregate: rows upserted per (window, currency), totals equal what was acknowledged, readable while it runs', async () => {
  const yaml = `${HEAD}destinations:
  revenue:
    type: sqlite
    path: ./analytics.db
    table: daily_revenue
    transforms:
      - aggregate: { window: 1d, time_field: ts, group_by: [currency],
                     measures: { revenue: sum(amount), orders: count() }, emit_every: 100ms }
`;
  await withForkd(yaml, async ({ client, stop, db, dir }) => {
    const next = purchases(9);
    const expect = new Map();
    const add = (p) => {
      const day = new Date(p.ts).toISOString().slice(0, 10);
      const k = `${day}|${p.currency}`;
      const e = expect.get(k) ?? { revenue: 0, orders: 0 };
      e.revenue += p.amount;
      e.orders += 1;
      expect.set(k, e);
    };
    for (let i = 0; i < 3000; i++) {
      const p = next();
      await client.routeData(p, 'revenue');
      add(p);
    }
    // Queried while forkd runs: the current totals.
    const t0 = Date.now();
    let rows = [];
    while (Date.now() - t0 < 10000) {
      if (existsSync(path.join(dir, 'analytics.db'))) {
        const d = db('analytics.db');
        rows = d.prepare('SELECT * FROM daily_revenue').all();
        d.close();
        if (rows.reduce((s, r) => s + r.orders, 0) === 3000) break;
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.equal(rows.length, expect.size, 'one row per (day, currency)');
    for (const r of rows) {
      const e = expect.get(`${r.window_start.slice(0, 10)}|${r.currency}`);
      assert.ok(e, `expected group for ${JSON.stringify(r)}`);
      assert.equal(r.orders, e.orders);
      assert.ok(Math.abs(r.revenue - e.revenue) < 1e-6, `${r.revenue} vs ${e.revenue}`);
      assert.equal(r._fork_id, `${r.window_start}/1d/["${r.currency}"]`);
    }
    await stop();
  });
});

test('bad sqlite options are refused by forkd check with file:line:col', async () => {
  const { dir, config } = tempConfig(`${HEAD}destinations:\n  t: { type: sqlite, path: ./x.db, mode: merge }\n  u: { type: sqlite, path: ./y.db, table: u, columns: { a: varchar } }\n`);
  try {
    const { execFileSync } = await import('node:child_process');
    const { FORKD } = await import('./helpers.mjs');
    let out = '';
    try {
      execFileSync(FORKD, ['check', '--config', config], { stdio: 'pipe' });
    } catch (e) {
      out = e.stderr.toString();
      assert.equal(e.status, 2);
    }
    assert.match(out, /fork\.yaml:3:\d+: destinations\.t\.table: required option is missing/);
    assert.match(out, /fork\.yaml:3:\d+: destinations\.t\.mode: expected one of append, upsert, got 'merge'/);
    assert.match(out, /fork\.yaml:4:\d+: destinations\.u\.columns\.a: expected one of text, integer, real, boolean, json, timestamp/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

// A table made before forkd wrote to it, without a primary key: appends must
// still be exactly once, so forkd gives _fork_id a unique index.
function tableWithoutUniqueId(dir, rows = []) {
  const d = new Database(path.join(dir, 'out.db'));
  d.exec('CREATE TABLE orders (_fork_id TEXT, orderId TEXT, amount REAL)');
  const ins = d.prepare('INSERT INTO orders (_fork_id, orderId, amount) VALUES (?, ?, ?)');
  for (const r of rows) ins.run(...r);
  d.close();
}

test('append into an existing table without a unique _fork_id: a unique index is made, and a kill -9 mid-run doubles nothing', async () => {
  const { dir, config } = tempConfig(
    `${HEAD}destinations:\n  orders: { type: sqlite, path: ./out.db, table: orders, batch: { max_events: 200 } }\n`,
    'fork-sqlite-',
  );
  tableWithoutUniqueId(dir);
  let forkd;
  let client;
  try {
    forkd = await startForkd(config);
    client = createClient({ endpoint: endpointFor(dir), timeoutMs: 10000 });
    const next = purchases(11);
    const acked = [];
    const inflight = [];
    for (let i = 0; i < 20000; i++) inflight.push(client.routeData(next(), 'orders').then((r) => acked.push(r.id), () => {}));
    // Killed once rows are landing: batches are committed to the table ahead
    // of the cursor, which is what redelivers them after the restart.
    const t0 = Date.now();
    while (Date.now() - t0 < 10000) {
      const d = new Database(path.join(dir, 'out.db'), { readonly: true });
      const n = d.prepare('SELECT count(*) AS n FROM orders').get().n;
      d.close();
      if (n >= 1000) break;
      await new Promise((r) => setTimeout(r, 5));
    }
    forkd.proc.kill('SIGKILL');
    await Promise.allSettled(inflight);
    await client.close(0);
    forkd = await startForkd(config);
    client = createClient({ endpoint: endpointFor(dir), timeoutMs: 10000 });
    acked.push((await client.routeData(next(), 'orders', { ack: 'delivered' })).id);
    await client.close();
    assert.equal((await forkd.stop('SIGTERM')).code, 0, forkd.stderr());
    const d = new Database(path.join(dir, 'out.db'), { readonly: true });
    const rows = d.prepare('SELECT _fork_id FROM orders').all().map((r) => r._fork_id);
    const indexes = d.prepare("SELECT name FROM pragma_index_list('orders') WHERE \"unique\" = 1").all();
    d.close();
    assert.deepEqual(indexes.map((i) => i.name), ['orders_fork_id']);
    assert.equal(rows.length, new Set(rows).size, 'no duplicates');
    const have = new Set(rows);
    assert.deepEqual(acked.filter((id) => !have.has(id)), [], 'every acknowledged event is there');
    assert.ok(acked.length > 1000, `${acked.length} acknowledged`);
  } finally {
    if (client) await client.close(0);
    if (forkd) await forkd.stop('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
});

test('append into an existing table that already holds duplicate _fork_ids: refused with the reason, the records kept in dead letters', async () => {
  const { dir, config } = tempConfig(
    `${HEAD}destinations:\n  orders: { type: sqlite, path: ./out.db, table: orders }\n`,
    'fork-sqlite-',
  );
  tableWithoutUniqueId(dir, [['a-1', 'o1', 1], ['a-1', 'o1', 1]]);
  let forkd;
  let client;
  try {
    forkd = await startForkd(config);
    client = createClient({ endpoint: endpointFor(dir), timeoutMs: 10000 });
    const r = await client.routeData({ orderId: 'o2', amount: 2 }, 'orders');
    await client.close();
    assert.equal((await forkd.stop('SIGTERM')).code, 0);
    const letters = readJsonl(path.join(dir, '.fork', 'dead_letters', 'orders.jsonl'));
    assert.equal(letters.length, 1);
    assert.equal(letters[0]._fork_id, r.id);
    assert.match(letters[0].reason, /no unique index on _fork_id and already holds rows with the same _fork_id/);
    const d = new Database(path.join(dir, 'out.db'), { readonly: true });
    assert.equal(d.prepare('SELECT count(*) AS n FROM orders').get().n, 2, 'the table is left as it was');
    d.close();
  } finally {
    if (client) await client.close(0);
    if (forkd) await forkd.stop('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
});

test('an aggregate table of the single-instance layout is migrated: its rows kept as this instance\'s, the table renamed, the view in its place', async () => {
  const yaml = `${HEAD}instance: web-1
destinations:
  revenue:
    type: sqlite
    path: ./out.db
    table: daily_revenue
    transforms:
      - aggregate: { window: 1d, time_field: ts, group_by: [currency],
                     measures: { revenue: sum(amount), orders: count(), mean: avg(amount) }, emit_every: 50ms }
`;
  const { dir, config } = tempConfig(yaml, 'fork-sqlite-');
  const old = new Database(path.join(dir, 'out.db'));
  old.exec(`CREATE TABLE daily_revenue (_fork_id TEXT PRIMARY KEY, window_start TEXT, window TEXT,
            currency TEXT, revenue INTEGER, orders INTEGER, mean REAL, extra TEXT)`);
  old.prepare('INSERT INTO daily_revenue VALUES (?, ?, ?, ?, ?, ?, ?, NULL)')
    .run('2026-01-01T00:00:00.000Z/1d/["EUR"]', '2026-01-01T00:00:00.000Z', '1d', 'EUR', 70, 2, 35);
  old.close();
  let forkd;
  let client;
  try {
    forkd = await startForkd(config);
    client = createClient({ endpoint: endpointFor(dir), timeoutMs: 10000 });
    for (const amount of [10, 20]) {
      await client.routeData({ currency: 'EUR', amount, ts: Date.UTC(2026, 0, 2, 12) }, 'revenue');
    }
    await client.close();
    assert.equal((await forkd.stop('SIGTERM')).code, 0, forkd.stderr());
    const d = new Database(path.join(dir, 'out.db'), { readonly: true });
    const rows = d.prepare('SELECT * FROM daily_revenue ORDER BY window_start').all();
    const kinds = d.prepare("SELECT name, type FROM sqlite_master WHERE name LIKE 'daily_revenue%' AND type IN ('table', 'view') ORDER BY name").all();
    const parts = d.prepare('SELECT _fork_id, _fork_instance FROM daily_revenue_parts ORDER BY _fork_id').all();
    d.close();
    assert.deepEqual(kinds, [
      { name: 'daily_revenue', type: 'view' },
      { name: 'daily_revenue_before_merge', type: 'table' },
      { name: 'daily_revenue_parts', type: 'table' },
    ]);
    assert.deepEqual(rows.map((r) => [r._fork_id, r.revenue, r.orders, r.mean]), [
      ['2026-01-01T00:00:00.000Z/1d/["EUR"]', 70, 2, 35],
      ['2026-01-02T00:00:00.000Z/1d/["EUR"]', 30, 2, 15],
    ]);
    assert.deepEqual(parts.map((p) => p._fork_instance), ['web-1', 'web-1']);
    assert.equal(parts[0]._fork_id, 'web-1/2026-01-01T00:00:00.000Z/1d/["EUR"]');
  } finally {
    if (client) await client.close(0);
    if (forkd) await forkd.stop('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
});

test('forkd check reads an existing sqlite table and says how it is written: a primary key, a unique index added at open, or duplicates that refuse', async () => {
  const { execFileSync, spawnSync } = await import('node:child_process');
  const { FORKD } = await import('./helpers.mjs');
  const { dir, config } = tempConfig(
    `${HEAD}destinations:\n  orders: { type: sqlite, path: ./out.db, table: orders }\n  rev: { type: sqlite, path: ./out.db, table: daily, transforms: [{ aggregate: { window: 1d } }] }\n`,
    'fork-sqlite-',
  );
  try {
    let out = execFileSync(FORKD, ['check', '--config', config], { encoding: 'utf8' });
    assert.match(out, /orders: .*appends exactly once \(created with _fork_id as its primary key\)/);
    assert.match(out, /rev: .*partial rows in daily_parts, merged by the view daily/);
    tableWithoutUniqueId(dir, [['a-1', 'o1', 1]]);
    out = execFileSync(FORKD, ['check', '--config', config], { encoding: 'utf8' });
    assert.match(out, /orders: .*appends exactly once \(a unique index on _fork_id is added at open\)/);
    const d = new Database(path.join(dir, 'out.db'));
    d.prepare("INSERT INTO orders VALUES ('a-1', 'o1', 1)").run();
    d.close();
    const r = spawnSync(FORKD, ['check', '--config', config], { encoding: 'utf8' });
    assert.equal(r.status, 2);
    assert.match(r.stderr, /fork\.yaml:\d+:\d+: destinations\.orders: .*holds rows with the same _fork_id \('a-1'\)/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
