// PostgreSQL: rows/s of forkd's postgres sink (append, COPY) against the
// obvious Node approach — the `pg` package, a multi-row INSERT of 1 000 rows
// per statement, one transaction per statement — on the reference workload
// (bench/workload.mjs purchases), in the same run, against the same local
// PostgreSQL (started here, default durability: fsync and synchronous_commit
// on) and the same table shape.
//
// forkd's figure runs from the first routeData to the last row present in
// the table (count(*) polled), with batches of 1 000. The sink alone is
// measured too: the same events, made durable in the log while the store is
// unreachable, drained into the table when forkd restarts with it.
//
//   node bench/postgres.mjs [--events 200000]      (npm run bench:postgres)
//
// The sink appends with COPY: the same drain with multi-row INSERT ... ON
// CONFLICT DO NOTHING (1 000 rows, parameters) measured 37-43k rows/s and
// three times the server's CPU, against 61-109k rows/s for COPY.
//
// The sink keeps --in-flight COPYs on their way (batch.in_flight, 4 by
// default); the sink alone is measured again with one at a time, for what
// pipelining brings.
//
// Figures only: it never fails on timing.
import { parseArgs } from 'node:util';
import { rmSync, writeFileSync } from 'node:fs';
import pg from 'pg';
import { createClient } from '../js/index.mjs';
import { startForkd, tempConfig } from '../scripts/lib/forkd.mjs';
import { startPostgres } from '../tests/e2e/servers/postgres.mjs';
import { purchases, sendPurchases } from './workload.mjs';

const { values: args } = parseArgs({
  options: { events: { type: 'string', default: '200000' }, 'in-flight': { type: 'string', default: '4' } },
});
const N = Number(args.events);
const IN_FLIGHT = Number(args['in-flight']);
const BATCH = 1000;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// The workload's shape, declared: inferred from the first event, `amount`
// would be bigint whenever that event's amount happens to be whole.
const COLUMNS = {
  event: 'text',
  orderId: 'text',
  userId: 'text',
  amount: 'real',
  currency: 'text',
  items: 'json',
  ts: 'integer',
  campaign: 'text',
  ok: 'boolean',
};

const server = await startPostgres();
const db = new pg.Client({ connectionString: server.url });
await db.connect();
const count = async (table) => Number((await db.query(`SELECT count(*) AS n FROM ${table}`)).rows[0].n);
// Polls count(*) until the table holds N rows: every 50 ms, every 5 ms for
// the last 5% (a count scans the table, and the server's CPU is the sink's).
async function waitRows(table) {
  for (;;) {
    const n = await count(table).catch(() => 0);
    if (n >= N) return;
    await sleep(n >= N * 0.95 ? 5 : 50);
  }
}

const yaml = (url, table, inFlight = IN_FLIGHT) => `data_dir: ./.fork
destinations:
  orders:
    type: postgres
    url: ${url}
    table: ${table}
    columns: ${JSON.stringify(COLUMNS)}
    batch: { max_events: ${BATCH}, max_wait: 20ms, in_flight: ${inFlight} }
    retry: { initial: 50ms, max: 200ms }
`;
const { dir, config } = tempConfig(yaml(server.url, 'orders_e2e'), 'fork-bench-pg-');
const endpoint = `ipc://${dir}/.fork/fork.sock`;

const send = (client, seed) => sendPurchases(client, 'orders', N, seed);

try {
  // 1. End to end: routeData -> row.
  let forkd = await startForkd(config);
  let client = createClient({ endpoint, maxInFlight: 50000 });
  const t0 = performance.now();
  await send(client, 1);
  const ackedS = (performance.now() - t0) / 1000;
  await waitRows('orders_e2e');
  const e2eS = (performance.now() - t0) / 1000;
  await client.close();
  await forkd.stop();

  // 2. The sink alone: fill the log while the store is unreachable (nothing
  //    listens on port 1), then restart forkd with it and time the drain;
  //    with --in-flight COPYs on their way, then with one.
  const drain = async (table, inFlight, seed) => {
    writeFileSync(config, yaml('postgres://postgres@127.0.0.1:1/postgres', table, inFlight));
    forkd = await startForkd(config);
    client = createClient({ endpoint, maxInFlight: 50000 });
    await send(client, seed);
    await client.close();
    await forkd.stop();
    writeFileSync(config, yaml(server.url, table, inFlight));
    const t1 = performance.now();
    forkd = await startForkd(config);
    await waitRows(table);
    const s = (performance.now() - t1) / 1000;
    await forkd.stop();
    return s;
  };
  const drainS = await drain('orders_drain', IN_FLIGHT, 2);
  const drain1S = await drain('orders_drain1', 1, 4);

  // 3. The Node approach: the same rows into the same table shape.
  await db.query(`CREATE TABLE orders_node (_fork_id text, event text, "orderId" text, "userId" text,
    amount double precision, currency text, items jsonb, ts bigint, campaign text, ok boolean, extra jsonb)`);
  const values = [];
  for (let r = 0; r < BATCH; r++) {
    values.push(`(${Array.from({ length: 11 }, (_, c) => `$${r * 11 + c + 1}`).join(', ')})`);
  }
  const insert = `INSERT INTO orders_node VALUES ${values.join(', ')}`;
  const next = purchases(3);
  const t3 = performance.now();
  for (let i = 0; i < N; i += BATCH) {
    const params = [];
    for (let r = 0; r < BATCH; r++) {
      const p = next();
      params.push(`id-${i + r}`, p.event, p.orderId, p.userId, p.amount, p.currency, JSON.stringify(p.items), p.ts,
        p.campaign, p.ok, null);
    }
    await db.query('BEGIN');
    await db.query(insert, params);
    await db.query('COMMIT');
  }
  const nodeS = (performance.now() - t3) / 1000;
  if ((await count('orders_node')) !== N) throw new Error('the Node approach lost rows');

  const rate = (s) => Math.round(N / s);
  const fmt = (n) => n.toLocaleString('en-US');
  console.log(`postgres ${(await db.query('SHOW server_version')).rows[0].server_version}, ${fmt(N)} reference purchase events, batches of ${BATCH}, fsync on`);
  console.log(`  forkd postgres sink, routeData -> row:     ${fmt(rate(e2eS))} rows/s (all acknowledged after ${ackedS.toFixed(2)} s, last row at ${e2eS.toFixed(2)} s)`);
  console.log(`  forkd postgres sink alone (log -> table):  ${fmt(rate(drainS))} rows/s, ${IN_FLIGHT} COPYs in flight`);
  console.log(`  the same, one COPY at a time:              ${fmt(rate(drain1S))} rows/s (pipelining ${(drain1S / drainS).toFixed(2)}x)`);
  console.log(`  pg multi-row INSERT, 1000/statement, 1 tx: ${fmt(rate(nodeS))} rows/s`);
  console.log(`  ratio forkd / pg:                         ${(nodeS / e2eS).toFixed(2)}x end to end, ${(nodeS / drainS).toFixed(2)}x sink alone (target >= 1, and >= 50,000 rows/s)`);
} finally {
  await db.end();
  await server.stop();
  rmSync(dir, { recursive: true, force: true });
}
