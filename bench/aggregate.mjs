// Aggregates in SQLite, per forkd instance and across instances.
//
// 1. Throughput of one instance: the reference purchases summed per (day,
//    currency) — sum, count, min, max, avg — into a sqlite table. The events
//    are made durable first while the store is unreachable; then forkd
//    restarts with it, and the time until the table's totals cover them all
//    is measured (the pipeline reading the log, folding, emitting rows).
//    Peer, in the same run: the same aggregation done by the app itself in
//    Node with better-sqlite3 (a Map, dirty rows upserted per 1 000 events).
//    With --before PATH, the same run with another forkd build too (e.g. one
//    from before partial rows, whose table is a plain table).
// 2. Reading the merged view: `instances` forkd × `days` days × `groups`
//    groups of partial rows made by real forkd instances, read through the
//    view (everything, and one day), against a plain table holding the same
//    merged rows with an index on window_start. SQLite always; PostgreSQL
//    too with --postgres (a server the bench starts).
//
//   node bench/aggregate.mjs [--events 200000] [--instances 10] [--days 365] [--groups 10]
//                            [--before path/to/forkd] [--postgres]
import { parseArgs } from 'node:util';
import { rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { createClient } from '../js/index.mjs';
import { FORKD, startForkd, tempConfig } from '../scripts/lib/forkd.mjs';
import { purchases, sendPurchases } from './workload.mjs';

const { values: args } = parseArgs({
  options: {
    events: { type: 'string', default: '200000' },
    instances: { type: 'string', default: '10' },
    days: { type: 'string', default: '365' },
    groups: { type: 'string', default: '10' },
    before: { type: 'string' },
    postgres: { type: 'boolean', default: false },
  },
});
const N = Number(args.events);
const INSTANCES = Number(args.instances);
const DAYS = Number(args.days);
const GROUPS = Number(args.groups);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const DAY = 86_400_000;

const AGGREGATE = `{ window: 1d, time_field: ts, group_by: [currency], emit_every: 200ms,
                     measures: { orders: count(), revenue: sum(amount), lo: min(amount),
                                 hi: max(amount), mean: avg(amount) } }`;

// ---- 1. One instance's throughput ----

async function forkdThroughput(binary) {
  const yaml = (db) => `data_dir: ./.fork
destinations:
  revenue: { type: sqlite, path: ${db}, table: daily_revenue, batch: { max_wait: 20ms },
             transforms: [ { aggregate: ${AGGREGATE} } ] }
`;
  const { dir, config } = tempConfig(yaml('./blocked/no/agg.db'), 'fork-bench-agg-');
  writeFileSync(path.join(dir, 'blocked'), ''); // the store's directory cannot be made yet
  try {
    let forkd = await startForkd(config, { binary });
    const client = createClient({ endpoint: `ipc://${dir}/.fork/fork.sock`, maxInFlight: 50000 });
    await sendPurchases(client, 'revenue', N, 1);
    await client.close();
    await forkd.stop();
    writeFileSync(config, yaml('./agg.db'));
    const dbPath = path.join(dir, 'agg.db');
    const orders = () => {
      try {
        const d = new Database(dbPath, { readonly: true, fileMustExist: true });
        try {
          return d.prepare('SELECT sum(orders) AS n FROM daily_revenue').get().n ?? 0;
        } finally {
          d.close();
        }
      } catch {
        return 0;
      }
    };
    const t0 = performance.now();
    forkd = await startForkd(config, { binary });
    while (orders() < N) await sleep(10);
    const s = (performance.now() - t0) / 1000;
    await forkd.stop();
    return N / s;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function nodeThroughput() {
  const { dir } = tempConfig('', 'fork-bench-agg-node-');
  const db = new Database(path.join(dir, 'agg.db'));
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = FULL');
  db.exec(`CREATE TABLE daily_revenue (id TEXT PRIMARY KEY, window_start TEXT, currency TEXT,
           orders INTEGER, revenue REAL, lo REAL, hi REAL, mean REAL)`);
  const upsert = db.prepare(`INSERT INTO daily_revenue VALUES (?, ?, ?, ?, ?, ?, ?, ?)
    ON CONFLICT(id) DO UPDATE SET orders = excluded.orders, revenue = excluded.revenue,
    lo = excluded.lo, hi = excluded.hi, mean = excluded.mean`);
  const groups = new Map();
  const dirty = new Set();
  const flush = db.transaction(() => {
    for (const k of dirty) {
      const g = groups.get(k);
      upsert.run(k, g.start, g.currency, g.orders, g.revenue, g.lo, g.hi, g.revenue / g.orders);
    }
    dirty.clear();
  });
  const next = purchases(1);
  const t0 = performance.now();
  for (let i = 0; i < N; i++) {
    const p = next();
    const start = new Date(Math.floor(p.ts / DAY) * DAY).toISOString();
    const k = `${start}/${p.currency}`;
    let g = groups.get(k);
    if (!g) groups.set(k, (g = { start, currency: p.currency, orders: 0, revenue: 0, lo: Infinity, hi: -Infinity }));
    g.orders += 1;
    g.revenue += p.amount;
    g.lo = Math.min(g.lo, p.amount);
    g.hi = Math.max(g.hi, p.amount);
    dirty.add(k);
    if ((i + 1) % 1000 === 0) flush();
  }
  flush();
  const s = (performance.now() - t0) / 1000;
  db.close();
  rmSync(dir, { recursive: true, force: true });
  return N / s;
}

// ---- 2. Reading the merged view ----

// Median milliseconds of `fn` over `runs` runs, after one warm-up.
async function medianMs(fn, runs = 15) {
  await fn();
  const t = [];
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    await fn();
    t.push(performance.now() - t0);
  }
  t.sort((a, b) => a - b);
  return t[Math.floor(t.length / 2)];
}

// `instances` forkd in turn, each routing one purchase per (day, group), so
// that the parts table holds instances x days x groups partial rows.
async function fillParts(destYaml, root) {
  const T0 = Date.UTC(2025, 0, 1);
  for (let i = 0; i < INSTANCES; i++) {
    const { dir, config } = tempConfig(`data_dir: ./.fork
instance: bench-${i}
destinations:
${destYaml}`, `fork-bench-agg-i${i}-`);
    const forkd = await startForkd(config);
    const client = createClient({ endpoint: `ipc://${dir}/.fork/fork.sock`, maxInFlight: 50000 });
    const pending = [];
    for (let d = 0; d < DAYS; d++) {
      for (let g = 0; g < GROUPS; g++) {
        pending.push(client.routeData({ currency: `G${g}`, amount: 1 + ((i * 31 + d * 7 + g) % 100), ts: T0 + d * DAY + 3_600_000 }, 'revenue'));
      }
    }
    await Promise.all(pending);
    await client.close();
    await forkd.stop(); // drains: the last rows are written
    rmSync(dir, { recursive: true, force: true });
  }
  return new Date(T0 + Math.floor(DAYS / 2) * DAY).toISOString();
}

async function sqliteReads() {
  const { dir } = tempConfig('', 'fork-bench-agg-read-');
  const dbPath = path.join(dir, 'agg.db');
  const day = await fillParts(
    `  revenue: { type: sqlite, path: ${dbPath}, table: daily_revenue, transforms: [ { aggregate: ${AGGREGATE} } ] }\n`,
    dir,
  );
  const db = new Database(dbPath);
  db.exec('CREATE TABLE plain AS SELECT * FROM daily_revenue; CREATE INDEX plain_day ON plain (window_start)');
  const parts = db.prepare('SELECT count(*) AS n FROM daily_revenue_parts').get().n;
  const rows = db.prepare('SELECT count(*) AS n FROM daily_revenue').get().n;
  const all = db.prepare('SELECT * FROM daily_revenue');
  const allPlain = db.prepare('SELECT * FROM plain');
  const one = db.prepare('SELECT * FROM daily_revenue WHERE window_start = ?');
  const onePlain = db.prepare('SELECT * FROM plain WHERE window_start = ?');
  const r = {
    parts,
    rows,
    all: await medianMs(() => all.all()),
    allPlain: await medianMs(() => allPlain.all()),
    one: await medianMs(() => one.all(day)),
    onePlain: await medianMs(() => onePlain.all(day)),
  };
  db.close();
  rmSync(dir, { recursive: true, force: true });
  return r;
}

async function postgresReads() {
  const { startPostgres } = await import('../tests/e2e/servers/postgres.mjs');
  const { default: pg } = await import('pg');
  const server = await startPostgres();
  try {
    const day = await fillParts(
      `  revenue: { type: postgres, url: "${server.url}", table: daily_revenue, transforms: [ { aggregate: ${AGGREGATE} } ] }\n`,
    );
    const c = new pg.Client({ connectionString: server.url });
    await c.connect();
    await c.query('CREATE TABLE plain AS SELECT * FROM daily_revenue; CREATE INDEX plain_day ON plain (window_start); ANALYZE');
    const count = async (t) => Number((await c.query(`SELECT count(*) AS n FROM ${t}`)).rows[0].n);
    const r = {
      parts: await count('daily_revenue_parts'),
      rows: await count('daily_revenue'),
      all: await medianMs(() => c.query('SELECT * FROM daily_revenue')),
      allPlain: await medianMs(() => c.query('SELECT * FROM plain')),
      one: await medianMs(() => c.query('SELECT * FROM daily_revenue WHERE window_start = $1', [day])),
      onePlain: await medianMs(() => c.query('SELECT * FROM plain WHERE window_start = $1', [day])),
    };
    await c.end();
    return r;
  } finally {
    await server.stop();
  }
}

const fmt = (x) => Math.round(x).toLocaleString('en-US');
console.log(`Aggregate throughput, one instance, ${N} reference purchases -> sqlite (sum, count, min, max, avg per day and currency)`);
const after = await forkdThroughput(FORKD);
const node = nodeThroughput();
console.log(`  forkd (${path.relative(process.cwd(), FORKD)})   ${fmt(after)} events/s`);
if (args.before) {
  const before = await forkdThroughput(path.resolve(args.before));
  console.log(`  forkd (--before ${args.before})   ${fmt(before)} events/s   after/before ${(after / before).toFixed(2)}x`);
}
console.log(`  Node + better-sqlite3, the app aggregating itself   ${fmt(node)} events/s   forkd/node ${(after / node).toFixed(2)}x`);

const show = (name, r) => {
  console.log(`Reading the merged view, ${name}: ${r.parts} partial rows (${INSTANCES} instances x ${DAYS} days x ${GROUPS} groups) -> ${r.rows} merged rows`);
  console.log(`  SELECT * (all rows)       view ${r.all.toFixed(2)} ms   plain table ${r.allPlain.toFixed(2)} ms   ratio ${(r.all / r.allPlain).toFixed(2)}x`);
  console.log(`  WHERE window_start = day  view ${r.one.toFixed(2)} ms   plain table ${r.onePlain.toFixed(2)} ms   ratio ${(r.one / r.onePlain).toFixed(2)}x`);
};
show('sqlite', await sqliteReads());
if (args.postgres) show('postgres', await postgresReads());
