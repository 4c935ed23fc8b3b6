// Who may use the admin server, over real HTTP to real forkd processes: the
// bearer token on state-changing endpoints (401 without, 403 wrong, 200
// right), cross-origin POSTs refused even with the token, foreign Host
// headers refused on loopback (DNS rebinding), read-only endpoints open on
// loopback, POSTs without a token only from non-browser clients, a
// non-loopback admin without a token refused by `forkd check`, and the CLI
// (`forkd dlq replay`, `forkd cursors drop`) sending the token from
// FORK_ADMIN_TOKEN.
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import { execFile } from 'node:child_process';
import { existsSync, rmSync, writeFileSync } from 'node:fs';
import { createClient } from '../../js/index.mjs';
import { startForkd, tempConfig, endpointFor, readJsonl, FORKD } from './helpers.mjs';

const TOKEN = 'e2e-admin-token-0123456789abcdef';

async function freePort() {
  return new Promise((resolve) => {
    const srv = net.createServer();
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

// One HTTP request with exactly the headers given (node:http lets a test set
// Host, which fetch does not). Resolves { status, headers, body }.
function request(port, path, { method = 'GET', headers = {} } = {}) {
  return new Promise((resolve, reject) => {
    const req = http.request(
      { host: '127.0.0.1', port, path, method, headers: { 'content-length': '0', ...headers }, timeout: 5000 },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (d) => (body += d));
        res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body }));
      },
    );
    req.on('timeout', () => req.destroy(new Error(`${method} ${path}: no answer in 5 s`)));
    req.on('error', reject);
    req.end();
  });
}

