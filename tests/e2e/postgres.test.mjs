// The postgres sink against a real PostgreSQL server that this file starts
// (servers/postgres.mjs: initdb in a temp dir, 127.0.0.1, a free port) and
// reads back with the `pg` package: append and upsert, inferred and declared
// columns, extra, a server restarted and crashed while events flow, forkd
// killed -9 (appends stay exactly once), constraint violations bisected down
// to the bad records, hostile names and values, daily aggregates upserted
// while forkd runs, tables dropped or altered under it, and the url's
// password kept out of every message.
//
// Each test runs its own forkd (a temp dir) against the one server, on its
// own tables.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { existsSync, rmSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { createClient } from '../../js/index.mjs';
import { spawnSync } from 'node:child_process';
import { startForkd, tempConfig, endpointFor, readJsonl, FORKD } from './helpers.mjs';
import { startPostgres } from './servers/postgres.mjs';

let server;
let pool;
const rigs = new Set();

before(async () => {
  // fsync off: these tests are about forkd, not the server's durability.
  server = await startPostgres({ settings: { fsync: 'off' } });
  pool = new pg.Pool({ connectionString: server.url, max: 4 });
  pool.on('error', () => {}); // idle clients die when the server restarts
});

after(async () => {
  for (const rig of rigs) await rig.close();
  if (pool) await pool.end();
  if (server) await server.stop();
});

const query = async (sql, params) => (await pool.query(sql, params)).rows;
const QUICK = { retry: { initial: '50ms', max: '500ms' }, breaker: { failures: 5, cooldown: '500ms' } };

