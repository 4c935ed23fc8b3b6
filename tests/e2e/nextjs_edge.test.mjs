// The Next.js example's edge code under `next build && next start`: its
// middleware (middleware.ts) and its edge route handler (app/api/edge/orders)
// call routeData through fork-router's edge build, which reaches a real
// forkd's HTTP ingest with fetch. The package is installed from this checkout
// without any addon (as on a platform with no prebuild), so the Node.js route
// (/api/orders) proves the fallback too: with FORK_HTTP_ENDPOINT set it sends
// over HTTP as well. The stores are checked; with forkd gone, the routes
// answer FORK_UNAVAILABLE and pages still render.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import Database from 'better-sqlite3';
import { ROOT, startForkd } from '../../scripts/lib/forkd.mjs';
import { copyExample, provideBetterSqlite, freePort, stopTree } from '../../scripts/lib/nextjs-app.mjs';
import { readJsonl } from './helpers.mjs';
import { spawn } from 'node:child_process';

const TOKEN = 'nextjs-edge-test-token-0123456789';
const work = mkdtempSync(path.join(tmpdir(), 'fork-nextjs-edge-'));
const app = path.join(work, 'app');
let forkd, next, base, ingestPort;

test.after(async () => {
  await stopTree(next);
  await forkd?.stop();
  if (!process.env.FORK_KEEP_TMP) rmSync(work, { recursive: true, force: true });
});

const env = (extra = {}) => {
  const e = { ...process.env, NEXT_TELEMETRY_DISABLED: '1', FORK_ENDPOINT: '', ...extra };
  for (const k of ['FORK_ADDON_PATH', 'FORK_HTTP_ENDPOINT', 'FORK_INGEST_TOKEN']) if (!(k in extra)) delete e[k];
  return e;
};
const run = (cmd, args, opts = {}) =>
  execFileSync(cmd, args, { cwd: app, env: env(), encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 64 << 20, ...opts });

function logs() {
  const p = path.join(app, 'data', 'logs', 'events.jsonl');
  return existsSync(p) ? readJsonl(p) : [];
}

async function until(fn, ms = 5000) {
  const t0 = Date.now();
  while (!fn()) {
    if (Date.now() - t0 > ms) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, 25));
  }
}

test('the example installs from this checkout with no addon, and next build bundles the edge build into middleware and the edge route', { timeout: 600000 }, () => {
  copyExample(app, `file:${ROOT}`);
  run('npm', ['install', '--ignore-scripts', '--no-audit', '--no-fund', '--prefer-offline', '--loglevel=error'], { timeout: 300000 });
  provideBetterSqlite(app);
  const pkg = path.join(app, 'node_modules', 'fork-router');
  assert.ok(!existsSync(path.join(pkg, 'prebuilds')) && !existsSync(path.join(pkg, 'build')), 'the installed package has no addon');
  // forkd's HTTP ingest on a free port, with a token.
  const yaml = readFileSync(path.join(app, 'fork.yaml'), 'utf8');
  assert.match(yaml, /^http_ingest: 127\.0\.0\.1:8788$/m, 'the example enables HTTP ingest');
  const out = run('npx', ['next', 'build'], { timeout: 500000 });
  assert.match(out, /Proxy \(Middleware\)|Middleware/);
  assert.match(out, /\/api\/edge\/orders/);
  // The edge bundles hold fork-router's edge build, not the addon loader.
  const files = [];
  const walk = (d) => {
    for (const f of readdirSync(d, { withFileTypes: true })) {
      if (f.isDirectory()) walk(path.join(d, f.name));
      else if (f.name.endsWith('.js')) files.push(path.join(d, f.name));
    }
  };
  walk(path.join(app, '.next', 'server'));
  const edge = files.filter((f) => readFileSync(f, 'utf8').includes('this runtime (edge) cannot load the native addon'));
  assert.ok(edge.length > 0, 'some server bundle carries the edge build');
  assert.ok(!edge.some((f) => readFileSync(f, 'utf8').includes('fork_router.node')), 'and no edge bundle carries the addon loader');
});

