// fork-router installed by pnpm 10 and by yarn 4 (nodeLinker: node-modules)
// from the packed tarball into a fresh copy of examples/nextjs-app, with no
// compiler on PATH: the package has no install script and nothing is built at
// install (pnpm 10 runs no dependency's build script unless allowed: fork-router
// needs none). Then, per manager, one next build, next start beside forkd run
// through the manager's exec, one purchase through /api/purchase and one order
// through /api/orders, and the stores of the example's fork.yaml checked after
// forkd drained.
import assert from 'node:assert/strict';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import Database from 'better-sqlite3';
import { readJsonl } from './helpers.mjs';
import { COMPILERS, bareBin, copyExample, forkdPid, freePort, packFork, provideBetterSqlite, stopTree } from '../../scripts/lib/nextjs-app.mjs';
import { spawn } from 'node:child_process';

const work = mkdtempSync(path.join(tmpdir(), 'fork-pm-'));
const bin = path.join(work, 'bin');
let packed;
const running = [];

test.after(async () => {
  for (const h of running) await stopTree(h);
  if (!process.env.FORK_KEEP_TMP) rmSync(work, { recursive: true, force: true });
});

const MANAGERS = {
  pnpm: {
    cli: ['npx', '--yes', 'pnpm@10'],
    exec: ['exec'],
    setup() {},
  },
  yarn: {
    cli: ['npx', '--yes', '--package=@yarnpkg/cli-dist@4', '--', 'yarn'],
    exec: ['exec'],
    setup(app) {
      // A fresh app has no yarn.lock yet; with CI set, yarn 4 would refuse to
      // write one (immutable installs are its CI default).
      writeFileSync(path.join(app, '.yarnrc.yml'), 'nodeLinker: node-modules\nenableTelemetry: false\nenableImmutableInstalls: false\n');
      // The example's SQLite reader would download its binary from GitHub at
      // install (unreachable here): provideBetterSqlite puts it in place. pnpm
      // skips that build by itself.
      const pkg = JSON.parse(readFileSync(path.join(app, 'package.json'), 'utf8'));
      pkg.dependenciesMeta = { 'better-sqlite3': { built: false } };
      writeFileSync(path.join(app, 'package.json'), JSON.stringify(pkg, null, 2));
    },
  },
};

const env = (extra = {}) => ({ ...process.env, PATH: bin, NEXT_TELEMETRY_DISABLED: '1', FORK_ENDPOINT: '', COREPACK_ENABLE_STRICT: '0', ...extra });

