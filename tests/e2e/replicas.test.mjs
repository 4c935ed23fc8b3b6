// Production shape: three app replicas, each with its own forkd and its own
// data_dir, aggregate purchases per (day, currency) into one SQLite file, one
// PostgreSQL table and one ClickHouse table. Each replica's producer sends
// while its forkd is killed -9 at random points and restarted. The merged
// view under the configured table name must then equal, exactly, the count,
// sum, min, max and avg of every acknowledged event of every replica; and it
// must still do so after one replica is removed for good and the other two
// go on.
//
//   FORK_REPLICAS_KILLS=4    kills per replica (default 2)
//   FORK_REPLICAS_SEED=1234  replay a schedule (the seed is printed)
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { tmpdir } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import Database from 'better-sqlite3';
import pg from 'pg';
import { startForkd, startProducer, readReceipts, rng } from './helpers.mjs';
import { startPostgres } from './servers/postgres.mjs';
import { startClickHouse } from './servers/clickhouse.mjs';
import { expectedTotals } from './fixtures/purchase.mjs';

const KILLS = Number(process.env.FORK_REPLICAS_KILLS ?? 2);
const SEED = Number(process.env.FORK_REPLICAS_SEED ?? (Date.now() ^ (process.pid << 16)) >>> 0);
const DESTS = ['agg_sqlite', 'agg_pg', 'agg_ch'];

function config(dir, instance, pgUrl, chUrl) {
  return `
data_dir: ${dir}/data
instance: ${instance}
wal: { fsync: batch, segment_bytes: 1MiB }
transforms:
  daily:
    - aggregate: { window: 1d, time_field: ts, group_by: [currency], emit_every: 200ms,
                   measures: { orders: count(), revenue: sum(amount), lo: min(amount),
                               hi: max(amount), mean: avg(amount) } }
destinations:
  agg_sqlite: { type: sqlite, path: ${path.dirname(dir)}/shared.db, table: daily_revenue,
                transforms: [daily], batch: { max_wait: 20ms } }
  agg_pg: { type: postgres, url: "${pgUrl}", table: daily_revenue, transforms: [daily],
            batch: { max_wait: 20ms } }
  agg_ch: { type: clickhouse, url: "${chUrl}", table: daily_revenue, transforms: [daily],
            batch: { max_wait: 20ms } }
`;
}

// Rows of the merged view as Map("<window_start>|<currency>" -> totals).
function keyed(rows) {
  const m = new Map();
  for (const r of rows) {
    const start = new Date(r.window_start).toISOString();
    m.set(`${start}|${r.currency}`, {
      orders: Number(r.orders),
      revenue: Number(r.revenue),
      lo: Number(r.lo),
      hi: Number(r.hi),
      mean: Number(r.mean),
    });
  }
  return m;
}

function assertTotals(store, got, expected) {
  assert.deepEqual([...got.keys()].sort(), [...expected.keys()].sort(), `${store}: the groups`);
  for (const [k, e] of expected) {
    const g = got.get(k);
    assert.equal(g.orders, e.orders, `${store} ${k}: count`);
    assert.equal(g.revenue, e.revenue, `${store} ${k}: sum`);
    assert.equal(g.lo, e.lo, `${store} ${k}: min`);
    assert.equal(g.hi, e.hi, `${store} ${k}: max`);
    const mean = e.revenue / e.orders;
    assert.ok(Math.abs(g.mean - mean) <= 1e-9 * mean, `${store} ${k}: avg ${g.mean} vs ${mean}`);
  }
}

