// The Next.js example, installed the way a user installs it: from the packed
// tarball, with no compiler on PATH and install scripts off; then next build,
// the standalone output (fork-router's addon and forkd traced into it with no
// configuration) run as node .next/standalone/server.js beside its own copy of
// forkd, next start beside `npx forkd run`, 1 000 purchases through each route (with
// forkd killed and restarted in the middle of the second), the stores
// checked, the page looked at by headless Chromium, and the route handler
// type-checked against the shipped .d.ts.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { test } from 'node:test';
import Database from 'better-sqlite3';
import { readJsonl } from './helpers.mjs';
import { ROOT } from '../../scripts/lib/forkd.mjs';
import { COMPILERS, TARGETS, prepareApp, startForkd as startAppForkd, forkdPid, freePort, startNext, stopTree, processTree } from '../../scripts/lib/nextjs-app.mjs';

const startForkd = () => startAppForkd(ctx);

const work = mkdtempSync(path.join(tmpdir(), 'fork-nextjs-'));
// forkd's admin port (fork.yaml reads FORK_ADMIN_PORT) and where the app's
// stream routes find it (FORK_ADMIN_URL): both through the environment the
// app's processes inherit.
const adminPort = await freePort();
process.env.FORK_ADMIN_PORT = String(adminPort);
process.env.FORK_ADMIN_URL = `http://127.0.0.1:${adminPort}`;
let ctx; // prepareApp's answer
let app;
let tarball;
let port;
let server;
let forkd;
const outcomes = []; // { route, body, status, json }

test.after(async () => {
  await stopTree(server);
  await stopTree(forkd);
  if (!process.env.FORK_KEEP_TMP) rmSync(work, { recursive: true, force: true });
});

test('npm pack, then npm install of the example from the tarball: no compiler, no install scripts', { timeout: 900000 }, () => {
  ctx = prepareApp(work, { build: false });
  app = ctx.app;
  tarball = ctx.tarball;
  for (const c of COMPILERS) {
    assert.throws(() => execFileSync('sh', ['-c', `command -v ${c}`], { env: ctx.env() }), `${c} is not on PATH`);
  }
  // An addon per target; forkd, static, once per architecture (linux-<arch>).
  const prebuilt = TARGETS.flatMap((t) => [`prebuilds/${t}/fork_router.node`, ...(t.startsWith('linux-') ? [`prebuilds/${t}/forkd`] : [])]);
  for (const t of TARGETS.filter((t) => t.startsWith('linuxmusl-'))) {
    assert.ok(!ctx.files.includes(`prebuilds/${t}/forkd`), `no second copy of forkd in prebuilds/${t}`);
  }
  for (const f of [...prebuilt, 'js/index.d.ts', 'js/index.d.mts', 'js/forkd.cjs']) {
    assert.ok(ctx.files.includes(f), `the tarball holds ${f}`);
  }
  for (const t of TARGETS) assert.ok(ctx.files.some((f) => f.startsWith(`prebuilds/${t}/licenses/`)), `prebuilds/${t} carries its licences`);
  assert.deepEqual(ctx.files.filter((f) => /\.so(\.\d+)*$/.test(f)), [], 'no bundled shared libraries: the addon needs only the C library, forkd is static');
  assert.deepEqual(
    ctx.files.filter((f) => f.startsWith('prebuilds/') && !f.includes('/licenses/')).sort(),
    prebuilt.sort(),
    'prebuilds/ holds the addon and forkd of each target, and nothing else beside their licences',
  );
  assert.ok(!existsSync(path.join(ROOT, 'prebuilds')), 'npm pack left no prebuilds/ at the repository root');
  assert.ok(!ctx.files.some((f) => f.startsWith('build/') || f.startsWith('tests/')), 'no build tree or tests in the tarball');
  const installed = JSON.parse(readFileSync(path.join(app, 'node_modules', 'fork-router', 'package.json'), 'utf8'));
  for (const s of ['preinstall', 'install', 'postinstall']) assert.equal(installed.scripts?.[s], undefined, `fork-router has no ${s} script`);
  assert.ok(!existsSync(path.join(app, 'node_modules', 'fork-router', 'build')), 'nothing was built at install');
  // It loads from the prebuild.
  const where = ctx.run('node', ['-e', "require('fork-router'); console.log(require('fs').readFileSync('/proc/self/maps','utf8').includes('prebuilds/linux-x64/fork_router.node'))"]);
  assert.equal(where.trim(), 'true');
});

