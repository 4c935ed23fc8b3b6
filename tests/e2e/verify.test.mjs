// `forkd verify` against real stores: SQLite, JSON Lines and CSV files, a
// PostgreSQL and a ClickHouse server that this file starts (servers/), and
// aggregates (their per-instance partial rows, `<table>_parts`), three
// replicas sharing one aggregate table included. Rows are deleted, changed
// and added behind Fork's back, file lines edited and removed, partial rows
// tampered with; verify must count each kind exactly, name the ids (and the
// column) in its samples, exit 0 / 1 / 2 as documented, and `--repair` must
// put the stores right (files excepted: it says they are not repaired).
// Also: `--since`, `--destination`, `--json`, and wrong input.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import Database from 'better-sqlite3';
import pg from 'pg';
import { createClient } from '../../js/index.mjs';
import { startForkd, tempConfig, endpointFor, FORKD } from './helpers.mjs';
import { startPostgres } from './servers/postgres.mjs';
import { startClickHouse } from './servers/clickhouse.mjs';

const N = 50;
const WHEN = '2026-11-21T12:00:00.250Z';
// Event i, sent with idempotency key ev-<i> (its _fork_id).
const event = (i) => ({ i, kind: i % 2 ? 'a' : 'b', amount: i * 1.5 + 0.25, tags: ['x', i], when: new Date(WHEN), ok: i % 3 === 0 });
const amountOf = (i) => i * 1.5 + 0.25; // never a whole number: a float column
// Sums of amount per kind for events [0, n).
const totals = (n, from = 0) => {
  const t = { a: { n: 0, total: 0 }, b: { n: 0, total: 0 } };
  for (let i = from; i < n; i++) {
    const k = i % 2 ? 'a' : 'b';
    t[k].n += 1;
    t[k].total += amountOf(i);
  }
  return t;
};
const today = () => new Date().toISOString().slice(0, 10) + 'T00:00:00.000Z';
const QUICK = { batch: { max_wait: '10ms' }, retry: { initial: '50ms', max: '500ms' } };
const AGG = (measures = { n: 'count()', total: 'sum(amount)' }) => [
  { aggregate: { window: 'daily', group_by: ['kind'], emit_every: '100ms', measures } },
];

