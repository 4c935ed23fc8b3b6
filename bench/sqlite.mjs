// SQLite: rows/s of forkd's sqlite sink against the obvious Node approach
// (better-sqlite3, a prepared INSERT in one transaction per 1 000 rows), on
// the reference workload, in the same run and with the same settings (WAL,
// synchronous=FULL, batches of 1 000).
//
// forkd's figure is the sink's write loop: the events are first made durable
// in the log while the store is unreachable, then forkd restarts with it and
// the time to drain them all into the table is measured. The end-to-end
// figure (routeData -> row) is printed too.
//
//   node bench/sqlite.mjs [--events 200000]
import { parseArgs } from 'node:util';
import { rmSync, writeFileSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { createClient } from '../js/index.mjs';
import { startForkd, tempConfig } from '../scripts/lib/forkd.mjs';
import { purchases, sendPurchases } from './workload.mjs';

const { values: args } = parseArgs({ options: { events: { type: 'string', default: '200000' } } });
const N = Number(args.events);
const BATCH = 1000;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const yaml = (dbPath) => `data_dir: ./.fork
destinations:
  production:
    type: sqlite
    path: ${dbPath}
    table: orders
    batch: { max_events: ${BATCH}, max_wait: 20ms }
`;
const { dir, config } = tempConfig(yaml('./blocked/no/orders.db'), 'fork-bench-sqlite-');
// The store's directory cannot be created yet: a file stands where it would be.
writeFileSync(path.join(dir, 'blocked'), '');
const dbPath = path.join(dir, 'orders.db');
const count = () => {
  try {
    const d = new Database(dbPath, { readonly: true, fileMustExist: true });
    try {
      // max(rowid) is the row count here (no deletes) and costs a B-tree
      // descent, not a scan: polling must not slow the writer.
      return d.prepare('SELECT max(rowid) n FROM orders').get().n ?? 0;
    } finally {
      d.close();
    }
  } catch {
    return 0;
  }
};

// 1. Fill the log.
let forkd = await startForkd(config);
let client = createClient({ endpoint: `ipc://${dir}/.fork/fork.sock`, maxInFlight: 50000 });
const t0 = performance.now();
await sendPurchases(client, 'production', N, 1);
const ingestS = (performance.now() - t0) / 1000;
await client.close();
await forkd.stop();

// 2. The store is reachable now: time the drain.
writeFileSync(config, yaml('./orders.db'));
const t1 = performance.now();
forkd = await startForkd(config);
while (count() < N) await sleep(20);
const drainS = (performance.now() - t1) / 1000;
await forkd.stop();

// 3. End to end, on a fresh table.
rmSync(dbPath, { force: true });
rmSync(dbPath + '-wal', { force: true });
rmSync(dbPath + '-shm', { force: true });
forkd = await startForkd(config);
client = createClient({ endpoint: `ipc://${dir}/.fork/fork.sock`, maxInFlight: 50000 });
const t2 = performance.now();
await sendPurchases(client, 'production', N, 2);
while (count() < N) await sleep(10);
const e2eS = (performance.now() - t2) / 1000;
await client.close();
await forkd.stop();

// 4. The Node approach: better-sqlite3, the same rows and table shape.
mkdirSync(path.join(dir, 'node'));
const nd = new Database(path.join(dir, 'node', 'orders.db'));
nd.pragma('journal_mode = WAL');
nd.pragma('synchronous = FULL');
nd.exec(`CREATE TABLE orders (_fork_id TEXT PRIMARY KEY, event TEXT, orderId TEXT, userId TEXT,
  amount REAL, currency TEXT, items TEXT, ts INTEGER, campaign TEXT, ok INTEGER, extra TEXT)`);
const ins = nd.prepare(`INSERT INTO orders VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
  ON CONFLICT(_fork_id) DO NOTHING`);
const insertBatch = nd.transaction((rows) => {
  for (const [id, p] of rows) {
    ins.run(id, p.event, p.orderId, p.userId, p.amount, p.currency, JSON.stringify(p.items), p.ts,
      p.campaign, p.ok ? 1 : 0, null);
  }
});
const next = purchases(3);
const t3 = performance.now();
let batch = [];
for (let i = 0; i < N; i++) {
  batch.push([`id-${i}`, next()]);
  if (batch.length === BATCH) {
    insertBatch(batch);
    batch = [];
  }
}
if (batch.length) insertBatch(batch);
const nodeS = (performance.now() - t3) / 1000;
nd.close();

const rate = (s) => Math.round(N / s);
console.log(`sqlite, ${N} reference purchase events, batches of ${BATCH}, WAL, synchronous=FULL`);
console.log(`  forkd sqlite sink (log -> table):      ${rate(drainS)} rows/s`);
console.log(`  better-sqlite3 prepared insert, 1 tx/1000: ${rate(nodeS)} rows/s`);
console.log(`  ratio forkd / better-sqlite3:           ${(nodeS / drainS).toFixed(2)}x (target >= 1, and >= 200000 rows/s)`);
console.log(`  end to end (routeData -> row):          ${rate(e2eS)} rows/s (ingest alone ${rate(ingestS)} events/s)`);
rmSync(dir, { recursive: true, force: true });