test('the route handler and the page type-check against the shipped .d.ts', { timeout: 120000 }, () => {
  assert.ok(tarball, 'installed');
  const types = path.join(app, 'node_modules', 'fork-router', 'js', 'index.d.ts');
  assert.ok(existsSync(types));
  ctx.run('node', [path.join(app, 'node_modules', 'typescript', 'bin', 'tsc'), '--noEmit', '-p', '.']);
});

test('next build (forkd not running, nothing connects), then next start beside npx forkd run', { timeout: 600000 }, async () => {
  assert.ok(tarball, 'installed');
  const out = ctx.run('npx', ['next', 'build'], { timeout: 500000 });
  assert.match(out, /api\/orders/);
  assert.ok(!existsSync(path.join(app, '.fork')), 'next build started no forkd and made no socket');
  forkd = startForkd();
  await forkd.up;
  port = await freePort();
  server = startNext(ctx, port);
  await server.up;
});

// The standalone copy carries the prebuilt files because js/loader.cjs names
// each one literally: no outputFileTracingIncludes in next.config.mjs. Run as
// an image would: server.js from .next/standalone, forkd from that copy, its
// config and stores in a directory of their own (not the app's, which the
// tests below count).
test('the standalone output carries the addon and forkd: node .next/standalone/server.js beside its own forkd takes a purchase', { timeout: 120000 }, async () => {
  assert.ok(existsSync(path.join(app, '.next', 'BUILD_ID')), 'built');
  assert.doesNotMatch(readFileSync(path.join(app, 'next.config.mjs'), 'utf8'), /outputFileTracingIncludes\s*:/, 'no outputFileTracingIncludes in next.config.mjs');
  const standalone = path.join(app, '.next', 'standalone');
  const pkg = path.join(standalone, 'node_modules', 'fork-router');
  for (const f of ['prebuilds/linux-x64/fork_router.node', 'prebuilds/linux-x64/forkd', 'js/loader.cjs', 'js/forkd.cjs']) {
    assert.ok(existsSync(path.join(pkg, f)), `.next/standalone/node_modules/fork-router/${f} is traced`);
  }
  const dir = path.join(work, 'standalone-stores');
  mkdirSync(dir);
  copyFileSync(path.join(app, 'fork.yaml'), path.join(dir, 'fork.yaml'));
  const own = ctx.start(path.join(pkg, 'prebuilds', 'linux-x64', 'forkd'), ['run', '--config', 'fork.yaml'], { cwd: dir, ready: /running with/ });
  let alone;
  try {
    await own.up;
    const p = await freePort();
    alone = ctx.start(process.execPath, [path.join(standalone, 'server.js')], {
      cwd: standalone,
      ready: /Ready|started server/i,
      extraEnv: { PORT: String(p), HOSTNAME: '127.0.0.1', FORK_ENDPOINT: `ipc://${dir}/.fork/fork.sock` },
    });
    await alone.up;
    const res = await fetch(`http://127.0.0.1:${p}/api/purchase`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ orderId: 'standalone-1', amount: 7.5, currency: 'EUR' }),
    });
    const json = await res.json();
    assert.equal(res.status, 200, JSON.stringify(json) + alone.output());
    assert.ok(json.receipts.production.id);
    const maps = readFileSync(`/proc/${alone.proc.pid}/maps`, 'utf8');
    assert.ok(maps.includes(path.join(pkg, 'prebuilds', 'linux-x64', 'fork_router.node')), 'the server loaded the addon from the standalone copy');
  } finally {
    await stopTree(alone);
    await stopTree(own);
  }
  assert.equal(own.proc.exitCode, 0, own.output());
  const db = new Database(path.join(dir, 'data', 'production.db'), { readonly: true });
  const rows = db.prepare('SELECT orderId, amount FROM orders').all();
  db.close();
  assert.deepEqual(rows.map((r) => ({ ...r })), [{ orderId: 'standalone-1', amount: 7.5 }]);
});