const dirs = new Set();
const forkds = new Set();
after(async () => {
  for (const f of forkds) await f.stop('SIGKILL');
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

// A forkd on `yaml` (its data_dir ./.fork) and a client.
async function startRig(yaml, prefix) {
  const { dir, config } = tempConfig(`data_dir: ./.fork\nwal: { fsync: batch }\n${yaml}`, prefix);
  dirs.add(dir);
  const forkd = await startForkd(config);
  forkds.add(forkd);
  const client = createClient({ endpoint: endpointFor(dir), timeoutMs: 20000 });
  return {
    dir,
    config,
    forkd,
    client,
    async stop() {
      await client.close(5000);
      const r = await forkd.stop('SIGTERM');
      forkds.delete(forkd);
      assert.equal(r.code, 0, `forkd exited 0\n${forkd.stderr().slice(-2000)}`);
    },
  };
}

// Sends events [from, to) to `dests`, acknowledged once delivered.
async function send(client, dests, from, to) {
  const calls = [];
  for (let i = from; i < to; i++) {
    calls.push(client.routeData(event(i), dests, { ack: 'delivered', idempotencyKey: `ev-${i}` }));
  }
  const receipts = await Promise.all(calls);
  assert.deepEqual(receipts.map((r) => r.id), calls.map((_, k) => `ev-${from + k}`));
}

// Runs `forkd verify --config <config> ...args`; { status, stdout, stderr, report }
// where report is the text output parsed (or the JSON with --json).
function verify(config, ...args) {
  return new Promise((resolve, reject) => {
    const p = spawn(FORKD, ['verify', '--config', config, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d) => (stdout += d));
    p.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => p.kill('SIGKILL'), 60_000);
    p.on('error', reject);
    p.on('close', (status) => {
      clearTimeout(timer);
      const report = args.includes('--json') ? (stdout.trim() ? JSON.parse(stdout) : null) : parseText(stdout);
      resolve({ status, stdout, stderr, report, all: `exit ${status}\n${stdout}${stderr}` });
    });
  });
}

// The text report as { log, dests: { NAME: { expected, missing, unexpected,
// differing, matching, not_judged, outside, repaired, error, samples } } }.
function parseText(out) {
  const dests = {};
  let log = null;
  let cur = null;
  let list = null;
  for (const line of out.split('\n')) {
    let m;
    if ((m = line.match(/^log: (.*)$/))) {
      log = m[1];
      cur = null;
    } else if ((m = line.match(/^(\S+): (\d+) expected, (\d+) missing, (\d+) unexpected, (\d+) differing \((\d+) matching(.*)\)$/))) {
      const notJudged = m[7].match(/; (\d+) not judged/);
      const outside = m[7].match(/; (\d+) outside the retained range/);
      cur = dests[m[1]] = {
        expected: +m[2],
        missing: +m[3],
        unexpected: +m[4],
        differing: +m[5],
        matching: +m[6],
        not_judged: notJudged ? +notJudged[1] : 0,
        outside: outside ? +outside[1] : 0,
        repaired: 0,
        error: '',
        note: '',
        samples: { missing: [], unexpected: [], differing: [] },
      };
      list = null;
    } else if ((m = line.match(/^(\S+): error: (.*)$/))) {
      cur = dests[m[1]] = { error: m[2], samples: { missing: [], unexpected: [], differing: [] } };
      list = null;
    } else if (cur && (m = line.match(/^ {2}(not repaired: .*)$/))) {
      cur.note = m[1];
      list = null;
    } else if (cur && (m = line.match(/^ {2}repaired: (\d+) written again$/))) {
      cur.repaired = +m[1];
    } else if (cur && (m = line.match(/^ {2}(missing|unexpected|differing):$/))) {
      list = m[1];
    } else if (cur && (m = line.match(/^ {2}error: (.*)$/))) {
      cur.error = m[1];
      list = null;
    } else if (cur && list && (m = line.match(/^ {4}(.*)$/))) {
      cur.samples[list].push(m[1]);
    } else if (line.trim() !== '') {
      throw new Error(`verify printed a line this test does not understand: ${JSON.stringify(line)}\n${out}`);
    }
  }
  return { log, dests };
}

// Counts only, to compare with deepEqual.
const counts = (d) => ({
  expected: d.expected,
  missing: d.missing,
  unexpected: d.unexpected,
  differing: d.differing,
  matching: d.matching,
});
const agreeing = (n) => ({ expected: n, missing: 0, unexpected: 0, differing: 0, matching: n });

// Polls verify until every destination agrees with `want` (name -> expected count).
async function waitAgree(config, want, args = [], ms = 20000) {
  const deadline = Date.now() + ms;
  let r;
  for (;;) {
    r = await verify(config, ...args);
    const ok =
      r.status === 0 &&
      Object.entries(want).every(([name, n]) => r.report.dests[name] && r.report.dests[name].expected === n && r.report.dests[name].matching === n);
    if (ok) return r;
    if (Date.now() > deadline) assert.fail(`verify did not agree within ${ms} ms:\n${r.all}`);
    await sleep(200);
  }
}

// Edits a text file line by line: fn(line) returns the new line, or null to drop it.
function editLines(file, fn) {
  const lines = readFileSync(file, 'utf8').split('\n');
  const last = lines.pop(); // '' after the final newline
  const out = [];
  for (const l of lines) {
    const n = fn(l);
    if (n !== null) out.push(n);
  }
  writeFileSync(file, out.join('\n') + '\n' + last);
}

// ---------------------------------------------------------------------------

test('sqlite, jsonl, csv and a sqlite aggregate: agree (exit 0) while forkd runs and after it stops; deleted, changed and added rows, an edited and a removed jsonl line, a removed csv line and a tampered aggregate part row are each counted and sampled by id and column (exit 1); --repair fixes the sqlite table and the aggregate (exit 1 left only for the added row) and says files are not repaired', { timeout: 120_000 }, async () => {
  const dests = {
    db: { type: 'sqlite', path: './out.db', table: 'events', ...QUICK },
    logs: { type: 'file', format: 'jsonl', path: './out/logs.jsonl', ...QUICK },
    sheet: { type: 'file', format: 'csv', path: './out/sheet.csv', ...QUICK },
    agg: { type: 'sqlite', path: './out.db', table: 'daily', transforms: AGG(), ...QUICK },
  };
  const rig = await startRig(`instance: web-1\ndestinations: ${JSON.stringify(dests)}\n`, 'fork-verify-files-');
  const names = Object.keys(dests);
  await send(rig.client, names, 0, N);

  // While forkd runs.
  let r = await waitAgree(rig.config, { db: N, logs: N, sheet: N, agg: 2 });
  for (const name of ['db', 'logs', 'sheet']) assert.deepEqual(counts(r.report.dests[name]), agreeing(N), `${name}\n${r.all}`);
  assert.deepEqual(counts(r.report.dests.agg), agreeing(2), r.all);
  assert.match(r.report.log, /^entries 1 to 50 retained/, r.all);
  await rig.stop();

  // forkd stopped.
  r = await verify(rig.config);
  assert.equal(r.status, 0, r.all);
  assert.deepEqual(Object.keys(r.report.dests), names, r.all);
  for (const name of ['db', 'logs', 'sheet']) assert.deepEqual(counts(r.report.dests[name]), agreeing(N), `${name}\n${r.all}`);
  assert.deepEqual(counts(r.report.dests.agg), agreeing(2), r.all);

  // Behind Fork's back.
  const dbFile = path.join(rig.dir, 'out.db');
  const db = new Database(dbFile);
  assert.equal(db.prepare('DELETE FROM events WHERE _fork_id IN (?, ?)').run('ev-3', 'ev-4').changes, 2);
  assert.equal(db.prepare('UPDATE events SET amount = 999 WHERE _fork_id = ?').run('ev-7').changes, 1);
  db.prepare('INSERT INTO events (_fork_id, i, kind) VALUES (?, ?, ?)').run('bogus-1', 7, 'z');
  assert.equal(db.prepare("UPDATE daily_parts SET total = total + 1 WHERE kind = 'a'").run().changes, 1);
  db.close();
  const jsonl = path.join(rig.dir, 'out', 'logs.jsonl');
  const csv = path.join(rig.dir, 'out', 'sheet.csv');
  let edited = 0;
  editLines(jsonl, (l) => {
    if (l.startsWith('{"_fork_id":"ev-10"')) {
      edited += 1;
      return l.replace('"amount":15.25', '"amount":16.25');
    }
    return l.startsWith('{"_fork_id":"ev-11"') ? null : l;
  });
  assert.equal(edited, 1);
  editLines(csv, (l) => (l.startsWith('ev-12,') ? null : l));

  r = await verify(rig.config);
  assert.equal(r.status, 1, r.all);
  const d = r.report.dests;
  assert.deepEqual(counts(d.db), { expected: N, missing: 2, unexpected: 1, differing: 1, matching: N - 3 }, r.all);
  assert.deepEqual(d.db.samples.missing, ['ev-3', 'ev-4'], r.all);
  assert.deepEqual(d.db.samples.unexpected, ['bogus-1'], r.all);
  assert.deepEqual(d.db.samples.differing, [`ev-7: column amount is "999.0", expected "${amountOf(7)}"`], r.all);
  assert.deepEqual(counts(d.logs), { expected: N, missing: 1, unexpected: 0, differing: 1, matching: N - 2 }, r.all);
  assert.deepEqual(d.logs.samples.missing, ['ev-11'], r.all);
  assert.equal(d.logs.samples.differing.length, 1, r.all);
  assert.ok(d.logs.samples.differing[0].startsWith('ev-10: the line is '), r.all);
  assert.match(d.logs.samples.differing[0], /\\"amount\\":16\.25.*expected .*\\"amount\\":15\.25/, r.all);
  assert.deepEqual(counts(d.sheet), { expected: N, missing: 1, unexpected: 0, differing: 0, matching: N - 1 }, r.all);
  assert.deepEqual(d.sheet.samples.missing, ['ev-12'], r.all);
  const t = totals(N);
  assert.deepEqual(counts(d.agg), { expected: 2, missing: 0, unexpected: 0, differing: 1, matching: 1 }, r.all);
  assert.deepEqual(
    d.agg.samples.differing,
    [`web-1/${today()}/1d/["a"]: column total is "${t.a.total + 1}", expected "${t.a.total}"`],
    r.all,
  );

  // The tables only: fixed, the added row left (and still reported).
  r = await verify(rig.config, '--repair', '--destination', 'db', '--destination', 'agg');
  assert.equal(r.status, 1, r.all);
  assert.deepEqual(Object.keys(r.report.dests), ['db', 'agg'], r.all);
  assert.deepEqual(counts(r.report.dests.db), { expected: N, missing: 0, unexpected: 1, differing: 0, matching: N }, r.all);
  assert.equal(r.report.dests.db.repaired, 3, r.all);
  assert.deepEqual(r.report.dests.db.samples.unexpected, ['bogus-1'], r.all);
  assert.deepEqual(counts(r.report.dests.agg), agreeing(2), r.all);
  assert.equal(r.report.dests.agg.repaired, 1, r.all);
  const back = new Database(dbFile, { readonly: true });
  const row = (id) => back.prepare('SELECT i, kind, amount, ok FROM events WHERE _fork_id = ?').get(id);
  assert.deepEqual(row('ev-3'), { i: 3, kind: 'a', amount: 4.75, ok: 1 });
  assert.deepEqual(row('ev-4'), { i: 4, kind: 'b', amount: 6.25, ok: 0 });
  assert.deepEqual(row('ev-7'), { i: 7, kind: 'a', amount: 10.75, ok: 0 });
  assert.equal(back.prepare('SELECT count(*) AS n FROM events').get().n, N + 1);
  assert.deepEqual(back.prepare("SELECT n, total FROM daily WHERE kind = 'a'").get(), t.a);
  back.close();

  // Everything: the files are said not to be repaired, and still differ.
  r = await verify(rig.config, '--repair');
  assert.equal(r.status, 1, `a file that cannot be repaired still only differs (exit 1)\n${r.all}`);
  assert.deepEqual(counts(r.report.dests.logs), { expected: N, missing: 1, unexpected: 0, differing: 1, matching: N - 2 }, r.all);
  assert.match(r.report.dests.logs.note, /^not repaired: files are append-only; `forkd replay` delivers the events again$/, r.all);
  assert.equal(r.report.dests.logs.error, '', r.all);
  assert.equal(r.report.dests.logs.repaired, 0, r.all);
  assert.deepEqual(counts(r.report.dests.sheet), { expected: N, missing: 1, unexpected: 0, differing: 0, matching: N - 1 }, r.all);
  assert.match(r.report.dests.sheet.note, /^not repaired: files are append-only/, r.all);
  assert.equal(r.report.dests.sheet.error, '', r.all);
  assert.deepEqual(counts(r.report.dests.db), { expected: N, missing: 0, unexpected: 1, differing: 0, matching: N }, r.all);
  assert.equal(r.report.dests.db.repaired, 0, r.all);
  assert.deepEqual(counts(r.report.dests.agg), agreeing(2), r.all);
  assert.equal(readFileSync(jsonl, 'utf8').split('\n').filter(Boolean).length, N - 1, 'the jsonl file untouched');
});

// ---------------------------------------------------------------------------

let pgServer;
let pgPool;
let ch;
before(async () => {
  pgServer = await startPostgres({ settings: { fsync: 'off' } });
  pgPool = new pg.Pool({ connectionString: pgServer.url, max: 2 });
  pgPool.on('error', () => {});
  ch = await startClickHouse();
});
after(async () => {
  if (pgPool) await pgPool.end();
  if (pgServer) await pgServer.stop();
  if (ch) await ch.stop();
});
const pq = async (sql, params) => (await pgPool.query(sql, params)).rows;

test('postgres (the default schema, and public named): a deleted row, a changed column, an added row and a tampered aggregate part row are counted and sampled (exit 1); --repair leaves 0 missing and 0 differing, and the rows read back from PostgreSQL hold the right values again', { timeout: 120_000 }, async () => {
  const dests = {
    pgev: { type: 'postgres', url: pgServer.url, table: 'v_events', ...QUICK },
    pgagg: { type: 'postgres', url: pgServer.url, schema: 'public', table: 'v_daily', transforms: AGG(), ...QUICK },
  };
  const rig = await startRig(`instance: web-1\ndestinations: ${JSON.stringify(dests)}\n`, 'fork-verify-pg-');
  await send(rig.client, ['pgev', 'pgagg'], 0, N);
  await waitAgree(rig.config, { pgev: N, pgagg: 2 });
  await rig.stop();

  assert.equal((await pgPool.query("DELETE FROM v_events WHERE _fork_id IN ('ev-3', 'ev-4')")).rowCount, 2);
  assert.equal((await pgPool.query("UPDATE v_events SET kind = 'zz' WHERE _fork_id = 'ev-7'")).rowCount, 1);
  await pgPool.query("INSERT INTO v_events (_fork_id, i, kind) VALUES ('bogus-1', 7, 'z')");
  assert.equal((await pgPool.query("UPDATE v_daily_parts SET n = n + 10 WHERE kind = 'b'")).rowCount, 1);

  let r = await verify(rig.config);
  assert.equal(r.status, 1, r.all);
  const d = r.report.dests;
  assert.deepEqual(counts(d.pgev), { expected: N, missing: 2, unexpected: 1, differing: 1, matching: N - 3 }, r.all);
  assert.deepEqual(d.pgev.samples.missing, ['ev-3', 'ev-4'], r.all);
  assert.deepEqual(d.pgev.samples.unexpected, ['bogus-1'], r.all);
  assert.deepEqual(d.pgev.samples.differing, ['ev-7: column kind is "zz", expected "a"'], r.all);
  const t = totals(N);
  assert.deepEqual(counts(d.pgagg), { expected: 2, missing: 0, unexpected: 0, differing: 1, matching: 1 }, r.all);
  assert.deepEqual(d.pgagg.samples.differing, [`web-1/${today()}/1d/["b"]: column n is "${t.b.n + 10}", expected "${t.b.n}"`], r.all);

  r = await verify(rig.config, '--repair');
  assert.equal(r.status, 1, `only the added row is left\n${r.all}`);
  assert.deepEqual(counts(r.report.dests.pgev), { expected: N, missing: 0, unexpected: 1, differing: 0, matching: N }, r.all);
  assert.equal(r.report.dests.pgev.repaired, 3, r.all);
  assert.deepEqual(r.report.dests.pgev.samples.unexpected, ['bogus-1'], r.all);
  assert.deepEqual(counts(r.report.dests.pgagg), agreeing(2), r.all);
  assert.equal(r.report.dests.pgagg.repaired, 1, r.all);

  const rows = await pq("SELECT _fork_id, i::int AS i, kind, amount::float8 AS amount, ok FROM v_events WHERE _fork_id IN ('ev-3', 'ev-4', 'ev-7') ORDER BY _fork_id");
  assert.deepEqual(rows, [
    { _fork_id: 'ev-3', i: 3, kind: 'a', amount: 4.75, ok: true },
    { _fork_id: 'ev-4', i: 4, kind: 'b', amount: 6.25, ok: false },
    { _fork_id: 'ev-7', i: 7, kind: 'a', amount: 10.75, ok: false },
  ]);
  assert.equal(Number((await pq('SELECT count(*) AS n FROM v_events'))[0].n), N + 1);
  const agg = await pq('SELECT kind, n::float8 AS n, total::float8 AS total FROM v_daily ORDER BY kind');
  assert.deepEqual(agg, [{ kind: 'a', ...t.a }, { kind: 'b', ...t.b }]);
});

// ---------------------------------------------------------------------------

test('clickhouse: a row deleted and one updated by mutations, one re-inserted with another value under the same _fork_id, a bogus row added and an aggregate part row updated are counted and sampled through FINAL (exit 1); --repair leaves 0 missing and 0 differing and the rows read back right', { timeout: 180_000 }, async () => {
  const dests = {
    chev: { type: 'clickhouse', url: ch.url, table: 'v_events', ...QUICK },
    chagg: { type: 'clickhouse', url: ch.url, table: 'v_daily', transforms: AGG(), ...QUICK },
  };
  const rig = await startRig(`instance: web-1\ndestinations: ${JSON.stringify(dests)}\n`, 'fork-verify-ch-');
  await send(rig.client, ['chev', 'chagg'], 0, N);
  await waitAgree(rig.config, { chev: N, chagg: 2 });
  await rig.stop();

  const chRows = async (sql) =>
    (await ch.query(`${sql} FORMAT JSONEachRow`, { params: { output_format_json_quote_64bit_integers: 0 } }))
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l));
  // A mutation, waited for (the server's mutations are asynchronous).
  const mutate = async (sql) => {
    await ch.query(sql);
    const deadline = Date.now() + 30000;
    while (Number((await ch.query("SELECT count() FROM system.mutations WHERE is_done = 0")).trim()) > 0) {
      if (Date.now() > deadline) assert.fail(`mutation not done in 30 s: ${sql}`);
      await sleep(50);
    }
  };
  await mutate("ALTER TABLE v_events DELETE WHERE _fork_id IN ('ev-3', 'ev-4')");
  await mutate("ALTER TABLE v_events UPDATE kind = 'zz' WHERE _fork_id = 'ev-7'");
  // Same id, another value: FINAL keeps this later copy.
  const [ev8] = await chRows("SELECT * FROM v_events FINAL WHERE _fork_id = 'ev-8'");
  assert.ok(ev8, 'ev-8 is in the table');
  await ch.query(`INSERT INTO v_events FORMAT JSONEachRow`, { body: JSON.stringify({ ...ev8, amount: 555 }) });
  await ch.query(`INSERT INTO v_events (_fork_id, i, kind) VALUES ('bogus-1', 7, 'z')`);
  await mutate("ALTER TABLE v_daily_parts UPDATE n = n + 10 WHERE kind = 'b'");

  let r = await verify(rig.config);
  assert.equal(r.status, 1, r.all);
  const d = r.report.dests;
  assert.deepEqual(counts(d.chev), { expected: N, missing: 2, unexpected: 1, differing: 2, matching: N - 4 }, r.all);
  assert.deepEqual(d.chev.samples.missing, ['ev-3', 'ev-4'], r.all);
  assert.deepEqual(d.chev.samples.unexpected, ['bogus-1'], r.all);
  assert.deepEqual(
    [...d.chev.samples.differing].sort(),
    ['ev-7: column kind is "zz", expected "a"', `ev-8: column amount is "555", expected "${amountOf(8)}"`],
    r.all,
  );
  const t = totals(N);
  assert.deepEqual(counts(d.chagg), { expected: 2, missing: 0, unexpected: 0, differing: 1, matching: 1 }, r.all);
  assert.deepEqual(d.chagg.samples.differing, [`web-1/${today()}/1d/["b"]: column n is "${t.b.n + 10}", expected "${t.b.n}"`], r.all);

  r = await verify(rig.config, '--repair');
  assert.equal(r.status, 1, `only the added row is left\n${r.all}`);
  assert.deepEqual(counts(r.report.dests.chev), { expected: N, missing: 0, unexpected: 1, differing: 0, matching: N }, r.all);
  assert.equal(r.report.dests.chev.repaired, 4, r.all);
  assert.deepEqual(counts(r.report.dests.chagg), agreeing(2), r.all);
  assert.equal(r.report.dests.chagg.repaired, 1, r.all);

  const rows = await chRows("SELECT _fork_id, i, kind, amount FROM v_events FINAL WHERE _fork_id IN ('ev-3', 'ev-4', 'ev-7', 'ev-8') ORDER BY _fork_id");
  assert.deepEqual(
    rows.map((x) => ({ ...x, i: Number(x.i), amount: Number(x.amount) })),
    [
      { _fork_id: 'ev-3', i: 3, kind: 'a', amount: 4.75 },
      { _fork_id: 'ev-4', i: 4, kind: 'b', amount: 6.25 },
      { _fork_id: 'ev-7', i: 7, kind: 'a', amount: 10.75 },
      { _fork_id: 'ev-8', i: 8, kind: 'b', amount: 12.25 },
    ],
  );
  assert.equal(Number((await ch.query('SELECT count() FROM v_events FINAL')).trim()), N + 1);
  const agg = await chRows('SELECT kind, n, total FROM v_daily ORDER BY kind');
  assert.deepEqual(agg.map((x) => ({ kind: x.kind, n: Number(x.n), total: Number(x.total) })), [{ kind: 'a', ...t.a }, { kind: 'b', ...t.b }]);
});

