// The prebuilt binaries run where they claim to. scripts/build-prebuilds.sh
// writes them to build/prebuilds/out/<target>/ (npm pack copies them from
// there into prebuilds/); these tests take them from there:
//
// - ELF: forkd is static (no interpreter, nothing NEEDED); each addon needs
//   only its C library (glibc ≤ 2.28 for linux-*, musl for linuxmusl-*),
//   exports napi_register_module_v1 and no C++ symbol; each file is built for
//   its directory's machine.
// - x64: forkd runs in a chroot holding nothing but itself, its config, /tmp
//   and /data (no /dev, /proc or /etc: a static binary must not need them),
//   and receives events from this machine's node through the prebuilt glibc
//   addon, over an ipc socket under the chroot's /data.
// - arm64, under qemu-aarch64-static: forkd, and Debian bookworm's arm64
//   Node 18 (scripts/arm64-sysroot.sh) loading the prebuilt arm64 addon and
//   routing an event to it.
//
// Not run: the musl addons (linuxmusl-*/fork_router.node). This machine has
// no musl Node to load them in, so only their ELF properties are checked.
// forkd ships once per architecture, static, in linux-<arch>/ (the loader
// takes it for musl too); the x64 chroot and the arm64 qemu runs cover it.
import assert from 'node:assert/strict';
import { execFile, execFileSync, spawn } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';
import { ROOT, readJsonl } from './helpers.mjs';

const execFileP = promisify(execFile);
const PREBUILDS = path.join(ROOT, 'build', 'prebuilds', 'out');
const TARGETS = ['linux-x64', 'linux-arm64', 'linuxmusl-x64', 'linuxmusl-arm64'];
const present = TARGETS.filter((t) => existsSync(path.join(PREBUILDS, t)));
const MISSING_X64 = `${path.join(PREBUILDS, 'linux-x64')} is missing: run \`bash scripts/build-prebuilds.sh\` first`;
const SYSROOT = path.join(ROOT, 'build', 'arm64-sysroot');
const QEMU = 'qemu-aarch64-static';
const INDEX = path.join(ROOT, 'js', 'index.cjs');

const MACHINE = { x64: 'Advanced Micro Devices X86-64', arm64: 'AArch64' };
const GLIBC_NEEDED = ['libc.so.6', 'libm.so.6', 'libpthread.so.0', 'libdl.so.2', 'librt.so.1', 'ld-linux-x86-64.so.2', 'ld-linux-aarch64.so.1'];
// zig links a musl addon against its libc.so stub, so it names `libc.so`;
// Alpine's loader (ld-musl-<arch>.so.1) answers to that name and to
// libc.musl-<arch>.so.1, the name Alpine's own packages use.
const MUSL_NEEDED = ['libc.so', 'libc.musl-x86_64.so.1', 'libc.musl-aarch64.so.1'];
const GLIBC_MAX = [2, 28];

// --- ELF, through readelf --------------------------------------------------

function readelf(args, file) {
  return execFileSync('readelf', [...args, file], { encoding: 'utf8', maxBuffer: 64 << 20 });
}

// { machine, interp, needed: [...], symbols: [{ name, version, bind, defined }], glibc: ['2.17', ...] }
function elf(file) {
  const header = readelf(['-hW'], file);
  const machine = /^\s*Machine:\s+(.+)$/m.exec(header)[1].trim();
  const interp = /Requesting program interpreter: ([^\]]+)\]/.exec(readelf(['-lW'], file))?.[1] ?? null;
  const needed = [...readelf(['-dW'], file).matchAll(/\(NEEDED\)\s+Shared library: \[([^\]]+)\]/g)].map((m) => m[1]);
  const symbols = [];
  for (const line of readelf(['--dyn-syms', '-W'], file).split('\n')) {
    // Num: Value Size Type Bind Vis Ndx Name[@version (n)]
    const m = /^\s*\d+:\s+[0-9a-f]+\s+\S+\s+\S+\s+(\S+)\s+\S+\s+(\S+)\s+([^@\s]+)(?:@@?(\S+))?/.exec(line);
    if (m) symbols.push({ bind: m[1], defined: m[2] !== 'UND', name: m[3], version: m[4] ?? null });
  }
  // The glibc versions asked for: the version needs and every symbol's version.
  const glibc = new Set();
  for (const m of readelf(['-VW'], file).matchAll(/Name: GLIBC_([0-9.]+|PRIVATE)\b/g)) glibc.add(m[1]);
  for (const s of symbols) if (s.version?.startsWith('GLIBC_')) glibc.add(s.version.slice(6));
  return { machine, interp, needed, symbols, glibc: [...glibc] };
}

