// js/loader.cjs: which platform it detects, which addon and forkd it picks
// (override, prebuilt, local build, in that order), what it says when nothing
// fits, and that the package still loads without an addon, failing each call
// with FORK_UNAVAILABLE instead. The cases that need another platform or no
// build run in a child process, on a copy of the package in a temp dir.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import path from 'node:path';
import test from 'node:test';
import { fileURLToPath } from 'node:url';

const require = createRequire(import.meta.url);
const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const ADDON = path.join(ROOT, 'build', 'Release', 'fork_router.node');
const FORKD = path.join(ROOT, 'build', 'bin', 'forkd');
const loader = require('../../js/loader.cjs');

// A copy of the package's JS (no prebuilds, no build) in a temp dir; `files`
// maps paths inside it to files to copy there.
function fakePackage(t, files = {}) {
  const dir = mkdtempSync(path.join(tmpdir(), 'fork-loader-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  mkdirSync(path.join(dir, 'js'));
  for (const f of readdirSync(path.join(ROOT, 'js'))) copyFileSync(path.join(ROOT, 'js', f), path.join(dir, 'js', f));
  copyFileSync(path.join(ROOT, 'package.json'), path.join(dir, 'package.json'));
  for (const [to, from] of Object.entries(files)) {
    mkdirSync(path.dirname(path.join(dir, to)), { recursive: true });
    copyFileSync(from, path.join(dir, to));
  }
  return dir;
}

// Runs `body` (CommonJS, async allowed) in a child node whose process
// platform, arch and report header are `as` says ({ platform, arch, glibc });
// `body` prints one JSON line. Returns it parsed.
function child(body, { as = {}, env = {} } = {}) {
  const stub = [];
  if (as.platform) stub.push(`Object.defineProperty(process, 'platform', { value: ${JSON.stringify(as.platform)} });`);
  if (as.arch) stub.push(`Object.defineProperty(process, 'arch', { value: ${JSON.stringify(as.arch)} });`);
  if (as.glibc !== undefined) {
    stub.push(`{
      const real = process.report.getReport.bind(process.report);
      process.report.getReport = () => {
        const r = real();
        if (${JSON.stringify(as.glibc)}) r.header.glibcVersionRuntime = ${JSON.stringify(as.glibc)};
        else delete r.header.glibcVersionRuntime;
        return r;
      };
    }`);
  }
  const clean = { ...process.env };
  for (const k of ['FORK_ADDON_PATH', 'FORK_FORKD_PATH', 'FORKD_BIN', 'FORK_HTTP_ENDPOINT']) delete clean[k];
  const r = spawnSync(process.execPath, ['-e', `${stub.join('\n')}\n(async () => { ${body} })().catch((e) => { console.error(e); process.exit(1); });`], {
    encoding: 'utf8',
    env: { ...clean, ...env },
  });
  assert.equal(r.status, 0, `stdout: ${r.stdout}\nstderr: ${r.stderr}`);
  return JSON.parse(r.stdout.trim().split('\n').pop());
}

// The fork_router.node files this process has mapped (where the addon came from).
const MAPPED_ADDONS = `[...new Set(require('fs').readFileSync('/proc/self/maps', 'utf8').split('\\n')
  .map((l) => l.split(/\\s+/).pop()).filter((f) => f.endsWith('fork_router.node')))]`;

test('detectPlatform: glibc Linux is linux-<arch>, musl Linux linuxmusl-<arch>, others <platform>-<arch>', () => {
  assert.equal(loader.detectPlatform({ platform: 'linux', arch: 'x64', header: { glibcVersionRuntime: '2.36' } }), 'linux-x64');
  assert.equal(loader.detectPlatform({ platform: 'linux', arch: 'arm64', header: { glibcVersionRuntime: '2.31' } }), 'linux-arm64');
  assert.equal(loader.detectPlatform({ platform: 'linux', arch: 'x64', header: {} }), 'linuxmusl-x64');
  assert.equal(loader.detectPlatform({ platform: 'linux', arch: 'arm64', header: {} }), 'linuxmusl-arm64');
  assert.equal(loader.detectPlatform({ platform: 'darwin', arch: 'arm64' }), 'darwin-arm64');
  assert.equal(loader.detectPlatform({ platform: 'win32', arch: 'x64' }), 'win32-x64');
  assert.deepEqual(loader.PREBUILT_PLATFORMS, ['linux-x64', 'linux-arm64', 'linuxmusl-x64', 'linuxmusl-arm64']);
});

test("detectPlatform reads glibcVersionRuntime from the process's own report", () => {
  // This machine runs glibc: the real report says so.
  assert.ok(process.report.getReport().header.glibcVersionRuntime, 'the test machine runs glibc');
  assert.equal(loader.detectPlatform(), `linux-${process.arch}`);
  const loaderPath = JSON.stringify(path.join(ROOT, 'js', 'loader.cjs'));
  const print = `console.log(JSON.stringify(require(${loaderPath}).detectPlatform()));`;
  assert.equal(child(print, { as: { glibc: null } }), `linuxmusl-${process.arch}`);
  assert.equal(child(print, { as: { glibc: null, arch: 'arm64' } }), 'linuxmusl-arm64');
  assert.equal(child(print, { as: { glibc: '2.36', arch: 'arm64' } }), 'linux-arm64');
});

test('the loader names every prebuilt file in literal requires and path.join calls, for file tracers', () => {
  const src = readFileSync(path.join(ROOT, 'js', 'loader.cjs'), 'utf8');
  for (const p of loader.PREBUILT_PLATFORMS) {
    assert.ok(src.includes(`require('../prebuilds/${p}/fork_router.node')`), `a literal require of the ${p} addon`);
    assert.ok(src.includes(`path.join(__dirname, '..', 'prebuilds', '${p}', 'fork_router.node')`), `the ${p} addon's path`);
    // forkd is static: the linux-<arch> one serves linuxmusl-<arch> too.
    const forkdDir = p.replace('linuxmusl-', 'linux-');
    assert.ok(src.includes(`'${p}': path.join(__dirname, '..', 'prebuilds', '${forkdDir}', 'forkd')`), `the ${p} forkd's path`);
  }
  assert.doesNotMatch(src, /require\(`/, 'no require of a template string');
  // And index.cjs reaches the loader by a literal require, so a tracer finds it.
  assert.match(readFileSync(path.join(ROOT, 'js', 'index.cjs'), 'utf8'), /require\('\.\/loader\.cjs'\)/);
});

test('the prebuilt addon of the detected platform comes before a local build; a local build is the fallback', (t) => {
  const dir = fakePackage(t, {
    'prebuilds/linux-x64/fork_router.node': ADDON,
    'prebuilds/linuxmusl-x64/fork_router.node': ADDON,
    'build/Release/fork_router.node': ADDON,
  });
  const load = `require(${JSON.stringify(path.join(dir, 'js', 'loader.cjs'))}).load(); console.log(JSON.stringify(${MAPPED_ADDONS}));`;
  assert.deepEqual(child(load, { as: { arch: 'x64', glibc: '2.36' } }), [path.join(dir, 'prebuilds', 'linux-x64', 'fork_router.node')]);
  assert.deepEqual(child(load, { as: { arch: 'x64', glibc: null } }), [path.join(dir, 'prebuilds', 'linuxmusl-x64', 'fork_router.node')]);
  // No prebuild for this platform: the local build.
  rmSync(path.join(dir, 'prebuilds', 'linuxmusl-x64'), { recursive: true });
  assert.deepEqual(child(load, { as: { arch: 'x64', glibc: null } }), [path.join(dir, 'build', 'Release', 'fork_router.node')]);
});

test('FORK_ADDON_PATH comes before the prebuild and the local build', (t) => {
  const dir = fakePackage(t, {
    'prebuilds/linux-x64/fork_router.node': ADDON,
    'build/Release/fork_router.node': ADDON,
    'elsewhere/fork_router.node': ADDON,
  });
  const load = `require(${JSON.stringify(path.join(dir, 'js', 'loader.cjs'))}).load(); console.log(JSON.stringify(${MAPPED_ADDONS}));`;
  const forced = path.join(dir, 'elsewhere', 'fork_router.node');
  assert.deepEqual(child(load, { as: { arch: 'x64', glibc: '2.36' }, env: { FORK_ADDON_PATH: forced } }), [forced]);
});

test('an override naming a missing file is an error naming the variable and the path, not a fallback', (t) => {
  const dir = fakePackage(t, { 'build/Release/fork_router.node': ADDON, 'build/bin/forkd': FORKD });
  const missing = path.join(dir, 'nowhere', 'fork_router.node');
  const js = JSON.stringify(path.join(dir, 'js', 'loader.cjs'));
  const attempt = (call) => `try { require(${js}).${call}(); console.log(JSON.stringify({ loaded: true })); }
    catch (e) { console.log(JSON.stringify({ code: e.code, message: e.message, mapped: ${MAPPED_ADDONS} })); }`;
  const addon = child(attempt('load'), { env: { FORK_ADDON_PATH: missing } });
  assert.equal(addon.code, 'FORK_UNAVAILABLE');
  assert.match(addon.message, /FORK_ADDON_PATH is set to \S+, but there is no native addon at /);
  assert.ok(addon.message.includes(missing), addon.message);
  assert.deepEqual(addon.mapped, [], 'the local build was not loaded instead');
  for (const variable of ['FORK_FORKD_PATH', 'FORKD_BIN']) {
    const bin = path.join(dir, 'nowhere', 'forkd');
    const r = child(attempt('findForkd'), { env: { [variable]: bin } });
    assert.equal(r.code, 'FORK_UNAVAILABLE', variable);
    assert.ok(r.message.includes(`${variable} is set to ${bin}, but there is no forkd binary at ${bin}`), r.message);
  }
});

test('forkd: FORK_FORKD_PATH, then its alias FORKD_BIN, then the prebuild of the platform, then build/bin/forkd', (t) => {
  const dir = fakePackage(t, {
    'prebuilds/linux-arm64/forkd': FORKD,
    'build/bin/forkd': FORKD,
    'a/forkd': FORKD,
    'b/forkd': FORKD,
  });
  const find = `console.log(JSON.stringify(require(${JSON.stringify(path.join(dir, 'js', 'loader.cjs'))}).findForkd()));`;
  const musl = { arch: 'arm64', glibc: null };
  const a = path.join(dir, 'a', 'forkd');
  const b = path.join(dir, 'b', 'forkd');
  assert.equal(child(find, { as: musl, env: { FORK_FORKD_PATH: a, FORKD_BIN: b } }), a);
  assert.equal(child(find, { as: musl, env: { FORKD_BIN: b } }), b);
  // One static forkd per architecture, in the linux-<arch> directory, for musl too.
  assert.equal(child(find, { as: musl }), path.join(dir, 'prebuilds', 'linux-arm64', 'forkd'));
  assert.equal(child(find, { as: { arch: 'arm64', glibc: '2.36' } }), path.join(dir, 'prebuilds', 'linux-arm64', 'forkd'));
  assert.equal(child(find, { as: { arch: 'x64', glibc: '2.36' } }), path.join(dir, 'build', 'bin', 'forkd'));
});

test('nothing fits: the error names the platform, where it looked, and what to do', (t) => {
  const dir = fakePackage(t);
  const js = JSON.stringify(path.join(dir, 'js', 'loader.cjs'));
  const attempt = (call) => `try { require(${js}).${call}(); } catch (e) { console.log(JSON.stringify({ code: e.code, message: e.message })); }`;
  const musl = child(attempt('load'), { as: { arch: 'arm64', glibc: null } });
  assert.equal(musl.code, 'FORK_UNAVAILABLE');
  assert.ok(musl.message.startsWith('fork-router: no native addon for linuxmusl-arm64 (looked for '), musl.message);
  assert.ok(musl.message.includes(path.join(dir, 'prebuilds', 'linuxmusl-arm64', 'fork_router.node')), musl.message);
  assert.ok(musl.message.includes(path.join(dir, 'build', 'Release', 'fork_router.node')), musl.message);
  assert.match(musl.message, /ship for linux-x64, linux-arm64, linuxmusl-x64, linuxmusl-arm64 only/);
  assert.match(musl.message, /Set FORK_ADDON_PATH to a fork_router\.node/);
  assert.match(musl.message, /`npx cmake-js build` in /);
  assert.doesNotMatch(musl.message, /macOS/);

  const mac = child(attempt('load'), { as: { platform: 'darwin', arch: 'arm64' } });
  assert.ok(mac.message.startsWith('fork-router: no native addon for darwin-arm64 (looked for '), mac.message);
  assert.ok(!mac.message.includes('prebuilds'), `no prebuild is looked for on macOS: ${mac.message}`);
  assert.match(mac.message, /FORK_ADDON_PATH/);
  assert.match(mac.message, /On macOS, run forkd in Docker beside `next dev`/);
  assert.match(mac.message, /brew install zeromq cmake pkg-config/);

  const forkd = child(attempt('findForkd'), { as: { platform: 'darwin', arch: 'x64' } });
  assert.ok(forkd.message.startsWith('forkd: no binary for darwin-x64 (looked for '), forkd.message);
  assert.ok(forkd.message.includes(path.join(dir, 'build', 'bin', 'forkd')), forkd.message);
  assert.match(forkd.message, /Set FORK_FORKD_PATH/);
  assert.match(forkd.message, /run forkd in Docker/);
});

// What the package does for a program on a machine without an addon: import
// it, create the default client, call routeData, call warmup.
const USE_WITHOUT_ADDON = (pkg) => `
  const fork = require(${JSON.stringify(path.join(pkg, 'js', 'index.cjs'))});
  const esm = await import(${JSON.stringify(path.join(pkg, 'js', 'index.mjs'))});
  const out = { exports: Object.keys(esm).sort() };
  const err = await fork.routeData({ event: 'purchase' }, 'logs').then(() => null, (e) => e);
  out.routeData = err && { code: err.code, name: err.name, isForkError: err instanceof fork.ForkError, message: err.message };
  out.esmRouteData = await esm.routeData({ a: 1 }).then(() => null, (e) => e.code);
  try { fork.createClient({ endpoint: 'ipc:///tmp/x.sock' }); out.createClient = 'created'; } catch (e) { out.createClient = e.code; }
  try { fork.getDefaultClient(); out.getDefaultClient = 'created'; } catch (e) { out.getDefaultClient = e.code; }
  const warnings = [];
  process.on('warning', (w) => warnings.push(w.code));
  out.warmup = fork.warmup() === undefined ? 'undefined' : 'client';
  fork.warmup();
  await new Promise((r) => setImmediate(r));
  out.warnings = warnings;
  console.log(JSON.stringify(out));`;

test('no addon: the package loads, and routeData rejects FORK_UNAVAILABLE saying what to do (macOS)', (t) => {
  const pkg = fakePackage(t);
  const out = child(USE_WITHOUT_ADDON(pkg), { as: { platform: 'darwin', arch: 'arm64' } });
  assert.deepEqual(out.exports, ['ForkError', 'codes', 'createClient', 'default', 'getDefaultClient', 'routeData', 'routeMany', 'streamResponse', 'subscribe', 'version', 'warmup']);
  assert.equal(out.routeData.code, 'FORK_UNAVAILABLE');
  assert.equal(out.routeData.name, 'ForkError');
  assert.equal(out.routeData.isForkError, true);
  assert.match(out.routeData.message, /^fork-router: no native addon for darwin-arm64/);
  assert.match(out.routeData.message, /FORK_ADDON_PATH/);
  assert.match(out.routeData.message, /run forkd in Docker/);
  assert.equal(out.esmRouteData, 'FORK_UNAVAILABLE');
  assert.equal(out.createClient, 'FORK_UNAVAILABLE');
  assert.equal(out.getDefaultClient, 'FORK_UNAVAILABLE');
  assert.equal(out.warmup, 'undefined');
  assert.deepEqual(out.warnings, ['FORK_UNAVAILABLE'], 'warmup warns once');
});

test('FORK_ADDON_PATH naming a missing file: the package loads, and routeData rejects FORK_UNAVAILABLE naming it', () => {
  const missing = path.join(tmpdir(), 'fork-no-such-dir', 'fork_router.node');
  const out = child(USE_WITHOUT_ADDON(ROOT), { env: { FORK_ADDON_PATH: missing } });
  assert.equal(out.routeData.code, 'FORK_UNAVAILABLE');
  assert.ok(out.routeData.message.includes(`FORK_ADDON_PATH is set to ${missing}`), out.routeData.message);
  assert.equal(out.createClient, 'FORK_UNAVAILABLE');
});

test('no addon and no FORK_HTTP_ENDPOINT: the FORK_UNAVAILABLE message names both fixes, the addon and HTTP ingest', (t) => {
  const pkg = fakePackage(t);
  const out = child(USE_WITHOUT_ADDON(pkg), { as: { platform: 'darwin', arch: 'arm64' } });
  assert.match(out.routeData.message, /no native addon for darwin-arm64/);
  assert.match(out.routeData.message, /FORK_ADDON_PATH/);
  assert.match(out.routeData.message, /set FORK_HTTP_ENDPOINT \(e\.g\. http:\/\/127\.0\.0\.1:8788/);
  assert.match(out.routeData.message, /FORK_INGEST_TOKEN/);
  assert.match(out.routeData.message, /createClient\(\{ httpEndpoint, token \}\)/);
});

test('no addon with FORK_HTTP_ENDPOINT set: clients are HTTP clients, and an endpoint nobody serves is FORK_UNAVAILABLE naming it', (t) => {
  const pkg = fakePackage(t);
  const out = child(USE_WITHOUT_ADDON(pkg), { as: { platform: 'darwin', arch: 'arm64' }, env: { FORK_HTTP_ENDPOINT: 'http://127.0.0.1:9' } });
  assert.equal(out.routeData.code, 'FORK_UNAVAILABLE');
  assert.match(out.routeData.message, /forkd is not reachable at http:\/\/127\.0\.0\.1:9\/v1\/events \(HTTP ingest\)/);
  assert.equal(out.getDefaultClient, 'created');
  assert.equal(out.warmup, 'client');
  assert.deepEqual(out.warnings, [], 'no warning: HTTP ingest is the way to forkd here');
});
