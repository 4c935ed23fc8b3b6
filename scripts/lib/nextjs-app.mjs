// Sets up examples/nextjs-app the way a user gets it: the package packed with
// `npm pack`, the example copied to a temp directory and made to depend on
// that tarball, `npm install` with no compiler on PATH and install scripts
// off, then (optionally) `next build`. The end-to-end tests and the latency
// benchmark share it.
import { execFileSync, spawn } from 'node:child_process';
import { copyFileSync, cpSync, existsSync, mkdirSync, readFileSync, readdirSync, realpathSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import path from 'node:path';
import { ROOT } from './forkd.mjs';

export const EXAMPLE = path.join(ROOT, 'examples', 'nextjs-app');
export const COMPILERS = ['cc', 'gcc', 'g++', 'c++', 'clang', 'make', 'cmake', 'ninja', 'python3'];

export const TARGETS = ['linux-x64', 'linux-arm64', 'linuxmusl-x64', 'linuxmusl-arm64'];
const PREBUILDS = path.join(ROOT, 'prebuilds');
const BUILT = path.join(ROOT, 'build', 'prebuilds', 'out');

// `npm pack` into `dest`; returns { tarball, files }. Its prepack script,
// scripts/build-prebuilds.sh --install, builds every target's addon and forkd
// (incrementally: its cache is build/prebuilds/) and puts them in prebuilds/
// at the root, which the tarball carries. prebuilds/ is removed again
// afterwards: the loader prefers it to build/Release, so it would shadow this
// checkout's own build. With FORK_PACK_BUILT=1 the build is skipped and
// the targets build/prebuilds/out holds already are packed (npm pack
// --ignore-scripts): the end-to-end test of the tarball checks all four are.
export function packFork(dest, { log = () => {} } = {}) {
  const reuse = process.env.FORK_PACK_BUILT === '1';
  log(reuse ? 'npm pack (the prebuilt files in build/prebuilds/out)' : 'npm pack (prepack: scripts/build-prebuilds.sh --install)');
  try {
    if (reuse) {
      const built = TARGETS.filter((t) => existsSync(path.join(BUILT, t, 'fork_router.node')));
      if (!built.length) throw new Error(`FORK_PACK_BUILT=1, but nothing is built in ${BUILT}: run scripts/build-prebuilds.sh`);
      for (const t of built) {
        rmSync(path.join(PREBUILDS, t), { recursive: true, force: true });
        cpSync(path.join(BUILT, t), path.join(PREBUILDS, t), { recursive: true });
      }
    }
    const out = execFileSync('npm', ['pack', '--json', '--pack-destination', dest, ...(reuse ? ['--ignore-scripts'] : [])], {
      cwd: ROOT,
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
      maxBuffer: 64 << 20,
    });
    const packed = JSON.parse(out.slice(out.indexOf('[')));
    return { tarball: path.join(dest, packed[0].filename), files: packed[0].files.map((f) => f.path) };
  } finally {
    rmSync(PREBUILDS, { recursive: true, force: true });
  }
}

// Copies the example into `app` (without what a build or an install leaves)
// and makes it depend on `dependency` (a `file:` spec) for fork-router.
export function copyExample(app, dependency, extraFiles = {}) {
  cpSync(EXAMPLE, app, {
    recursive: true,
    filter: (src) => !/(^|\/)(node_modules|\.next|\.fork|data|package-lock\.json|[^/]*\.tgz)(\/|$)/.test(path.relative(EXAMPLE, src)),
  });
  const pkg = JSON.parse(readFileSync(path.join(app, 'package.json'), 'utf8'));
  if (!pkg.dependencies?.['fork-router']) throw new Error(`${EXAMPLE}/package.json does not depend on fork-router`);
  pkg.dependencies['fork-router'] = dependency;
  writeFileSync(path.join(app, 'package.json'), JSON.stringify(pkg, null, 2));
  for (const [rel, text] of Object.entries(extraFiles)) {
    mkdirSync(path.dirname(path.join(app, rel)), { recursive: true });
    writeFileSync(path.join(app, rel), text);
  }
}

// The example's own SQLite reader, better-sqlite3, would download its
// prebuilt binary from GitHub at install; this machine reaches only the npm
// registry, so the binary of the same version comes from this checkout's
// node_modules instead. fork-router itself needs nothing of the kind.
export function provideBetterSqlite(app) {
  const mine = path.join(ROOT, 'node_modules', 'better-sqlite3');
  const link = path.join(app, 'node_modules', 'better-sqlite3');
  if (!existsSync(link)) return;
  const theirs = realpathSync(link); // pnpm: a link into node_modules/.pnpm
  const v = (d) => JSON.parse(readFileSync(path.join(d, 'package.json'), 'utf8')).version;
  if (v(mine) !== v(theirs)) throw new Error(`better-sqlite3 ${v(theirs)} in the example, ${v(mine)} here: align the versions`);
  mkdirSync(path.join(theirs, 'build', 'Release'), { recursive: true });
  copyFileSync(path.join(mine, 'build', 'Release', 'better_sqlite3.node'), path.join(theirs, 'build', 'Release', 'better_sqlite3.node'));
}

// A directory for PATH with node, npm, npx and a shell, and no compiler.
export function bareBin(bin) {
  mkdirSync(bin, { recursive: true });
  const nodeDir = path.dirname(process.execPath);
  for (const tool of ['node', 'npm', 'npx']) {
    const p = path.join(nodeDir, tool);
    if (existsSync(p) && !existsSync(path.join(bin, tool))) symlinkSync(p, path.join(bin, tool));
  }
  // sed and dirname: the shims pnpm writes in node_modules/.bin use them.
  for (const tool of ['sh', 'bash', 'env', 'ldd', 'uname', 'sed', 'dirname']) {
    for (const d of ['/usr/bin', '/bin']) {
      if (existsSync(path.join(d, tool)) && !existsSync(path.join(bin, tool))) symlinkSync(path.join(d, tool), path.join(bin, tool));
    }
  }
}

// Returns { app, tarball, files, env(), run(cmd, args, opts), start(cmd, args, {ready, cwd, extraEnv}) }.
// `extraFiles`: { relative path: content } written into the copy (benchmarks).
export function prepareApp(work, { extraFiles = {}, build = true, log = () => {} } = {}) {
  const app = path.join(work, 'app');
  const bin = path.join(work, 'bin');
  const env = (extra = {}) => ({ ...process.env, PATH: bin, NEXT_TELEMETRY_DISABLED: '1', FORK_ENDPOINT: '', ...extra });
  const run = (cmd, args, opts = {}) =>
    execFileSync(cmd, args, { cwd: app, env: env(), encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 64 << 20, ...opts });

  const { tarball, files } = packFork(work, { log });
  copyExample(app, `file:${tarball}`, extraFiles);

  bareBin(bin);
  log('npm install (no compiler on PATH, --ignore-scripts)');
  run('npm', ['install', '--ignore-scripts', '--no-audit', '--no-fund', '--loglevel=error'], { timeout: 500000 });
  provideBetterSqlite(app);
  if (build) {
    log('next build');
    run('npx', ['next', 'build'], { timeout: 500000 });
  }

  const start = (cmd, args, { ready, timeoutMs = 30000, extraEnv = {}, cwd = app } = {}) => {
    const proc = spawn(cmd, args, { cwd, env: env(extraEnv), stdio: ['ignore', 'pipe', 'pipe'] });
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
        } else if (proc.exitCode !== null || proc.signalCode !== null || Date.now() - t0 > timeoutMs) {
          clearInterval(timer);
          reject(new Error(`${cmd} ${args.join(' ')} did not start:\n${out}`));
        }
      }, 20);
    });
    up.catch(() => {});
    return { proc, up, exited, output: () => out };
  };
  return { app, bin, tarball, files, env, run, start };
}