function compareVersions(a, b) {
  const x = a.split('.').map(Number);
  const y = b.split('.').map(Number);
  for (let i = 0; i < Math.max(x.length, y.length); i++) {
    if ((x[i] ?? 0) !== (y[i] ?? 0)) return (x[i] ?? 0) - (y[i] ?? 0);
  }
  return 0;
}

const archOf = (target) => target.split('-')[1];

// --- processes ---------------------------------------------------------------

// Starts `command args` (a forkd run, perhaps behind chroot or qemu) and
// resolves once its stderr says it is running.
async function startRun(command, args, { timeoutMs = 10000 } = {}) {
  const proc = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let err = '';
  proc.stderr.on('data', (d) => (err += d));
  proc.stdout.on('data', (d) => (err += d));
  const exited = new Promise((resolve) => proc.on('exit', (code, signal) => resolve({ code, signal })));
  await new Promise((resolve, reject) => {
    const t0 = Date.now();
    const timer = setInterval(() => {
      if (err.includes('running with')) {
        clearInterval(timer);
        resolve();
      } else if (proc.exitCode !== null || proc.signalCode !== null || Date.now() - t0 > timeoutMs) {
        clearInterval(timer);
        proc.kill('SIGKILL');
        reject(new Error(`${command} ${args.join(' ')} did not start (exit ${proc.exitCode ?? proc.signalCode}):\n${err}`));
      }
    }, 20);
  });
  return {
    stderr: () => err,
    async stop() {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGTERM');
      return exited;
    },
    kill() {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
      return exited;
    },
  };
}

// Run by a node child process (the host's, or the arm64 one under qemu):
// routes FORK_EVENT to the `logs` destination of the forkd at FORK_ENDPOINT,
// acknowledged once delivered, and prints what happened with the native
// files the process mapped.
const SENDER = `
const fs = require('fs');
const { createClient } = require(${JSON.stringify(INDEX)});
const c = createClient({ endpoint: process.env.FORK_ENDPOINT, timeoutMs: 60000 });
c.routeData(JSON.parse(process.env.FORK_EVENT), 'logs', { ack: 'delivered' })
  .then(async (result) => {
    const mapped = fs.readFileSync('/proc/self/maps', 'utf8').split('\\n').map((l) => l.split(/\\s+/)[5]).filter(Boolean);
    const native = [...new Set(mapped.filter((f) => /\\.node$|libzmq|libsodium|libstdc\\+\\+|libc\\+\\+/.test(f)))];
    await c.close();
    console.log(JSON.stringify({ arch: process.arch, node: process.version, result, native }));
  })
  .catch((e) => { console.error(e); process.exit(1); });
`;

// Routes `event` from a node child process; resolves with the sender's report.
async function sendFrom(command, args, { addon, endpoint, event, timeoutMs }) {
  const { stdout } = await execFileP(command, [...args, '-e', SENDER], {
    env: { ...process.env, FORK_ADDON_PATH: addon, FORK_ENDPOINT: endpoint, FORK_EVENT: JSON.stringify(event) },
    timeout: timeoutMs,
    encoding: 'utf8',
  });
  return JSON.parse(stdout.trim().split('\n').pop());
}

