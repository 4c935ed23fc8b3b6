// `forkd init`: the starter fork.yaml and .gitignore line, the commands that
// then read ./fork.yaml with no --config, what they say without one, and init
// refusing to replace a file or to write where it cannot.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import test from 'node:test';
import Database from 'better-sqlite3';
import { createClient } from '../../js/index.mjs';
import { FORKD, endpointFor, readJsonl, startForkd } from './helpers.mjs';

// forkd with `args`, run in `cwd`.
const forkd = (cwd, ...args) => spawnSync(FORKD, args, { cwd, encoding: 'utf8' });

function freshDir(t) {
  const dir = mkdtempSync(path.join(tmpdir(), 'fork-init-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

test('init in a fresh directory writes fork.yaml and .gitignore; check passes with no --config', (t) => {
  const dir = freshDir(t);
  const r = forkd(dir, 'init');
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stderr, '');
  assert.match(r.stdout, /^Wrote fork\.yaml: /);
  assert.match(r.stdout, /^Added \.fork\/ to \.gitignore\.$/m);
  // The next two commands.
  assert.match(r.stdout, /^Next:\n {2}npx forkd run\n.*\n {2}npm run dev\n/m);
  assert.match(r.stdout, /await routeData\(\{ event: 'purchase', orderId: 'o-1', amount: 42 \}\);/);

  const yaml = readFileSync(path.join(dir, 'fork.yaml'), 'utf8');
  for (const doc of ['docs/configuration.md', 'docs/transforms.md', 'docs/deployment.md']) {
    assert.ok(yaml.includes(doc), `fork.yaml points to ${doc}`);
  }
  assert.match(yaml, /^ {4}type: sqlite$/m);
  assert.match(yaml, /^ {4}format: jsonl$/m);
  assert.match(yaml, /^routes:\n {2}- \{ when: 'event == "purchase"', to: \[production, logs\] \}\n$/m);
  assert.equal(readFileSync(path.join(dir, '.gitignore'), 'utf8'), '.fork/\n');

  const check = forkd(dir, 'check');
  assert.equal(check.status, 0, check.stderr);
  assert.match(check.stdout, /^fork\.yaml: ok \(2 destinations\)/);
});

test('the starter config runs: a purchase routed with no destination reaches the SQLite table and the JSON Lines log', async (t) => {
  const dir = freshDir(t);
  assert.equal(forkd(dir, 'init').status, 0);
  const f = await startForkd(path.join(dir, 'fork.yaml'));
  t.after(() => f.stop('SIGKILL'));
  const client = createClient({ endpoint: endpointFor(dir), timeoutMs: 10000 });
  const first = await client.routeData({ event: 'purchase', orderId: 'o-1', amount: 42 }, null, { ack: 'delivered' });
  assert.deepEqual([...first.destinations].sort(), ['logs', 'production']);
  // The same order again: one row, the latest amount (upsert on orderId).
  await client.routeData({ event: 'purchase', orderId: 'o-1', amount: 43 }, null, { ack: 'delivered' });
  await client.close();
  assert.equal((await f.stop('SIGTERM')).code, 0);
  const db = new Database(path.join(dir, 'data', 'production.db'), { readonly: true });
  const rows = db.prepare('SELECT orderId, amount FROM orders').all();
  db.close();
  assert.deepEqual(rows.map((r) => ({ ...r })), [{ orderId: 'o-1', amount: 43 }]);
  assert.deepEqual(
    readJsonl(path.join(dir, 'data', 'logs', 'events.jsonl')).map((r) => [r.orderId, r.amount]),
    [['o-1', 42], ['o-1', 43]],
  );
});

test('a second init refuses to replace fork.yaml: exit 1, the file unchanged', (t) => {
  const dir = freshDir(t);
  const file = path.join(dir, 'fork.yaml');
  writeFileSync(file, 'destinations:\n  mine: { type: stdout }\n');
  const r = forkd(dir, 'init');
  assert.equal(r.status, 1);
  assert.equal(r.stderr, 'forkd init: fork.yaml already exists; left as it is (`forkd init --force` replaces it)\n');
  assert.equal(readFileSync(file, 'utf8'), 'destinations:\n  mine: { type: stdout }\n');
});

test('--force replaces fork.yaml; the .gitignore line is never added twice', (t) => {
  const dir = freshDir(t);
  const file = path.join(dir, 'fork.yaml');
  const ignore = path.join(dir, '.gitignore');
  writeFileSync(file, 'destinations:\n  mine: { type: stdout }\n');
  writeFileSync(ignore, 'node_modules');  // no final newline
  let r = forkd(dir, 'init', '--force');
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /^Replaced fork\.yaml: /);
  assert.match(readFileSync(file, 'utf8'), /^# fork\.yaml: where forkd sends/);
  assert.equal(readFileSync(ignore, 'utf8'), 'node_modules\n.fork/\n');
  r = forkd(dir, 'init', '--force');
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /^Kept \.fork\/ in \.gitignore \(already there\)\.$/m);
  assert.equal(readFileSync(ignore, 'utf8'), 'node_modules\n.fork/\n');
  // Other spellings of the same rule count too.
  for (const line of ['/.fork', '.fork', '/.fork/  ']) {
    writeFileSync(ignore, `node_modules/\n${line}\n`);
    assert.equal(forkd(dir, 'init', '--force').status, 0);
    assert.equal(readFileSync(ignore, 'utf8'), `node_modules/\n${line}\n`, `kept as it was with ${JSON.stringify(line)}`);
  }
});

test('init --config PATH writes there, with the .gitignore beside it, and says where the socket will be', (t) => {
  const dir = freshDir(t);
  mkdirSync(path.join(dir, 'ops'));
  const r = forkd(dir, 'init', '--config', 'ops/fork.yaml');
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /^ {2}npx forkd run --config ops\/fork\.yaml$/m);
  assert.ok(r.stdout.includes(`FORK_ENDPOINT=ipc://${path.join(dir, 'ops', '.fork', 'fork.sock')}`), r.stdout);
  assert.equal(readFileSync(path.join(dir, 'ops', '.gitignore'), 'utf8'), '.fork/\n');
  assert.equal(forkd(dir, 'check', '--config', 'ops/fork.yaml').status, 0);
});