test('next start beside forkd: middleware records a page view, the edge route a purchase fanned out to three stores; receipts come back', { timeout: 120000 }, async () => {
  ingestPort = await freePort();
  const yaml = readFileSync(path.join(app, 'fork.yaml'), 'utf8').replace(/^http_ingest: 127\.0\.0\.1:8788$/m, `http_ingest: 127.0.0.1:${ingestPort}`);
  writeFileSync(path.join(app, 'fork.yaml'), yaml);
  forkd = await startForkd(path.join(app, 'fork.yaml'), { env: { FORK_INGEST_TOKEN: TOKEN } });
  const port = await freePort();
  base = `http://127.0.0.1:${port}`;
  const proc = spawn('npx', ['next', 'start', '-p', String(port), '-H', '127.0.0.1'], {
    cwd: app,
    env: env({ FORK_HTTP_ENDPOINT: `http://127.0.0.1:${ingestPort}`, FORK_INGEST_TOKEN: TOKEN }),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  proc.stdout.on('data', (d) => (out += d));
  proc.stderr.on('data', (d) => (out += d));
  next = { proc, exited: new Promise((r) => proc.on('exit', r)) };
  await until(() => /Ready/.test(out), 30000);

  const page = await fetch(`${base}/`);
  assert.equal(page.status, 200);
  const viewId = page.headers.get('x-fork-event-id');
  assert.match(viewId ?? `(x-fork-error: ${page.headers.get('x-fork-error')})`, /^[0-9a-f]{32}-\d+$/);
  await until(() => logs().some((r) => r._fork_id === viewId));
  assert.deepEqual(
    (({ event, path: p }) => ({ event, path: p }))(logs().find((r) => r._fork_id === viewId)),
    { event: 'page_view', path: '/' },
  );

  const res = await fetch(`${base}/api/edge/orders`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'idempotency-key': 'edge-o-1' },
    body: JSON.stringify({ orderId: 'edge-o-1', amount: 42.5, currency: 'EUR' }),
  });
  const body = await res.json();
  assert.equal(res.status, 200, JSON.stringify(body));
  assert.deepEqual(body.receipt, { id: 'edge-o-1', ack: 'accepted', destinations: ['production', 'analytics', 'logs'] });
  await until(() => logs().some((r) => r._fork_id === 'edge-o-1'));
  await until(() => {
    try {
      const db = new Database(path.join(app, 'data', 'production.db'), { readonly: true });
      try {
        return db.prepare('SELECT count(*) AS n FROM orders WHERE orderId = ?').get('edge-o-1').n === 1;
      } finally {
        db.close();
      }
    } catch {
      return false;
    }
  });

  // A bad purchase is refused by the route; a bad call by fork-router's own checks.
  const bad = await fetch(`${base}/api/edge/orders`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"orderId":""}' });
  assert.equal(bad.status, 400);
});

test('the Node.js route on a platform without an addon: with FORK_HTTP_ENDPOINT set it sends over HTTP ingest too', { timeout: 60000 }, async () => {
  const res = await fetch(`${base}/api/orders`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ orderId: 'node-o-1', amount: 10, currency: 'USD' }),
  });
  const body = await res.json();
  assert.equal(res.status, 200, JSON.stringify(body));
  assert.deepEqual(body.receipts.logs.destinations, ['logs']);
  await until(() => logs().some((r) => r._fork_id === body.receipts.logs.id && r.orderId === 'node-o-1'));
});

test('forkd gone: the edge route answers 503 FORK_UNAVAILABLE, and pages still render (the middleware notes the error)', { timeout: 60000 }, async () => {
  assert.equal((await forkd.stop()).code, 0);
  const res = await fetch(`${base}/api/edge/orders`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ orderId: 'edge-o-2', amount: 1, currency: 'EUR' }),
  });
  const body = await res.json();
  assert.equal(res.status, 503, JSON.stringify(body));
  assert.equal(body.code, 'FORK_UNAVAILABLE');
  assert.match(body.error, new RegExp(`not reachable at http://127\\.0\\.0\\.1:${ingestPort}/v1/events`));
  const page = await fetch(`${base}/`);
  assert.equal(page.status, 200);
  assert.equal(page.headers.get('x-fork-error'), 'FORK_UNAVAILABLE');
});