// ---------------------------------------------------------------------------

test('--since judges only the events within its window, the last 10 sent (older rows, even one deleted, are neither missing nor unexpected, only not judged) and --destination prints that destination alone', { timeout: 60_000 }, async () => {
  const dests = {
    db: { type: 'sqlite', path: './out.db', table: 'events', ...QUICK },
    logs: { type: 'file', format: 'jsonl', path: './out/logs.jsonl', ...QUICK },
  };
  const rig = await startRig(`destinations: ${JSON.stringify(dests)}\n`, 'fork-verify-since-');
  await send(rig.client, ['db', 'logs'], 0, 20);
  await sleep(4000);
  // A window reaching back to 2 s before events 20..29 were sent, computed right
  // before each verify (which counts back from its own start): events 0..19 were
  // received at least 4 s before tNew, so they stay outside it however slow the
  // steps in between are.
  const tNew = Date.now();
  const since = () => `${Date.now() - tNew + 2000}ms`;
  await send(rig.client, ['db', 'logs'], 20, 30);
  await waitAgree(rig.config, { db: 30, logs: 30 });
  await rig.stop();
  const db = new Database(path.join(rig.dir, 'out.db'));
  assert.equal(db.prepare("DELETE FROM events WHERE _fork_id = 'ev-0'").run().changes, 1);
  db.close();

  let r = await verify(rig.config, '--since', since());
  assert.equal(r.status, 0, r.all);
  assert.deepEqual(counts(r.report.dests.db), agreeing(10), r.all);
  assert.equal(r.report.dests.db.not_judged, 19, r.all);
  assert.deepEqual(counts(r.report.dests.logs), agreeing(10), r.all);
  assert.equal(r.report.dests.logs.not_judged, 20, r.all);

  // Without --since the deleted old row is missing.
  r = await verify(rig.config);
  assert.equal(r.status, 1, r.all);
  assert.deepEqual(counts(r.report.dests.db), { expected: 30, missing: 1, unexpected: 0, differing: 0, matching: 29 }, r.all);
  assert.deepEqual(r.report.dests.db.samples.missing, ['ev-0'], r.all);

  r = await verify(rig.config, '--destination', 'logs');
  assert.equal(r.status, 0, r.all);
  assert.deepEqual(Object.keys(r.report.dests), ['logs'], r.all);
  assert.doesNotMatch(r.stdout, /^db:/m, r.all);
  r = await verify(rig.config, '--destination', 'db', '--since', since());
  assert.equal(r.status, 0, r.all);
  assert.deepEqual(Object.keys(r.report.dests), ['db'], r.all);
});

