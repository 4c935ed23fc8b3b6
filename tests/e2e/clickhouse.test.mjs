// The clickhouse sink against a real ClickHouse server (Debian's
// clickhouse-server, started in a temp directory by servers/clickhouse.mjs)
// and read back over its HTTP interface: append with types mapped and nested
// values as JSON text, a batch really sent twice (a proxy drops forkd's
// connection after the server took the insert) collapsing to one row per id
// with FINAL, pipelined inserts from three forkd (at most batch.in_flight at
// once each, a failed one resent), upsert (the last version of a key wins), declared columns and
// `extra`, a server restart mid-run, a record the server refuses (only that
// record in dead letters), hostile names and values, a wrong password, and
// daily aggregate totals read while forkd runs.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { existsSync, rmSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { createClient } from '../../js/index.mjs';
import { startForkd, tempConfig, endpointFor, readJsonl, readReceipts, startProducer } from './helpers.mjs';
import { purchases } from '../../bench/workload.mjs';
import { startClickHouse, clickhouseAvailable } from './servers/clickhouse.mjs';

const skip = clickhouseAvailable() ? false : 'clickhouse-server is not installed (scripts/install-deps.sh)';
let ch;
before(async () => {
  if (!skip) ch = await startClickHouse({ users: { fork: 'right-password' } });
});
after(async () => {
  if (ch) await ch.stop();
});

// Numbers come back as numbers (64-bit integers are quoted by default).
const rows = (sql) =>
  ch
    .query(`${sql} FORMAT JSONEachRow`, { params: { output_format_json_quote_64bit_integers: 0 } })
    .then((t) => t.split('\n').filter(Boolean).map((l) => JSON.parse(l)));