const CONFIG = (dataDir, out) => `data_dir: ${dataDir}
listen: ipc://${dataDir}/fork.sock
destinations:
  logs: { type: file, format: jsonl, path: ${out}, batch: { max_wait: 5ms } }
`;

// --- tests -----------------------------------------------------------------

test('all four prebuilds exist: linux-x64, linux-arm64, linuxmusl-x64, linuxmusl-arm64', () => {
  assert.deepEqual(present, TARGETS, `missing from ${PREBUILDS}: ${TARGETS.filter((t) => !present.includes(t)).join(', ')}; run \`bash scripts/build-prebuilds.sh\``);
});

for (const target of present) {
  const dir = path.join(PREBUILDS, target);
  const arch = archOf(target);
  const musl = target.startsWith('linuxmusl-');

  // One static forkd per architecture, in linux-<arch>/ only: the loader
  // takes it for linuxmusl-<arch> too.
  if (musl) {
    test(`${target}: no forkd of its own (the static linux-${arch}/forkd serves it)`, () => {
      assert.ok(!existsSync(path.join(dir, 'forkd')), `${dir} holds no second copy of forkd`);
    });
  } else {
    test(`${target}/forkd: static, for ${MACHINE[arch]}`, () => {
      const forkd = path.join(dir, 'forkd');
      assert.ok(existsSync(forkd), `${forkd} exists`);
      const e = elf(forkd);
      assert.equal(e.machine, MACHINE[arch]);
      assert.equal(e.interp, null, `forkd asks for no program interpreter (it asks for ${e.interp})`);
      assert.deepEqual(e.needed, [], 'forkd needs no shared library');
    });
  }

  test(`${target}/fork_router.node: needs only the ${musl ? 'musl' : 'glibc ≤ 2.28'} C library, exports N-API only`, (t) => {
    const addon = path.join(dir, 'fork_router.node');
    assert.ok(existsSync(addon), `${addon} exists`);
    const e = elf(addon);
    assert.equal(e.machine, MACHINE[arch]);
    const allowed = musl ? MUSL_NEEDED : GLIBC_NEEDED;
    assert.deepEqual(e.needed.filter((n) => !allowed.includes(n)), [], `NEEDED ${e.needed.join(', ')}`);
    assert.ok(e.needed.some((n) => n.startsWith('libc.')), `it links a C library (NEEDED ${e.needed.join(', ')})`);
    const register = e.symbols.find((s) => s.name === 'napi_register_module_v1');
    assert.ok(register?.defined, 'napi_register_module_v1 is exported');
    const cxx = e.symbols.filter((s) => s.name.startsWith('_Z')).map((s) => `${s.name}${s.defined ? '' : ' (undefined)'}`);
    assert.deepEqual(cxx, [], 'no C++ symbol is exported or imported');
    const exported = e.symbols.filter((s) => s.defined && s.bind !== 'LOCAL').map((s) => s.name);
    t.diagnostic(`NEEDED ${e.needed.join(' ')}; exports ${exported.length > 8 ? `${exported.length} symbols` : exported.join(' ')}`);
    if (musl) {
      assert.deepEqual(e.glibc, [], 'no glibc symbol versions');
    } else {
      assert.ok(!e.glibc.includes('PRIVATE'), 'no GLIBC_PRIVATE symbol');
      const highest = e.glibc.sort(compareVersions).at(-1);
      assert.ok(highest, 'it asks for versioned glibc symbols');
      t.diagnostic(`highest glibc symbol version: GLIBC_${highest}`);
      const over = e.glibc.filter((v) => compareVersions(v, GLIBC_MAX.join('.')) > 0);
      const users = e.symbols.filter((s) => over.some((v) => s.version === `GLIBC_${v}`)).map((s) => `${s.name}@${s.version}`);
      assert.deepEqual(over, [], `glibc ≤ ${GLIBC_MAX.join('.')}: it asks for ${e.glibc.join(', ')} (${users.join(', ')})`);
      // Everything else it imports comes from node: N-API, nothing of libuv, V8 or libstdc++.
      const foreign = e.symbols
        .filter((s) => !s.defined && s.bind !== 'WEAK' && !s.version && !/^(napi_|node_api_)/.test(s.name))
        .map((s) => s.name);
      assert.deepEqual(foreign, [], 'its unversioned imports are N-API functions');
    }
  });
}

