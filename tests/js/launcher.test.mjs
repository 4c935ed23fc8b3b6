// `npx forkd`: the launcher runs the binary with its arguments and exit
// status, and names the Debian packages of missing libraries; its table of
// libraries matches what forkd links and what install-deps.sh installs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const require = createRequire(import.meta.url);
const launcher = require('../../js/forkd.cjs');
const LAUNCHER = path.join(ROOT, 'js', 'forkd.cjs');
const FORKD = path.join(ROOT, 'build', 'bin', 'forkd');

test('runs forkd with its arguments and passes its exit status on', () => {
  let r = spawnSync(process.execPath, [LAUNCHER, 'version'], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /^forkd \d+\.\d+\.\d+/);
  r = spawnSync(process.execPath, [LAUNCHER, 'check', '--config', path.join(ROOT, 'examples', 'fork.yaml')], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  r = spawnSync(process.execPath, [LAUNCHER, 'check', '--config', '/nonexistent/fork.yaml'], { encoding: 'utf8' });
  assert.equal(r.status, 2);
  assert.match(r.stderr, /nonexistent/);
});

test('no binary: says where it looked and what to run', () => {
  const r = spawnSync(process.execPath, ['-e', `
    const fs = require('node:fs');
    const real = fs.existsSync;
    fs.existsSync = (p) => (String(p).endsWith('forkd') ? false : real(p));
    process.exitCode = require(${JSON.stringify(LAUNCHER)}).main(['version']);
  `], { encoding: 'utf8', env: { ...process.env, FORKD_BIN: '' } });
  assert.equal(r.status, 127);
  assert.match(r.stderr, /forkd: no binary for linux-x64 \(looked for .*prebuilds\/linux-x64\/forkd, .*build\/bin\/forkd\)\. Build it with `npm run build`/);
});

test('missing libraries are named with the Debian packages that hold them', () => {
  const ldd = [
    '\tlinux-vdso.so.1 (0x00007ffd)',
    '\tlibzmq.so.5 => not found',
    '\tlibcurl.so.4 => /lib/x86_64-linux-gnu/libcurl.so.4 (0x00007f)',
    '\tlibssl.so.3 => not found',
    '\tlibcrypto.so.3 => not found',
    '\tlibweird.so.1 => not found',
  ].join('\n');
  const missing = launcher.missingLibraries(ldd);
  assert.deepEqual(missing, ['libzmq.so.5', 'libssl.so.3', 'libcrypto.so.3', 'libweird.so.1']);
  const msg = launcher.missingMessage('/x/forkd', missing);
  assert.match(msg, /^forkd cannot start: \/x\/forkd needs libzmq\.so\.5, libssl\.so\.3, libcrypto\.so\.3, libweird\.so\.1/);
  assert.match(msg, /Install: sudo apt-get install -y libzmq5 libssl3\n/);
  assert.match(msg, /no known Debian package for libweird\.so\.1/);
});

test('the library table covers every library forkd links, with install-deps.sh runtime packages', () => {
  const needed = spawnSync('readelf', ['-d', FORKD], { encoding: 'utf8' }).stdout
    .split('\n').map((l) => /\(NEEDED\).*\[(.*)\]/.exec(l)?.[1]).filter(Boolean);
  assert.ok(needed.length > 5, `readelf found ${needed}`);
  const base = /^(libc|libm|libstdc\+\+|libgcc_s|ld-linux-x86-64)\.so/;
  for (const lib of needed) {
    if (base.test(lib)) continue;
    assert.ok(launcher.LIBRARY_PACKAGES[lib], `the launcher knows the package of ${lib}`);
  }
  const script = readFileSync(path.join(ROOT, 'scripts', 'install-deps.sh'), 'utf8');
  const runtime = /runtime_pkgs=\(([^)]*)\)/.exec(script)[1].split(/\s+/).filter(Boolean);
  for (const pkg of new Set(Object.values(launcher.LIBRARY_PACKAGES))) {
    assert.ok(runtime.includes(pkg), `install-deps.sh --runtime installs ${pkg}`);
  }
});
