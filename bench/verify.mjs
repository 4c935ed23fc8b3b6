// `forkd verify`: how long checking a store of N rows takes (the issue's
// target: 1M rows in SQLite or PostgreSQL in at most 10 s), against a peer in
// the same run: the plainest full read of the same table by Node
// (better-sqlite3's `SELECT _fork_id, * FROM t`, and pg's for PostgreSQL),
// which is what any checker has to do at least.
//
// N purchase events (bench/workload.mjs) go through forkd into a sqlite table
// (and a PostgreSQL one with --postgres), forkd stops once every row is
// stored, then `forkd verify --destination <d>` runs once per destination
// (it must agree: exit 0, N expected, N matching) and the peer read runs.
//
//   node bench/verify.mjs [--events 1000000] [--postgres URL | --postgres start]
//
// `--postgres start` starts a throwaway server as the tests do
// (tests/e2e/servers/postgres.mjs).
import { parseArgs } from 'node:util';
import { spawn } from 'node:child_process';
import { rmSync } from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { createClient } from '../js/index.mjs';
import { startForkd, tempConfig, FORKD } from '../scripts/lib/forkd.mjs';
import { sendPurchases } from './workload.mjs';

const { values: args } = parseArgs({
  options: { events: { type: 'string', default: '1000000' }, postgres: { type: 'string' } },
});
const N = Number(args.events);
if (!Number.isInteger(N) || N <= 0) throw new Error(`--events ${args.events}: a positive whole number`);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

let pgServer = null;
let pgUrl = args.postgres ?? null;
if (pgUrl === 'start') {
  const { startPostgres } = await import('../tests/e2e/servers/postgres.mjs');
  pgServer = await startPostgres({ settings: { fsync: 'off', synchronous_commit: 'off' } });
  pgUrl = pgServer.url;
}
const pg = pgUrl ? (await import('pg')).default : null;

const TABLE = 'orders';
const dests = { db: { type: 'sqlite', path: './orders.db', table: TABLE, batch: { max_events: 5000, max_wait: '20ms' } } };
if (pgUrl) dests.pg = { type: 'postgres', url: pgUrl, schema: 'public', table: TABLE, batch: { max_events: 5000, max_wait: '20ms' } };
const { dir, config } = tempConfig(
  `data_dir: ./.fork\nwal: { fsync: batch, retention: { max_age: 24h, max_bytes: 4GiB } }\ndestinations: ${JSON.stringify(dests)}\n`,
  'fork-bench-verify-',
);
const dbPath = path.join(dir, 'orders.db');

const sqliteCount = () => {
  try {
    const d = new Database(dbPath, { readonly: true, fileMustExist: true });
    try {
      return d.prepare(`SELECT max(rowid) n FROM ${TABLE}`).get().n ?? 0;
    } finally {
      d.close();
    }
  } catch {
    return 0;
  }
};
let pgPool = null;
const pgCount = async () => {
  try {
    return Number((await pgPool.query(`SELECT count(*) AS n FROM ${TABLE}`)).rows[0].n);
  } catch {
    return 0;
  }
};

// Runs forkd verify; { status, seconds, out, err }.
function verify(...a) {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const p = spawn(FORKD, ['verify', '--config', config, ...a], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    p.stdout.on('data', (d) => (out += d));
    p.stderr.on('data', (d) => (err += d));
    p.on('error', reject);
    p.on('close', (status) => resolve({ status, seconds: (performance.now() - t0) / 1000, out, err }));
  });
}

const rate = (n, s) => Math.round(n / s).toLocaleString('en-US');
const fmt = (s) => s.toFixed(2);

try {
  // 1. N events through forkd, every row stored.
  const forkd = await startForkd(config);
  const client = createClient({ endpoint: `ipc://${dir}/.fork/fork.sock`, maxInFlight: 50000 });
  const t0 = performance.now();
  await sendPurchases(client, Object.keys(dests), N, 7);
  const ingestS = (performance.now() - t0) / 1000;
  await client.close();
  if (pgUrl) {
    pgPool = new pg.Pool({ connectionString: pgUrl, max: 2 });
    pgPool.on('error', () => {});
  }
  for (let last = -1, still = 0; ; ) {
    const n = Math.min(sqliteCount(), pgUrl ? await pgCount() : N);
    if (n >= N) break;
    still = n === last ? still + 1 : 0;
    if (still > 600) throw new Error(`stuck at ${n} of ${N} rows\n${forkd.stderr().slice(-2000)}`);
    last = n;
    await sleep(100);
  }
  const storedS = (performance.now() - t0) / 1000;
  const { code } = await forkd.stop();
  if (code !== 0) throw new Error(`forkd exited ${code}\n${forkd.stderr().slice(-2000)}`);
  console.log(`verify bench: ${N.toLocaleString('en-US')} purchase events, ${Object.keys(dests).join(' + ')}`);
  console.log(`  written: acknowledged in ${fmt(ingestS)} s, all rows stored after ${fmt(storedS)} s`);

  // 2. forkd verify, one destination at a time, and the peer's full read.
  const results = [];
  for (const name of Object.keys(dests)) {
    const v = await verify('--destination', name, '--json');
    if (v.status !== 0) throw new Error(`forkd verify --destination ${name} exited ${v.status}\n${v.out}${v.err}`);
    const rep = JSON.parse(v.out).destinations[name];
    if (rep.expected !== N || rep.matching !== N) throw new Error(`verify ${name}: ${JSON.stringify(rep)}`);
    let peerS;
    let peerRows = 0;
    if (name === 'db') {
      const t = performance.now();
      const d = new Database(dbPath, { readonly: true });
      for (const row of d.prepare(`SELECT _fork_id, * FROM ${TABLE}`).iterate()) if (row._fork_id) peerRows += 1;
      d.close();
      peerS = (performance.now() - t) / 1000;
    } else {
      const t = performance.now();
      const c = new pg.Client({ connectionString: pgUrl });
      await c.connect();
      const r = await c.query(`SELECT _fork_id, * FROM ${TABLE}`);
      peerRows = r.rows.length;
      await c.end();
      peerS = (performance.now() - t) / 1000;
    }
    if (peerRows !== N) throw new Error(`the peer read ${peerRows} rows of ${name}, not ${N}`);
    results.push({ name, verifyS: v.seconds, peerS });
    const peer = name === 'db' ? 'better-sqlite3 SELECT _fork_id, * (iterate)' : 'pg SELECT _fork_id, * (one query)';
    console.log(`  ${name} (${dests[name].type}): ${N.toLocaleString('en-US')} rows`);
    console.log(`    forkd verify:   ${fmt(v.seconds)} s, ${rate(N, v.seconds)} rows/s (took_ms ${JSON.parse(v.out).took_ms})`);
    console.log(`    peer full read: ${fmt(peerS)} s, ${rate(N, peerS)} rows/s (${peer})`);
    console.log(`    verify / peer:  ${(v.seconds / peerS).toFixed(2)}x; target <= 10 s for 1M rows: ${fmt((v.seconds * 1e6) / N)} s per 1M rows`);
  }
  // All destinations in one run: the log is scanned once for them all.
  if (Object.keys(dests).length > 1) {
    const v = await verify();
    if (v.status !== 0) throw new Error(`forkd verify exited ${v.status}\n${v.out}${v.err}`);
    console.log(`  every destination in one run: ${fmt(v.seconds)} s`);
  }
} finally {
  if (pgPool) await pgPool.end();
  if (pgServer) await pgServer.stop();
  rmSync(dir, { recursive: true, force: true });
}
