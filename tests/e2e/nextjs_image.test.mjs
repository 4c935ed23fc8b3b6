// The example's production image without Docker (no daemon here): the
// runtime stage of examples/nextjs-app/Dockerfile laid out in a directory
// that holds nothing but this machine's node binary and the shared libraries
// it links, /tmp, and /dev/null and /dev/urandom as a container has them (no
// shell, no other program, no package at all), its COPY --from=build lines applied to a real build of the example,
// and its command run under chroot as its USER would (uid 1000). forkd runs
// from the standalone copy, its ipc socket inside the chroot; a purchase is
// POSTed over tcp from outside, the page is read, and SIGTERM (docker stop)
// stops the server, then forkd, which drains into the stores.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import Database from 'better-sqlite3';
import { readJsonl } from './helpers.mjs';
import { EXAMPLE, dockerStages, freePort, prepareApp, processTree, stopTree } from '../../scripts/lib/nextjs-app.mjs';

const CHROOT = ['/usr/sbin/chroot', '/usr/bin/chroot', '/sbin/chroot'].find((p) => existsSync(p)) ?? 'chroot';
const work = mkdtempSync(path.join(tmpdir(), 'fork-image-'));
const root = path.join(work, 'root');
let ctx;
let image;

test.after(async () => {
  await stopTree(image);
  if (!process.env.FORK_KEEP_TMP) rmSync(work, { recursive: true, force: true });
});

// `file` into the chroot at the same path.
function copyIn(file) {
  const to = path.join(root, file);
  mkdirSync(path.dirname(to), { recursive: true });
  copyFileSync(file, to);
}