test(`three forkd aggregate into one sqlite, postgres and clickhouse table, exact across ${KILLS} kill -9 each and a replica gone for good`, { timeout: 300_000 }, async () => {
  console.log(`replicas test seed ${SEED} (FORK_REPLICAS_SEED=${SEED} replays it)`);
  const random = rng(SEED);
  const root = mkdtempSync(path.join(tmpdir(), 'fork-replicas-'));
  const pgServer = await startPostgres();
  const ch = await startClickHouse();
  const replicas = [];
  let passed = false;
  try {
    for (const name of ['r1', 'r2', 'r3']) {
      const dir = path.join(root, name);
      mkdirSync(dir, { recursive: true });
      const file = path.join(dir, 'fork.yaml');
      writeFileSync(file, config(dir, name, pgServer.url, ch.url));
      replicas.push({ name, dir, file, endpoint: `ipc://${dir}/data/fork.sock`, receipts: [], round: 0 });
    }
    const startProducerFor = (r) => {
      // Outside the replica's directory, which goes when the replica does.
      // Each round's producer numbers its events from 0 again, in a file of
      // its own: n says which purchase, the file that it was acknowledged.
      const receipts = path.join(root, `${r.name}-receipts-${r.round++}.txt`);
      r.receipts.push(receipts);
      r.producer = startProducer({
        endpoint: r.endpoint,
        receipts,
        rate: 300,
        timeoutMs: 60_000,
        destinations: DESTS,
        payload: 'purchase',
      });
    };
    // Round 1: all three, each killed -9 and restarted KILLS times.
    for (const r of replicas) r.forkd = await startForkd(r.file);
    for (const r of replicas) startProducerFor(r);
    for (let k = 0; k < KILLS; k++) {
      for (const r of replicas) {
        await sleep(300 + Math.floor(random() * 900));
        await r.forkd.stop('SIGKILL');
        await sleep(Math.floor(random() * 300));
        r.forkd = await startForkd(r.file);
      }
    }
    await sleep(500);
    for (const r of replicas) {
      const done = await r.producer.stop();
      assert.equal(done.failed, 0, `${r.name}: every call acknowledged (${JSON.stringify(done.errors)})`);
      assert.ok(done.acked > 100, `${r.name}: ${done.acked} acknowledged`);
    }
    for (const r of replicas) {
      const { code } = await r.forkd.stop('SIGTERM');
      assert.equal(code, 0, `${r.name}: forkd drained and exited 0`);
    }

    const expected = () => {
      const totals = new Map();
      for (const r of replicas) {
        for (const file of r.receipts) expectedTotals(readReceipts(file).values(), totals);
      }
      return totals;
    };
    const check = async (label) => {
      const want = expected();
      const db = new Database(path.join(root, 'shared.db'), { readonly: true });
      try {
        assertTotals(`sqlite (${label})`, keyed(db.prepare('SELECT * FROM daily_revenue').all()), want);
        // Each instance's partial rows are there, under its own id.
        const instances = db.prepare('SELECT DISTINCT _fork_instance AS i FROM daily_revenue_parts').all();
        assert.deepEqual(instances.map((x) => x.i).sort(), ['r1', 'r2', 'r3']);
      } finally {
        db.close();
      }
      const client = new pg.Client({ connectionString: pgServer.url });
      await client.connect();
      try {
        const { rows } = await client.query('SELECT * FROM daily_revenue');
        assertTotals(`postgres (${label})`, keyed(rows), want);
      } finally {
        await client.end();
      }
      const text = await ch.query('SELECT * FROM default.daily_revenue FORMAT JSONEachRow');
      const chRows = text.split('\n').filter(Boolean).map((l) => JSON.parse(l));
      assertTotals(`clickhouse (${label})`, keyed(chRows), want);
    };
    await check('after the kills');

    // r3 goes away for good, its data_dir with it; r1 and r2 go on.
    rmSync(replicas[2].dir, { recursive: true, force: true });
    const survivors = replicas.slice(0, 2);
    for (const r of survivors) r.forkd = await startForkd(r.file);
    for (const r of survivors) startProducerFor(r);
    await sleep(1500);
    for (const r of survivors) {
      const done = await r.producer.stop();
      assert.equal(done.failed, 0, `${r.name}: every call acknowledged`);
    }
    for (const r of survivors) assert.equal((await r.forkd.stop('SIGTERM')).code, 0);
    // r3's receipts went with its directory: count them from before.
    await check('with r3 gone for good');
    passed = true;
  } finally {
    for (const r of replicas) {
      await r.producer?.kill();
      await r.forkd?.stop('SIGKILL');
    }
    await pgServer.stop();
    await ch.stop();
    if (passed) {
      rmSync(root, { recursive: true, force: true });
    } else {
      console.log(`replicas test: kept ${root} for inspection`);
      for (const r of replicas) {
        const tail = r.forkd?.stderr().split('\n').slice(-15).join('\n');
        console.log(`--- ${r.name}: the end of forkd's log\n${tail}`);
      }
    }
  }
});
