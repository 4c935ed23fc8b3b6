// ClickHouse: rows/s of forkd's clickhouse sink (append, JSONEachRow over
// HTTP) against the obvious Node approach — fetch POSTs of JSONEachRow
// batches of 1 000 rows, one at a time and a few in flight — on the
// reference workload (bench/workload.mjs purchases), in the same run,
// against the same local ClickHouse (started here by
// tests/e2e/servers/clickhouse.mjs) and the same table shape.
//
// forkd's figure runs from the first routeData to the last row present in
// the table (count() polled), with batches of 1 000: forkd's ingest (the
// addon, the log) is in that path. The sink alone is measured too: the same
// events, made durable in the log while the store is unreachable, drained
// into the table when forkd restarts with it. And forkd once more with its
// default batch (max_events 10 000), since ClickHouse prefers few large
// inserts. forkd keeps --in-flight batches on their way (batch.in_flight),
// as many as the Node approach keeps requests; it runs end to end once more
// with batch.in_flight 1, one insert at a time, to show what pipelining
// brings. Each line gives the server's CPU per row.
//
// Each of these runs --rounds times (3), once a round, the order rotated, after
// an untimed warm-up of 20 000 events; each figure is its median round.
//
//   node bench/clickhouse.mjs [--events 500000] [--in-flight 4] [--rounds 3] [--json FILE]
//
// --json FILE also writes the figures to FILE as one JSON object.
// Figures only: it never fails on timing.
import { parseArgs } from 'node:util';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createClient } from '../js/index.mjs';
import { startForkd, tempConfig } from '../scripts/lib/forkd.mjs';
import { startClickHouse } from '../tests/e2e/servers/clickhouse.mjs';
import { purchases, sendPurchases } from './workload.mjs';

const { values: args } = parseArgs({
  options: {
    events: { type: 'string', default: '500000' },
    'in-flight': { type: 'string', default: '4' },
    rounds: { type: 'string', default: '3' },
    json: { type: 'string' },
  },
});
const N = Number(args.events);
const IN_FLIGHT = Number(args['in-flight']);
const ROUNDS = Number(args.rounds);
const WARM = Math.min(N, 20000);
const BATCH = 1000;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
// CPU seconds a process used so far (user + system).
const cpu = (pid) => {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(f[11]) + Number(f[12])) / 100;
};

// The workload's shape, declared: inferred from the first event, `amount`
// would be Int64 whenever that event's amount happens to be whole.
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

const server = await startClickHouse();
const count = async (table) => Number((await server.query(`SELECT count() FROM default.${table}`)).trim());

const yaml = (url, table, batch = BATCH, inFlight = IN_FLIGHT) => `data_dir: ./.fork
destinations:
  orders:
    type: clickhouse
    url: ${url}
    table: ${table}
    columns: ${JSON.stringify(COLUMNS)}
    batch: { max_events: ${batch}, max_wait: 20ms, in_flight: ${inFlight} }
    retry: { initial: 50ms, max: 200ms }
`;
const { dir, config } = tempConfig(yaml(server.url, 'orders_shape'), 'fork-bench-ch-');
const endpoint = `ipc://${dir}/.fork/fork.sock`;

const send = (client, seed) => sendPurchases(client, 'orders', N, seed);
// Every run starts from an empty log: otherwise each forkd would start on
// the runs before it (up to wal.retention's 1 GiB of history to open and
// index), and the later rounds would pay for the earlier ones.
const freshLog = () => rmSync(join(dir, '.fork'), { recursive: true, force: true });

// routeData -> row, through a fresh forkd with `batch` events per insert.
async function endToEnd(table, batch, seed, inFlight = IN_FLIGHT, n = N) {
  freshLog();
  writeFileSync(config, yaml(server.url, table, batch, inFlight));
  const forkd = await startForkd(config);
  const client = createClient({ endpoint, maxInFlight: 50000 });
  const server0 = cpu(server.pid);
  const t0 = performance.now();
  await sendPurchases(client, 'orders', n, seed);
  const ackedS = (performance.now() - t0) / 1000;
  while ((await count(table).catch(() => 0)) < n) await sleep(20);
  const s = (performance.now() - t0) / 1000;
  const serverCpu = cpu(server.pid) - server0;
  const forkdCpu = cpu(forkd.pid);
  await client.close();
  await forkd.stop();
  return { s, ackedS, serverCpu, forkdCpu };
}

