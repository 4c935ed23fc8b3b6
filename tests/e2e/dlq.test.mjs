// Dead letters from the command line and the admin API: list, show, replay
// after a fix (the records go back in line, with their ids, and leave the
// dead letters), drop, survival across restarts, and what each entry point
// says to wrong input.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { execFile } from 'node:child_process';
import { readFileSync, writeFileSync, rmSync, existsSync } from 'node:fs';
import { createClient } from '../../js/index.mjs';
import { startForkd, tempConfig, endpointFor, readJsonl, FORKD } from './helpers.mjs';

async function freePort() {
  return new Promise((resolve) => {
    const srv = net.createServer();
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

// Runs forkd with args; resolves { code, stdout, stderr } (never rejects).
function forkdCli(args) {
  return new Promise((resolve) => {
    execFile(FORKD, args, { timeout: 30000 }, (err, stdout, stderr) => {
      resolve({ code: err ? (err.code ?? 1) : 0, stdout, stderr });
    });
  });
}

async function until(pred, ms = 10000, what = 'condition') {
  const t0 = Date.now();
  while (!(await pred())) {
    if (Date.now() - t0 > ms) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const configFor = (port, required) => `admin: 127.0.0.1:${port}
destinations:
  checked:
    type: file
    path: ./out.jsonl
    transforms:
      - validate: { required: [${required}], on_fail: dead_letter }
  other: { type: file, path: ./other.jsonl }
`;

let dir, config, port, forkd;
const dlqPath = () => `${dir}/.fork/dead_letters/checked.jsonl`;
const letters = () => (existsSync(dlqPath()) ? readJsonl(dlqPath()) : []);

before(async () => {
  port = await freePort();
  ({ dir, config } = tempConfig(configFor(port, 'total')));
  forkd = await startForkd(config);
  const c = createClient({ endpoint: endpointFor(dir) });
  // Even ones lack `total`: refused by validate, to dead letters, and their
  // calls reject.
  for (let i = 0; i < 10; i++) {
    const payload = i % 2 ? { total: i, n: i } : { n: i, card: 'x'.repeat(i) };
    const call = c.routeData(payload, 'checked', { idempotencyKey: `k${i}`, ack: 'delivered' });
    if (i % 2) {
      await call;
    } else {
      await assert.rejects(call, (err) => err.code === 'FORK_REJECTED' && err.outcomes.checked === 'dead_letter');
    }
  }
  await c.close();
  await until(() => letters().length === 5, 10000, '5 dead letters');
});

after(async () => {
  await forkd?.stop();
  rmSync(dir, { recursive: true, force: true });
});

test('list shows each dead letter with its reason; show prints the stored lines', async () => {
  const list = await forkdCli(['dlq', 'list', '--config', config, '--destination', 'checked']);
  assert.equal(list.code, 0, list.stderr);
  for (const id of ['k0', 'k2', 'k4', 'k6', 'k8']) assert.match(list.stdout, new RegExp(`\\b${id}\\b`));
  assert.doesNotMatch(list.stdout, /\bk1\b/);
  assert.match(list.stdout, /validate: total: required field is missing/);
  assert.match(list.stdout, /^5 dead letters of checked$/m);

  const show = await forkdCli(['dlq', 'show', '--config', config, '-d', 'checked', '--id', 'k4']);
  assert.equal(show.code, 0, show.stderr);
  const lines = show.stdout.trim().split('\n');
  assert.equal(lines.length, 1);
  const l = JSON.parse(lines[0]);
  assert.equal(l._fork_id, 'k4');
  assert.equal(l.destination, 'checked');
  assert.equal(l.attempts, 0);
  assert.deepEqual(l.payload, { n: 4, card: 'xxxx' });
  assert.ok(l.raw.length > 0);

  const json = await forkdCli(['dlq', 'list', '--config', config, '-d', 'checked', '--json']);
  assert.equal(json.stdout.trim().split('\n').length, 5);
  const metrics = await (await fetch(`http://127.0.0.1:${port}/metrics`, { signal: AbortSignal.timeout(5000) })).text();
  assert.match(metrics, /^fork_destination_failed_total\{destination="checked",stage="transform"\} 5$/m);
  assert.match(metrics, /^fork_destination_failed_total\{destination="checked",stage="send"\} 0$/m);
  assert.match(metrics, /^fork_destination_dead_lettered_total\{destination="checked"\} 5$/m);
});

test('wrong input: unknown destination or id, bad action, missing options', async () => {
  const unknown = await forkdCli(['dlq', 'list', '--config', config, '-d', 'nope']);
  assert.equal(unknown.code, 2);
  assert.match(unknown.stderr, /unknown destination 'nope' \(configured: checked, other\)/);
  const noId = await forkdCli(['dlq', 'show', '--config', config, '-d', 'checked', '--id', 'zzz']);
  assert.equal(noId.code, 1);
  assert.match(noId.stderr, /no dead letter of checked has the id\(s\) given/);
  const badAction = await forkdCli(['dlq', 'purge', '--config', config, '-d', 'checked']);
  assert.notEqual(badAction.code, 0);
  assert.match(badAction.stderr, /purge/);
  const noDest = await forkdCli(['dlq', 'list', '--config', config]);
  assert.notEqual(noDest.code, 0);
  assert.match(noDest.stderr, /destination/i);
  const replayNoId = await forkdCli(['dlq', 'replay', '--config', config, '-d', 'checked', '--id', 'zzz']);
  assert.equal(replayNoId.code, 2);
  assert.match(replayNoId.stdout, /no dead letter of checked has the id/);
  assert.equal(letters().length, 5, 'nothing changed');
});

test('the admin API refuses bad dlq requests with a JSON error', async () => {
  const post = (q) =>
    fetch(`http://127.0.0.1:${port}/api/dlq/${q}`, { method: 'POST', signal: AbortSignal.timeout(5000) });
  let r = await post('replay');
  assert.equal(r.status, 400);
  assert.match((await r.json()).error, /destination is required/);
  r = await post('replay?destination=../../etc');
  assert.equal(r.status, 404);
  assert.match((await r.json()).error, /unknown destination/);
  r = await post('explode?destination=checked');
  assert.equal(r.status, 405);
  r = await fetch(`http://127.0.0.1:${port}/api/dlq/replay?destination=checked`, { signal: AbortSignal.timeout(5000) });
  assert.equal(r.status, 404, 'GET does not replay');
  assert.equal(letters().length, 5);
});

test('after a fix, replay puts the records back in line with their ids', async () => {
  // The fix: the rule was wrong; now `n` is what is required.
  writeFileSync(config, configFor(port, 'n'));
  forkd.proc.kill('SIGHUP');
  await until(() => forkd.stderr().includes('reload: done'), 10000, 'the reload');
  const one = await forkdCli(['dlq', 'replay', '--config', config, '-d', 'checked', '--id', 'k2']);
  assert.equal(one.code, 0, one.stderr + one.stdout);
  assert.deepEqual(JSON.parse(one.stdout), {
    destination: 'checked', replayed: 1, not_replayable: 0, unreadable: 0, invalid: 0, errors: [],
  });
  await until(() => readJsonl(`${dir}/out.jsonl`).some((r) => r._fork_id === 'k2'), 10000, 'k2 delivered');
  assert.deepEqual(letters().map((l) => l._fork_id).sort(), ['k0', 'k4', 'k6', 'k8']);

  const rest = await forkdCli(['dlq', 'replay', '--config', config, '-d', 'checked']);
  assert.equal(rest.code, 0, rest.stderr);
  assert.equal(JSON.parse(rest.stdout).replayed, 4);
  await until(() => readJsonl(`${dir}/out.jsonl`).length === 10, 10000, 'all 10 delivered');
  const out = readJsonl(`${dir}/out.jsonl`);
  assert.deepEqual(out.map((r) => r._fork_id).sort(), ['k0', 'k1', 'k2', 'k3', 'k4', 'k5', 'k6', 'k7', 'k8', 'k9']);
  const k4 = out.find((r) => r._fork_id === 'k4');
  assert.deepEqual(k4, { _fork_id: 'k4', n: 4, card: 'xxxx' }, 'the replayed payload is the original');
  assert.equal(letters().length, 0);
  assert.ok(!existsSync(`${dir}/other.jsonl`) || readJsonl(`${dir}/other.jsonl`).length === 0,
    'a replay goes to its destination only');
});

test('dead letters survive a restart; drop works with forkd stopped; replay then says it needs forkd', async () => {
  // New letters under the fixed rule: events without n.
  const c = createClient({ endpoint: endpointFor(dir) });
  for (let i = 0; i < 3; i++) {
    await assert.rejects(c.routeData({ total: i }, 'checked', { idempotencyKey: `m${i}`, ack: 'delivered' }), {
      code: 'FORK_REJECTED',
      destination: 'checked',
    });
  }
  await c.close();
  await until(() => letters().length === 3, 10000, '3 new dead letters');
  assert.equal((await forkd.stop()).code, 0);
  forkd = await startForkd(config);
  let list = await forkdCli(['dlq', 'list', '--config', config, '-d', 'checked']);
  assert.match(list.stdout, /^3 dead letters of checked$/m);
  assert.equal((await forkd.stop()).code, 0);
  forkd = null;

  const replay = await forkdCli(['dlq', 'replay', '--config', config, '-d', 'checked']);
  assert.equal(replay.code, 1);
  assert.match(replay.stderr, /forkd is not answering on 127\.0\.0\.1:\d+ .*start it/);
  const drop = await forkdCli(['dlq', 'drop', '--config', config, '-d', 'checked', '--id', 'm1']);
  assert.equal(drop.code, 0, drop.stderr);
  assert.match(drop.stdout, /dropped 1 dead letters of checked/);
  list = await forkdCli(['dlq', 'list', '--config', config, '-d', 'checked']);
  assert.match(list.stdout, /^2 dead letters of checked$/m);
  assert.doesNotMatch(list.stdout, /\bm1\b/);
});

test('replay without an admin address says what to set', async () => {
  const noAdmin = `${dir}/no-admin.yaml`;
  writeFileSync(noAdmin, readFileSync(config, 'utf8').replace(/^admin:.*$/m, 'data_dir: ./.fork'));
  const r = await forkdCli(['dlq', 'replay', '--config', noAdmin, '-d', 'checked']);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /set `admin: 127\.0\.0\.1:PORT`/);
});