// ---------------------------------------------------------------------------

test('wrong input exits 2 with a message: an unknown --destination (named, with the configured ones listed), an http destination (its store cannot be read back), --since banana and 0s, a config error, an unreachable postgres (its error line); --json parses and carries the counts', { timeout: 60_000 }, async () => {
  const dests = {
    db: { type: 'sqlite', path: './out.db', table: 'events', ...QUICK },
    hook: { type: 'http', url: 'http://127.0.0.1:9/hook' },
  };
  const rig = await startRig(`destinations: ${JSON.stringify(dests)}\n`, 'fork-verify-bad-');
  await send(rig.client, ['db'], 0, 5);
  await waitAgree(rig.config, { db: 5 });
  await rig.stop();

  let r = await verify(rig.config, '--destination', 'nope');
  assert.equal(r.status, 2, r.all);
  assert.match(r.stderr, /unknown destination 'nope' \(configured: db, hook\)/, r.all);
  assert.equal(r.stdout, '', r.all);

  r = await verify(rig.config, '--destination', 'hook');
  assert.equal(r.status, 2, r.all);
  assert.match(r.stderr, /'hook' is http: its store cannot be read back/, r.all);

  // Without --destination, the http destination is left out and the rest judged.
  r = await verify(rig.config);
  assert.equal(r.status, 0, r.all);
  assert.deepEqual(Object.keys(r.report.dests), ['db'], r.all);

  for (const since of ['banana', '0s', '-5s']) {
    r = await verify(rig.config, '--since', since);
    assert.equal(r.status, 2, `--since ${since}\n${r.all}`);
    assert.match(r.stderr, new RegExp(`--since '${since}' is not a duration`), r.all);
  }

  r = await verify(rig.config, '--json');
  assert.equal(r.status, 0, r.all);
  assert.equal(r.report.ok, true, r.all);
  assert.deepEqual(r.report.log, { first_lsn: 1, next_lsn: 6 }, r.all);
  assert.deepEqual(Object.keys(r.report.destinations), ['db'], r.all);
  assert.deepEqual(r.report.destinations.db, {
    ok: true, expected: 5, matching: 5, missing: 0, unexpected: 0, differing: 0, not_judged: 0, outside: 0, repaired: 0,
    missing_samples: [], unexpected_samples: [], differing_samples: [],
  }, r.all);
  const db = new Database(path.join(rig.dir, 'out.db'));
  db.prepare("DELETE FROM events WHERE _fork_id = 'ev-2'").run();
  db.close();
  r = await verify(rig.config, '--json');
  assert.equal(r.status, 1, r.all);
  assert.equal(r.report.ok, false, r.all);
  assert.equal(r.report.destinations.db.missing, 1, r.all);
  assert.deepEqual(r.report.destinations.db.missing_samples, ['ev-2'], r.all);

  // A config error.
  const bad = tempConfig('destinations:\n  db: { type: sqlite, path: ./x.db, table: events\n', 'fork-verify-badcfg-');
  dirs.add(bad.dir);
  r = await verify(bad.config);
  assert.equal(r.status, 2, r.all);
  assert.match(r.stderr, /fork\.yaml/, r.all);
  const unknown = tempConfig('destinations:\n  db: { type: nosuchstore }\n', 'fork-verify-badcfg-');
  dirs.add(unknown.dir);
  r = await verify(unknown.config);
  assert.equal(r.status, 2, r.all);
  assert.match(r.stderr, /nosuchstore/, r.all);

  // PostgreSQL that is not there: that destination's error line, exit 2.
  const down = tempConfig(
    `data_dir: ./.fork\ndestinations:\n  db: { type: sqlite, path: ./out.db, table: events }\n  pgdown: { type: postgres, url: "postgres://fork:secret-pw@127.0.0.1:9/postgres", table: events }\n`,
    'fork-verify-pgdown-',
  );
  dirs.add(down.dir);
  r = await verify(down.config);
  assert.equal(r.status, 2, r.all);
  assert.match(r.stdout, /^pgdown: error: .*connect/m, r.all);
  assert.doesNotMatch(r.all, /secret-pw/, 'the password is not printed');
  r = await verify(down.config, '--json');
  assert.equal(r.status, 2, r.all);
  assert.equal(r.report.ok, false, r.all);
  assert.match(r.report.destinations.pgdown.error, /connect/, r.all);
});