test('the runtime stage of the Dockerfile, laid out in a chroot holding only node and its libraries', { timeout: 900000 }, () => {
  assert.equal(process.getuid(), 0, 'this test runs as root: it needs chroot');
  ctx = prepareApp(work, { build: true });
  const [build, runtime] = dockerStages(path.join(EXAMPLE, 'Dockerfile'));
  assert.equal(build.as, 'build');

  // node, as the image has it, and what `ldd` says it links (the dynamic loader among them).
  copyIn(process.execPath);
  mkdirSync(path.join(root, 'usr', 'local', 'bin'), { recursive: true });
  execFileSync('mv', [path.join(root, process.execPath), path.join(root, 'usr', 'local', 'bin', 'node')]);
  const ldd = execFileSync('ldd', [process.execPath], { encoding: 'utf8' });
  const libs = [...ldd.matchAll(/(?:=>\s+)?(\/\S+)\s+\(0x/g)].map((m) => m[1]);
  assert.ok(libs.length > 0, ldd);
  for (const lib of libs) copyIn(lib);
  mkdirSync(path.join(root, 'tmp'));
  chmodSync(path.join(root, 'tmp'), 0o1777);
  // What a container runtime gives every container, among its /dev.
  mkdirSync(path.join(root, 'dev'));
  execFileSync('mknod', ['-m', '666', path.join(root, 'dev', 'null'), 'c', '1', '3']);
  execFileSync('mknod', ['-m', '666', path.join(root, 'dev', 'urandom'), 'c', '1', '9']);

  // The runtime stage's instructions.
  const workdir = path.join(root, runtime.workdir);
  mkdirSync(workdir, { recursive: true });
  const fromBuild = (p) => path.join(ctx.app, path.posix.relative(build.workdir, p));
  for (const { op, args } of runtime.instructions) {
    if (op === 'COPY') {
      const parts = args.split(/\s+/).filter((p) => !p.startsWith('--'));
      const dest = path.join(workdir, parts.at(-1));
      for (const src of parts.slice(0, -1)) {
        const from = fromBuild(src);
        assert.ok(existsSync(from), `the build stage made ${src}`);
        mkdirSync(dest, { recursive: true });
        // Docker copies a directory's contents, and a file into a directory ending in /.
        execFileSync('cp', ['-a', readdirSafe(from) ? `${from}/.` : from, dest]);
      }
      assert.match(args, /--chown=node:node/);
    } else if (op === 'RUN') {
      assert.equal(args, 'mkdir -p .fork data && chown node:node .fork data', 'the only RUN: the volumes\' directories');
      for (const d of ['.fork', 'data']) mkdirSync(path.join(workdir, d), { recursive: true });
    } else {
      assert.ok(['ENV', 'USER', 'VOLUME', 'EXPOSE', 'CMD', 'WORKDIR'].includes(op), `${op} ${args}`);
    }
  }
  // --chown=node:node and USER node: uid and gid 1000 in the node images.
  execFileSync('chown', ['-R', '1000:1000', workdir]);
  assert.ok(existsSync(path.join(workdir, 'node_modules', 'fork-router', 'prebuilds', 'linux-x64', 'forkd')), 'forkd is in the standalone copy');
  const outside = execFileSync('find', [root, '-type', 'f', '-not', '-path', `${workdir}/*`], { encoding: 'utf8' })
    .trim().split('\n').map((f) => f.slice(root.length)).sort();
  assert.deepEqual(outside, ['/usr/local/bin/node', ...libs].sort(), 'outside the app: node and its libraries, no shell, no other program');
});

function readdirSafe(p) {
  try {
    readdirSync(p);
    return true;
  } catch {
    return false;
  }
}

test('its command runs forkd and server.js in the chroot; a purchase from outside lands in the stores; SIGTERM drains and exits 0', { timeout: 180000 }, async () => {
  assert.ok(ctx, 'laid out');
  const [, runtime] = dockerStages(path.join(EXAMPLE, 'Dockerfile'));
  const cmd = runtime.instructions.find((i) => i.op === 'CMD');
  const [program, ...args] = JSON.parse(cmd.args);
  assert.equal(program, 'node');
  const port = await freePort();
  // The image's environment, and the port and address this test picks
  // (HOSTNAME=0.0.0.0 in the image: 127.0.0.1 here, the host's network).
  const env = { PATH: '/usr/local/bin', HOME: '/tmp', ...runtime.env, PORT: String(port), HOSTNAME: '127.0.0.1' };
  image = ctx.start(
    CHROOT,
    ['--userspec=1000:1000', root, '/usr/local/bin/node', ...args.map((a) => path.posix.resolve(runtime.workdir, a))],
    { ready: /Ready|started server/i, timeoutMs: 60000, extraEnv: { ...Object.fromEntries(Object.keys(process.env).map((k) => [k, undefined])), ...env } },
  );
  await image.up;
  const res = await fetch(`http://127.0.0.1:${port}/api/purchase`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ orderId: 'image-1', amount: 19.9, currency: 'EUR', userId: 'u-1' }),
  });
  const json = await res.json();
  assert.equal(res.status, 200, `${JSON.stringify(json)}\n${image.output()}`);
  const page = await fetch(`http://127.0.0.1:${port}/`);
  assert.equal(page.status, 200, image.output());

  const app = path.join(root, runtime.workdir);
  assert.ok(existsSync(path.join(app, '.fork', 'fork.sock')), "forkd's ipc socket is inside the chroot");
  const pids = processTree(image.proc.pid);
  image.proc.kill('SIGTERM'); // to the start script alone, as `docker stop` does
  const { code } = await image.exited;
  assert.equal(code, 0, image.output());
  assert.match(image.output(), /stopping \(the server, then forkd/);
  assert.deepEqual(pids.filter((p) => existsSync(`/proc/${p}`) && !/\) Z/.test(readFileSync(`/proc/${p}/stat`, 'utf8'))), [], 'nothing is left running');

  const db = new Database(path.join(app, 'data', 'production.db'), { readonly: true });
  const rows = db.prepare('SELECT orderId, amount, currency FROM orders').all().map((r) => ({ ...r }));
  db.close();
  assert.deepEqual(rows, [{ orderId: 'image-1', amount: 19.9, currency: 'EUR' }]);
  const lines = readJsonl(path.join(app, 'data', 'logs', 'events.jsonl'));
  assert.ok(lines.some((l) => l._fork_id === json.receipts.logs.id), 'the event is in the JSONL log');
  const an = new Database(path.join(app, 'data', 'analytics.db'), { readonly: true });
  const agg = an.prepare('SELECT currency, revenue, orders FROM daily_revenue').all().map((r) => ({ ...r }));
  an.close();
  assert.deepEqual(agg, [{ currency: 'EUR', revenue: 19.9, orders: 1 }]);
});