// The Node approach: JSONEachRow POSTs of BATCH rows, `inFlight` at a time.
async function nodeApproach(table, inFlight, seed) {
  await server.query(`CREATE TABLE default.${table} AS default.orders_shape`);
  const insertUrl = `${server.url}/?query=${encodeURIComponent(`INSERT INTO default.${table} FORMAT JSONEachRow`)}`;
  const next = purchases(seed);
  let made = 0;
  const makeBatch = () => {
    let body = '';
    for (let r = 0; r < BATCH && made < N; r++, made++) {
      const p = next();
      body += JSON.stringify({
        _fork_id: `id-${made}`, event: p.event, orderId: p.orderId, userId: p.userId, amount: p.amount,
        currency: p.currency, items: JSON.stringify(p.items), ts: p.ts, campaign: p.campaign, ok: p.ok ? 1 : 0,
      }) + '\n';
    }
    return body;
  };
  const server0 = cpu(server.pid);
  const t0 = performance.now();
  const worker = async () => {
    while (made < N) {
      const body = makeBatch();
      const r = await fetch(insertUrl, { method: 'POST', body });
      if (!r.ok) throw new Error(`insert: ${r.status} ${await r.text()}`);
      await r.arrayBuffer();
    }
  };
  await Promise.all(Array.from({ length: inFlight }, worker));
  while ((await count(table)) < N) await sleep(20);
  return { s: (performance.now() - t0) / 1000, serverCpu: cpu(server.pid) - server0 };
}

// Merges what the last run left into one part, so that its background
// merges do not weigh on the next run.
async function settle(table) {
  await server.query(`OPTIMIZE TABLE default.${table} FINAL`, { timeoutMs: 300000 });
  for (let i = 0; i < 100; i++) {
    if (Number((await server.query('SELECT count() FROM system.merges')).trim()) === 0) break;
    await sleep(100);
  }
}

