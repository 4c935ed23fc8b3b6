// Edge sidecars → Kafka → hub forkd → stores (docs/deployment.md), against a
// real Kafka broker (servers/kafka.mjs: one KRaft node on 127.0.0.1), a real
// PostgreSQL server (servers/postgres.mjs) and SQLite files read with
// better-sqlite3. An edge forkd's kafka destination writes the topic; one or
// two hub forkd read it with the kafka source (a consumer group member whose
// messages go through ingest, keyed by the `fork-id` header) and deliver to
// the stores.
//
// What is proved: the edge's event ids survive the hop and every
// acknowledged event lands once; two hubs in one group share the partitions
// and one takes them all when the other is killed -9, nothing lost or
// stored twice; a hub stopped and restarted resumes from its committed
// offsets; routes pick the destinations of a source without `to:`; a
// message that is not a JSON object is counted, logged and passed over; and
// `forkd check` on bad source sections.
//
// Each test has its own topic, consumer group, forkd processes (temp dirs)
// and tables, against the one broker and the one PostgreSQL server.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import Database from 'better-sqlite3';
import pg from 'pg';
import { createClient } from '../../js/index.mjs';
import { startForkd, tempConfig, endpointFor, readJsonl, readReceipts, startProducer, freePort, idCounts, FORKD } from './helpers.mjs';
import { startKafka } from './servers/kafka.mjs';
import { startPostgres } from './servers/postgres.mjs';

let kafka;
let pgServer;
let pool;
let root;
const nodes = new Set();

before(async () => {
  root = mkdtempSync(path.join(tmpdir(), 'fork-kafka-hub-'));
  kafka = await startKafka({ partitions: 3 });
  pgServer = await startPostgres({ settings: { fsync: 'off' } });
  pool = new pg.Pool({ connectionString: pgServer.url, max: 4 });
});

after(async () => {
  for (const n of nodes) await n.close();
  if (pool) await pool.end();
  if (pgServer) await pgServer.stop();
  if (kafka) await kafka.stop();
  if (root) rmSync(root, { recursive: true, force: true });
});

const QUICK = { retry: { initial: '50ms', max: '1s' }, breaker: { failures: 5, cooldown: '1s' } };
const BATCH = { batch: { max_wait: '20ms' } };