test('x64: forkd in a chroot holding only itself and its config, mimalloc its allocator; events from this machine\'s node through the prebuilt glibc addon', { timeout: 60000 }, async () => {
  assert.ok(present.includes('linux-x64'), MISSING_X64);
  assert.equal(process.getuid(), 0, 'this test runs as root: it needs chroot');
  const dir = path.join(PREBUILDS, 'linux-x64');
  const addon = path.join(dir, 'fork_router.node');
  const root = mkdtempSync(path.join(tmpdir(), 'fork-chroot-'));
  let forkd;
  try {
    copyFileSync(path.join(dir, 'forkd'), path.join(root, 'forkd'));
    execFileSync('chmod', ['0755', path.join(root, 'forkd')]);
    mkdirSync(path.join(root, 'tmp'), { mode: 0o1777 });
    mkdirSync(path.join(root, 'data'));
    writeFileSync(path.join(root, 'fork.yaml'), CONFIG('/data/.fork', '/data/out/logs.jsonl'));

    const check = await execFileP('chroot', [root, '/forkd', 'check', '--config', '/fork.yaml'], { encoding: 'utf8' });
    assert.match(check.stdout + check.stderr, /ok \(1 destinations\)/);
    // mimalloc replaced musl's malloc in the static binary (it says so only
    // when a block from malloc() is in its heap).
    const version = await execFileP('chroot', [root, '/forkd', 'version'], { encoding: 'utf8' });
    assert.match(version.stdout, /^allocator: mimalloc \d+\.\d+\.\d+$/m);

    forkd = await startRun('chroot', [root, '/forkd', 'run', '--config', '/fork.yaml', '--exit-with-parent']);
    const endpoint = `ipc://${root}/data/.fork/fork.sock`;

    // From this process: the prebuilt addon loaded here.
    process.env.FORK_ADDON_PATH = addon;
    const { createClient } = await import(INDEX);
    const maps = readFileSync('/proc/self/maps', 'utf8');
    assert.ok(maps.includes(realpathSync(addon)), `this process loaded ${addon}`);
    const client = createClient({ endpoint });
    const first = { from: 'test process', n: 1, text: 'grüße ✓' };
    const r1 = await client.routeData(first, 'logs', { ack: 'delivered' });
    await client.close();
    assert.equal(r1.ack, 'delivered');

    // From a child node process, which maps the prebuilt addon and no libzmq,
    // libsodium or C++ runtime of its own.
    const second = { from: 'child process', n: 2 };
    const sent = await sendFrom(process.execPath, [], { addon, endpoint, event: second, timeoutMs: 30000 });
    assert.equal(sent.result.ack, 'delivered');
    assert.equal(sent.arch, 'x64');
    const addons = sent.native.filter((f) => f.endsWith('.node'));
    assert.deepEqual(addons, [realpathSync(addon)], 'the child loaded the prebuilt addon');
    assert.deepEqual(sent.native.filter((f) => /libzmq|libsodium|libc\+\+/.test(f)), [], `no libzmq, libsodium or libc++ mapped: ${sent.native.join(', ')}`);

    const stopped = await forkd.stop();
    assert.deepEqual(stopped, { code: 0, signal: null }, `forkd exits 0 on SIGTERM:\n${forkd.stderr()}`);
    assert.deepEqual(readJsonl(path.join(root, 'data', 'out', 'logs.jsonl')), [
      { _fork_id: r1.id, ...first },
      { _fork_id: sent.result.id, ...second },
    ]);
    assert.match(forkd.stderr(), /stopped: 2 events accepted/);
  } finally {
    await forkd?.kill();
    rmSync(root, { recursive: true, force: true });
  }
});

