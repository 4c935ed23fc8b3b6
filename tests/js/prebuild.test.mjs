// The prebuilt addon is self-contained: the shared libraries it needs (libzmq
// and what libzmq needs) sit beside it with an $ORIGIN runpath, so a machine
// without libzmq5 loads it. Proved by hiding the system's copies in a private
// mount namespace, where a local build no longer loads and the prebuild does.
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readdirSync, realpathSync, rmSync } from 'node:fs';
import path from 'node:path';
import test from 'node:test';
import { startForkd, tempConfig, endpointFor, readJsonl, ROOT } from '../e2e/helpers.mjs';

const dir = path.join(ROOT, 'prebuilds', `${process.platform}-${process.arch}`);
const RUNTIME = /^(linux-vdso|ld-linux|libc\.so|libm\.so|libstdc\+\+\.so|libgcc_s\.so|libpthread\.so|libdl\.so|librt\.so|libresolv\.so)/;

test.before(() => {
  execFileSync('bash', [path.join(ROOT, 'scripts', 'prebuild.sh')], { stdio: ['ignore', 'ignore', 'inherit'] });
});

// The loader prefers a prebuild to build/Release: left behind, this one would
// be what later runs load after the next build.
test.after(() => rmSync(dir, { recursive: true, force: true }));

// name => resolved path, from ldd.
function ldd(file) {
  const out = execFileSync('ldd', [file], { encoding: 'utf8' });
  const libs = new Map();
  for (const line of out.split('\n')) {
    const m = /^\s*(\S+)\s+=>\s+(\S+)/.exec(line);
    if (m) libs.set(m[1], m[2]);
  }
  return libs;
}

test('prebuilds/<platform>: the addon and every library it needs beyond the C/C++ runtime resolve inside it', () => {
  const files = readdirSync(dir).sort();
  assert.ok(files.includes('fork_router.node') && files.includes('forkd'), files.join(', '));
  assert.ok(files.includes('libzmq.so.5'), 'libzmq is bundled');
  const licences = readdirSync(path.join(dir, 'licenses'));
  assert.ok(licences.includes('libzmq5.copyright'), `the bundled libraries' licences ship beside them: ${licences.join(', ')}`);
  const runpath = execFileSync('readelf', ['-d', path.join(dir, 'fork_router.node')], { encoding: 'utf8' });
  assert.match(runpath, /RUNPATH.*\[\$ORIGIN\]/);
  for (const f of ['fork_router.node', ...files.filter((f) => f.includes('.so'))]) {
    for (const [name, where] of ldd(path.join(dir, f))) {
      if (RUNTIME.test(name)) continue;
      assert.equal(path.dirname(where), realpathSync(dir), `${f} needs ${name}: resolved to ${where}`);
    }
  }
});

test('with the system libzmq and its libraries hidden, the prebuild loads and routes an event', async (t) => {
  if (process.getuid() !== 0 || spawnSync('unshare', ['-m', 'true']).status !== 0) {
    // Without a mount namespace: at least the loaded libzmq is the bundled one.
    const r = spawnSync(process.execPath, ['-e', `require(${JSON.stringify(path.join(ROOT, 'js', 'index.cjs'))});
      console.log(require('fs').readFileSync('/proc/self/maps', 'utf8').split('\\n').filter((l) => /libzmq/.test(l)).map((l) => l.split(/\\s+/).pop()).join('\\n'))`], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual([...new Set(r.stdout.trim().split('\n'))], [path.join(dir, 'libzmq.so.5')]);
    t.diagnostic('not root or no unshare: checked only which libzmq the process maps');
    return;
  }
  const { dir: work, config } = tempConfig(
    'data_dir: ./.fork\ndestinations:\n  logs: { type: file, path: ./out/logs.jsonl, batch: { max_wait: 5ms } }\n',
    'fork-prebuild-',
  );
  const forkd = await startForkd(config); // outside the namespace: it uses the system libraries
  try {
    // The system copies of every bundled library, hidden behind /dev/null.
    const hidden = readdirSync(dir)
      .filter((f) => f.includes('.so'))
      .map((f) => `/usr/lib/${process.arch === 'x64' ? 'x86_64' : process.arch}-linux-gnu/${f}`)
      .filter((f) => existsSync(f))
      .map((f) => realpathSync(f));
    assert.ok(hidden.some((f) => /libzmq/.test(f)), `the system has a libzmq to hide (${hidden.join(', ')})`);
    const script = `
      const { createClient } = require(${JSON.stringify(path.join(ROOT, 'js', 'index.cjs'))});
      const maps = require('fs').readFileSync('/proc/self/maps', 'utf8');
      const zmq = [...new Set(maps.split('\\n').filter((l) => /libzmq/.test(l)).map((l) => l.split(/\\s+/).pop()))];
      const c = createClient({ endpoint: ${JSON.stringify(endpointFor(work))} });
      c.routeData({ from: 'prebuild' }, 'logs', { ack: 'delivered' })
        .then((r) => { console.log(JSON.stringify({ id: r.id, zmq })); return c.close(); })
        .catch((e) => { console.error(e); process.exit(1); });`;
    const local = path.join(ROOT, 'build', 'Release', 'fork_router.node');
    const shell = [
      ...hidden.map((f) => `mount --bind /dev/null ${f}`),
      // The proof that the libraries are really gone: a build against the system's fails.
      `if node -e 'require(${JSON.stringify(local)})' 2>/dev/null; then echo LOCAL-LOADED; exit 3; fi`,
      `exec ${JSON.stringify(process.execPath)} -e "$SCRIPT"`,
    ].join(' && ');
    const r = spawnSync('unshare', ['-m', 'sh', '-c', shell], { encoding: 'utf8', env: { ...process.env, SCRIPT: script }, timeout: 20000 });
    assert.equal(r.status, 0, `stdout: ${r.stdout}\nstderr: ${r.stderr}`);
    const { id, zmq } = JSON.parse(r.stdout.trim().split('\n').pop());
    assert.deepEqual(zmq, [path.join(dir, 'libzmq.so.5')]);
    await forkd.stop('SIGTERM');
    assert.deepEqual(readJsonl(path.join(work, 'out', 'logs.jsonl')).map((x) => x._fork_id), [id]);
  } finally {
    await forkd.stop('SIGKILL');
    rmSync(work, { recursive: true, force: true });
  }
});
