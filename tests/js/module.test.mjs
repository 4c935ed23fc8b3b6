// Both module formats load the same implementation, and a missing build says
// what to run.
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'node:test';
import { fileURLToPath } from 'node:url';

const require = createRequire(import.meta.url);
const root = fileURLToPath(new URL('../..', import.meta.url));

test('ESM and CommonJS entries expose one implementation', async () => {
  const esm = await import('fork-router');
  const cjs = require('fork-router');
  for (const name of ['routeData', 'routeMany', 'createClient', 'getDefaultClient', 'warmup', 'ForkError', 'codes', 'version']) {
    assert.ok(esm[name] !== undefined, `ESM export ${name}`);
    assert.equal(esm[name], cjs[name], `${name} is the same object in both`);
  }
  assert.equal(esm.default, cjs);
  assert.equal(typeof esm.routeData, 'function');
  assert.equal(cjs.version, require('../../package.json').version);
});

test('the package exports map points at existing files', () => {
  const pkg = require('../../package.json');
  assert.equal(pkg.name, 'fork-router');
  for (const condition of ['import', 'require']) {
    for (const field of ['types', 'default']) {
      const file = pkg.exports['.'][condition][field];
      assert.doesNotThrow(() => require.resolve(join(root, file)), `${condition}.${field}: ${file}`);
    }
  }
  assert.deepEqual(pkg.binary, { napi_versions: [8] });
});

test('ForkError is an Error with a code and extra fields', () => {
  const { ForkError } = require('fork-router');
  const cause = new Error('inner');
  const err = new ForkError('FORK_TIMEOUT', 'late', { id: 'x-1', cause });
  assert.ok(err instanceof Error);
  assert.equal(err.name, 'ForkError');
  assert.equal(err.code, 'FORK_TIMEOUT');
  assert.equal(err.message, 'late');
  assert.equal(err.id, 'x-1');
  assert.equal(err.cause, cause);
  assert.match(String(err), /^ForkError: late/);
});

test('without a prebuild or a local build the loader says how to build from source', (t) => {
  const fake = mkdtempSync(join(tmpdir(), 'fork-router-nobuild-'));
  t.after(() => rmSync(fake, { recursive: true, force: true }));
  mkdirSync(join(fake, 'js'));
  copyFileSync(join(root, 'js', 'loader.cjs'), join(fake, 'js', 'loader.cjs'));
  const { load, candidates } = require(join(fake, 'js', 'loader.cjs'));
  assert.deepEqual(candidates(), [
    join(fake, 'prebuilds', `${process.platform}-${process.arch}`, 'fork_router.node'),
    join(fake, 'build', 'Release', 'fork_router.node'),
  ]);
  assert.throws(() => load(), (e) => {
    assert.match(e.message, new RegExp(`no native addon for ${process.platform}-${process.arch}`));
    assert.match(e.message, /npx cmake-js build/);
    assert.match(e.message, /libzmq3-dev/);
    return true;
  });
});

test('the built addon is where the loader looks', () => {
  const { candidates } = require('../../js/loader.cjs');
  const found = candidates().filter((f) => {
    try {
      require.resolve(f);
      return true;
    } catch {
      return false;
    }
  });
  assert.ok(found.length > 0, `none of ${candidates().join(', ')} exists: run npm run build`);
});