if (present.includes('linux-arm64')) {
  test('arm64 under qemu: forkd check, version (mimalloc its allocator) and run; Debian\'s arm64 Node 18 routes an event through the prebuilt arm64 addon', { timeout: 600000 }, async (t) => {
    assert.ok(execFileSync('sh', ['-c', `command -v ${QEMU} || true`], { encoding: 'utf8' }).trim(), `${QEMU} is missing: scripts/install-deps.sh installs qemu-user-static`);
    execFileSync('bash', [path.join(ROOT, 'scripts', 'arm64-sysroot.sh')], { stdio: ['ignore', 'ignore', 'inherit'], timeout: 500000 });
    const dir = path.join(PREBUILDS, 'linux-arm64');
    const work = mkdtempSync(path.join(tmpdir(), 'fork-arm64-'));
    const config = path.join(work, 'fork.yaml');
    writeFileSync(config, CONFIG(path.join(work, '.fork'), path.join(work, 'out', 'logs.jsonl')));
    const endpoint = `ipc://${work}/.fork/fork.sock`;
    const forkdBin = path.join(dir, 'forkd');
    let forkd;
    try {
      const check = await execFileP(QEMU, [forkdBin, 'check', '--config', config], { encoding: 'utf8', timeout: 60000 });
      assert.match(check.stdout + check.stderr, /ok \(1 destinations\)/);
      const version = await execFileP(QEMU, [forkdBin, 'version'], { encoding: 'utf8', timeout: 60000 });
      assert.match(version.stdout, /^allocator: mimalloc \d+\.\d+\.\d+$/m);
      forkd = await startRun(QEMU, [forkdBin, 'run', '--config', config, '--exit-with-parent'], { timeoutMs: 60000 });

      const addon = path.join(dir, 'fork_router.node');
      const node = path.join(SYSROOT, 'usr', 'bin', 'node');
      const first = { from: 'arm64 node', n: 1 };
      const sent = await sendFrom(QEMU, ['-L', SYSROOT, node], { addon, endpoint, event: first, timeoutMs: 120000 });
      assert.equal(sent.arch, 'arm64');
      assert.match(sent.node, /^v18\./);
      assert.equal(sent.result.ack, 'delivered');
      assert.deepEqual(sent.native.filter((f) => f.endsWith('.node')), [realpathSync(addon)], 'the arm64 node loaded the prebuilt arm64 addon');
      assert.match(forkd.stderr(), /connected \(fork-router\/\S+ node\/v18\./);
      t.diagnostic(`arm64 node ${sent.node} under ${QEMU}: ${sent.result.id} delivered`);

      // And one from this machine's x64 node, when the x64 addon is here too.
      const records = [{ _fork_id: sent.result.id, ...first }];
      if (present.includes('linux-x64')) {
        const second = { from: 'x64 node', n: 2 };
        const x64 = await sendFrom(process.execPath, [], {
          addon: path.join(PREBUILDS, 'linux-x64', 'fork_router.node'), endpoint, event: second, timeoutMs: 60000,
        });
        assert.equal(x64.result.ack, 'delivered');
        records.push({ _fork_id: x64.result.id, ...second });
      }

      const stopped = await forkd.stop();
      assert.deepEqual(stopped, { code: 0, signal: null }, `forkd exits 0 on SIGTERM:\n${forkd.stderr()}`);
      assert.deepEqual(readJsonl(path.join(work, 'out', 'logs.jsonl')), records);
    } finally {
      await forkd?.kill();
      rmSync(work, { recursive: true, force: true });
    }
  });
} else {
  test('arm64 under qemu', () => {
    assert.fail(`${path.join(PREBUILDS, 'linux-arm64')} is missing: run \`bash scripts/build-prebuilds.sh\` first`);
  });
}