// Runs forkd with args; resolves { code, stdout, stderr } (never rejects).
function forkdCli(args, env = {}) {
  return new Promise((resolve) => {
    const clean = { ...process.env };
    delete clean.FORK_ADMIN_TOKEN;
    execFile(FORKD, args, { timeout: 30000, env: { ...clean, ...env } }, (err, stdout, stderr) => {
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

// `checked` dead-letters every event without `total`.
const destinations = `destinations:
  checked:
    type: file
    path: ./out.jsonl
    transforms:
      - validate: { required: [total], on_fail: dead_letter }
`;

// Starts forkd with `admin` and puts n events into checked's dead letters.
async function withDeadLetters(admin, env, n) {
  const ctx = tempConfig(`${admin}\n${destinations}`);
  const forkd = await startForkd(ctx.config, { env });
  try {
    const c = createClient({ endpoint: endpointFor(ctx.dir) });
    // 'delivered' settles once each is in dead letters: it rejects, naming why.
    for (let i = 0; i < n; i++) {
      await assert.rejects(c.routeData({ n: i }, 'checked', { idempotencyKey: `k${i}`, ack: 'delivered' }), {
        code: 'FORK_REJECTED',
        reason: /validate: total: required field is missing/,
      });
    }
    await c.close();
    const dlq = `${ctx.dir}/.fork/dead_letters/checked.jsonl`;
    const letters = () => (existsSync(dlq) ? readJsonl(dlq).map((l) => l._fork_id).sort() : []);
    await until(() => letters().length === n, 10000, `${n} dead letters`);
    return { ...ctx, forkd, letters };
  } catch (e) {
    await forkd.stop('SIGKILL'); // a failed setup leaves no forkd behind to hold the run open
    throw e;
  }
}

describe('loopback admin with a token (from FORK_ADMIN_TOKEN)', () => {
  let ctx, port, host;
  const drop = (id, headers) =>
    request(port, `/api/dlq/drop?destination=checked&id=${id}`, { method: 'POST', headers: { host, ...headers } });

  before(async () => {
    port = await freePort();
    host = `127.0.0.1:${port}`;
    ctx = await withDeadLetters(`admin: 127.0.0.1:${port}`, { FORK_ADMIN_TOKEN: TOKEN }, 6);
  });
  after(async () => {
    assert.equal((await ctx.forkd.stop()).code, 0);
    assert.doesNotMatch(ctx.forkd.stderr(), new RegExp(TOKEN), 'the token is never logged');
    rmSync(ctx.dir, { recursive: true, force: true });
  });

  test('a POST without a token: 401 with WWW-Authenticate: Bearer; nothing dropped', async () => {
    for (const path of ['/api/dlq/drop?destination=checked', '/api/dlq/replay?destination=checked',
      '/api/cursors/drop?destination=gone', '/api/replay?destination=checked&since=1h']) {
      const r = await request(port, path, { method: 'POST', headers: { host } });
      assert.equal(r.status, 401, path);
      assert.match(r.headers['www-authenticate'], /^Bearer\b/);
      assert.match(JSON.parse(r.body).error, /Authorization: Bearer <token>/);
    }
    assert.equal(ctx.letters().length, 6);
    // Refusals are logged (at most one line a second), without any token.
    assert.match(ctx.forkd.stderr(), /warn.* admin: refused POST \/api\/dlq\/drop from 127\.0\.0\.1 \(401\)/);
  });

  test('a wrong token: 403; nothing dropped', async () => {
    for (const auth of [`Bearer ${TOKEN}x`, `Bearer ${TOKEN.slice(0, -1)}`, 'Bearer ', `Basic ${TOKEN}`]) {
      const r = await drop('k0', { authorization: auth });
      assert.equal(r.status, 403, auth);
      assert.equal(r.headers['www-authenticate'], undefined);
    }
    assert.equal(ctx.letters().length, 6);
  });

  test('the right token: 200, and the dead letter is dropped', async () => {
    const r = await drop('k0', { authorization: `Bearer ${TOKEN}` });
    assert.equal(r.status, 200, r.body);
    assert.equal(JSON.parse(r.body).dropped, 1);
    assert.deepEqual(ctx.letters(), ['k1', 'k2', 'k3', 'k4', 'k5']);
    // A page this server served (same origin) may use it too.
    const same = await drop('k1', { authorization: `Bearer ${TOKEN}`, origin: `http://${host}` });
    assert.equal(same.status, 200, same.body);
    assert.deepEqual(ctx.letters(), ['k2', 'k3', 'k4', 'k5']);
  });

  test('cross-origin with the right token: 403, nothing dropped', async () => {
    for (const origin of ['http://evil.example', `http://localhost:${port + 1}`, 'null']) {
      const r = await drop('k2', { authorization: `Bearer ${TOKEN}`, origin });
      assert.equal(r.status, 403, origin);
      assert.match(JSON.parse(r.body).error, /^cross-origin request refused/);
    }
    assert.equal(ctx.letters().length, 4);
  });

  test('a foreign Host (DNS rebinding) is refused on every endpoint, read-only ones too', async () => {
    for (const path of ['/', '/healthz', '/readyz', '/metrics', '/api/status']) {
      const r = await request(port, path, { headers: { host: `rebound.example:${port}` } });
      assert.equal(r.status, 403, path);
      assert.match(JSON.parse(r.body).error, /DNS rebinding/);
      assert.doesNotMatch(r.body, /checked/, 'no status leaks');
    }
    const r = await drop('k2', { host: `rebound.example:${port}`, authorization: `Bearer ${TOKEN}`,
      origin: `http://rebound.example:${port}` });
    assert.equal(r.status, 403);
    assert.equal(ctx.letters().length, 4);
  });

  test('read-only endpoints stay open on loopback, without a token', async () => {
    for (const h of [host, `localhost:${port}`]) {
      for (const path of ['/', '/healthz', '/readyz', '/metrics', '/api/status']) {
        const r = await request(port, path, { headers: { host: h } });
        assert.equal(r.status, 200, `${h}${path}`);
      }
    }
    const s = JSON.parse((await request(port, '/api/status', { headers: { host } })).body);
    assert.equal(s.destinations[0].name, 'checked');
  });

  test('forkd dlq replay sends the token from FORK_ADMIN_TOKEN; without it, 401 and a hint', async () => {
    const without = await forkdCli(['dlq', 'replay', '--config', ctx.config, '-d', 'checked', '--id', 'k2']);
    assert.equal(without.code, 1);
    assert.match(without.stderr, /HTTP 401/);
    assert.match(without.stderr, /FORK_ADMIN_TOKEN/);
    const wrong = await forkdCli(['dlq', 'replay', '--config', ctx.config, '-d', 'checked', '--id', 'k2'],
      { FORK_ADMIN_TOKEN: `${TOKEN}-wrong` });
    assert.equal(wrong.code, 1);
    assert.match(wrong.stderr, /HTTP 403/);
    assert.equal(ctx.letters().length, 4);

    const r = await forkdCli(['dlq', 'replay', '--config', ctx.config, '-d', 'checked', '--id', 'k2'],
      { FORK_ADMIN_TOKEN: TOKEN });
    assert.equal(r.code, 0, r.stderr + r.stdout);
    assert.equal(JSON.parse(r.stdout).replayed, 1);
    // Still invalid, it went through the log and was dead-lettered again.
    const deadLettered = async () =>
      JSON.parse((await request(port, '/api/status', { headers: { host } })).body).destinations[0].dead_lettered;
    await until(async () => (await deadLettered()) === 7, 10000, 'k2 dead-lettered a second time');
    assert.deepEqual(ctx.letters(), ['k2', 'k3', 'k4', 'k5']);
  });

  test('forkd cursors drop sends the token too', async () => {
    // No cursor of `gone` exists: with the token the request gets as far as
    // saying so (404, exit 2); without it, it is stopped at the door.
    const without = await forkdCli(['cursors', 'drop', 'gone', '--config', ctx.config]);
    assert.equal(without.code, 1);
    assert.match(without.stderr, /HTTP 401/);
    const r = await forkdCli(['cursors', 'drop', 'gone', '--config', ctx.config], { FORK_ADMIN_TOKEN: TOKEN });
    assert.equal(r.code, 2, r.stderr + r.stdout);
    assert.match(JSON.parse(r.stdout).error, /no cursor of destination 'gone' holds the log/);
  });
});

describe('loopback admin without a token', () => {
  let ctx, port, host;
  before(async () => {
    port = await freePort();
    host = `127.0.0.1:${port}`;
    ctx = await withDeadLetters(`admin: 127.0.0.1:${port}`, { FORK_ADMIN_TOKEN: '' }, 3);
  });
  after(async () => {
    assert.equal((await ctx.forkd.stop()).code, 0);
    rmSync(ctx.dir, { recursive: true, force: true });
  });

  test('a POST from a web page of another origin is refused, saying how to set a token', async () => {
    const r = await request(port, '/api/dlq/drop?destination=checked', {
      method: 'POST', headers: { host, origin: 'http://evil.example' },
    });
    assert.equal(r.status, 403);
    assert.match(JSON.parse(r.body).error, /cross-origin request refused.*FORK_ADMIN_TOKEN/);
    const rebound = await request(port, '/api/dlq/drop?destination=checked', {
      method: 'POST', headers: { host: `rebound.example:${port}` },
    });
    assert.equal(rebound.status, 403);
    assert.equal(ctx.letters().length, 3);
  });

  test('a client that sends a token to a forkd without one is told so', async () => {
    const r = await request(port, '/api/dlq/drop?destination=checked', {
      method: 'POST', headers: { host, authorization: `Bearer ${TOKEN}` },
    });
    assert.equal(r.status, 403);
    assert.match(JSON.parse(r.body).error, /no admin token configured/);
    assert.equal(ctx.letters().length, 3);
  });

  test('a local client without Origin (curl, the CLI) may POST', async () => {
    const r = await request(port, '/api/dlq/drop?destination=checked&id=k0', { method: 'POST', headers: { host } });
    assert.equal(r.status, 200, r.body);
    assert.deepEqual(ctx.letters(), ['k1', 'k2']);
  });
});

describe('an admin listening beyond loopback', () => {
  test('without a token, forkd check exits 2 naming admin and the token; with token_file, 0', async () => {
    const { dir, config } = tempConfig(`admin: 0.0.0.0:8787\n${destinations}`);
    try {
      const r = await forkdCli(['check', '--config', config]);
      assert.equal(r.code, 2);
      assert.match(r.stderr, new RegExp(`^${config.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:1:8: admin: 0\\.0\\.0\\.0 is not a loopback address.*needs a token`, 'm'));
      const run = await forkdCli(['run', '--config', config]);
      assert.equal(run.code, 2, 'forkd run refuses it too');

      writeFileSync(`${dir}/admin.token`, `${TOKEN}\n`);
      writeFileSync(config, `admin:\n  listen: 0.0.0.0:8787\n  token_file: ./admin.token\n${destinations}`);
      const ok = await forkdCli(['check', '--config', config]);
      assert.equal(ok.code, 0, ok.stderr);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('Host may vary there; POSTs need the token', async () => {
    const port = await freePort();
    const ctx = await withDeadLetters(`admin: { listen: "0.0.0.0:${port}", token: "${TOKEN}" }`, {}, 2);
    try {
      const status = await request(port, '/api/status', { headers: { host: `forkd.internal:${port}` } });
      assert.equal(status.status, 200);
      const none = await request(port, '/api/dlq/drop?destination=checked', {
        method: 'POST', headers: { host: `forkd.internal:${port}` },
      });
      assert.equal(none.status, 401);
      const ok = await request(port, '/api/dlq/drop?destination=checked', {
        method: 'POST', headers: { host: `forkd.internal:${port}`, authorization: `Bearer ${TOKEN}` },
      });
      assert.equal(ok.status, 200, ok.body);
      assert.equal(ctx.letters().length, 0);
    } finally {
      assert.equal((await ctx.forkd.stop()).code, 0);
      rmSync(ctx.dir, { recursive: true, force: true });
    }
  });
});