// A forkd in a directory of its own, its fork.yaml `config` (an object,
// written as JSON, which YAML reads) plus an admin server.
async function startNode(config, label) {
  const adminPort = await freePort();
  const { dir, config: file } = tempConfig(
    JSON.stringify({ admin: `127.0.0.1:${adminPort}`, wal: { fsync: 'batch' }, ...config }, null, 1) + '\n',
    `fork-${label}-`,
  );
  let forkd;
  let client;
  const admin = `http://127.0.0.1:${adminPort}`;
  const node = {
    label,
    dir,
    config: file,
    endpoint: endpointFor(dir),
    admin,
    get forkd() {
      return forkd;
    },
    get client() {
      return client ?? (client = createClient({ endpoint: endpointFor(dir), timeoutMs: 30_000 }));
    },
    async start() {
      forkd = await startForkd(file);
    },
    async status() {
      return (await fetch(`${admin}/api/status`, { signal: AbortSignal.timeout(5000) })).json();
    },
    async source(name = 'bus') {
      return (await node.status()).sources.find((s) => s.name === name);
    },
    // A metric's value for one labelled series (`source="bus"`), undefined when absent.
    async metric(name, label = 'source="bus"') {
      const text = await (await fetch(`${admin}/metrics`, { signal: AbortSignal.timeout(5000) })).text();
      const line = text.split('\n').find((l) => l.startsWith(`${name}{${label}`));
      return line === undefined ? undefined : Number(line.split(' ').pop());
    },
    log: (bytes = 3000) => `--- ${label}'s log:\n${forkd ? forkd.stderr().slice(-bytes) : ''}`,
    async close() {
      if (!nodes.delete(node)) return;
      if (client) await client.close(0);
      if (forkd) await forkd.stop('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    },
  };
  nodes.add(node);
  try {
    await node.start();
  } catch (e) {
    await node.close();
    throw e;
  }
  return node;
}

// The edge: a forkd whose one destination, bus, is the topic.
function startEdge(topic, label = 'edge') {
  return startNode(
    {
      instance: label,
      destinations: { bus: { type: 'kafka', brokers: kafka.brokers, topic, key: 'orderId', ...BATCH, ...QUICK } },
    },
    label,
  );
}

// A hub: the kafka source `bus` on the topic, in `group`, plus destinations
// (and routes).
function startHub({ label, topic, group, to, options, destinations, routes }) {
  const bus = { type: 'kafka', brokers: kafka.brokers, topic, group, ...(to ? { to } : {}), ...(options ? { options } : {}) };
  return startNode({ instance: label, sources: { bus }, destinations, ...(routes ? { routes } : {}) }, label);
}

const sqliteDest = (file, table) => ({ type: 'sqlite', path: file, table, ...BATCH, ...QUICK });
const pgDest = (table) => ({ type: 'postgres', url: pgServer.url, table, ...BATCH, ...QUICK });

// Rows of a SQLite table (as objects), [] while the file or table is missing.
function sqliteRows(file, table, columns = '*') {
  if (!existsSync(file)) return [];
  const db = new Database(file, { readonly: true, fileMustExist: true });
  try {
    db.pragma('busy_timeout = 5000');
    const exists = db.prepare("SELECT 1 FROM sqlite_master WHERE type IN ('table', 'view') AND name = ?").get(table);
    return exists ? db.prepare(`SELECT ${columns} FROM "${table}"`).all() : [];
  } finally {
    db.close();
  }
}

async function pgRows(table, columns = '*') {
  const { rows } = await pool.query('SELECT to_regclass($1) AS t', [table]);
  if (rows[0].t === null) return [];
  return (await pool.query(`SELECT ${columns} FROM "${table}"`)).rows;
}

// { total, distinct } of _fork_id in a store's table.
async function counts(store) {
  const q = 'count(*) AS total, count(DISTINCT _fork_id) AS ids';
  const [r] = store.kind === 'sqlite' ? sqliteRows(store.file, store.table, q) : await pgRows(store.table, q);
  return r ? { total: Number(r.total), distinct: Number(r.ids) } : { total: 0, distinct: 0 };
}

async function rowsOf(store, columns = '*') {
  return store.kind === 'sqlite' ? sqliteRows(store.file, store.table, columns) : pgRows(store.table, columns);
}

// Polls `pred` until it holds; fails with `what()` after `ms`.
async function waitUntil(pred, ms, what) {
  const deadline = Date.now() + ms;
  for (;;) {
    try {
      if (await pred()) return;
    } catch {
      // a table being created, forkd restarting
    }
    if (Date.now() > deadline) throw new Error(`not within ${ms} ms: ${await what()}`);
    await sleep(250);
  }
}

// Waits until every id of `ids` is in the store; returns its rows.
async function waitForIds(store, ids, ms, logs) {
  let rows = [];
  let missing = [...ids];
  await waitUntil(
    async () => {
      rows = await rowsOf(store);
      const have = new Set(rows.map((r) => r._fork_id));
      missing = [...ids].filter((id) => !have.has(id));
      return missing.length === 0;
    },
    ms,
    () => `${store.name}: ${missing.length} of ${ids.size} acknowledged events missing (first ${missing.slice(0, 3)})\n${logs()}`,
  );
  return rows;
}

// The group's committed offsets: { partition: offset } (-1: none).
async function committed(group, topic) {
  const admin = kafka.client().admin();
  await admin.connect();
  try {
    const [t] = await admin.fetchOffsets({ groupId: group, topics: [topic] });
    return Object.fromEntries(t.partitions.map((p) => [p.partition, Number(p.offset)]));
  } finally {
    await admin.disconnect();
  }
}

const sum = (o) => Object.values(o).reduce((a, b) => a + Math.max(0, b), 0);

test('edge → Kafka → hub → SQLite: 2 000 acknowledged events each in the table exactly once, _fork_id = the edge receipt id, payload intact', async () => {
  await kafka.createTopic('hub-ids', 3);
  const edge = await startEdge('hub-ids');
  const db = path.join(root, 'ids.db');
  const store = { kind: 'sqlite', name: 'store', file: db, table: 'orders' };
  const hub = await startHub({
    label: 'hub-ids',
    topic: 'hub-ids',
    group: 'hub-ids',
    to: ['store'],
    destinations: { store: sqliteDest(db, 'orders') },
  });
  const N = 2000;
  const receipts = [];
  for (let round = 0; round < N / 250; round++) {
    receipts.push(
      ...(await Promise.all(
        Array.from({ length: 250 }, (_, j) => {
          const i = round * 250 + j;
          return edge.client.routeData({ orderId: `o-${i % 40}`, seq: i, amount: i + 0.25 }, 'bus');
        }),
      )),
    );
  }
  const ids = new Set(receipts.map((r) => r.id));
  assert.equal(ids.size, N, 'the edge gave 2 000 distinct receipt ids');
  const rows = await waitForIds(store, ids, 60_000, () => `${edge.log()}\n${hub.log()}`);
  const c = await counts(store);
  assert.deepEqual(c, { total: N, distinct: N }, 'each acknowledged event once, nothing else');
  for (const r of rows) {
    const i = Number(r.seq);
    assert.equal(r._fork_id, receipts[i].id, `row seq ${i}: _fork_id is the edge's receipt id`);
    assert.equal(r.orderId, `o-${i % 40}`);
    assert.equal(Number(r.amount), i + 0.25);
  }
  const src = await hub.source();
  assert.equal(src.ingested, N, `the hub took each message once: ${JSON.stringify(src)}`);
  assert.equal(src.rejected, 0);
  await hub.close();
  await edge.close();
});

test('two hubs in one group (6 partitions) share one SQLite file and one PostgreSQL table: both hold partitions; one killed -9 mid-run, the other takes all 6; after it restarts on its data_dir every acknowledged event is in each store exactly once', { timeout: 150_000 }, async () => {
  await kafka.createTopic('hub-group', 6);
  const edge = await startEdge('hub-group');
  const db = path.join(root, 'group.db');
  const stores = [
    { kind: 'sqlite', name: 'lite', file: db, table: 'events' },
    { kind: 'pg', name: 'pg', table: 'group_events' },
  ];
  const hubConfig = (label) => ({
    label,
    topic: 'hub-group',
    group: 'hub-group',
    to: ['lite', 'pg'],
    options: { 'session.timeout.ms': 6000, 'heartbeat.interval.ms': 1000 },
    destinations: { lite: sqliteDest(db, 'events'), pg: pgDest('group_events') },
  });
  const [a, b] = await Promise.all([startHub(hubConfig('hub-a')), startHub(hubConfig('hub-b'))]);
  const logs = () => `${a.log()}\n${b.log()}`;
  const receipts = path.join(root, 'group-receipts.txt');
  const producer = startProducer({ endpoint: edge.endpoint, receipts, rate: 300, timeoutMs: 60_000, destinations: ['bus'] });
  try {
    let held;
    await waitUntil(
      async () => {
        held = [(await a.source()).kafka_assigned_partitions, (await b.source()).kafka_assigned_partitions];
        return held[0] > 0 && held[1] > 0 && held[0] + held[1] === 6;
      },
      30_000,
      () => `partitions held by hub-a, hub-b: ${held}\n${logs()}`,
    );
    console.log(`partitions held: hub-a ${held[0]}, hub-b ${held[1]}`);
    await producer.waitFor((p) => p.acked > 900, 30_000);
    await waitUntil(async () => (await b.source()).ingested > 200, 20_000, async () => `hub-b: ${JSON.stringify(await b.source())}`);
    await b.forkd.stop('SIGKILL');
    const killedAt = Date.now();
    let aHeld;
    await waitUntil(
      async () => (aHeld = (await a.source()).kafka_assigned_partitions) === 6,
      30_000,
      () => `hub-a holds ${aHeld} partitions ${Date.now() - killedAt} ms after hub-b was killed\n${a.log()}`,
    );
    console.log(`hub-a took all 6 partitions ${Date.now() - killedAt} ms after hub-b's kill -9`);
    // hub-a really reads them: the group's committed offsets reach, in every
    // partition, the end the topic had when it took them over.
    const ends = await kafka.offsets('hub-group');
    let offsets;
    await waitUntil(
      async () => {
        offsets = await committed('hub-group', 'hub-group');
        return Object.entries(ends).every(([p, { high }]) => offsets[p] >= high);
      },
      20_000,
      () => `committed ${JSON.stringify(offsets)}, topic ends at the takeover ${JSON.stringify(ends)}\n${a.log()}`,
    );
    await b.start();
    await sleep(1500);
    const done = await producer.stop();
    assert.equal(done.failed, 0, `every call acknowledged (${JSON.stringify(done.errors)})`);
    const acked = readReceipts(receipts); // id -> n
    const ids = new Set(acked.keys());
    for (const store of stores) {
      const rows = await waitForIds(store, ids, 60_000, logs);
      const wrong = rows.filter((r) => acked.has(r._fork_id) && Number(r.n) !== acked.get(r._fork_id));
      assert.deepEqual(wrong, [], `${store.name}: each row carries its event's payload`);
      const c = await counts(store);
      console.log(`${store.name}: ${c.total} rows, ${c.distinct} distinct _fork_id, ${ids.size} acknowledged`);
      assert.deepEqual(c, { total: ids.size, distinct: ids.size }, `${store.name}: count(*) = count(DISTINCT _fork_id) = acknowledged`);
    }
    const [sa, sb] = [await a.source(), await b.source()];
    console.log(`hub-a ${JSON.stringify(sa)}\nhub-b (restarted) ${JSON.stringify(sb)}`);
  } finally {
    await producer.kill();
    rmSync(receipts, { force: true });
    await a.close();
    await b.close();
    await edge.close();
  }
});

test('a hub stopped with SIGTERM and restarted while events keep coming resumes from its committed offsets: none missing, none twice, consumed after restart = topic end − committed', { timeout: 120_000 }, async () => {
  await kafka.createTopic('hub-resume', 3);
  const edge = await startEdge('hub-resume');
  const db = path.join(root, 'resume.db');
  const store = { kind: 'sqlite', name: 'store', file: db, table: 'events' };
  const hub = await startHub({
    label: 'hub-resume',
    topic: 'hub-resume',
    group: 'hub-resume',
    to: ['store', 'copy'],
    destinations: { store: sqliteDest(db, 'events'), copy: { type: 'file', path: './copy.jsonl', ...BATCH } },
  });
  const receipts = path.join(root, 'resume-receipts.txt');
  const producer = startProducer({ endpoint: edge.endpoint, receipts, rate: 400, timeoutMs: 60_000, destinations: ['bus'] });
  try {
    await waitUntil(async () => (await hub.source()).ingested >= 2000, 30_000, async () => `hub: ${JSON.stringify(await hub.source())}`);
    const before = (await hub.source()).ingested;
    const { code } = await hub.forkd.stop('SIGTERM');
    assert.equal(code, 0, `the hub drained and exited 0\n${hub.log()}`);
    const offsets = await committed('hub-resume', 'hub-resume');
    const k = sum(offsets);
    console.log(`hub ingested ${before} before SIGTERM; committed offsets ${JSON.stringify(offsets)} (${k})`);
    assert.ok(k >= before, `the offsets of the ${before} events durable before the stop are committed (${k})`);
    await sleep(1000); // events keep coming while the hub is down
    await hub.start();
    await sleep(1500);
    const done = await producer.stop();
    assert.equal(done.failed, 0, `every call acknowledged (${JSON.stringify(done.errors)})`);
    const acked = readReceipts(receipts);
    const ids = new Set(acked.keys());
    await waitForIds(store, ids, 60_000, () => hub.log());
    const total = await kafka.count('hub-resume');
    let src;
    await waitUntil(
      async () => (src = await hub.source()).consumed >= total - k && src.kafka_lag_messages === 0,
      20_000,
      () => `after the restart: ${JSON.stringify(src)}, topic ${total}, committed before ${k}`,
    );
    const c = await counts(store);
    assert.deepEqual(c, { total: ids.size, distinct: ids.size }, 'the store: each acknowledged event once');
    const copy = idCounts(readJsonl(path.join(hub.dir, 'copy.jsonl')));
    assert.deepEqual([...ids].filter((id) => copy.get(id) !== 1), [], 'the file destination: each acknowledged event exactly once');
    assert.equal(copy.size, ids.size, 'the file destination: nothing else');
    const consumedAfter = await hub.metric('fork_source_consumed_total');
    console.log(`topic ${total} messages, committed at the stop ${k}, consumed after the restart ${consumedAfter}`);
    assert.equal(consumedAfter, total - k, 'after the restart the hub read exactly the messages past its committed offsets');
    assert.ok(consumedAfter < total / 2, `far less than the topic (${consumedAfter} of ${total}): it did not read it again from the start`);
  } finally {
    await producer.kill();
    rmSync(receipts, { force: true });
    await hub.close();
    await edge.close();
  }
});

test('a source without `to:` sends each event where the hub\'s routes pick (purchase → sqlite purchases, refund → sqlite refunds, amount ≥ 100 → postgres big); one no route matches is passed over', { timeout: 90_000 }, async () => {
  await kafka.createTopic('hub-routes', 3);
  const edge = await startEdge('hub-routes');
  const db = path.join(root, 'routes.db');
  const stores = {
    purchases: { kind: 'sqlite', name: 'purchases', file: db, table: 'purchases' },
    refunds: { kind: 'sqlite', name: 'refunds', file: db, table: 'refunds' },
    big: { kind: 'pg', name: 'big', table: 'routes_big' },
  };
  const hub = await startHub({
    label: 'hub-routes',
    topic: 'hub-routes',
    group: 'hub-routes',
    destinations: { purchases: sqliteDest(db, 'purchases'), refunds: sqliteDest(db, 'refunds'), big: pgDest('routes_big') },
    routes: [
      { when: 'event == "purchase"', to: ['purchases'] },
      { when: 'event == "refund"', to: 'refunds' },
      { when: 'amount >= 100', to: ['big'] },
    ],
  });
  const KINDS = ['purchase', 'refund', 'login'];
  const sent = await Promise.all(
    Array.from({ length: 300 }, async (_, i) => {
      const payload = { orderId: `o-${i % 10}`, seq: i, event: KINDS[i % 3], amount: (i * 37) % 200 };
      const r = await edge.client.routeData(payload, 'bus');
      return { ...payload, id: r.id };
    }),
  );
  const want = {
    purchases: new Set(sent.filter((e) => e.event === 'purchase').map((e) => e.id)),
    refunds: new Set(sent.filter((e) => e.event === 'refund').map((e) => e.id)),
    big: new Set(sent.filter((e) => e.amount >= 100).map((e) => e.id)),
  };
  const none = sent.filter((e) => e.event === 'login' && e.amount < 100);
  assert.ok(none.length > 0 && want.big.size > 0);
  for (const [name, store] of Object.entries(stores)) {
    await waitForIds(store, want[name], 40_000, () => hub.log());
  }
  let src;
  await waitUntil(
    async () => (src = await hub.source()).consumed === 300,
    20_000,
    () => `hub: ${JSON.stringify(src)}`,
  );
  await sleep(500); // anything wrongly routed would have landed by now
  for (const [name, store] of Object.entries(stores)) {
    const got = (await rowsOf(store, '_fork_id')).map((r) => r._fork_id).sort();
    assert.deepEqual(got, [...want[name]].sort(), `${name} holds exactly the events its route picks`);
  }
  assert.equal(src.rejected, none.length, `the ${none.length} logins under 100 match no route and are passed over: ${JSON.stringify(src)}`);
  assert.equal(src.ingested, 300 - none.length);
  assert.match(hub.forkd.stderr(), /hub-routes\/\d+@\d+ passed over: FORK_UNKNOWN_DESTINATION/, hub.log());
  await hub.close();
  await edge.close();
});

test('a message that is not a JSON object ("not json", [1,2]) is passed over: fork_source_rejected_total 2, logged as topic/partition@offset, its offset committed, later messages still land', { timeout: 90_000 }, async () => {
  await kafka.createTopic('hub-bad', 1);
  const db = path.join(root, 'bad.db');
  const store = { kind: 'sqlite', name: 'store', file: db, table: 'events' };
  const hub = await startHub({
    label: 'hub-bad',
    topic: 'hub-bad',
    group: 'hub-bad',
    to: 'store',
    destinations: { store: sqliteDest(db, 'events') },
  });
  const producer = kafka.client().producer();
  await producer.connect();
  const good = (i) => ({ value: JSON.stringify({ seq: i, kind: 'ok' }), headers: { 'fork-id': `bad-test-${i}` } });
  try {
    // Offsets 0..5: good 0, good 1, not json (2), good 2, [1,2] (4), good 3.
    await producer.send({
      topic: 'hub-bad',
      acks: -1,
      messages: [good(0), good(1), { value: 'not json' }, good(2), { value: '[1,2]' }, good(3)],
    });
    const first = new Set([0, 1, 2, 3].map((i) => `bad-test-${i}`));
    await waitForIds(store, first, 30_000, () => hub.log());
    let src;
    await waitUntil(async () => (src = await hub.source()).consumed === 6, 10_000, () => JSON.stringify(src));
    assert.equal(await hub.metric('fork_source_rejected_total'), 2, hub.log());
    assert.equal(await hub.metric('fork_source_ingested_total'), 4);
    const log = hub.forkd.stderr();
    assert.match(log, /source bus: message at hub-bad\/0@2 passed over: /, hub.log());
    assert.match(log, /source bus: message at hub-bad\/0@4 passed over: /, hub.log());
    assert.match((await hub.source()).last_error, /hub-bad\/0@4 passed over/);

    // The hub goes on: later messages land, and the group's offset moves past all.
    await producer.send({ topic: 'hub-bad', acks: -1, messages: [good(4), good(5), good(6)] });
    const all = new Set([0, 1, 2, 3, 4, 5, 6].map((i) => `bad-test-${i}`));
    const rows = await waitForIds(store, all, 30_000, () => hub.log());
    assert.deepEqual(rows.map((r) => r._fork_id).sort(), [...all].sort(), 'the 7 good messages, nothing else');
    assert.deepEqual(
      rows.map((r) => [r._fork_id, Number(r.seq), r.kind]).sort(),
      [...all].sort().map((id) => [id, Number(id.split('-').pop()), 'ok']),
    );
    let offsets;
    await waitUntil(
      async () => (offsets = await committed('hub-bad', 'hub-bad'))[0] === 9,
      15_000,
      () => `committed ${JSON.stringify(offsets)}, want { 0: 9 }`,
    );
    assert.equal(await hub.metric('fork_source_rejected_total'), 2);
  } finally {
    await producer.disconnect();
    await hub.close();
  }
});

test('forkd check on sources: unknown source type, unknown librdkafka property at its own line:col, `to:` naming an unknown destination, group.id under options → exit 2 with each file:line:col message', () => {
  const lines = [
    'destinations:',
    '  store: { type: sqlite, path: ./x.db, table: t }',
    'sources:',
    '  a: { type: kafkaa, brokers: "127.0.0.1:9092", topic: orders, group: g }',
    '  b:',
    '    type: kafka',
    '    brokers: "127.0.0.1:9092"',
    '    topic: orders',
    '    group: g',
    '    options:',
    '      session.timeout.ms: 6000',
    '      no.such.property: 1',
    '  c: { type: kafka, brokers: "127.0.0.1:9092", topic: orders, group: g, to: [store, stor] }',
    '  d: { type: kafka, brokers: "127.0.0.1:9092", topic: orders, group: g, options: { group.id: other } }',
    '  e: { type: kafka, brokers: "127.0.0.1:9092", topic: orders, group: g, to: store, options: { session.timeout.ms: 6000 } }',
  ];
  // line:col (1-based) of `needle` on the line that holds `within`.
  const at = (within, needle) => {
    const i = lines.findIndex((l) => l.includes(within));
    return `${i + 1}:${lines[i].indexOf(needle) + 1}`;
  };
  const { dir, config } = tempConfig(lines.join('\n') + '\n', 'fork-kafka-hub-check-');
  try {
    const check = spawnSync(FORKD, ['check', '--config', config], { encoding: 'utf8' });
    const text = check.stdout + check.stderr;
    assert.equal(check.status, 2, text);
    const got = text.split('\n').filter((l) => l.includes('sources.'));
    assert.deepEqual(got, [
      `${config}:${at('type: kafkaa', 'kafkaa')}: sources.a.type: expected one of kafka, got 'kafkaa' (did you mean 'kafka'?)`,
      `${config}:${at('no.such.property', 'no.such.property')}: sources.b.options.no.such.property: librdkafka has no such property`,
      `${config}:${at('stor]', 'stor]')}: sources.c.to: unknown destination 'stor' (did you mean 'store'?)`,
      `${config}:${at('group.id: other', 'group.id')}: sources.d.options.group.id: set \`group\` instead`,
    ], text);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