// `npx forkd run --config fork.yaml` in the app, as its README says.
export function startForkd(ctx) {
  return ctx.start('npx', ['forkd', 'run', '--config', 'fork.yaml'], { ready: /running with/ });
}

// A process and its descendants, parents first ([] once it is gone).
export function processTree(pid) {
  const out = [];
  const walk = (p) => {
    let tasks;
    try {
      tasks = readdirSync(`/proc/${p}/task`);
    } catch {
      return;
    }
    out.push(p);
    for (const t of tasks) {
      let children = '';
      try {
        children = readFileSync(`/proc/${p}/task/${t}/children`, 'utf8');
      } catch {}
      for (const c of children.trim().split(/\s+/).filter(Boolean)) walk(Number(c));
    }
  };
  walk(pid);
  return out;
}

const comm = (pid) => {
  try {
    return readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
  } catch {
    return '';
  }
};

// The forkd process under `npx forkd` (npx runs sh, which runs the launcher,
// which runs forkd), for kill -9 and for a clean SIGTERM: npx does not pass
// signals down.
export function forkdPid(launcher) {
  return processTree(launcher.proc.pid).find((p) => comm(p) === 'forkd') ?? 0;
}

// Sends `signal` to everything under `handle` (deepest first, so a server
// stops before the wrappers around it) and waits for the top to exit.
export async function stopTree(handle, signal = 'SIGTERM') {
  if (!handle || handle.proc.exitCode !== null || handle.proc.signalCode !== null) return;
  const tree = processTree(handle.proc.pid).reverse();
  for (const p of tree) {
    try {
      process.kill(p, signal);
    } catch {}
  }
  await handle.exited;
  // The wrappers may exit first: wait for every process of the tree (forkd
  // holds its data_dir until it has drained).
  const alive = (p) => {
    try {
      return !/^\S+ \(.*\) Z/.test(readFileSync(`/proc/${p}/stat`, 'utf8'));
    } catch {
      return false;
    }
  };
  const t0 = Date.now();
  while (tree.some(alive) && Date.now() - t0 < 30000) await new Promise((r) => setTimeout(r, 20));
}

export async function freePort() {
  return new Promise((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

export function startNext(ctx, port) {
  return ctx.start('npx', ['next', 'start', '-p', String(port), '-H', '127.0.0.1'], { ready: /Ready|started server/i });
}

// The stages of a Dockerfile: [{ from, as, workdir, env, instructions }], each
// instruction { op, args } with continuation lines joined and comments left
// out. For the tests that hold the example's Dockerfiles to what they run.
export function dockerStages(file) {
  const stages = [];
  const lines = readFileSync(file, 'utf8')
    .replace(/\\\n/g, ' ')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'));
  for (const line of lines) {
    const [, op, args] = /^(\w+)\s+(.*)$/.exec(line);
    if (op === 'FROM') {
      const m = /^(\S+)(?:\s+AS\s+(\S+))?/i.exec(args);
      stages.push({ from: m[1], as: m[2], workdir: '/', env: {}, instructions: [] });
      continue;
    }
    const stage = stages.at(-1);
    stage.instructions.push({ op, args });
    if (op === 'WORKDIR') stage.workdir = path.posix.resolve(stage.workdir, args);
    if (op === 'ENV') for (const [, k, v] of args.matchAll(/(\w+)=(\S+)/g)) stage.env[k] = v;
  }
  return stages;
}
