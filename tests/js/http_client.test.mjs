// The HTTP client (createClient({ httpEndpoint, token }), and the edge build
// under the edge-light condition) against a real forkd's HTTP ingest: the
// same receipts, errors, fields and deadlines as the addon's client talking
// to the same forkd.
import assert from 'node:assert/strict';
import { test, before, after } from 'node:test';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ForkError, createClient } from 'fork-router';
import { startForkd, tempConfig } from '../../scripts/lib/forkd.mjs';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const TOKEN = 'http-client-test-token-0123456789';

async function freePort() {
  return new Promise((resolve) => {
    const srv = net.createServer();
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

let dir, forkd, httpEndpoint, http, addon;

// The records of the file destination; an unterminated last line is a write
// still in progress, not a record yet.
const read = (name) => {
  const p = path.join(dir, 'out', `${name}.jsonl`);
  if (!existsSync(p)) return [];
  const text = readFileSync(p, 'utf8');
  return text.slice(0, text.lastIndexOf('\n') + 1).split('\n').filter(Boolean).map((l) => JSON.parse(l));
};

before(async () => {
  const port = await freePort();
  const closed = await freePort();
  httpEndpoint = `http://127.0.0.1:${port}`;
  let config;
  ({ dir, config } = tempConfig(
    `
data_dir: ./.fork
http_ingest: { listen: 127.0.0.1:${port}, token: ${TOKEN} }
dedupe: { window: 1h }
destinations:
  logs: { type: file, path: ./out/logs.jsonl, batch: { max_wait: 10ms } }
  checked:
    type: file
    path: ./out/checked.jsonl
    batch: { max_wait: 10ms }
    transforms:
      - validate: { required: [total], on_fail: dead_letter }
  stuck: { type: http, url: "http://127.0.0.1:${closed}/x", connect_timeout: 1s, retry: { initial: 1s, max: 1s } }
routes:
  - { when: 'event == "purchase"', to: [logs] }
`,
    'fork-http-client-',
  ));
  forkd = await startForkd(config);
  http = createClient({ httpEndpoint, token: TOKEN, timeoutMs: 5000 });
  addon = createClient({ endpoint: `ipc://${dir}/.fork/fork.sock`, timeoutMs: 5000 });
});

after(async () => {
  await http?.close(0);
  await addon?.close(0);
  if (forkd) assert.equal((await forkd.stop()).code, 0, forkd.stderr());
  rmSync(dir, { recursive: true, force: true });
});

const settle = (p) => p.then((value) => ({ value }), (error) => ({ error }));
// What a caller can see of an error.
const shape = (e) => ({
  isForkError: e instanceof ForkError,
  name: e.name,
  code: e.code,
  message: e.message,
  path: e.path,
  option: e.option,
  destination: e.destination,
  reason: e.reason,
  outcomes: e.outcomes,
});

test('receipts: the same shape as the addon\'s, and the event is in the store', async () => {
  const viaHttp = await http.routeData({ n: 1, when: new Date(0) }, 'logs');
  const viaAddon = await addon.routeData({ n: 2 }, 'logs');
  assert.deepEqual(Object.keys(viaHttp).sort(), Object.keys(viaAddon).sort());
  assert.match(viaHttp.id, /^[0-9a-f]{32}-\d+$/);
  assert.equal(viaHttp.ack, 'accepted');
  assert.deepEqual(viaHttp.destinations, ['logs']);
  const routed = await http.routeData({ event: 'purchase' });
  assert.deepEqual(routed.destinations, ['logs'], 'the routes chose, as the addon reports');
  const delivered = await http.routeData({ n: 3 }, ['logs'], { ack: 'delivered' });
  assert.deepEqual(delivered.outcomes, { logs: 'delivered' });
  assert.ok(read('logs').some((r) => r._fork_id === delivered.id));
  // Dates travel as JSON does: ISO strings.
  assert.equal(read('logs').find((r) => r._fork_id === viaHttp.id).when, '1970-01-01T00:00:00.000Z');
});

test('bad arguments: the same ForkError (code, message, path/option/destination) as the addon, without a request', async () => {
  const calls = [
    [null, 'logs'],
    [{ a: 1 }, ''],
    [{ a: 1 }, []],
    [{ a: 1 }, ['logs', 7]],
    [{ a: 1 }, 'logs', { ack: 'soon' }],
    [{ a: 1 }, 'logs', { timeoutMs: -1 }],
    [{ a: 1 }, 'logs', { bogus: 1 }],
    [{ a: 1 }, 'logs', { idempotencyKey: 'é'.repeat(129) }],
    [{ a: 1 }, 'logs', { timestamp: { format: 'unix' } }],
  ];
  const sentBefore = http.stats().sent;
  for (const args of calls) {
    const h = await settle(http.routeData(...args));
    const a = await settle(addon.routeData(...args));
    assert.ok(h.error && a.error, JSON.stringify(args));
    assert.deepEqual(shape(h.error), shape(a.error), JSON.stringify(args));
  }
  assert.equal(http.stats().sent, sentBefore, 'no request was sent for a bad call');
});

test("forkd's refusals: unknown destination and a 'delivered' call a destination dead-letters match the addon's errors", async () => {
  const h = await settle(http.routeData({ a: 1 }, ['logs', 'nope']));
  const a = await settle(addon.routeData({ a: 1 }, ['logs', 'nope']));
  assert.deepEqual(shape(h.error), shape(a.error));
  assert.equal(h.error.code, 'FORK_UNKNOWN_DESTINATION');
  assert.equal(h.error.destination, 'nope');

  const hr = await settle(http.routeData({ n: 1 }, ['logs', 'checked'], { ack: 'delivered' }));
  const ar = await settle(addon.routeData({ n: 1 }, ['logs', 'checked'], { ack: 'delivered' }));
  assert.deepEqual(shape(hr.error), shape(ar.error));
  assert.equal(hr.error.code, 'FORK_REJECTED');
  assert.deepEqual(hr.error.outcomes, { logs: 'delivered', checked: 'dead_letter' });
  assert.match(hr.error.id, /^[0-9a-f]{32}-\d+$/);
});

test('idempotencyKey: the HTTP client and the addon dedupe against each other', async () => {
  const a = await http.routeData({ v: 'http' }, 'logs', { idempotencyKey: 'shared-key' });
  const b = await addon.routeData({ v: 'addon' }, 'logs', { idempotencyKey: 'shared-key' });
  const c = await http.routeData({ v: 'again' }, 'logs', { idempotencyKey: 'shared-key', ack: 'delivered' });
  assert.deepEqual([a.id, b.id, c.id], ['shared-key', 'shared-key', 'shared-key']);
  assert.deepEqual(read('logs').filter((r) => r._fork_id === 'shared-key'), [{ _fork_id: 'shared-key', v: 'http' }]);
});

test("deadlines: timeoutMs bounds the call; 'delivered' to a destination that never takes it rejects FORK_TIMEOUT in time", async () => {
  const t0 = Date.now();
  const r = await settle(http.routeData({ a: 1 }, 'stuck', { ack: 'delivered', timeoutMs: 400 }));
  const ms = Date.now() - t0;
  assert.equal(r.error?.code, 'FORK_TIMEOUT', String(r.error));
  assert.match(r.error.message, /within 400 ms/);
  // Upper bound: catches a hang, with room for a loaded host.
  assert.ok(ms >= 380 && ms < 5000, `settled after ${ms} ms`);
});

test('the token: none or a wrong one is refused by forkd with the reason; nothing listening is FORK_UNAVAILABLE naming the URL', async () => {
  const noToken = createClient({ httpEndpoint });
  const e1 = (await settle(noToken.routeData({ a: 1 }, 'logs'))).error;
  assert.equal(e1.code, 'FORK_REJECTED');
  assert.match(e1.message, /Authorization: Bearer/);
  const wrong = createClient({ httpEndpoint, token: 'wrong-token-wrong-token' });
  const e2 = (await settle(wrong.routeData({ a: 1 }, 'logs'))).error;
  assert.equal(e2.code, 'FORK_REJECTED');
  assert.equal(e2.message, 'wrong ingest token');
  const nobody = createClient({ httpEndpoint: `http://127.0.0.1:${await freePort()}`, token: TOKEN });
  const e3 = (await settle(nobody.routeData({ a: 1 }, 'logs'))).error;
  assert.equal(e3.code, 'FORK_UNAVAILABLE');
  assert.match(e3.message, /forkd is not reachable at http:\/\/127\.0\.0\.1:\d+\/v1\/events \(HTTP ingest\)/);
  await Promise.all([noToken.close(), wrong.close(), nobody.close()]);
});

test('options: a bad httpEndpoint, and ZeroMQ options beside httpEndpoint, are refused with the option named', () => {
  assert.throws(() => createClient({ httpEndpoint: 'ipc:///x.sock' }), (e) => e.code === 'FORK_INVALID_PAYLOAD' && e.option === 'httpEndpoint');
  assert.throws(() => createClient({ httpEndpoint, curveServerKey: 'x' }), (e) => e.option === 'curveServerKey');
  assert.throws(() => createClient({ endpoint: 'ipc:///x.sock', token: TOKEN }), (e) => e.option === 'token');
});

test('close: calls in flight settle first, later calls reject FORK_CLOSED', async () => {
  const c = createClient({ httpEndpoint, token: TOKEN });
  const p = c.routeData({ closing: 1 }, 'logs');
  await c.close();
  assert.equal((await p).ack, 'accepted');
  assert.equal((await settle(c.routeData({ a: 1 }, 'logs'))).error.code, 'FORK_CLOSED');
});

test('the edge build (edge-light condition): the default client reads FORK_HTTP_ENDPOINT and FORK_INGEST_TOKEN', () => {
  const r = spawnSync(
    process.execPath,
    [
      '--conditions=edge-light',
      '--input-type=module',
      '-e',
      `import { routeData } from 'fork-router';
       const receipt = await routeData({ edge: true }, 'logs', { ack: 'delivered' });
       console.log(JSON.stringify(receipt));`,
    ],
    { cwd: ROOT, encoding: 'utf8', timeout: 20000, env: { ...process.env, FORK_HTTP_ENDPOINT: httpEndpoint, FORK_INGEST_TOKEN: TOKEN } },
  );
  assert.equal(r.status, 0, r.stderr);
  const receipt = JSON.parse(r.stdout.trim());
  assert.equal(receipt.ack, 'delivered');
  assert.deepEqual(receipt.outcomes, { logs: 'delivered' });
  assert.ok(read('logs').some((x) => x._fork_id === receipt.id && x.edge === true));
});
