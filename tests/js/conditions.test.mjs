// The export conditions: under browser, importing fork-router fails at once
// with a message that says what to do; under edge-light and worker it is the
// HTTP client (js/edge.cjs); under Node.js both module systems get the
// addon's API.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import path from 'node:path';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const run = (args) => spawnSync(process.execPath, args, { cwd: ROOT, encoding: 'utf8', timeout: 20000 });

test('the browser condition throws at import and require: the token must never reach a page', () => {
  for (const args of [
    ['--input-type=module', '-e', "import 'fork-router'"],
    ['-e', "require('fork-router')"],
  ]) {
    const r = run(['--conditions=browser', ...args]);
    assert.notEqual(r.status, 0, `browser ${args.join(' ')} must fail`);
    assert.match(r.stderr, /fork-router cannot run in a browser/);
    assert.match(r.stderr, /FORK_HTTP_ENDPOINT/);
    assert.match(r.stderr, /serverExternalPackages/);
  }
});

for (const condition of ['edge-light', 'worker']) {
  test(`the ${condition} condition gets the HTTP client, for import and require; without FORK_HTTP_ENDPOINT routeData rejects FORK_UNAVAILABLE naming both fixes`, () => {
    const body = `
      const out = { routeData: typeof fork.routeData, streamResponse: typeof fork.streamResponse };
      const err = await fork.routeData({ a: 1 }, 'logs').then(() => null, (e) => e);
      out.code = err.code; out.isForkError = err instanceof fork.ForkError; out.message = err.message;
      console.log(JSON.stringify(out));`;
    for (const args of [
      ['--input-type=module', '-e', `import * as fork from 'fork-router'; ${body}`],
      ['-e', `const fork = require('fork-router'); (async () => { ${body} })()`],
    ]) {
      const env = { ...process.env };
      delete env.FORK_HTTP_ENDPOINT;
      delete env.FORK_INGEST_TOKEN;
      const r = spawnSync(process.execPath, [`--conditions=${condition}`, ...args], { cwd: ROOT, encoding: 'utf8', timeout: 20000, env });
      assert.equal(r.status, 0, r.stderr);
      const out = JSON.parse(r.stdout.trim());
      assert.equal(out.routeData, 'function');
      assert.equal(out.streamResponse, 'function');
      assert.equal(out.code, 'FORK_UNAVAILABLE');
      assert.equal(out.isForkError, true);
      assert.match(out.message, /cannot load the native addon/);
      assert.match(out.message, /FORK_HTTP_ENDPOINT/);
      assert.match(out.message, /createClient\(\{ httpEndpoint, token \}\)/);
      assert.match(out.message, /runtime = 'nodejs'/);
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