// ---------------------------------------------------------------------------

test('three replicas (web-1, web-2, web-3) aggregating into one sqlite file: each forkd verify agrees on its own instance\'s partial rows and leaves the others\' not judged; tampering with web-2\'s partial row makes only web-2\'s verify differ', { timeout: 120_000 }, async () => {
  const root = mkdtempSync(path.join(tmpdir(), 'fork-verify-replicas-'));
  dirs.add(root);
  const shared = path.join(root, 'shared.db');
  const replicas = [];
  for (const [k, name] of ['web-1', 'web-2', 'web-3'].entries()) {
    const dir = path.join(root, name);
    mkdirSync(dir);
    const config = path.join(dir, 'fork.yaml');
    writeFileSync(
      config,
      `data_dir: ${dir}/data\ninstance: ${name}\nwal: { fsync: batch }\ndestinations:\n  agg: ${JSON.stringify({ type: 'sqlite', path: shared, table: 'daily', transforms: AGG(), ...QUICK })}\n`,
    );
    const forkd = await startForkd(config);
    forkds.add(forkd);
    const client = createClient({ endpoint: `ipc://${dir}/data/fork.sock`, timeoutMs: 20000 });
    replicas.push({ name, config, forkd, client, from: k * 100, to: k * 100 + 10 + 5 * k });
  }
  await Promise.all(replicas.map((r) => send(r.client, ['agg'], r.from, r.to)));
  for (const r of replicas) await waitAgree(r.config, { agg: 2 });
  for (const r of replicas) {
    await r.client.close(5000);
    const { code } = await r.forkd.stop('SIGTERM');
    forkds.delete(r.forkd);
    assert.equal(code, 0);
  }
  const db = new Database(shared);
  assert.equal(db.prepare('SELECT count(*) AS n FROM daily_parts').get().n, 6);
  // The merged view holds every replica's events.
  const all = { a: { n: 0, total: 0 }, b: { n: 0, total: 0 } };
  for (const r of replicas) {
    const t = totals(r.to, r.from);
    for (const k of ['a', 'b']) {
      all[k].n += t[k].n;
      all[k].total += t[k].total;
    }
  }
  assert.deepEqual(db.prepare('SELECT kind, n, total FROM daily ORDER BY kind').all(), [{ kind: 'a', ...all.a }, { kind: 'b', ...all.b }]);

  for (const r of replicas) {
    const v = await verify(r.config);
    assert.equal(v.status, 0, `${r.name}\n${v.all}`);
    assert.deepEqual(counts(v.report.dests.agg), agreeing(2), `${r.name}\n${v.all}`);
    assert.equal(v.report.dests.agg.not_judged, 4, `${r.name}: the other instances' 4 rows\n${v.all}`);
  }

  assert.equal(db.prepare("UPDATE daily_parts SET total = total + 100 WHERE _fork_instance = 'web-2' AND kind = 'a'").run().changes, 1);
  db.close();
  const t2 = totals(replicas[1].to, replicas[1].from);
  for (const r of replicas) {
    const v = await verify(r.config);
    if (r.name === 'web-2') {
      assert.equal(v.status, 1, v.all);
      assert.deepEqual(counts(v.report.dests.agg), { expected: 2, missing: 0, unexpected: 0, differing: 1, matching: 1 }, v.all);
      assert.deepEqual(v.report.dests.agg.samples.differing, [`web-2/${today()}/1d/["a"]: column total is "${t2.a.total + 100}", expected "${t2.a.total}"`], v.all);
    } else {
      assert.equal(v.status, 0, `${r.name} is not concerned by web-2's row\n${v.all}`);
      assert.deepEqual(counts(v.report.dests.agg), agreeing(2), `${r.name}\n${v.all}`);
    }
  }
  const v = await verify(replicas[1].config, '--repair');
  assert.equal(v.status, 0, v.all);
  assert.equal(v.report.dests.agg.repaired, 1, v.all);
  const back = new Database(shared, { readonly: true });
  assert.deepEqual(back.prepare('SELECT kind, n, total FROM daily ORDER BY kind').all(), [{ kind: 'a', ...all.a }, { kind: 'b', ...all.b }]);
  back.close();
});