async function freePort() {
  return new Promise((resolve) => {
    const srv = net.createServer();
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

// A forkd with these destinations (postgres ones get the server's url unless
// they name one) and a client. The config is written as JSON, which is YAML.
async function startRig(destinations, { admin = false } = {}) {
  const adminPort = admin ? await freePort() : 0;
  const dests = {};
  for (const [name, d] of Object.entries(destinations)) {
    dests[name] = d.type === 'postgres' ? { url: server.url, batch: { max_wait: '10ms' }, ...QUICK, ...d } : d;
  }
  const { dir, config } = tempConfig(
    `${admin ? `admin: 127.0.0.1:${adminPort}\n` : ''}wal: { fsync: batch }\ndestinations: ${JSON.stringify(dests, null, 1)}\n`,
    'fork-pg-e2e-',
  );
  let forkd;
  let client;
  const rig = {
    dir,
    admin: `http://127.0.0.1:${adminPort}`,
    get forkd() {
      return forkd;
    },
    get client() {
      return client;
    },
    deadLetters(name) {
      const p = path.join(dir, '.fork', 'dead_letters', `${name}.jsonl`);
      return existsSync(p) ? readJsonl(p) : [];
    },
    log: () => (forkd ? forkd.stderr().slice(-4000) : ''),
    // Stops forkd (SIGKILL by default), runs `between`, starts it again on
    // the same data dir.
    async restart(signal = 'SIGKILL', between = () => {}) {
      await forkd.stop(signal);
      await between();
      forkd = await startForkd(config);
    },
    async close() {
      if (!rigs.delete(rig)) return;
      if (client) await client.close(0);
      if (forkd) await forkd.stop('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    },
  };
  rigs.add(rig);
  try {
    forkd = await startForkd(config);
    client = createClient({ endpoint: endpointFor(dir), timeoutMs: 15_000 });
  } catch (e) {
    await rig.close();
    throw e;
  }
  return rig;
}

// Polls `pred` until it holds; fails with `what()` after `ms`.
async function waitUntil(pred, ms, what) {
  const deadline = Date.now() + ms;
  for (;;) {
    try {
      if (await pred()) return;
    } catch {
      // the server may be restarting
    }
    if (Date.now() > deadline) throw new Error(`not within ${ms} ms: ${await what()}`);
    await sleep(50);
  }
}

const count = async (table) => Number((await query(`SELECT count(*) AS n FROM ${pg.escapeIdentifier(table)}`))[0].n);

async function waitForCount(table, n, rig, ms = 20_000) {
  await waitUntil(
    async () => (await count(table)) >= n,
    ms,
    async () => `${table} has ${await count(table).catch((e) => e.message)} rows, want ${n}\n${rig.log()}`,
  );
}

async function columnTypes(table) {
  const rows = await query(
    `SELECT column_name, data_type FROM information_schema.columns WHERE table_name = $1 ORDER BY ordinal_position`,
    [table],
  );
  return Object.fromEntries(rows.map((r) => [r.column_name, r.data_type]));
}

test('append: every acknowledged event is one row, types mapped, nested values as jsonb', async () => {
  const rig = await startRig({ db: { type: 'postgres', table: 'events' } });
  const sent = new Map();
  const T0 = Date.UTC(2026, 10, 21, 12, 0, 0);
  const calls = [];
  for (let i = 0; i < 2000; i++) {
    const p = {
      orderId: `o-${i}`,
      qty: i,
      price: i + 0.25,
      paid: i % 3 === 0,
      items: [{ sku: `sku-${i % 7}`, qty: 1 + (i % 4) }],
      meta: { source: 'web', tags: ['a', 'b'], depth: { n: i } },
      when: new Date(T0 + i),
      note: null,
    };
    if (i % 10 === 5) p.later = { only: 'in some' }; // not in the first record: extra
    const id = `ev-${i}`;
    sent.set(id, p);
    calls.push(rig.client.routeData(p, 'db', { idempotencyKey: id }));
  }
  await Promise.all(calls);
  await waitForCount('events', sent.size, rig);
  await sleep(300); // nothing more arrives
  assert.deepEqual(await columnTypes('events'), {
    _fork_id: 'text',
    orderId: 'text',
    qty: 'bigint',
    price: 'double precision',
    paid: 'boolean',
    items: 'jsonb',
    meta: 'jsonb',
    when: 'timestamp with time zone',
    note: 'text',
    extra: 'jsonb',
  });
  const rows = await query('SELECT * FROM events');
  assert.equal(rows.length, sent.size, 'one row per acknowledged event');
  for (const r of rows) {
    const p = sent.get(r._fork_id);
    assert.ok(p, `row ${r._fork_id} was sent`);
    assert.equal(r.orderId, p.orderId);
    assert.equal(Number(r.qty), p.qty);
    assert.equal(r.price, p.price);
    assert.equal(r.paid, p.paid);
    assert.deepEqual(r.items, p.items);
    assert.deepEqual(r.meta, p.meta);
    assert.equal(r.when.getTime(), p.when.getTime());
    assert.equal(r.note, null);
    assert.deepEqual(r.extra, p.later ? { later: p.later } : null);
  }
  assert.deepEqual(rig.deadLetters('db'), []);
  await rig.close();
});

test('upsert: the same events twice give the same rows; the last version of a key wins', async () => {
  const events = Array.from({ length: 500 }, (_, i) => ({ orderId: `u-${i}`, amount: i * 1.5 + 0.5, status: 'new' }));
  // Two forkd instances deliver the same events (same idempotency keys, so
  // the same _fork_id) to one table.
  for (let round = 0; round < 2; round++) {
    const rig = await startRig({ up: { type: 'postgres', table: 'orders_up', mode: 'upsert' } });
    await Promise.all(events.map((e) => rig.client.routeData(e, 'up', { idempotencyKey: e.orderId })));
    await waitForCount('orders_up', events.length, rig);
    await sleep(300);
    assert.deepEqual(rig.deadLetters('up'), []);
    await rig.close();
  }
  const rows = await query('SELECT * FROM orders_up ORDER BY "orderId"');
  assert.equal(rows.length, events.length, 'no duplicates');
  const byId = new Map(rows.map((r) => [r._fork_id, r]));
  for (const e of events) assert.equal(byId.get(e.orderId).amount, e.amount);
  const pk = await query(
    `SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)
     WHERE i.indrelid = 'orders_up'::regclass AND i.indisprimary`,
  );
  assert.deepEqual(pk, [{ attname: '_fork_id' }], '_fork_id is the primary key');

  // A key column: versions of one orderId, several in one batch, the last wins.
  const rig = await startRig({
    byorder: {
      type: 'postgres',
      table: 'orders_by_key',
      mode: 'upsert',
      key: 'orderId',
      columns: { orderId: 'text', amount: 'real', status: 'text' },
      batch: { max_wait: '200ms' },
    },
  });
  const calls = [];
  for (let v = 0; v < 5; v++) {
    for (let i = 0; i < 100; i++) {
      calls.push(rig.client.routeData({ orderId: `k-${i}`, amount: v * 100 + i, status: `v${v}` }, 'byorder'));
    }
  }
  await Promise.all(calls);
  await waitUntil(
    async () => (await query(`SELECT count(*) AS n FROM orders_by_key WHERE status = 'v4'`))[0].n === '100',
    20_000,
    async () => JSON.stringify(await query('SELECT status, count(*) FROM orders_by_key GROUP BY 1')) + rig.log(),
  );
  const keyed = await query('SELECT * FROM orders_by_key');
  assert.equal(keyed.length, 100);
  for (const r of keyed) assert.equal(r.amount, 400 + Number(r.orderId.slice(2)));
  assert.deepEqual(rig.deadLetters('byorder'), [], 'two versions of a key in one batch are not an error');
  assert.doesNotMatch(rig.log(), /cannot affect row a second time/);
  const unique = await query(
    `SELECT count(*) AS n FROM pg_constraint WHERE conrelid = 'orders_by_key'::regclass AND contype = 'u'`,
  );
  assert.equal(unique[0].n, '1', 'the key column has a UNIQUE constraint');
  await rig.close();
});

test('declared columns: unknown fields land in extra; with extra: false the record goes to dead letters', async () => {
  const columns = { orderId: 'text', amount: 'real', ts: 'timestamp', paid: 'bool' };
  const rig = await startRig({
    withextra: { type: 'postgres', table: 'declared_extra', columns },
    strict: { type: 'postgres', table: 'declared_strict', columns, extra: false },
  });
  const ts = Date.UTC(2026, 10, 21, 8, 30, 0, 123);
  await rig.client.routeData({ orderId: 'a', amount: 10, ts, paid: true }, ['withextra', 'strict'], { idempotencyKey: 'd-a' });
  await rig.client.routeData({ orderId: 'b', amount: 2.5, ts, coupon: 'XMAS', nested: { x: [1, 2] } }, ['withextra', 'strict'], {
    idempotencyKey: 'd-b',
  });
  await rig.client.routeData({ orderId: 'c', amount: 3 }, ['withextra', 'strict'], { idempotencyKey: 'd-c' });
  await waitForCount('declared_extra', 3, rig);
  await waitForCount('declared_strict', 2, rig);
  await waitUntil(() => rig.deadLetters('strict').length === 1, 10_000, rig.log);

  assert.deepEqual(await columnTypes('declared_extra'), {
    _fork_id: 'text',
    orderId: 'text',
    amount: 'double precision',
    ts: 'timestamp with time zone',
    paid: 'boolean',
    extra: 'jsonb',
  });
  assert.deepEqual(await columnTypes('declared_strict'), {
    _fork_id: 'text',
    orderId: 'text',
    amount: 'double precision',
    ts: 'timestamp with time zone',
    paid: 'boolean',
  });
  const rows = await query('SELECT * FROM declared_extra ORDER BY "orderId"');
  assert.deepEqual(
    rows.map((r) => ({ ...r, ts: r.ts?.getTime() ?? null })),
    [
      { _fork_id: 'd-a', orderId: 'a', amount: 10, ts, paid: true, extra: null },
      { _fork_id: 'd-b', orderId: 'b', amount: 2.5, ts, paid: null, extra: { coupon: 'XMAS', nested: { x: [1, 2] } } },
      { _fork_id: 'd-c', orderId: 'c', amount: 3, ts: null, paid: null, extra: null },
    ],
  );
  const strict = await query('SELECT _fork_id FROM declared_strict ORDER BY 1');
  assert.deepEqual(strict.map((r) => r._fork_id), ['d-a', 'd-c']);
  const [dl] = rig.deadLetters('strict');
  assert.equal(dl._fork_id, 'd-b');
  assert.match(dl.reason, /"coupon"/, 'the reason names the field');
  assert.match(dl.reason, /declared_strict/, 'and the table');
  assert.deepEqual(rig.deadLetters('withextra'), []);
  await rig.close();
});

test('the server restarted and stopped while events flow: nothing lost, no duplicates', { timeout: 90_000 }, async () => {
  const rig = await startRig(
    {
      up: { type: 'postgres', table: 'restart_up', mode: 'upsert', timeout: '5s' },
      app: { type: 'postgres', table: 'restart_app', timeout: '5s' },
    },
    { admin: true },
  );
  const acked = new Set();
  const failed = [];
  let i = 0;
  let producing = true;
  const inFlight = new Set();
  // ~2000 events/s until told to stop.
  const producer = (async () => {
    while (producing) {
      for (let k = 0; k < 20; k++) {
        const id = `r-${i}`;
        const p = rig.client.routeData({ n: i, amount: i + 0.5, kind: 'restart' }, ['up', 'app'], { idempotencyKey: id }).then(
          () => acked.add(id),
          (e) => failed.push(`${id}: ${e.code}`),
        );
        i += 1;
        inFlight.add(p);
        p.finally(() => inFlight.delete(p));
      }
      await sleep(10);
    }
  })();
  await sleep(1000);
  await server.restart('fast'); // clients are disconnected
  await sleep(1000);
  await server.stopServer('immediate'); // a crash, down for a while
  await sleep(1500);
  const status = await (await fetch(`${rig.admin}/api/status`)).json();
  await server.startServer();
  await sleep(1000);
  producing = false;
  await producer;
  await Promise.all(inFlight);
  assert.deepEqual(failed, [], 'every call acknowledged');
  // Reconnected: everything acknowledged arrives.
  await waitForCount('restart_up', acked.size, rig, 30_000);
  await waitForCount('restart_app', acked.size, rig, 30_000);
  await sleep(500);
  const up = await query('SELECT _fork_id, n FROM restart_up');
  assert.equal(up.length, acked.size, 'upsert: one row per acknowledged event, no duplicates');
  for (const r of up) assert.ok(acked.has(r._fork_id));
  // Append: a batch whose COMMIT went unanswered is sent again, and the
  // records already there are skipped (_fork_id is the primary key).
  const app = await query('SELECT _fork_id FROM restart_app');
  assert.equal(app.length, acked.size, 'append: one row per acknowledged event, no duplicates');
  for (const r of app) assert.ok(acked.has(r._fork_id));
  assert.deepEqual(rig.deadLetters('up'), []);
  assert.deepEqual(rig.deadLetters('app'), []);
  const down = status.destinations.find((d) => d.name === 'up');
  assert.match(down.last_error, /^postgres postgres:\/\/127\.0\.0\.1:\d+\/postgres: cannot connect/, 'the outage shows in the status');
  await rig.close();
});

test('forkd killed -9 while events flow, then its cursor lost: appends are exactly once (records delivered again are skipped)', { timeout: 60_000 }, async () => {
  const rig = await startRig({ app: { type: 'postgres', table: 'killed_app', from: 'earliest' } });
  const acked = new Set();
  const failed = new Map();
  const send = (i) =>
    rig.client.routeData({ n: i, kind: 'kill' }, 'app', { idempotencyKey: `k-${i}` }).then(
      () => {
        acked.add(i);
        failed.delete(i);
      },
      (e) => failed.set(i, e.code),
    );
  const calls = [];
  let i = 0;
  for (let round = 0; round < 3; round++) {
    // ~1 s of events, then SIGKILL: an idempotent sink's cursor is committed
    // at most once a second, so the restart may deliver rows again.
    const until = Date.now() + 1000;
    while (Date.now() < until) {
      for (let k = 0; k < 50; k++) calls.push(send(i++));
      await sleep(10);
    }
    await rig.restart('SIGKILL');
  }
  await Promise.all(calls);
  for (let r = 0; r < 5 && failed.size > 0; r++) await Promise.all([...failed.keys()].map(send));
  assert.equal(failed.size, 0);
  await waitForCount('killed_app', acked.size, rig, 30_000);
  await sleep(1500);
  const rows = await query('SELECT n FROM killed_app');
  assert.equal(rows.length, acked.size, 'no duplicates');
  assert.equal(new Set(rows.map((r) => Number(r.n))).size, acked.size);
  // Whether a kill -9 left rows to deliver again depends on when it struck:
  // losing the cursor delivers everything again, for sure.
  const refused = () => server.log().split('\n').filter((l) => l.includes('"killed_app_pkey"')).length;
  const afterKills = refused();
  await rig.restart('SIGTERM', () => rmSync(path.join(rig.dir, '.fork', 'cursors', 'app.cursor')));
  await waitUntil(() => refused() > afterKills, 10_000, rig.log);
  await sleep(1500);
  assert.equal(await count('killed_app'), acked.size, 'no duplicates after the whole log was delivered again');
  console.log(`kill -9: ${acked.size} events; batches delivered again: ${afterKills} after 3 kills, ${refused() - afterKills} after the cursor was lost`);
  assert.deepEqual(rig.deadLetters('app'), []);
  await rig.close();
});

test('a constraint violation sends that record, and only it, to dead letters', async () => {
  await query(`DROP TABLE IF EXISTS guarded`);
  await query(`CREATE TABLE guarded (
    id bigserial,
    _fork_id text PRIMARY KEY,
    "orderId" text NOT NULL,
    amount double precision CONSTRAINT amount_not_negative CHECK (amount >= 0),
    created_at timestamptz DEFAULT now(),
    extra jsonb)`);
  const rig = await startRig({ g: { type: 'postgres', table: 'guarded', batch: { max_wait: '100ms', max_events: 1000 } } });
  const bad = new Map([
    ['g-17', /amount_not_negative/],
    ['g-140', /amount_not_negative/],
    ['g-141', /"orderId"/],
    ['g-299', /invalid input syntax for type double precision/],
  ]);
  const calls = [];
  for (let i = 0; i < 300; i++) {
    const id = `g-${i}`;
    const p = { orderId: `o-${i}`, amount: i };
    if (id === 'g-17' || id === 'g-140') p.amount = -1;
    if (id === 'g-141') delete p.orderId;
    if (id === 'g-299') p.amount = 'lots';
    calls.push(rig.client.routeData(p, 'g', { idempotencyKey: id }));
  }
  await Promise.all(calls);
  await waitForCount('guarded', 300 - bad.size, rig);
  await waitUntil(() => rig.deadLetters('g').length >= bad.size, 10_000, rig.log);
  await sleep(300);
  const dls = rig.deadLetters('g');
  assert.deepEqual(dls.map((d) => d._fork_id).sort(), [...bad.keys()].sort(), 'exactly the refused records');
  for (const d of dls) {
    assert.match(d.reason, bad.get(d._fork_id));
    assert.match(d.reason, /public\.guarded/);
  }
  const rows = await query('SELECT id, _fork_id, created_at FROM guarded');
  assert.equal(rows.length, 300 - bad.size);
  const ids = new Set(rows.map((r) => r._fork_id));
  for (let i = 0; i < 300; i++) assert.equal(ids.has(`g-${i}`), !bad.has(`g-${i}`));
  assert.ok(rows.every((r) => r.id !== null && r.created_at !== null), 'columns with a default are left to the server');
  await rig.close();
});

test('hostile table and field names and values are stored verbatim or refused cleanly', async () => {
  await query(`CREATE TABLE IF NOT EXISTS canary (x int)`);
  const table = `evil"; DROP TABLE canary; --`;
  const hostileField = `x"; DROP TABLE canary; --`;
  const longField = 'f'.repeat(70);
  const values = {
    [hostileField]: `'); DROP TABLE canary; --`,
    "quote'field": `it's "quoted"`,
    'back\\slash': 'C:\\path\\to\\N \\N \\.',
    'tab\tand\nnewline': 'a\tb\nc\rd',
    unicode: 'héllo wörld ✓ 🎉 שלום \u0301 \u2028',
    dollar: '$1 $$ $tag$ %s %d',
    copyEnd: '\\.',
    nested: { "k'ey": 'v"al', 'a\\b': [1, 'x\ny'] },
    [longField]: 'too long for a column name',
  };
  const rig = await startRig({ h: { type: 'postgres', table } });
  await rig.client.routeData(values, 'h', { idempotencyKey: `id'"\\; DROP TABLE canary; --` });
  await rig.client.routeData({ ...values, unicode: 'has a \u0000 NUL' }, 'h', { idempotencyKey: 'nul' });
  await rig.client.routeData({ ...values, [hostileField]: 'second' }, 'h', { idempotencyKey: 'second' });
  await waitForCount(table, 2, rig);
  await waitUntil(() => rig.deadLetters('h').length === 1, 10_000, rig.log);
  await sleep(200);
  assert.deepEqual(await query('SELECT count(*)::int AS n FROM canary'), [{ n: 0 }], 'canary still there');
  const rows = await query(`SELECT * FROM ${pg.escapeIdentifier(table)} ORDER BY _fork_id`);
  assert.equal(rows.length, 2);
  const [first, second] = rows[0]._fork_id === 'second' ? [rows[1], rows[0]] : rows;
  assert.equal(first._fork_id, `id'"\\; DROP TABLE canary; --`);
  for (const [k, v] of Object.entries(values)) {
    if (k === longField) continue;
    assert.deepEqual(first[k], v, `field ${JSON.stringify(k)} stored verbatim`);
  }
  assert.deepEqual(first.extra, { [longField]: values[longField] }, 'a name postgres cannot hold goes to extra');
  assert.equal(second[hostileField], 'second');
  const [dl] = rig.deadLetters('h');
  assert.equal(dl._fork_id, 'nul');
  assert.match(dl.reason, /NUL/);
  await rig.close();
});

const AGGREGATE = {
  aggregate: {
    window: '1d',
    time_field: 'ts',
    group_by: ['currency'],
    measures: { revenue: 'sum(amount)', orders: 'count()' },
    emit_every: '100ms',
  },
};

test('daily aggregates land as upserts on _fork_id and equal the sums acknowledged, while forkd runs', async () => {
  const rig = await startRig({
    daily: { type: 'postgres', table: 'daily_revenue', mode: 'upsert', transforms: [AGGREGATE] },
    // No mode: a destination that aggregates upserts.
    daily_default: { type: 'postgres', table: 'daily_revenue_default', transforms: [AGGREGATE] },
  });
  const DAY = 86_400_000;
  const D0 = Date.UTC(2026, 10, 21);
  const currencies = ['EUR', 'USD', 'GBP'];
  const expected = {};
  let n = 0;
  const send = async (count, day) => {
    const calls = [];
    for (let k = 0; k < count; k++) {
      const currency = currencies[n % currencies.length];
      const amount = 1 + ((n * 37) % 500);
      const ts = D0 + day * DAY + ((n * 7919) % DAY);
      const p = rig.client.routeData({ event: 'purchase', orderId: `a-${n}`, currency, amount, ts }, ['daily', 'daily_default']).then(() => {
        const ws = new Date(Math.floor(ts / DAY) * DAY).toISOString();
        const key = `${ws}/1d/${JSON.stringify([currency])}`;
        const g = (expected[key] ??= { window_start: ws, window: '1d', currency, revenue: 0, orders: 0 });
        g.revenue += amount;
        g.orders += 1;
      });
      calls.push(p);
      n += 1;
    }
    await Promise.all(calls);
  };
  const table = async (name = 'daily_revenue') => {
    const rows = await query(`SELECT * FROM ${name}`);
    return Object.fromEntries(
      rows.map((r) => [
        r._fork_id,
        { window_start: r.window_start, window: r.window, currency: r.currency, revenue: Number(r.revenue), orders: Number(r.orders) },
      ]),
    );
  };
  const matches = async (name) => {
    try {
      assert.deepEqual(await table(name), expected);
      return true;
    } catch {
      return false;
    }
  };
  // Phase 1: one day; phase 2: more of it and the next day. The table is
  // checked while forkd runs, after each phase.
  await send(1500, 0);
  await waitUntil(matches, 20_000, async () => `table ${JSON.stringify(await table())} want ${JSON.stringify(expected)}\n${rig.log()}`);
  await send(1500, 0);
  await send(1000, 1);
  await waitUntil(matches, 20_000, async () => `table ${JSON.stringify(await table())} want ${JSON.stringify(expected)}\n${rig.log()}`);
  await waitUntil(
    async () => (await matches('daily_revenue_default')) && (await matches()),
    20_000,
    async () => `without mode: ${JSON.stringify(await table('daily_revenue_default'))}`,
  );
  assert.equal(Object.keys(expected).length, 6);
  assert.ok(Object.keys(expected).includes('2026-11-21T00:00:00.000Z/1d/["EUR"]'));
  assert.deepEqual(rig.deadLetters('daily'), []);
  assert.deepEqual(rig.deadLetters('daily_default'), []);
  await rig.close();
});

test('a table dropped or altered while forkd runs is read again (created if missing); nothing is lost', async () => {
  const rig = await startRig({ d: { type: 'postgres', table: 'dropped' } });
  await Promise.all(Array.from({ length: 50 }, (_, i) => rig.client.routeData({ i }, 'd', { idempotencyKey: `dr-${i}` })));
  await waitForCount('dropped', 50, rig);
  await query('DROP TABLE dropped');
  await Promise.all(Array.from({ length: 50 }, (_, i) => rig.client.routeData({ i: i + 50 }, 'd', { idempotencyKey: `dr-${i + 50}` })));
  await waitForCount('dropped', 50, rig);
  await sleep(300);
  const rows = await query('SELECT _fork_id FROM dropped');
  assert.equal(rows.length, 50);
  assert.ok(rows.every((r) => Number(r._fork_id.slice(3)) >= 50));
  // A column dropped: its field lands in extra from then on.
  await query('ALTER TABLE dropped DROP COLUMN i');
  await Promise.all(Array.from({ length: 50 }, (_, i) => rig.client.routeData({ i: i + 100 }, 'd', { idempotencyKey: `dr-${i + 100}` })));
  await waitForCount('dropped', 100, rig);
  const altered = await query(`SELECT _fork_id, extra FROM dropped WHERE _fork_id >= 'dr-100' AND length(_fork_id) = 6`);
  assert.equal(altered.length, 50);
  assert.ok(altered.every((r) => r.extra.i === Number(r._fork_id.slice(3))));
  assert.deepEqual(rig.deadLetters('d'), []);
  await rig.close();
});

test("the url's password never appears in logs, status or dead letters", async () => {
  const secret = 'Sup3r-S3cret-pw';
  const closedPort = await freePort();
  const rig = await startRig(
    {
      // Nothing listens: connecting fails and is retried, with messages.
      refused: { type: 'postgres', url: `postgres://postgres:${secret}@127.0.0.1:${closedPort}/postgres?password=${secret}2`, table: 't' },
      // The server refuses the database; the message is the server's.
      nodb: { type: 'postgres', url: server.url.replace('postgres@', `postgres:${secret}@`).replace(/\/postgres$/, '/nope'), table: 't' },
    },
    { admin: true },
  );
  rig.client.routeData({ x: 1 }, ['refused', 'nodb']).catch(() => {});
  await sleep(1500);
  const status = await (await fetch(`${rig.admin}/api/status`)).text();
  const metrics = await (await fetch(`${rig.admin}/metrics`)).text();
  const log = rig.forkd.stderr();
  assert.match(log, new RegExp(`127\\.0\\.0\\.1:${closedPort}`), 'messages show the host and port');
  assert.match(log, /does not exist/, "the server's refusal is shown");
  // libpq cannot parse this one, and its message quotes the url: forkd check
  // (and forkd run) refuse the config, with the url redacted.
  const { dir, config } = tempConfig(
    `destinations:\n  malformed: { type: postgres, url: "postgres://postgres:${secret}@[::1/postgres", table: t }\n`,
    'fork-pg-e2e-',
  );
  const check = spawnSync(FORKD, ['check', '--config', config], { encoding: 'utf8' });
  rmSync(dir, { recursive: true, force: true });
  assert.notEqual(check.status, 0);
  const checked = check.stdout + check.stderr;
  assert.match(checked, /destinations\.malformed\.url: .*IPv6 host address in URI: "postgres:\/\/\[::1\/postgres"/);
  for (const text of [log, status, metrics, JSON.stringify(rig.deadLetters('refused')), checked]) {
    assert.ok(!text.includes(secret), `no password in:\n${text.slice(0, 3000)}`);
  }
  await rig.close();
});

test('an aggregate table of the single-instance layout is migrated: its rows become this instance\'s, the table is renamed, the merged view takes its name', async () => {
  await query(`CREATE TABLE legacy_revenue (_fork_id text PRIMARY KEY, window_start text, "window" text,
               currency text, revenue bigint, orders bigint, mean double precision, extra jsonb)`);
  await query(`INSERT INTO legacy_revenue VALUES ('2026-01-01T00:00:00.000Z/1d/["EUR"]',
               '2026-01-01T00:00:00.000Z', '1d', 'EUR', 70, 2, 35, NULL)`);
  const rig = await startRig({
    revenue: {
      type: 'postgres', table: 'legacy_revenue',
      transforms: [{ aggregate: { window: '1d', time_field: 'ts', group_by: ['currency'], emit_every: '50ms',
                                  measures: { revenue: 'sum(amount)', orders: 'count()', mean: 'avg(amount)' } } }],
    },
  });
  try {
    for (const amount of [10, 20]) {
      await rig.client.routeData({ currency: 'EUR', amount, ts: Date.UTC(2026, 0, 2, 12) }, 'revenue');
    }
    const want = [
      ['2026-01-01T00:00:00.000Z/1d/["EUR"]', 70, 2, 35],
      ['2026-01-02T00:00:00.000Z/1d/["EUR"]', 30, 2, 15],
    ];
    const got = async () =>
      (await query('SELECT * FROM legacy_revenue ORDER BY window_start')).map((r) => [r._fork_id, Number(r.revenue), Number(r.orders), r.mean]);
    await waitUntil(async () => JSON.stringify(await got()) === JSON.stringify(want), 10000, async () => JSON.stringify(await got()));
    const kinds = await query(`SELECT relname, relkind::text FROM pg_class WHERE relname LIKE 'legacy_revenue%' AND relkind IN ('r', 'v') ORDER BY relname`);
    assert.deepEqual(kinds.map((k) => [k.relname, k.relkind]), [
      ['legacy_revenue', 'v'],
      ['legacy_revenue_before_merge', 'r'],
      ['legacy_revenue_parts', 'r'],
    ]);
    const parts = await query('SELECT _fork_id, _fork_instance FROM legacy_revenue_parts ORDER BY _fork_id');
    assert.equal(parts.length, 2);
    assert.equal(new Set(parts.map((p) => p._fork_instance)).size, 1, 'one instance: this one');
    assert.ok(parts[0]._fork_id.endsWith('/2026-01-01T00:00:00.000Z/1d/["EUR"]'), parts[0]._fork_id);
  } finally {
    await rig.close();
  }
});

// One gauge or counter of a destination from forkd's /metrics.
async function metric(rig, name, destination) {
  const text = await (await fetch(`${rig.admin}/metrics`)).text();
  const m = new RegExp(`^${name}\\{destination="${destination}"\\} (\\S+)$`, 'm').exec(text);
  assert.ok(m, `${name} for ${destination} in /metrics`);
  return Number(m[1]);
}

test('pipelined COPY: three forkd with batch.in_flight 3 each keep exactly 3 COPYs on their way; the oldest of each killed, it is resent and the later ones that landed are skipped as duplicates; every acknowledged event is one row', { timeout: 90_000 }, async (t) => {
  const names = ['a', 'b', 'c'];
  const perForkd = 1000;
  const key = (who, k) => `pipe-${who}-${k}`;
  const rigs3 = [];
  for (const n of names) {
    rigs3.push(
      await startRig(
        {
          app: {
            type: 'postgres',
            table: 'pipelined_app',
            // Each forkd's connections by name in pg_stat_activity.
            url: `${server.url}?application_name=pipe-${n}`,
            batch: { max_events: 100, max_wait: '10ms', in_flight: 3 },
          },
        },
        { admin: true },
      ),
    );
  }
  // The table first (each forkd reads it once connected).
  await Promise.all(rigs3.map((rig, i) => rig.client.routeData({ n: -1 - i, who: names[i] }, 'app', { ack: 'delivered' })));
  const locker = await pool.connect();
  try {
    // Every id the forkd will send, inserted and not committed: a COPY
    // waits at its first row for this transaction to end.
    await locker.query('BEGIN');
    await locker.query(
      'INSERT INTO pipelined_app (_fork_id) SELECT unnest($1::text[])',
      [names.flatMap((n) => Array.from({ length: perForkd }, (_, k) => key(n, k)))],
    );
    await Promise.all(
      rigs3.map((rig, i) =>
        rig.client.routeMany(
          Array.from({ length: perForkd }, (_, k) => ({ n: k, who: names[i] })),
          'app',
          { idempotencyKeys: Array.from({ length: perForkd }, (_, k) => key(names[i], k)) },
        ),
      ),
    );
    const waiting = async () =>
      query(
        `SELECT application_name AS app, count(*)::int AS n FROM pg_stat_activity
          WHERE application_name LIKE 'pipe-%' AND wait_event_type = 'Lock' GROUP BY 1 ORDER BY 1`,
      );
    await waitUntil(
      async () => (await waiting()).reduce((s, r) => s + r.n, 0) >= 9,
      20_000,
      async () => JSON.stringify(await waiting()),
    );
    await sleep(300); // a fourth would show by now
    assert.deepEqual(await waiting(), names.map((n) => ({ app: `pipe-${n}`, n: 3 })), 'exactly batch.in_flight COPYs on their way per forkd');
    for (const rig of rigs3) assert.equal(await metric(rig, 'fork_destination_batches_in_flight', 'app'), 3);
    // Each forkd's oldest COPY: the connection dies under it.
    const killed = await query(
      `SELECT pg_terminate_backend(pid) AS ok FROM (
         SELECT DISTINCT ON (application_name) pid FROM pg_stat_activity
          WHERE application_name LIKE 'pipe-%' AND wait_event_type = 'Lock'
          ORDER BY application_name, query_start, backend_start) oldest`,
    );
    assert.deepEqual(killed.map((r) => r.ok), [true, true, true]);
    await sleep(300);
    await locker.query('ROLLBACK');
  } finally {
    locker.release();
  }
  await waitForCount('pipelined_app', 3 * (perForkd + 1), rigs3[0], 30_000);
  await sleep(500);
  const rows = await query('SELECT _fork_id, who, n FROM pipelined_app WHERE n >= 0');
  for (const n of names) {
    const mine = rows.filter((r) => r.who === n);
    assert.equal(mine.length, perForkd, `forkd ${n}: every acknowledged event once`);
    for (const r of mine) assert.equal(r._fork_id, key(n, Number(r.n)), 'each row under its receipt id');
  }
  // The killed batch landed by the resend; the two after it had landed, and
  // their rows were skipped when they went again (at least 2 COPYs refused
  // for the key each: 200 events in batches of at most 100).
  const dupes = server.log().split('\n').filter((l) => l.includes('"pipelined_app_pkey"')).length;
  for (const [i, rig] of rigs3.entries()) {
    assert.ok((await metric(rig, 'fork_destination_resent_batches_total', 'app')) >= 3, rig.log());
    assert.equal(await metric(rig, 'fork_destination_dead_lettered_total', 'app'), 0);
    assert.deepEqual(rig.deadLetters('app'), [], `forkd ${names[i]}: no dead letters`);
    await rig.close();
  }
  assert.ok(dupes >= 6, `batches that had landed were sent again and their rows skipped (${dupes} COPYs refused for the key)`);
  t.diagnostic(`3 forkd × ${perForkd} events, 3 COPYs on their way each; COPYs refused as duplicates, then sent again skipping them: ${dupes}`);
});

test('a table without a unique index on _fork_id takes one COPY at a time (a batch sent again would be stored twice); that COPY killed, its batch lands once', { timeout: 60_000 }, async () => {
  await query('DROP TABLE IF EXISTS plain_log');
  await query('CREATE TABLE plain_log (_fork_id text, n bigint)');
  // A gate at the first row of every COPY: it waits while the test holds
  // advisory lock 4242 (a COPY that has started, so pipelining would show).
  await query(`CREATE OR REPLACE FUNCTION plain_log_gate() RETURNS trigger LANGUAGE plpgsql AS
    $$ BEGIN PERFORM pg_advisory_xact_lock_shared(4242); RETURN NEW; END $$`);
  await query('CREATE TRIGGER gate BEFORE INSERT ON plain_log FOR EACH ROW EXECUTE FUNCTION plain_log_gate()');
  const rig = await startRig(
    {
      p: {
        type: 'postgres',
        table: 'plain_log',
        url: `${server.url}?application_name=plain-p`,
        batch: { max_events: 100, max_wait: '10ms', in_flight: 4 },
      },
    },
    { admin: true },
  );
  const waiting = async () =>
    (await query(`SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = 'plain-p' AND wait_event_type = 'Lock'`))[0].n;
  const locker = await pool.connect();
  try {
    await locker.query('SELECT pg_advisory_lock(4242)');
    await rig.client.routeMany(Array.from({ length: 1000 }, (_, k) => ({ n: k })), 'p');
    await waitUntil(async () => (await waiting()) >= 1, 20_000, async () => `${await waiting()} waiting\n${rig.log()}`);
    await sleep(500); // a second would show by now
    assert.equal(await waiting(), 1, 'one COPY at a time, though batch.in_flight is 4');
    const killed = await query(`SELECT pg_terminate_backend(pid) AS ok FROM pg_stat_activity WHERE application_name = 'plain-p' AND wait_event_type = 'Lock'`);
    assert.deepEqual(killed.map((r) => r.ok), [true]);
    await sleep(300);
    await locker.query('SELECT pg_advisory_unlock(4242)');
  } finally {
    locker.release();
  }
  await waitForCount('plain_log', 1000, rig);
  await sleep(500);
  const rows = await query('SELECT n FROM plain_log');
  assert.equal(rows.length, 1000, 'no row twice');
  assert.equal(new Set(rows.map((r) => Number(r.n))).size, 1000);
  assert.ok((await metric(rig, 'fork_destination_retries_total', 'p')) >= 1, 'the killed COPY was retried');
  assert.deepEqual(rig.deadLetters('p'), []);
  await rig.close();
});
