// The scheduled verify (`verify: { every }`): forkd compares the store with
// its log by itself, shows the result in /api/status and /metrics, and a
// `verify_differences` rule fires once when rows go missing behind its back
// and resolves once after `forkd verify --repair` puts them back.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, rmSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import Database from 'better-sqlite3';
import { createClient } from '../../js/index.mjs';
import { FORKD, startForkd, tempConfig, endpointFor, freePort, readJsonl } from './helpers.mjs';

const cleanups = [];
after(async () => {
  for (const c of cleanups.reverse()) await c();
});

async function until(what, fn, timeoutMs = 20000) {
  const t0 = Date.now();
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() - t0 > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

test('scheduled verify reports in status and metrics, fires verify_differences once on deleted rows, and resolves once after --repair', { timeout: 90_000 }, async () => {
  const port = await freePort();
  const { dir, config } = tempConfig(
    `data_dir: ./.fork
admin: 127.0.0.1:${port}
destinations:
  db: { type: sqlite, path: ./out.db, table: orders }
  ops: { type: file, format: jsonl, path: ./out/ops.jsonl, batch: { max_wait: 10ms } }
verify: { every: 1s, destinations: [db] }
alerts:
  notify: [ops]
  rules:
    - { name: inconsistent, signal: verify_differences, destination: db, above: 0 }
`,
    'fork-verify-schedule-',
  );
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  const forkd = await startForkd(config);
  cleanups.push(() => forkd.stop());
  const client = createClient({ endpoint: endpointFor(dir) });
  cleanups.push(() => client.close());
  const status = async () => (await fetch(`http://127.0.0.1:${port}/api/status`)).json();
  const metrics = async () => (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  const ops = path.join(dir, 'out', 'ops.jsonl');
  const alerts = () => (existsSync(ops) ? readJsonl(ops) : []);

  const ids = [];
  for (let i = 0; i < 20; i++) {
    ids.push((await client.routeData({ order: i, total: i * 2.5 }, 'db', { ack: 'delivered' })).id);
  }
  // A run after the 20 were delivered agrees.
  const first = await until('a verify that saw the 20 rows', async () => {
    const v = (await status()).verify;
    return v && v.destinations.db.expected === 20 ? v : null;
  });
  assert.equal(first.ok, true);
  assert.deepEqual(
    { missing: first.destinations.db.missing, unexpected: first.destinations.db.unexpected, differing: first.destinations.db.differing },
    { missing: 0, unexpected: 0, differing: 0 },
  );
  assert.equal(first.destinations.ops, undefined, 'only the destinations listed are checked');
  let m = await metrics();
  assert.match(m, /^fork_verify_runs_total [1-9]/m);
  assert.match(m, /^fork_verify_expected_rows\{destination="db"\} 20$/m);
  assert.match(m, /^fork_verify_missing_rows\{destination="db"\} 0$/m);
  assert.deepEqual(alerts(), [], 'no alert while the store agrees');

  // Two rows deleted behind forkd's back.
  const db = new Database(path.join(dir, 'out.db'));
  db.prepare('DELETE FROM orders WHERE _fork_id IN (?, ?)').run(ids[3], ids[11]);
  db.close();
  const seen = await until('a verify that saw the deleted rows', async () => {
    const v = (await status()).verify;
    return v && v.destinations.db.missing === 2 ? v : null;
  });
  assert.equal(seen.ok, false);
  assert.deepEqual(seen.destinations.db.missing_samples, [ids[3], ids[11]].sort());
  m = await metrics();
  assert.match(m, /^fork_verify_missing_rows\{destination="db"\} 2$/m);
  const firing = await until('the firing alert', () => alerts().find((a) => a.state === 'firing'));
  assert.equal(firing.alert, 'inconsistent');
  assert.equal(firing.signal, 'verify_differences');
  assert.equal(firing.destination, 'db');
  assert.equal(firing.value, 2);

  // Repaired while forkd runs: the next run agrees and the alert resolves.
  const r = spawnSync(FORKD, ['verify', '--config', config, '--destination', 'db', '--repair'], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stdout + r.stderr);
  assert.match(r.stdout, /^db: 20 expected, 0 missing, 0 unexpected, 0 differing \(20 matching\)$/m);
  assert.match(r.stdout, /repaired: 2 written again/);
  const resolved = await until('the resolved alert', () => alerts().find((a) => a.state === 'resolved'));
  assert.equal(resolved.alert, 'inconsistent');
  assert.equal(resolved.value, 0);
  await sleep(2500);  // two more runs: still exactly one of each
  assert.deepEqual(alerts().map((a) => a.state), ['firing', 'resolved']);
  assert.equal((await status()).verify.ok, true);
});

test('forkd check refuses a verify section that names an unknown or unreadable destination, at its position', () => {
  const { dir, config } = tempConfig(
    `destinations:
  db: { type: sqlite, path: ./out.db, table: orders }
  hook: { type: http, url: "http://127.0.0.1:9/" }
verify:
  every: 1h
  destinations: [dbb, hook]
`,
    'fork-verify-check-',
  );
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  const r = spawnSync(FORKD, ['check', '--config', config], { encoding: 'utf8' });
  assert.equal(r.status, 2, r.stdout + r.stderr);
  assert.match(r.stderr, /fork\.yaml:6:18: verify\.destinations: unknown destination 'dbb' \(did you mean 'db'\?\)/);
  assert.match(r.stderr, /fork\.yaml:6:23: verify\.destinations: 'hook' is http: its store cannot be read back/);
  const bad = tempConfig(
    `destinations:
  db: { type: sqlite, path: ./out.db, table: orders }
verify: { every: banana }
`,
    'fork-verify-check-',
  );
  cleanups.push(() => rmSync(bad.dir, { recursive: true, force: true }));
  const r2 = spawnSync(FORKD, ['check', '--config', bad.config], { encoding: 'utf8' });
  assert.equal(r2.status, 2);
  assert.match(r2.stderr, /fork\.yaml:3:18: verify\.every: expected a duration like 250ms, 2s, 1h, got 'banana'/);
});