async function post(route, body) {
  for (let attempt = 0; ; attempt++) {
    try {
      const res = await fetch(`http://127.0.0.1:${port}${route}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(body),
      });
      const json = await res.json();
      outcomes.push({ route, body, status: res.status, json });
      return res.status;
    } catch (err) {
      if (attempt > 3) throw err;
      await sleep(100);
    }
  }
}

// n requests, `concurrency` at a time.
async function pool(n, concurrency, fn) {
  let next = 0;
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (next < n) await fn(next++);
  }));
}

const CURRENCIES = ['EUR', 'USD', 'GBP'];
const purchase = (i, extra = {}) => ({
  orderId: `o-${i}`,
  amount: Math.round(((i * 37) % 5000) + 1) / 100,
  currency: CURRENCIES[i % 3],
  userId: `u-${i % 97}`,
  ...extra,
});

test('1 000 purchases through pages/api/purchase.js', { timeout: 300000 }, async () => {
  assert.ok(server, 'running');
  await pool(1000, 16, (i) => post('/api/purchase', purchase(i, { status: 'new' })));
  const mine = outcomes.filter((o) => o.route === '/api/purchase');
  assert.equal(mine.length, 1000);
  assert.deepEqual([...new Set(mine.map((o) => o.status))], [200], JSON.stringify(mine.find((o) => o.status !== 200)));
});

test('1 000 orders through app/api/orders (TypeScript, after()), with forkd killed -9 and restarted mid-run', { timeout: 300000 }, async () => {
  assert.ok(server, 'running');
  let done = 0;
  const killer = (async () => {
    while (done < 300) await sleep(5);
    const pid = forkdPid(forkd);
    assert.ok(pid > 0, 'the forkd under npx is found');
    process.kill(pid, 'SIGKILL');
    await forkd.exited;
    await sleep(500);
    forkd = startForkd();
    await forkd.up;
  })();
  // Orders 500..1499: half of them update a purchase above (upsert), half are new.
  await pool(1000, 16, async (k) => {
    await post('/api/orders', purchase(500 + k, { status: 'paid' }));
    done++;
  });
  await killer;
  const mine = outcomes.filter((o) => o.route === '/api/orders');
  assert.equal(mine.length, 1000);
  const bad = mine.filter((o) => o.status !== 200 && !(o.status === 503 && o.json.code === 'FORK_UNAVAILABLE'));
  assert.deepEqual(bad, [], 'every answer is 200 or 503 FORK_UNAVAILABLE');
  const unavailable = mine.filter((o) => o.status === 503).length;
  console.log(`# /api/orders: ${1000 - unavailable} answered 200, ${unavailable} answered 503 FORK_UNAVAILABLE around the kill`);
});

// Every receipt's event is in its store: production rows upserted by orderId,
// the daily revenue equal to the sums acknowledged, every line in the JSONL.
test('the stores hold every acknowledged event: production upserted, the daily aggregate, the JSONL lines', { timeout: 120000 }, async () => {
  assert.ok(outcomes.length === 2000, 'both runs done');
  // A 200 carries the three receipts; a 503 names the destinations that took
  // their event anyway (`accepted`): those count too.
  const acked = (dest) =>
    outcomes.flatMap((o) =>
      o.json.receipts?.[dest] || o.json.accepted?.includes(dest) ? [{ ...o, receipt: o.json.receipts?.[dest] }] : [],
    );
  // Let forkd deliver what it acknowledged, then stop it (SIGTERM drains).
  await sleep(1500);
  const pid = forkdPid(forkd);
  assert.ok(pid > 0, 'the forkd under npx is found');
  process.kill(pid, 'SIGTERM');
  assert.equal((await forkd.exited).code, 0, `forkd drained and exited 0 (through npx):\n${forkd.output()}`);
  forkd = undefined;

  const prod = new Database(path.join(app, 'data', 'production.db'), { readonly: true });
  const rows = new Map(prod.prepare('SELECT * FROM orders').all().map((r) => [r.orderId, r]));
  prod.close();
  const want = new Map();
  for (const o of acked('production')) want.set(o.body.orderId, o); // in answer order: the last one wins
  assert.equal(rows.size, want.size, 'one row per acknowledged orderId');
  for (const [orderId, o] of want) {
    const row = rows.get(orderId);
    assert.ok(row, `row for ${orderId}`);
    assert.equal(row.amount, o.body.amount);
  }
  // Orders 500..999 went through both routes; a /api/orders success is later and wins.
  for (const o of acked('production').filter((x) => x.route === '/api/orders')) {
    assert.equal(rows.get(o.body.orderId).status, 'paid', `${o.body.orderId} upserted to its latest version`);
  }

  const sums = {};
  for (const o of acked('analytics')) {
    const s = (sums[o.body.currency] ??= { revenue: 0, orders: 0 });
    s.revenue += o.body.amount;
    s.orders += 1;
  }
  const an = new Database(path.join(app, 'data', 'analytics.db'), { readonly: true });
  const agg = an.prepare('SELECT * FROM daily_revenue').all();
  an.close();
  const got = {};
  for (const r of agg) {
    const s = (got[r.currency] ??= { revenue: 0, orders: 0 });
    s.revenue += r.revenue;
    s.orders += r.orders;
  }
  for (const c of CURRENCIES) {
    assert.equal(got[c]?.orders, sums[c].orders, `${c}: orders counted once each`);
    assert.ok(Math.abs(got[c].revenue - sums[c].revenue) < 1e-6, `${c}: revenue ${got[c].revenue} = ${sums[c].revenue}`);
  }

  const logDir = path.join(app, 'data', 'logs');
  const lines = readdirSync(logDir).flatMap((f) => readJsonl(path.join(logDir, f)));
  const ids = new Set(lines.map((l) => l._fork_id));
  for (const o of acked('logs').filter((x) => x.receipt)) assert.ok(ids.has(o.receipt.id), `log line for ${o.receipt.id}`);
  // after(): an order_seen event per order answered 200 (fire and forget:
  // those sent while forkd was down are lost by design, a few at most).
  const ok = new Set(outcomes.filter((o) => o.route === '/api/orders' && o.status === 200).map((o) => o.body.orderId));
  const seen = new Set(lines.filter((l) => l.event === 'order_seen').map((l) => l.orderId));
  assert.ok([...seen].every((id) => ok.has(id)), 'order_seen only for orders answered 200');
  assert.ok(seen.size >= ok.size - 50, `order_seen for ${seen.size} of ${ok.size} orders answered 200`);

  forkd = startForkd(); // for the page and the browser
  await forkd.up;
});

test('headless Chromium loads the page and sees the latest orders and today\'s revenue', { timeout: 120000 }, async () => {
  assert.ok(server, 'running');
  const { chromium } = await import('playwright-core');
  const browser = await chromium.launch({ executablePath: process.env.CHROMIUM_PATH || '/usr/bin/chromium', args: ['--no-sandbox'] });
  try {
    const page = await browser.newPage();
    const res = await page.goto(`http://127.0.0.1:${port}/`);
    assert.equal(res.status(), 200);
    const orders = page.getByTestId('order-row');
    assert.ok((await orders.count()) > 0, 'order rows are shown');
    const first = await orders.first().innerText();
    assert.match(first, /o-\d+/);
    const revenue = await page.getByTestId('revenue-row').allInnerTexts();
    assert.equal(revenue.length, 3, revenue.join(' | '));
    for (const c of CURRENCIES) assert.ok(revenue.some((t) => t.includes(c)), `${c} in ${revenue.join(' | ')}`);
  } finally {
    await browser.close();
  }
});

test('the live page: Chromium sees today\'s revenue and the ticker move after POSTs, and after a kill -9 and restart of forkd catches up without losing or repeating a purchase', { timeout: 180000 }, async () => {
  assert.ok(server, 'running');
  const { chromium } = await import('playwright-core');
  const browser = await chromium.launch({ executablePath: process.env.CHROMIUM_PATH || '/usr/bin/chromium', args: ['--no-sandbox'] });
  try {
    const page = await browser.newPage();
    const res = await page.goto(`http://127.0.0.1:${port}/live`);
    assert.equal(res.status(), 200);
    await page.waitForSelector('[data-testid="live-status"][data-connected="yes"]', { timeout: 20000 });
    const eurRow = page.locator('[data-testid="live-revenue-row"][data-currency="EUR"]');
    const eurOrders = async () => Number((await eurRow.getAttribute('data-orders')) ?? 0);
    assert.ok((await eurOrders()) > 0, 'the server rendered today\'s revenue from the analytics store');
    assert.equal(await eurRow.getAttribute('data-live'), 'no');
    const seen = async () => {
      const el = page.getByTestId('live-seen');
      return { purchases: Number(await el.getAttribute('data-purchases')), messages: Number(await el.getAttribute('data-messages')) };
    };
    const until = async (what, fn, ms = 30000) => {
      const t0 = Date.now();
      for (;;) {
        const v = await fn();
        if (v) return v;
        if (Date.now() - t0 > ms) throw new Error(`timed out waiting for ${what}: ${JSON.stringify(await seen())}`);
        await sleep(100);
      }
    };
    // One EUR purchase: the row now shows the stream's count (the
    // revenue_live destination's own aggregate).
    const sent = [];
    const first = purchase(21000, { status: 'live' });
    assert.equal(first.currency, 'EUR');
    assert.equal(await post('/api/purchase', first), 200, JSON.stringify(outcomes.at(-1)));
    sent.push(first);
    await until('the EUR row updated by the stream', async () => (await eurRow.getAttribute('data-live')) === 'yes');
    const before = await eurOrders();
    // 30 purchases through both routes (10 in EUR): the ticker and the revenue move.
    for (let i = 0; i < 30; i++) {
      const p = purchase(20000 + i, { status: 'live' });
      assert.equal(await post(i % 2 ? '/api/orders' : '/api/purchase', p), 200, JSON.stringify(outcomes.at(-1)));
      sent.push(p);
    }
    await until('31 purchases on the page', async () => (await seen()).purchases === 31);
    await until('the EUR revenue to count 10 more orders', async () => (await eurOrders()) === before + 10);
    assert.match(await page.getByTestId('ticker-row').first().innerText(), /^o-20029: /);

    // Acknowledged, then forkd killed at once: its stream may not have sent
    // them yet. After the restart the browser's EventSource reconnects with
    // its Last-Event-ID and gets exactly what it missed.
    for (let i = 30; i < 40; i++) {
      const p = purchase(20000 + i, { status: 'live' });
      assert.equal(await post('/api/purchase', p), 200, JSON.stringify(outcomes.at(-1)));
      sent.push(p);
    }
    process.kill(forkdPid(forkd), 'SIGKILL');
    await forkd.exited;
    forkd = startForkd();
    await forkd.up;
    for (let i = 40; i < 60; i++) {
      const p = purchase(20000 + i, { status: 'live' });
      assert.equal(await post('/api/orders', p), 200, JSON.stringify(outcomes.at(-1)));
      sent.push(p);
    }
    await until('61 purchases on the page', async () => (await seen()).purchases === 61, 60000);
    await sleep(1000);  // anything repeated would have come by now
    const s = await seen();
    assert.deepEqual(s, { purchases: 61, messages: 61 }, 'each purchase shown once: none lost, none repeated');
    const eur = sent.slice(1).filter((p) => p.currency === 'EUR').length;
    await until('the EUR revenue to count every EUR purchase', async () => (await eurOrders()) === before + eur);
  } finally {
    await browser.close();
  }
});

test('start.sh, the container\'s command: forkd and next start side by side; SIGTERM stops Next.js, then forkd drains; exit 0', { timeout: 120000 }, async () => {
  assert.ok(server, 'running');
  await stopTree(server);
  await stopTree(forkd);
  server = forkd = undefined;
  port = await freePort();
  const both = ctx.start('bash', ['start.sh'], { ready: /Ready|started server/i, extraEnv: { PORT: String(port), PATH: `${ctx.bin}:/usr/bin:/bin` } });
  await both.up;
  const before = outcomes.length;
  assert.equal(await post('/api/purchase', purchase(5000, { status: 'new' })), 200, JSON.stringify(outcomes.at(-1)));
  const id = outcomes[before].json.receipts.logs.id;
  both.proc.kill('SIGTERM'); // to the script alone, as `docker stop` does
  const { code } = await both.exited;
  assert.equal(code, 0, both.output());
  assert.match(both.output(), /stopping \(Next\.js, then forkd/);
  const logDir = path.join(app, 'data', 'logs');
  const ids = new Set(readdirSync(logDir).flatMap((f) => readJsonl(path.join(logDir, f))).map((l) => l._fork_id));
  assert.ok(ids.has(id), 'the event acknowledged just before SIGTERM is in the logs: forkd drained');
  assert.deepEqual(processTreeAlive(both), [], 'nothing is left running');
});

function processTreeAlive(handle) {
  return processTree(handle.proc.pid);
}
