// Outside Node.js (the edge-light, worker and browser export conditions),
// importing fork-router fails at once with a message that says what to do;
// under Node.js both module systems get the real API.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import path from 'node:path';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const run = (args) => spawnSync(process.execPath, args, { cwd: ROOT, encoding: 'utf8', timeout: 20000 });

for (const condition of ['edge-light', 'worker', 'browser']) {
  test(`the ${condition} condition gets a clear error, for import and require`, () => {
    for (const args of [
      ['--input-type=module', '-e', "import 'fork-router'"],
      ['-e', "require('fork-router')"],
    ]) {
      const r = run([`--conditions=${condition}`, ...args]);
      assert.notEqual(r.status, 0, `${condition} ${args.join(' ')} must fail`);
      assert.match(r.stderr, /fork-router needs the Node\.js runtime/);
      assert.match(r.stderr, /export const runtime = 'nodejs'/);
      assert.match(r.stderr, /serverExternalPackages/);
    }
  });
}

test('under Node.js, import and require get routeData', () => {
  let r = run(['--input-type=module', '-e', "import { routeData } from 'fork-router'; console.log(typeof routeData)"]);
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout.trim(), 'function');
  r = run(['-e', "console.log(typeof require('fork-router').routeData)"]);
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout.trim(), 'function');
});