test('without --config and without ./fork.yaml, the commands say so and suggest npx forkd init', (t) => {
  const dir = freshDir(t);
  const commands = [
    ['run'],
    ['check'],
    ['explain', '--payload', '{}'],
    ['test', 'cases.yaml'],
    ['dlq', 'list', '--destination', 'logs'],
    ['cursors', 'list'],
  ];
  for (const args of commands) {
    const r = forkd(dir, ...args);
    assert.equal(r.status, 2, `${args[0]}: ${r.stderr}`);
    assert.equal(
      r.stderr,
      `forkd ${args[0]}: no --config given, and there is no fork.yaml in ${dir}: create one with \`npx forkd init\`, or pass --config FILE\n`,
    );
  }
  // And with ./fork.yaml there, they read it.
  assert.equal(forkd(dir, 'init').status, 0);
  const explain = forkd(dir, 'explain', '--payload', '{"event":"purchase","orderId":"o-1","amount":1}');
  assert.equal(explain.status, 0, explain.stderr);
  assert.deepEqual(Object.keys(JSON.parse(explain.stdout)).sort(), ['logs', 'production']);
});

// As root, permissions do not stop a write: the command runs as nobody.
function asUnprivileged(dir, ...args) {
  if (process.getuid() !== 0) return spawnSync(FORKD, args, { cwd: dir, encoding: 'utf8' });
  chmodSync(path.dirname(dir), 0o755);
  return spawnSync('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', FORKD, ...args], { cwd: dir, encoding: 'utf8' });
}

test('hostile: init into a directory it cannot write fails with a clear error and writes nothing', (t) => {
  const parent = freshDir(t);
  const dir = path.join(parent, 'readonly');
  mkdirSync(dir);
  chmodSync(dir, 0o555);
  const r = asUnprivileged(dir, 'init');
  assert.equal(r.status, 1, r.stderr);
  assert.equal(r.stdout, '');
  assert.equal(r.stderr, `forkd init: cannot write fork.yaml (in ${dir}): Permission denied\n`);
  assert.deepEqual(spawnSync('ls', ['-A', dir], { encoding: 'utf8' }).stdout, '');
});

test('hostile: a parent directory that does not exist, or a .gitignore that is a directory, is a clear error', (t) => {
  const dir = freshDir(t);
  let r = forkd(dir, 'init', '--config', 'missing/fork.yaml');
  assert.equal(r.status, 1);
  assert.equal(r.stderr, 'forkd init: cannot write missing/fork.yaml (in missing): No such file or directory\n');

  mkdirSync(path.join(dir, '.gitignore'));
  r = forkd(dir, 'init');
  assert.equal(r.status, 1);
  assert.match(r.stderr, /^forkd init: cannot add \.fork\/ to \.gitignore: Is a directory \(add it by hand/);
});

test('a config named fork.yaml that is a directory is not replaced, even with --force', (t) => {
  const dir = freshDir(t);
  mkdirSync(path.join(dir, 'fork.yaml'));
  const r = forkd(dir, 'init', '--force');
  assert.equal(r.status, 1);
  assert.equal(r.stderr, 'forkd init: fork.yaml is a directory\n');
});