// The sink alone: fill the log while the store is unreachable (nothing
// listens on port 1), then restart forkd with it and time the drain.
async function sinkAlone(table, seed) {
  freshLog();
  writeFileSync(config, yaml('http://127.0.0.1:1', table));
  let forkd = await startForkd(config);
  const client = createClient({ endpoint, maxInFlight: 50000 });
  await send(client, seed);
  await client.close();
  await forkd.stop();
  writeFileSync(config, yaml(server.url, table));
  const server0 = cpu(server.pid);
  const t0 = performance.now();
  forkd = await startForkd(config);
  while ((await count(table).catch(() => 0)) < N) await sleep(20);
  const s = (performance.now() - t0) / 1000;
  const result = { s, serverCpu: cpu(server.pid) - server0, forkdCpu: cpu(forkd.pid) };
  await forkd.stop();
  return result;
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

try {
  // Rounds, each contender once a round, the order rotated: the server's
  // cost per row drifts over a run (its caches, its background merges), so
  // one run each in a fixed order would favour or handicap whoever goes
  // first. Each run writes its own table, and every contender sends the
  // same events in a given round (the round's seed).
  //  - e2e: end to end, batches of 1 000;
  //  - drain: the sink alone;
  //  - node1, nodeN: the Node approach, one request at a time, then a few in
  //    flight, into tables of the same shape (ReplacingMergeTree, the same
  //    column types);
  //  - big: forkd with its default batch;
  //  - serial: end to end, one insert at a time (batch.in_flight 1).
  const contenders = {
    e2e: { table: 'orders_e2e', run: (t, seed) => endToEnd(t, BATCH, seed) },
    drain: { table: 'orders_drain', run: (t, seed) => sinkAlone(t, seed) },
    node1: { table: 'orders_node_1', run: (t, seed) => nodeApproach(t, 1, seed) },
    nodeN: { table: 'orders_node_n', run: (t, seed) => nodeApproach(t, IN_FLIGHT, seed) },
    big: { table: 'orders_e2e_big', run: (t, seed) => endToEnd(t, 10000, seed) },
    serial: { table: 'orders_e2e_serial', run: (t, seed) => endToEnd(t, BATCH, seed, 1) },
  };
  const names = Object.keys(contenders);
  const runs = Object.fromEntries(names.map((n) => [n, []]));
  const order = [];
  // A warm-up, not timed: WARM events through forkd into the table whose
  // shape the Node approach's tables copy.
  await endToEnd('orders_shape', BATCH, 100, IN_FLIGHT, WARM);
  await settle('orders_shape');
  for (let r = 0; r < ROUNDS; r++) {
    const turn = names.map((_, i) => names[(i + r) % names.length]);
    order.push(turn);
    for (const name of turn) {
      const table = `${contenders[name].table}_${r}`;
      runs[name].push(await contenders[name].run(table, 1 + r));
      await settle(table);
    }
  }
  // Each contender's median round (by time); its rounds in rows/s beside it.
  const mid = (xs) => ({ ...xs.find((x) => x.s === median(xs.map((y) => y.s))), rounds: xs.map((x) => Math.round(N / x.s)) });
  const e2e = mid(runs.e2e);
  const drain = mid(runs.drain);
  const node1 = mid(runs.node1);
  const nodeN = mid(runs.nodeN);
  const big = mid(runs.big);
  const serial = mid(runs.serial);

  const rate = (s) => Math.round(N / s);
  const fmt = (n) => n.toLocaleString('en-US');
  const us = (cpuS) => `${((cpuS * 1e6) / N).toFixed(1)} us`;
  const version = (await server.query('SELECT version()')).trim();
  const rounds = (x) => `; rounds ${x.rounds.map(fmt).join(', ')}`;
  console.log(`clickhouse ${version}, ${fmt(N)} reference purchase events, append (JSONEachRow), ReplacingMergeTree, batches of ${BATCH}`);
  console.log(`  ${ROUNDS} rounds, each contender once a round in rotated order; figures are each one's median round`);
  console.log(`  forkd, routeData -> row (${IN_FLIGHT} in flight): ${fmt(rate(e2e.s))} rows/s (acknowledged after ${e2e.ackedS.toFixed(2)} s, last row at ${e2e.s.toFixed(2)} s; server CPU ${us(e2e.serverCpu)}/row, forkd ${us(e2e.forkdCpu)}/row${rounds(e2e)})`);
  console.log(`  forkd sink alone (log -> table):     ${fmt(rate(drain.s))} rows/s (server CPU ${us(drain.serverCpu)}/row, forkd ${us(drain.forkdCpu)}/row${rounds(drain)})`);
  console.log(`  Node fetch, 1 POST at a time:        ${fmt(rate(node1.s))} rows/s (server CPU ${us(node1.serverCpu)}/row${rounds(node1)})`);
  console.log(`  Node fetch, ${IN_FLIGHT} POSTs in flight:        ${fmt(rate(nodeN.s))} rows/s (server CPU ${us(nodeN.serverCpu)}/row${rounds(nodeN)})`);
  console.log(`  ratio forkd / Node (end to end):     ${(node1.s / e2e.s).toFixed(2)}x vs 1 at a time, ${(nodeN.s / e2e.s).toFixed(2)}x vs ${IN_FLIGHT} in flight`);
  console.log(`  ratio forkd / Node (sink alone):     ${(node1.s / drain.s).toFixed(2)}x vs 1 at a time, ${(nodeN.s / drain.s).toFixed(2)}x vs ${IN_FLIGHT} in flight (target >= 1, and >= 200,000 rows/s)`);
  console.log(`  forkd, batch.in_flight 1:           ${fmt(rate(serial.s))} rows/s end to end (server CPU ${us(serial.serverCpu)}/row); pipelining ${(serial.s / e2e.s).toFixed(2)}x${rounds(serial)}`);
  console.log(`  forkd, default batch (10 000):       ${fmt(rate(big.s))} rows/s end to end (acknowledged after ${big.ackedS.toFixed(2)} s; server CPU ${us(big.serverCpu)}/row)${rounds(big)}`);
  if (args.json) {
    const run = (x) => ({ rowsPerSec: N / x.s, rounds: x.rounds, seconds: x.s, ...(x.ackedS === undefined ? {} : { acceptedSeconds: x.ackedS }),
      serverCpuUsPerRow: (x.serverCpu * 1e6) / N, ...(x.forkdCpu === undefined ? {} : { forkdCpuUsPerRow: (x.forkdCpu * 1e6) / N }) });
    writeFileSync(args.json, JSON.stringify({
      bench: 'clickhouse',
      clickhouse: version,
      events: N,
      batch: BATCH,
      inFlight: IN_FLIGHT,
      rounds: ROUNDS,
      order,
      forkEndToEnd: run(e2e),
      forkSinkAlone: run(drain),
      forkDefaultBatch: { ...run(big), batch: 10000 },
      forkOneInFlight: run(serial),
      nodeOneAtATime: run(node1),
      nodeInFlight: run(nodeN),
      ratio: { endToEndOverInFlight: nodeN.s / e2e.s, sinkAloneOverInFlight: nodeN.s / drain.s, defaultBatchOverInFlight: nodeN.s / big.s },
    }, null, 2) + '\n');
  }
} finally {
  await server.stop();
  rmSync(dir, { recursive: true, force: true });
}
