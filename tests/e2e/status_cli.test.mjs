// `forkd status`: the running forkd's /api/status as a table (or --json),
// exit 2 with a clear message when there is no forkd to ask.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { rmSync, writeFileSync } from 'node:fs';
import { createClient } from '../../js/index.mjs';
import { startForkd, tempConfig, endpointFor, freePort, FORKD } from './helpers.mjs';
import { startHttpTarget } from './fixtures/http_target.mjs';

let dir, forkd, target, port;

const cli = (args, opts = {}) => spawnSync(FORKD, ['status', ...args], { encoding: 'utf8', timeout: 10000, ...opts });
const status = async () =>
  (await fetch(`http://127.0.0.1:${port}/api/status`, { signal: AbortSignal.timeout(5000) })).json();

// The table's rows by destination: cells are two or more blanks apart.
function rows(stdout) {
  const lines = stdout.split('\n');
  const head = lines.findIndex((l) => l.startsWith('DESTINATION'));
  assert.ok(head >= 0, stdout);
  const cols = lines[head].split(/ {2,}/);
  const out = {};
  for (const l of lines.slice(head + 1)) {
    if (l.trim() === '') break;
    const cells = l.split(/ {2,}/);
    out[cells[0]] = Object.fromEntries(cols.map((c, i) => [c, cells[i] ?? '']));
  }
  return out;
}

before(async () => {
  target = await startHttpTarget();
  target.status(500);
  port = await freePort();
  ({ dir } = tempConfig(
    `admin: 127.0.0.1:${port}\n` +
      'destinations:\n' +
      `  hook: { type: http, url: "${target.url}", retry: { initial: 50ms, max: 300ms }, breaker: { failures: 0 } }\n` +
      '  logs: { type: file, path: ./logs.jsonl }\n',
  ));
  forkd = await startForkd(`${dir}/fork.yaml`);
  const c = createClient({ endpoint: endpointFor(dir) });
  await Promise.all(Array.from({ length: 50 }, (_, i) => c.routeData({ i }, ['hook', 'logs'])));
  await c.close();
  const deadline = Date.now() + 10000;
  for (;;) {
    const s = await status();
    const [hook, logs] = s.destinations;
    if (hook.lag_events === 50 && hook.failed > 0 && logs.delivered === 50 && logs.lag_events === 0) break;
    assert.ok(Date.now() < deadline, `not settled: ${JSON.stringify(s)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
});
after(async () => {
  await forkd?.stop();
  await target?.close();
  rmSync(dir, { recursive: true, force: true });
});

test('the table shows the instance and each destination with its state and numbers', () => {
  const r = cli(['--config', `${dir}/fork.yaml`]);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /^instance +\S+$/m);
  assert.match(r.stdout, /^version +\d+\.\d+\.\d+/m);
  assert.match(r.stdout, /^uptime +\d+s$/m);
  assert.match(r.stdout, new RegExp(`^listen +ipc://${dir}/\\.fork/fork\\.sock$`, 'm'));
  assert.match(r.stdout, /^accepted +50 events$/m);
  const t = rows(r.stdout);
  assert.deepEqual(Object.keys(t), ['hook', 'logs']);
  assert.equal(t.hook.TYPE, 'http');
  assert.equal(t.hook.STATE, 'retrying');
  assert.equal(t.hook.DELIVERED, '0');
  assert.equal(t.hook.PENDING, '50');
  assert.ok(Number(t.hook['LAG (S)']) > 0, t.hook['LAG (S)']);
  assert.equal(t.hook['DEAD LETTERS'], '0');
  assert.match(t.hook['LAST ERROR'], /^http 500 from /);
  assert.ok([...t.hook['LAST ERROR']].length <= 60);
  assert.deepEqual(
    { ...t.logs },
    { DESTINATION: 'logs', TYPE: 'file', STATE: 'running', DELIVERED: '50', PENDING: '0', 'LAG (S)': '0.0', 'DEAD LETTERS': '0', 'LAST ERROR': '' },
  );
});

test('./fork.yaml by default; --json prints the status JSON', () => {
  const r = cli(['--json'], { cwd: dir });
  assert.equal(r.status, 0, r.stderr);
  const s = JSON.parse(r.stdout);
  assert.equal(s.listen, `ipc://${dir}/.fork/fork.sock`);
  assert.deepEqual(s.destinations.map((d) => d.name), ['hook', 'logs']);
  assert.equal(s.destinations[0].lag_events, 50);
  assert.equal(s.destinations[0].state, 'failing');
});

test('a config that cannot be read is named; one without an admin server says how to turn it on', () => {
  let r = cli(['--config', `${dir}/missing.yaml`]);
  assert.equal(r.status, 2);
  assert.match(r.stderr, new RegExp(`${dir}/missing\\.yaml: cannot read the file`));
  writeFileSync(`${dir}/noadmin.yaml`, 'destinations:\n  out: { type: stdout }\n');
  r = cli(['--config', `${dir}/noadmin.yaml`]);
  assert.equal(r.status, 2);
  assert.match(r.stderr, /admin server is off in .*noadmin\.yaml/);
  assert.match(r.stderr, /add `admin: 127\.0\.0\.1:8787`/);
  assert.equal(r.stdout, '');
});

test('with forkd stopped: exit 2, saying it is not running', async () => {
  assert.equal((await forkd.stop()).code, 0);
  const r = cli(['--config', `${dir}/fork.yaml`]);
  assert.equal(r.status, 2);
  assert.match(r.stderr, /forkd is not running/);
  assert.match(r.stderr, new RegExp(`127\\.0\\.0\\.1:${port}`));
  assert.equal(r.stdout, '');
});