const scalar = async (sql) => Number((await ch.query(sql)).trim());
const ident = (name) => '`' + name.replace(/\\/g, '\\\\').replace(/`/g, '\\`') + '`';
const columns = async (table, db = 'default') =>
  (await rows(`DESCRIBE TABLE ${ident(db)}.${ident(table)}`)).map((c) => [c.name, c.type]);

const quick = { retry: { initial: '50ms', max: '500ms' }, breaker: { failures: 1000, cooldown: '200ms' } };

// A forkd with the given destinations (written as JSON, which is YAML), a
// client, and what the tests read from its data directory.
async function withForkd(destinations, fn, { admin = false } = {}) {
  let adminPort = 0;
  if (admin) {
    const srv = http.createServer();
    await new Promise((r) => srv.listen(0, '127.0.0.1', r));
    adminPort = srv.address().port;
    await new Promise((r) => srv.close(r));
  }
  const { dir, config } = tempConfig(
    `data_dir: ./.fork\nwal: { fsync: batch }\n${admin ? `admin: 127.0.0.1:${adminPort}\n` : ''}destinations: ${JSON.stringify(destinations, null, 1)}\n`,
    'fork-ch-e2e-',
  );
  let forkd;
  let client;
  const rig = {
    dir,
    get forkd() {
      return forkd;
    },
    get client() {
      return client;
    },
    endpoint: endpointFor(dir),
    log: () => (forkd ? forkd.stderr().slice(-4000) : ''),
    deadLetters(name) {
      const p = path.join(dir, '.fork', 'dead_letters', `${name}.jsonl`);
      return existsSync(p) ? readJsonl(p) : [];
    },
    async status(name) {
      const r = await fetch(`http://127.0.0.1:${adminPort}/api/status`, { signal: AbortSignal.timeout(5000) });
      return (await r.json()).destinations.find((d) => d.name === name);
    },
    async stop() {
      await client.close();
      const r = await forkd.stop('SIGTERM');
      assert.equal(r.code, 0, forkd.stderr());
    },
  };
  try {
    forkd = await startForkd(config);
    client = createClient({ endpoint: rig.endpoint, timeoutMs: 15000 });
    return await fn(rig);
  } finally {
    if (client) await client.close(0);
    if (forkd) await forkd.stop('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
}

async function waitUntil(pred, ms, what) {
  const deadline = Date.now() + ms;
  for (;;) {
    if (await pred()) return;
    if (Date.now() > deadline) throw new Error(`not within ${ms} ms: ${await what()}`);
    await sleep(100);
  }
}

// Waits until `sql` (one number) reaches n; the table may not exist yet.
const waitCount = (sql, n, rig, ms = 30000) => {
  let last;
  return waitUntil(
    async () => {
      try {
        return (last = await scalar(sql)) >= n;
      } catch (e) {
        last = e.message.split('\n')[0];
        return false;
      }
    },
    ms,
    () => `${sql} is ${last}, expected ${n}\n${rig.log()}`,
  );
};

test('append: every acknowledged event once, types mapped, nested values as JSON text', { skip, timeout: 60_000 }, async () => {
  const dest = { orders: { type: 'clickhouse', url: ch.url, table: 'orders', batch: { max_events: 500, max_wait: '20ms' } } };
  await withForkd(dest, async (rig) => {
    const next = purchases(11);
    const sent = [];
    for (let i = 0; i < 3000; i++) {
      const p = next();
      if (i === 0) p.placedAt = new Date(Date.UTC(2026, 10, 21, 12, 0, 0, 250)); // a timestamp: inferred from the first record
      sent.push(p);
    }
    // An odd one: a field the first record lacked (-> extra) and one it had, missing.
    sent.push({ event: 'purchase', orderId: 'odd', coupon: { code: 'X', pct: 10 } });
    const receipts = await Promise.all(sent.map((p) => rig.client.routeData(p, 'orders')));
    await waitCount('SELECT count() FROM default.orders', sent.length, rig);

    const cols = await columns('orders');
    const dt = cols.find(([n]) => n === 'placedAt')[1];
    assert.match(dt, /^Nullable\(DateTime(64\(3, 'UTC'\)|\('UTC'\))\)$/);
    const bool = cols.find(([n]) => n === 'ok')[1];
    assert.match(bool, /^Nullable\((Bool|UInt8)\)$/);
    assert.deepEqual(cols, [
      ['_fork_id', 'String'], ['event', 'Nullable(String)'], ['orderId', 'Nullable(String)'],
      ['userId', 'Nullable(String)'], ['amount', 'Nullable(Float64)'], ['currency', 'Nullable(String)'],
      ['items', 'Nullable(String)'], ['ts', 'Nullable(Int64)'], ['campaign', 'Nullable(String)'],
      ['ok', bool], ['placedAt', dt], ['extra', 'String'],
    ]);
    const engine = (await ch.query("SELECT engine_full FROM system.tables WHERE database = 'default' AND name = 'orders'")).trim();
    assert.match(engine, /^ReplacingMergeTree ORDER BY _fork_id/);

    const got = await rows("SELECT *, toString(placedAt, 'UTC') AS placedAtText FROM default.orders");
    assert.equal(got.length, sent.length, 'one row per acknowledged event');
    const byId = new Map(got.map((r) => [r._fork_id, r]));
    for (let i = 0; i < sent.length; i++) {
      const p = sent[i];
      const r = byId.get(receipts[i].id);
      assert.ok(r, `row for ${receipts[i].id}`);
      if (p.orderId === 'odd') {
        assert.equal(r.amount, null, 'a missing field is NULL');
        assert.deepEqual(JSON.parse(r.extra), { coupon: { code: 'X', pct: 10 } }, 'a field without a column lands in extra');
        continue;
      }
      assert.equal(r.orderId, p.orderId);
      assert.equal(r.userId, p.userId);
      assert.equal(r.amount, p.amount);
      assert.equal(r.currency, p.currency);
      assert.equal(r.ts, p.ts);
      assert.equal(r.ok, 1);
      assert.deepEqual(JSON.parse(r.items), p.items, 'nested values are JSON text');
      assert.equal(r.extra, '');
    }
    const first = byId.get(receipts[0].id);
    assert.equal(first.placedAtText, dt.includes('64') ? '2026-11-21 12:00:00.250' : '2026-11-21 12:00:00');
    assert.equal(byId.get(receipts[1].id).placedAt, null);
    await rig.stop();
  });
});

// An HTTP proxy in front of ClickHouse that can take an insert to the
// server, let it land, and then drop the client's connection instead of
// answering: the client cannot know the insert happened, and sends it again.
// It also counts the inserts on their way at once (maxActive), can hold
// each one `delayMs` before passing it on, and can answer the n-th insert
// (failAt, from 1) with a 503 without passing it on.
async function startDroppingProxy(target) {
  const state = { dropInserts: 0, inserts: [], dropped: 0, delayMs: 0, active: 0, maxActive: 0, seen: 0, failAt: 0 };
  const server = http.createServer(async (req, res) => {
    const chunks = [];
    for await (const c of req) chunks.push(c);
    const body = Buffer.concat(chunks);
    const isInsert = new URL(req.url, 'http://x').searchParams.get('query')?.startsWith('INSERT') ?? false;
    if (isInsert) {
      const nth = ++state.seen;
      state.active += 1;
      state.maxActive = Math.max(state.maxActive, state.active);
      res.on('close', () => { state.active -= 1; });
      if (state.delayMs > 0) await sleep(state.delayMs);
      if (nth === state.failAt) {
        state.inserts.push({ status: 503, body: body.toString() });
        res.writeHead(503, { 'content-type': 'text/plain' });
        res.end('Code: 999. proxy: service unavailable (a test fault)');
        return;
      }
    }
    const r = await fetch(target + req.url, { method: req.method, body: req.method === 'POST' ? body : undefined });
    const text = Buffer.from(await r.arrayBuffer());
    if (isInsert) state.inserts.push({ status: r.status, body: body.toString() });
    if (isInsert && r.ok && state.dropInserts > 0) {
      state.dropInserts -= 1;
      state.dropped += 1;
      req.socket.destroy();
      return;
    }
    res.writeHead(r.status, { 'content-type': r.headers.get('content-type') ?? 'text/plain' });
    res.end(text);
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${server.address().port}`, state, close: () => new Promise((r) => { server.closeAllConnections(); server.close(r); }) };
}

test('a batch sent twice (the connection dropped after the insert landed): one row per id with FINAL', { skip, timeout: 60_000 }, async () => {
  const proxy = await startDroppingProxy(ch.url);
  try {
    const dest = { twice: { type: 'clickhouse', url: proxy.url, table: 'twice', batch: { max_events: 1000, max_wait: '50ms' }, ...quick } };
    await withForkd(dest, async (rig) => {
      // The table first, so that the batch below is one insert.
      await rig.client.routeData({ k: 'warm-up', n: -1 }, 'twice');
      await waitCount('SELECT count() FROM default.twice', 1, rig);
      proxy.state.dropInserts = 1;
      const n = 500;
      const receipts = await Promise.all(Array.from({ length: n }, (_, i) => rig.client.routeData({ k: `k${i}`, n: i }, 'twice')));
      await waitUntil(() => proxy.state.dropped === 1 && proxy.state.inserts.length >= 3, 20000, () => JSON.stringify(proxy.state.inserts.map((i) => i.status)));
      await waitCount('SELECT count() FROM default.twice FINAL', n + 1, rig);
      await sleep(500); // anything still coming would show now
      await rig.stop();

      // The dropped insert and its retry carried the same rows: the server
      // stored them twice (until a merge collapses them).
      const [, dropped, retried] = proxy.state.inserts;
      assert.equal(dropped.status, 200);
      assert.equal(retried.body, dropped.body, 'the retry resent the same batch');
      const inBatch = dropped.body.split('\n').filter(Boolean).length;
      assert.ok(inBatch >= 1, 'the dropped insert had rows');
      assert.equal(await scalar('SELECT count() FROM default.twice FINAL'), n + 1, 'FINAL: one row per id');
      assert.equal(await scalar('SELECT uniqExact(_fork_id) FROM default.twice'), n + 1);
      const raw = await scalar('SELECT count() FROM default.twice');
      assert.ok(raw === n + 1 || raw === n + 1 + inBatch, `raw rows ${raw}: ${n + 1} (merged) or ${n + 1 + inBatch} (not yet)`);
      await ch.query('OPTIMIZE TABLE default.twice FINAL');
      assert.equal(await scalar('SELECT count() FROM default.twice'), n + 1, 'after a merge the duplicates are gone');
      const ids = new Set((await rows('SELECT _fork_id FROM default.twice')).map((r) => r._fork_id));
      for (const r of receipts) assert.ok(ids.has(r.id));
    });
  } finally {
    await proxy.close();
  }
});

test('pipelined inserts: three forkd with batch.in_flight 4 into one table each keep exactly 4 inserts on their way under load, a failed one is resent, and every acknowledged event is there once with FINAL', { skip, timeout: 120_000 }, async (t) => {
  const proxies = await Promise.all([0, 1, 2].map(() => startDroppingProxy(ch.url)));
  const rigs = [];
  try {
    for (const [i, proxy] of proxies.entries()) {
      proxy.state.delayMs = 25; // so that batches pile up on the wire
      proxy.state.failAt = 5 + i; // one insert answered 503 mid-run, on each forkd
      const dest = { pipe: { type: 'clickhouse', url: proxy.url, table: 'pipelined', batch: { max_events: 200, max_wait: '20ms', in_flight: 4 }, ...quick } };
      const { dir, config } = tempConfig(`data_dir: ./.fork\ninstance: f${i}\nwal: { fsync: batch }\ndestinations: ${JSON.stringify(dest)}\n`, 'fork-ch-pipe-');
      const forkd = await startForkd(config);
      rigs.push({ dir, forkd, client: createClient({ endpoint: endpointFor(dir), timeoutMs: 15000 }) });
    }
    // The table first (three forkd creating it at once is its own test).
    await rigs[0].client.routeData({ k: 'warm-up', n: -1 }, 'pipe');
    await waitCount('SELECT count() FROM default.pipelined', 1, { log: () => rigs[0].forkd.stderr() });
    const perForkd = 6000;
    const receipts = await Promise.all(rigs.map(async (r, i) => {
      const out = [];
      for (let c = 0; c < perForkd; c += 500) {
        const batch = Array.from({ length: 500 }, (_, j) => ({ k: `f${i}-${c + j}`, n: c + j }));
        out.push(...(await r.client.routeMany(batch, 'pipe')));
      }
      return out;
    }));
    const ids = receipts.flat().map((r) => r.id);
    assert.equal(new Set(ids).size, 3 * perForkd);
    const log = () => rigs.map((r) => r.forkd.stderr().slice(-2000)).join('\n---\n');
    await waitCount('SELECT uniqExact(_fork_id) FROM default.pipelined', 3 * perForkd + 1, { log }, 60000);
    for (const r of rigs) {
      await r.client.close();
      const res = await r.forkd.stop('SIGTERM');
      assert.equal(res.code, 0, r.forkd.stderr());
    }
    for (const [i, p] of proxies.entries()) {
      assert.equal(p.state.maxActive, 4, `forkd f${i}: at most batch.in_flight inserts at once, and that many under load`);
      assert.equal(p.state.inserts.filter((x) => x.status === 503).length, 1, `forkd f${i}: the fault was hit: ${JSON.stringify({ seen: p.state.seen, failAt: p.state.failAt, statuses: p.state.inserts.map((x) => x.status) })}`);
      assert.match(rigs[i].forkd.stderr(), /a pipelined batch of \d+ failed \(.*503/, `forkd f${i} saw its insert fail`);
    }
    const got = await rows('SELECT _fork_id, k, n FROM default.pipelined FINAL');
    assert.equal(got.length, 3 * perForkd + 1, 'FINAL: one row per id');
    const byId = new Map(got.map((r) => [r._fork_id, r]));
    for (const [i, rs] of receipts.entries()) {
      for (const [j, r] of rs.entries()) {
        const row = byId.get(r.id);
        assert.ok(row, `forkd f${i}: acknowledged ${r.id} missing`);
        assert.equal(row.n, j);
      }
    }
    const raw = await scalar('SELECT count() FROM default.pipelined');
    t.diagnostic(`3 forkd × ${perForkd} events, max inserts at once ${proxies.map((p) => p.state.maxActive).join('/')}, inserts ${proxies.map((p) => p.state.inserts.length).join('/')}, raw rows ${raw} (resent batches collapse with FINAL)`);
  } finally {
    for (const r of rigs) {
      await r.client.close(0);
      await r.forkd.stop('SIGKILL');
      rmSync(r.dir, { recursive: true, force: true });
    }
    for (const p of proxies) await p.close();
  }
});

test('upsert: the last version of a key wins with FINAL', { skip, timeout: 60_000 }, async () => {
  const dest = { status: { type: 'clickhouse', url: ch.url, table: 'order_status', mode: 'upsert', key: 'orderId', batch: { max_events: 100, max_wait: '20ms' } } };
  await withForkd(dest, async (rig) => {
    // Versions of a key in one batch, and in later batches.
    const calls = [];
    for (let i = 0; i < 300; i++) calls.push(rig.client.routeData({ orderId: `o${i % 100}`, status: 'new', step: Math.floor(i / 100) }, 'status'));
    await Promise.all(calls);
    await waitCount('SELECT count() FROM default.order_status FINAL WHERE step = 2', 100, rig);
    for (let i = 0; i < 100; i += 2) await rig.client.routeData({ orderId: `o${i}`, status: 'paid', step: 3 }, 'status');
    await waitCount("SELECT count() FROM default.order_status FINAL WHERE status = 'paid'", 50, rig);
    const cols = await columns('order_status');
    assert.deepEqual(cols.find(([n]) => n === 'orderId'), ['orderId', 'String'], 'the key is not Nullable');
    assert.deepEqual(cols.find(([n]) => n === '_version'), ['_version', 'UInt64']);
    const engine = (await ch.query("SELECT engine_full FROM system.tables WHERE database = 'default' AND name = 'order_status'")).trim();
    assert.match(engine, /^ReplacingMergeTree\(_version\) ORDER BY orderId/);
    const got = await rows('SELECT orderId, status, step FROM default.order_status FINAL ORDER BY orderId');
    assert.equal(got.length, 100, 'one row per key');
    for (const r of got) {
      const i = Number(r.orderId.slice(1));
      assert.deepEqual([r.status, r.step], i % 2 === 0 ? ['paid', 3] : ['new', 2], `key ${r.orderId}`);
    }
    await rig.stop();
  });
});

test('declared columns: types as declared, the rest in extra, missing fields NULL', { skip, timeout: 60_000 }, async () => {
  const dest = {
    decl: {
      type: 'clickhouse', url: ch.url, database: 'shop', table: 'declared',
      columns: { orderId: 'text', amount: 'real', qty: 'integer', paid: 'boolean', meta: 'json', at: 'timestamp', note: 'string' },
      batch: { max_wait: '20ms' },
    },
  };
  await withForkd(dest, async (rig) => {
    const t = Date.UTC(2026, 10, 21, 9, 30, 15, 0);
    const sent = [
      { orderId: 'a', amount: 12.5, qty: 3, paid: true, meta: { src: 'web', tags: ['x'] }, at: new Date(t), note: 'plain', color: 'red' },
      { orderId: 'b', amount: 7, qty: 1, paid: false, meta: 'just text', at: '2026-11-21T09:30:15Z', note: 42, size: { w: 1 } },
      { orderId: 'c', at: t },
      { orderId: 'd', meta: null, at: '2026-11-21 09:30:15' },
    ];
    const receipts = [];
    for (const p of sent) receipts.push(await rig.client.routeData(p, 'decl'));
    await waitCount('SELECT count() FROM shop.declared', sent.length, rig);
    const cols = await columns('declared', 'shop');
    const bool = cols.find(([n]) => n === 'paid')[1];
    const ts = cols.find(([n]) => n === 'at')[1];
    assert.deepEqual(cols, [
      ['_fork_id', 'String'], ['orderId', 'Nullable(String)'], ['amount', 'Nullable(Float64)'], ['qty', 'Nullable(Int64)'],
      ['paid', bool], ['meta', 'Nullable(String)'], ['at', ts], ['note', 'Nullable(String)'], ['extra', 'String'],
    ]);
    const got = await rows("SELECT *, toString(at, 'UTC') AS atText FROM shop.declared ORDER BY orderId");
    assert.deepEqual(got.map((r) => r._fork_id), receipts.map((r) => r.id));
    const [a, b, c, d] = got;
    assert.deepEqual([a.amount, a.qty, a.paid, JSON.parse(a.meta), a.note], [12.5, 3, 1, { src: 'web', tags: ['x'] }, 'plain']);
    assert.deepEqual(JSON.parse(a.extra), { color: 'red' });
    assert.deepEqual([b.amount, b.qty, b.paid, JSON.parse(b.meta), b.note], [7, 1, 0, 'just text', '42'], 'a json column holds JSON text; a number in a text column its text');
    assert.deepEqual(JSON.parse(b.extra), { size: { w: 1 } });
    assert.deepEqual([c.amount, c.qty, c.paid, c.meta, c.note, c.extra], [null, null, null, null, null, '']);
    assert.equal(d.meta, null, 'nil is NULL');
    for (const r of got) assert.equal(r.atText, '2026-11-21 09:30:15', `${r.orderId}: a Date, ISO text, epoch ms and plain text are the same instant`);
    await rig.stop();
  });
});

test('the server restarted mid-run: every acknowledged event arrives', { skip, timeout: 90_000 }, async (t) => {
  const dest = { ch: { type: 'clickhouse', url: ch.url, table: 'storm', batch: { max_events: 1000, max_wait: '50ms' }, ...quick, connect_timeout: '500ms', timeout: '5s' } };
  await withForkd(dest, async (rig) => {
    const receiptsFile = path.join(rig.dir, 'receipts.txt');
    const prod = startProducer({ endpoint: rig.endpoint, receipts: receiptsFile, rate: 2000, destinations: ['ch'] });
    try {
      await prod.waitFor((s) => s.acked > 2000, 15000);
      await ch.stopServer('SIGKILL'); // a crash: whatever it had not written is gone, and was never acknowledged
      await sleep(2000);
      await ch.startServer();
      await sleep(1500);
      const done = await prod.stop();
      assert.deepEqual(done.errors, {}, 'every call was acknowledged');
      assert.match(rig.forkd.stderr(), /destination ch: flush failed/, 'forkd saw the server go away');
      const receipts = readReceipts(receiptsFile);
      assert.equal(receipts.size, done.issued);
      await waitCount('SELECT uniqExact(_fork_id) FROM default.storm', receipts.size, rig, 60000);
      const got = await rows('SELECT _fork_id, n FROM default.storm FINAL');
      const byId = new Map(got.map((r) => [r._fork_id, r.n]));
      const missing = [...receipts.keys()].filter((id) => !byId.has(id));
      assert.deepEqual(missing.slice(0, 10), [], `${missing.length} acknowledged events missing`);
      for (const [id, n] of receipts) assert.equal(byId.get(id), n, id);
      assert.equal(got.length, receipts.size, 'FINAL: one row per id');
      const raw = await scalar('SELECT count() FROM default.storm');
      t.diagnostic(`restart: ${receipts.size} events acknowledged, all present; raw rows ${raw} (resent batches collapse with FINAL)`);
      await rig.stop();
    } finally {
      await prod.kill();
    }
  });
});

test('a record the server refuses: that record, and only that one, in dead letters', { skip, timeout: 60_000 }, async () => {
  const dest = { typed: { type: 'clickhouse', url: ch.url, table: 'typed', columns: { item: 'text', qty: 'integer' }, batch: { max_events: 1000, max_wait: '100ms' } } };
  await withForkd(dest, async (rig) => {
    const sent = [];
    for (let i = 0; i < 400; i++) sent.push({ item: `i${i}`, qty: i });
    sent[137] = { item: 'bad', qty: 'lots' }; // a string that is no integer
    sent[301] = { item: 'bad2', qty: 2.5 }; // a fraction in an integer column
    const receipts = await Promise.all(sent.map((p) => rig.client.routeData(p, 'typed')));
    await waitUntil(() => rig.deadLetters('typed').length >= 2, 20000, () => rig.log());
    await waitCount('SELECT count() FROM default.typed', 398, rig);
    await sleep(300);
    const letters = rig.deadLetters('typed');
    assert.deepEqual(letters.map((l) => l._fork_id).sort(), [receipts[137].id, receipts[301].id].sort(), 'only the refused records');
    for (const l of letters) {
      assert.match(l.reason, /clickhouse .*insert into `default`\.`typed`: http \d+: Code: \d+.*Cannot parse/);
    }
    const got = await rows('SELECT _fork_id, item, qty FROM default.typed');
    assert.equal(got.length, 398);
    const ids = new Set(got.map((r) => r._fork_id));
    for (let i = 0; i < sent.length; i++) assert.equal(ids.has(receipts[i].id), i !== 137 && i !== 301);
    await rig.stop();
  });
});

test('hostile names and values: stored verbatim or kept in extra, never run', { skip, timeout: 60_000 }, async () => {
  await ch.query('CREATE TABLE IF NOT EXISTS default.victim (x UInt8) ENGINE = Memory');
  await ch.query('INSERT INTO default.victim VALUES (1)');
  const table = "t`; DROP TABLE default.victim; --";
  const dest = { evil: { type: 'clickhouse', url: ch.url, table, batch: { max_wait: '20ms' } } };
  const names = ['plain', 'back`tick', "quote'); DROP TABLE default.victim; --", 'naïve ü 名前', 'with space', 'back\\slash', 'dollar$', '"dq"'];
  const values = ["'); DROP TABLE default.victim; --", '\\N', 'tab\there\nnewline', 'back`tick \\ slash', '名前 ✓ 😀', '', 'NULL'];
  await withForkd(dest, async (rig) => {
    const sent = [];
    for (let i = 0; i < values.length; i++) {
      const p = {};
      for (const n of names) p[n] = values[(i + names.indexOf(n)) % values.length];
      if (i === 0) {
        p['new\nline'] = 'x'; // not a usable identifier: kept in extra
        p['ctl\u0001'] = 'y';
      }
      sent.push(p);
    }
    const receipts = [];
    for (const p of sent) receipts.push(await rig.client.routeData(p, 'evil'));
    const quoted = ident(table);
    await waitCount(`SELECT count() FROM default.${quoted}`, sent.length, rig);
    assert.equal(await scalar('SELECT count() FROM default.victim'), 1, 'the victim table is still there');
    const cols = (await columns(table)).map(([n]) => n);
    assert.deepEqual(cols, ['_fork_id', ...names, 'extra']);
    const got = await rows(`SELECT * FROM default.${quoted}`);
    const byId = new Map(got.map((r) => [r._fork_id, r]));
    for (let i = 0; i < sent.length; i++) {
      const r = byId.get(receipts[i].id);
      for (const n of names) assert.equal(r[n], sent[i][n], `${JSON.stringify(n)} of record ${i}`);
    }
    assert.deepEqual(JSON.parse(byId.get(receipts[0].id).extra), { 'new\nline': 'x', 'ctl\u0001': 'y' });
    assert.deepEqual(rig.deadLetters('evil'), []);
    await rig.stop();
  });
});

test('a wrong password: retried, never dead-lettered, never shown; the right one delivers', { skip, timeout: 60_000 }, async () => {
  process.env.FORK_CH_TEST_PASSWORD = 'wrong-horse-battery';
  const dest = {
    locked: { type: 'clickhouse', url: ch.url, table: 'locked', user: 'fork', password: '${FORK_CH_TEST_PASSWORD}', ...quick },
    open: { type: 'clickhouse', url: ch.url, table: 'unlocked', user: 'fork', password: 'right-password', batch: { max_wait: '20ms' } },
  };
  await withForkd(dest, async (rig) => {
    await rig.client.routeData({ a: 1 }, ['locked', 'open']);
    await waitCount('SELECT count() FROM default.unlocked', 1, rig);
    let st;
    await waitUntil(async () => (st = await rig.status('locked')).last_error?.includes('193'), 10000, () => JSON.stringify(st));
    assert.match(st.last_error, /Wrong password for user fork/);
    assert.ok(!st.last_error.includes('wrong-horse-battery'), 'the password is not in the status');
    await sleep(500);
    assert.deepEqual(rig.deadLetters('locked'), [], 'a refused login is the store\'s problem, not the record\'s');
    assert.ok(!rig.forkd.stderr().includes('wrong-horse-battery'), 'nor in the log');
    assert.ok(!rig.forkd.stderr().includes('right-password'), 'nor the right one');
  }, { admin: true });
});

test('daily aggregate totals equal the sum of what was acknowledged, read while forkd runs', { skip, timeout: 90_000 }, async (t) => {
  const dest = {
    revenue: {
      type: 'clickhouse', url: ch.url, table: 'daily_revenue', mode: 'upsert',
      columns: { window_start: 'timestamp', window: 'text', currency: 'text', revenue: 'real', orders: 'integer' },
      batch: { max_wait: '20ms' },
      transforms: [{ aggregate: { window: '1d', time_field: 'ts', group_by: ['currency'], measures: { revenue: 'sum(amount)', orders: 'count()' }, emit_every: '200ms' } }],
    },
  };
  // The same without `mode`: an aggregating destination upserts by default.
  dest.revenue_default = { ...dest.revenue, table: 'daily_revenue_default' };
  delete dest.revenue_default.mode;
  await withForkd(dest, async (rig) => {
    const next = purchases(5);
    const expected = new Map(); // "day/currency" -> { revenue, orders }
    const DAY = 86_400_000;
    // (Three days from 2026-11-21; 3 x 1500 events 10 ms apart stay within each.)
    // Three days, one after the other: a day's window closes when the next
    // one starts (no lateness allowed), and its row is final then.
    for (let round = 0; round < 3; round++) {
      const batch = [];
      for (let i = 0; i < 1500; i++) {
        const p = next();
        p.ts += round * DAY;
        batch.push(p);
      }
      const acked = await Promise.all(batch.map((p) => rig.client.routeData(p, ['revenue', 'revenue_default']).then(() => p)));
      for (const p of acked) {
        const key = `${new Date(Math.floor(p.ts / DAY) * DAY).toISOString().slice(0, 10)}/${p.currency}`;
        const e = expected.get(key) ?? { revenue: 0, orders: 0 };
        e.revenue += p.amount;
        e.orders += 1;
        expected.set(key, e);
      }
      const total = [...expected.values()].reduce((a, e) => a + e.orders, 0);
      // Queried while forkd runs: the totals catch up with what was acknowledged.
      await waitCount('SELECT sum(orders) FROM default.daily_revenue', total, rig, 20000);
      await waitCount('SELECT sum(orders) FROM default.daily_revenue_default', total, rig, 20000);
    }
    // The partial rows of this instance upsert without saying so; the
    // configured name is the view that merges the instances' rows.
    const engine = (await ch.query("SELECT engine_full FROM system.tables WHERE database = 'default' AND name = 'daily_revenue_default_parts'")).trim();
    assert.match(engine, /^ReplacingMergeTree\(_version\) ORDER BY _fork_id/, 'upsert without saying so');
    const view = (await ch.query("SELECT engine FROM system.tables WHERE database = 'default' AND name = 'daily_revenue_default'")).trim();
    assert.equal(view, 'View');
    assert.deepEqual(
      await rows('SELECT _fork_id, revenue, orders FROM default.daily_revenue_default ORDER BY _fork_id'),
      await rows('SELECT _fork_id, revenue, orders FROM default.daily_revenue ORDER BY _fork_id'),
    );
    const got = await rows("SELECT _fork_id, toString(window_start, 'UTC') AS day, window, currency, revenue, orders FROM default.daily_revenue");
    assert.equal(got.length, expected.size, 'one row per (day, currency)');
    for (const r of got) {
      const key = `${r.day.slice(0, 10)}/${r.currency}`;
      const e = expected.get(key);
      assert.ok(e, `unexpected row ${key}`);
      assert.equal(r.window, '1d');
      assert.equal(r._fork_id, `${r.day.slice(0, 10)}T00:00:00.000Z/1d/["${r.currency}"]`);
      assert.equal(r.orders, e.orders, `${key} orders`);
      assert.ok(Math.abs(r.revenue - e.revenue) < 1e-6 * Math.max(1, e.revenue), `${key} revenue ${r.revenue}, expected ${e.revenue}`);
    }
    const raw = await scalar('SELECT count() FROM default.daily_revenue');
    t.diagnostic(`aggregate: ${expected.size} (day, currency) rows, ${raw} versions stored before merges`);
    await rig.stop();
  });
});

test('bad clickhouse options are refused by forkd check at the option', async () => {
  const { dir, config } = tempConfig(
    [
      'destinations:',
      '  a: { type: clickhouse, url: "ftp://u:secret@x", table: t }',
      '  b: { type: clickhouse, url: "http://127.0.0.1:8123", table: t, columns: { n: decimal } }',
      '  c: { type: clickhouse, url: "http://127.0.0.1:8123", database: "", table: t }',
      '  d: { type: clickhouse, url: "http://127.0.0.1:8123", table: t, mode: upsert, key: nope, columns: { n: integer } }',
      '  e: { type: clickhouse, table: t }',
      '',
    ].join('\n'),
    'fork-ch-check-',
  );
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
    assert.match(out, /fork\.yaml:2:\d+: destinations\.a\.url: must start with http:\/\/ or https:\/\/, got ftp:\/\//);
    assert.ok(!out.includes('secret'), 'the url is not shown beyond its scheme');
    assert.match(out, /fork\.yaml:3:\d+: destinations\.b\.columns\.n: expected one of text, integer, real, boolean, json, timestamp/);
    assert.match(out, /fork\.yaml:4:\d+: destinations\.c\.database: must not be empty/);
    assert.match(out, /fork\.yaml:5:\d+: destinations\.d\.key: 'nope' is not one of the declared columns/);
    assert.match(out, /fork\.yaml:6:\d+: destinations\.e\.url: required option is missing/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('an aggregate table of the single-instance layout is migrated: its rows become this instance\'s, the table is renamed, the merged view takes its name', { skip, timeout: 60_000 }, async () => {
  await ch.query(`CREATE TABLE default.legacy_revenue (_fork_id String, window_start Nullable(String),
                  window Nullable(String), currency Nullable(String), revenue Nullable(Int64),
                  orders Nullable(Int64), mean Nullable(Float64), extra String, _version UInt64)
                  ENGINE = ReplacingMergeTree(_version) ORDER BY _fork_id`);
  await ch.query(`INSERT INTO default.legacy_revenue VALUES ('2026-01-01T00:00:00.000Z/1d/["EUR"]',
                  '2026-01-01T00:00:00.000Z', '1d', 'EUR', 70, 2, 35, '', 7)`);
  const dest = {
    revenue: {
      type: 'clickhouse', url: ch.url, table: 'legacy_revenue', batch: { max_wait: '20ms' }, ...quick,
      transforms: [{ aggregate: { window: '1d', time_field: 'ts', group_by: ['currency'], emit_every: '50ms',
                                  measures: { revenue: 'sum(amount)', orders: 'count()', mean: 'avg(amount)' } } }],
    },
  };
  await withForkd(dest, async (rig) => {
    for (const amount of [10, 20]) {
      await rig.client.routeData({ currency: 'EUR', amount, ts: Date.UTC(2026, 0, 2, 12) }, 'revenue');
    }
    const want = [
      ['2026-01-01T00:00:00.000Z/1d/["EUR"]', 70, 2, 35],
      ['2026-01-02T00:00:00.000Z/1d/["EUR"]', 30, 2, 15],
    ];
    const got = async () =>
      (await rows('SELECT _fork_id, revenue, orders, mean FROM default.legacy_revenue ORDER BY _fork_id')).map((r) => [
        r._fork_id, r.revenue, r.orders, r.mean,
      ]);
    await waitUntil(async () => JSON.stringify(await got()) === JSON.stringify(want), 15000, async () => JSON.stringify(await got()));
    const engines = await rows("SELECT name, engine FROM system.tables WHERE database = 'default' AND name LIKE 'legacy_revenue%' ORDER BY name");
    assert.deepEqual(engines.map((e) => [e.name, e.engine]), [
      ['legacy_revenue', 'View'],
      ['legacy_revenue_before_merge', 'ReplacingMergeTree'],
      ['legacy_revenue_parts', 'ReplacingMergeTree'],
    ]);
  });
});