function start(app, cmd, args, ready) {
  const proc = spawn(cmd, args, { cwd: app, env: env(), stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  proc.stdout.on('data', (d) => (out += d));
  proc.stderr.on('data', (d) => (out += d));
  const exited = new Promise((resolve) => proc.on('exit', (code, signal) => resolve({ code, signal })));
  const up = new Promise((resolve, reject) => {
    const t0 = Date.now();
    const timer = setInterval(() => {
      if (ready.test(out)) {
        clearInterval(timer);
        resolve();
      } else if (proc.exitCode !== null || proc.signalCode !== null || Date.now() - t0 > 120000) {
        clearInterval(timer);
        reject(new Error(`${cmd} ${args.join(' ')} did not start:\n${out}`));
      }
    }, 20);
  });
  const handle = { proc, up, exited, output: () => out };
  running.push(handle);
  return handle;
}

test('npm pack', { timeout: 900000 }, () => {
  packed = packFork(work);
  bareBin(bin);
  for (const c of COMPILERS) {
    assert.throws(() => execFileSync('sh', ['-c', `command -v ${c}`], { env: env() }), `${c} is not on PATH`);
  }
});

for (const [name, pm] of Object.entries(MANAGERS)) {
  test(`${name}: install with no compiler, next build, next start beside forkd; a purchase and an order reach the stores`, { timeout: 900000 }, async () => {
    assert.ok(packed, 'packed');
    const app = path.join(work, name);
    mkdirSync(app);
    copyFileSync(packed.tarball, path.join(app, 'fork-router.tgz'));
    copyExample(app, 'file:./fork-router.tgz');
    pm.setup(app);
    const run = (args, opts = {}) =>
      execFileSync(pm.cli[0], [...pm.cli.slice(1), ...args], { cwd: app, env: env(), encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 64 << 20, timeout: 600000, ...opts });

    const t0 = Date.now();
    let installLog;
    try {
      installLog = run(['install']);
    } catch (err) {
      assert.fail(`${name} install failed:\n${err.stdout}\n${err.stderr}`);
    }
    const version = run(['--version']).trim();
    console.log(`# ${name} ${version}: install ${((Date.now() - t0) / 1000).toFixed(0)} s`);
    assert.match(version, name === 'pnpm' ? /^10\./ : /^4\./);
    if (name === 'pnpm') {
      // pnpm 10 lists the dependencies whose build scripts it skipped.
      const ignored = /Ignored build scripts: ([^\n]*)/.exec(installLog)?.[1] ?? '';
      assert.doesNotMatch(ignored, /fork-router/, installLog);
    } else {
      assert.doesNotMatch(installLog, /fork-router[^\n]*must be built/, installLog);
    }
    const pkgDir = realpathSync(path.join(app, 'node_modules', 'fork-router'));
    const installed = JSON.parse(readFileSync(path.join(pkgDir, 'package.json'), 'utf8'));
    for (const s of ['preinstall', 'install', 'postinstall']) assert.equal(installed.scripts?.[s], undefined, `fork-router has no ${s} script`);
    assert.ok(!existsSync(path.join(pkgDir, 'build')), 'nothing was built at install');
    assert.ok(existsSync(path.join(pkgDir, 'prebuilds', 'linux-x64', 'forkd')));
    provideBetterSqlite(app);

    const t1 = Date.now();
    try {
      run([...pm.exec, 'next', 'build']);
    } catch (err) {
      assert.fail(`next build failed:\n${err.stdout}\n${err.stderr}`);
    }
    console.log(`# ${name}: next build ${((Date.now() - t1) / 1000).toFixed(0)} s`);

    const forkd = start(app, pm.cli[0], [...pm.cli.slice(1), ...pm.exec, 'forkd', 'run', '--config', 'fork.yaml'], /running with/);
    await forkd.up;
    const port = await freePort();
    const server = start(app, pm.cli[0], [...pm.cli.slice(1), ...pm.exec, 'next', 'start', '-p', String(port), '-H', '127.0.0.1'], /Ready|started server/i);
    await server.up;
    const post = async (route, body) => {
      const res = await fetch(`http://127.0.0.1:${port}${route}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
      const json = await res.json();
      assert.equal(res.status, 200, `${route}: ${JSON.stringify(json)}\n${server.output()}`);
      return json;
    };
    const a = await post('/api/purchase', { orderId: `${name}-1`, amount: 10.25, currency: 'EUR', status: 'new' });
    const b = await post('/api/orders', { orderId: `${name}-2`, amount: 4.75, currency: 'EUR', status: 'paid' });
    await stopTree(server);

    // SIGTERM to forkd itself (the managers' wrappers do not pass it on): it drains.
    const pid = forkdPid(forkd);
    assert.ok(pid > 0, `the forkd under ${name} exec is found`);
    process.kill(pid, 'SIGTERM');
    await forkd.exited;
    await stopTree(forkd);
    assert.match(forkd.output(), /stopped: \d+ events accepted/, forkd.output());

    const data = path.join(app, 'data');
    const prod = new Database(path.join(data, 'production.db'), { readonly: true });
    const rows = prod.prepare('SELECT orderId, amount, status FROM orders ORDER BY orderId').all().map((r) => ({ ...r }));
    prod.close();
    assert.deepEqual(rows, [
      { orderId: `${name}-1`, amount: 10.25, status: 'new' },
      { orderId: `${name}-2`, amount: 4.75, status: 'paid' },
    ]);
    const an = new Database(path.join(data, 'analytics.db'), { readonly: true });
    const agg = an.prepare('SELECT currency, revenue, orders FROM daily_revenue').all().map((r) => ({ ...r }));
    an.close();
    assert.deepEqual(agg, [{ currency: 'EUR', revenue: 15, orders: 2 }]);
    const ids = new Set(readJsonl(path.join(data, 'logs', 'events.jsonl')).map((l) => l._fork_id));
    for (const r of [a, b]) assert.ok(ids.has(r.receipts.logs.id), `log line for ${r.receipts.logs.id}`);
  });
}
