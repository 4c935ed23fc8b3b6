// examples/Dockerfile cannot be built here (no container engine), so what it
// runs is held to what is tested: its Debian packages come only from
// scripts/install-deps.sh (the script CI runs), in modes that work; what it
// copies exists; its command is the start.sh the end-to-end test runs.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import test from 'node:test';
import { ROOT } from '../e2e/helpers.mjs';

const dockerfile = readFileSync(path.join(ROOT, 'examples', 'Dockerfile'), 'utf8');
// Instructions, with continuation lines joined and comments dropped.
const instructions = dockerfile
  .replace(/\\\n/g, ' ')
  .split('\n')
  .map((l) => l.trim())
  .filter((l) => l && !l.startsWith('#'));

test('the Dockerfile installs Debian packages only through scripts/install-deps.sh, and those modes run', () => {
  const runs = instructions.filter((l) => l.startsWith('RUN '));
  assert.ok(runs.length > 0);
  for (const r of runs) assert.doesNotMatch(r, /apt-get install|apt install|dpkg -i/, `no package list of its own: ${r}`);
  const modes = runs.flatMap((r) => [...r.matchAll(/bash \S*install-deps\.sh(?: (--\w+))?/g)].map((m) => m[1] ?? '(none)'));
  assert.deepEqual(modes.sort(), ['--build', '--runtime']);
  for (const mode of modes) {
    // Present already on a machine that ran CI's setup: exits 0 quickly.
    const out = execFileSync('bash', [path.join(ROOT, 'scripts', 'install-deps.sh'), mode], { encoding: 'utf8' });
    assert.match(out, /install-deps: /);
  }
  assert.throws(() => execFileSync('bash', [path.join(ROOT, 'scripts', 'install-deps.sh'), '--bogus'], { stdio: 'pipe' }), /unknown argument '--bogus'/);
});

test('what the Dockerfile copies from the repository exists, and its command is the example\'s start.sh', () => {
  for (const l of instructions.filter((l) => l.startsWith('COPY ') && !l.includes('--from='))) {
    const parts = l.split(/\s+/).slice(1).filter((p) => !p.startsWith('--'));
    for (const src of parts.slice(0, -1)) assert.ok(existsSync(path.join(ROOT, src)), `COPY source ${src} exists`);
  }
  assert.match(dockerfile, /^CMD \["bash", "start\.sh"\]$/m);
  const start = path.join(ROOT, 'examples', 'nextjs-app', 'start.sh');
  assert.ok(statSync(start).mode & 0o111, 'start.sh is executable');
  execFileSync('bash', ['-n', start]);
});
