// `npx forkd`: the launcher runs the binary with its arguments and exit
// status, honours FORK_FORKD_PATH (and FORKD_BIN), says what to do when there
// is no binary, and names the Debian packages of missing libraries; its table of
// libraries matches what forkd links and what install-deps.sh installs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
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

test('no binary: says which platform, where it looked and what to do', (t) => {
  // A copy of the launcher and loader with no prebuild and no build beside it.
  const fake = mkdtempSync(path.join(tmpdir(), 'fork-launcher-'));
  t.after(() => rmSync(fake, { recursive: true, force: true }));
  mkdirSync(path.join(fake, 'js'));
  for (const f of ['forkd.cjs', 'loader.cjs']) copyFileSync(path.join(ROOT, 'js', f), path.join(fake, 'js', f));
  const env = { ...process.env };
  delete env.FORK_FORKD_PATH;
  delete env.FORKD_BIN;
  const r = spawnSync(process.execPath, [path.join(fake, 'js', 'forkd.cjs'), 'version'], { encoding: 'utf8', env });
  assert.equal(r.status, 127);
  const platform = `linux-${process.arch}`;
  assert.ok(
    r.stderr.startsWith(
      `forkd: no binary for ${platform} (looked for ${path.join(fake, 'prebuilds', platform, 'forkd')} and ${path.join(fake, 'build', 'bin', 'forkd')}). `,
    ),
    r.stderr,
  );
  assert.match(r.stderr, /Set FORK_FORKD_PATH to a forkd binary/);
  assert.match(r.stderr, /`npm run build` in /);
});

test('FORK_FORKD_PATH, or its older name FORKD_BIN, runs that binary; naming a missing file fails and says so', () => {
  const clean = { ...process.env };
  delete clean.FORK_FORKD_PATH;
  delete clean.FORKD_BIN;
  for (const variable of ['FORK_FORKD_PATH', 'FORKD_BIN']) {
    const r = spawnSync(process.execPath, [LAUNCHER, 'version'], { encoding: 'utf8', env: { ...clean, [variable]: FORKD } });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /^forkd \d+\.\d+\.\d+/);
    const missing = path.join(tmpdir(), 'fork-no-such-dir', 'forkd');
    const bad = spawnSync(process.execPath, [LAUNCHER, 'version'], { encoding: 'utf8', env: { ...clean, [variable]: missing } });
    assert.equal(bad.status, 127);
    assert.equal(bad.stdout, '', 'nothing else ran');
    assert.ok(bad.stderr.startsWith(`forkd: ${variable} is set to ${missing}, but there is no forkd binary at ${missing}`), bad.stderr);
  }
});

test('a static binary has no missing libraries, whatever ldd says of it', (t) => {
  assert.deepEqual(launcher.missingLibraries('\tnot a dynamic executable\n'), []);
  assert.deepEqual(launcher.missingLibraries('\tstatically linked\n'), []);
  // A real static executable, when the machine has one (Debian's ldconfig is static-pie).
  const ldconfig = '/sbin/ldconfig';
  const file = spawnSync('file', ['-L', ldconfig], { encoding: 'utf8' });
  if (file.status !== 0 || !/statically linked|static-pie linked/.test(file.stdout)) {
    t.diagnostic('no static executable at /sbin/ldconfig: checked the ldd texts only');
    return;
  }
  assert.deepEqual(launcher.checkLibraries(ldconfig), []);
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
  // musl's ldd (Alpine) says it another way.
  assert.deepEqual(
    launcher.missingLibraries('Error loading shared library libzmq.so.5: No such file or directory (needed by /x/forkd)\n'),
    ['libzmq.so.5'],
  );
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
