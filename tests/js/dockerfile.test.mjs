// The example's Dockerfiles cannot be built here (no container engine), so
// what they do is held to what is tested: the runtime stage installs nothing
// and takes only the build's output (the layout tests/e2e/nextjs_image.test.mjs
// runs in a chroot), what the build stage copies exists, and the command is
// the start script.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import test from 'node:test';
import { EXAMPLE, dockerStages } from '../../scripts/lib/nextjs-app.mjs';

for (const [name, base] of [['Dockerfile', 'node:20-slim'], ['Dockerfile.alpine', 'node:20-alpine']]) {
  const stages = dockerStages(path.join(EXAMPLE, name));

  test(`${name}: a build stage and a runtime stage, both from ${base}`, () => {
    assert.deepEqual(stages.map((s) => [s.from, s.as]), [[base, 'build'], [base, undefined]]);
  });

  test(`${name}: the runtime stage installs nothing and copies only the build's output`, () => {
    const runtime = stages[1];
    for (const { op, args } of runtime.instructions) {
      if (op === 'RUN') assert.doesNotMatch(args, /apt|apk|dpkg|npm|yarn|pnpm|curl|wget/, `RUN installs nothing: ${args}`);
      if (op === 'COPY' || op === 'ADD') {
        assert.equal(op, 'COPY');
        assert.match(args, /--from=build\b/, `copied from the build stage: ${args}`);
      }
    }
    const sources = runtime.instructions
      .filter((i) => i.op === 'COPY')
      .flatMap((i) => i.args.split(/\s+/).filter((p) => !p.startsWith('--')).slice(0, -1))
      .sort();
    assert.deepEqual(sources, ['/app/.next/standalone', '/app/.next/static', '/app/fork.yaml', '/app/start-standalone.mjs']);
    assert.deepEqual(runtime.instructions.filter((i) => i.op === 'CMD').map((i) => JSON.parse(i.args)), [['node', 'start-standalone.mjs']]);
    assert.equal(runtime.env.HOSTNAME, '0.0.0.0', 'the server listens beyond the container (Docker sets HOSTNAME to the container id)');
  });

  test(`${name}: what the build stage copies from the example exists`, () => {
    for (const { op, args } of stages[0].instructions.filter((i) => i.op === 'COPY')) {
      for (const src of args.split(/\s+/).filter((p) => !p.startsWith('--')).slice(0, -1)) {
        if (src.includes('*')) continue; // the packed tarball, made before docker build
        assert.ok(existsSync(path.join(EXAMPLE, src)), `${op} ${src}: exists`);
      }
    }
  });
}

test('the start script parses, and the two Dockerfiles differ only in their base image and comments', () => {
  execFileSync(process.execPath, ['--check', path.join(EXAMPLE, 'start-standalone.mjs')]);
  const body = (name) => JSON.stringify(dockerStages(path.join(EXAMPLE, name)).map((s) => s.instructions));
  assert.equal(body('Dockerfile'), body('Dockerfile.alpine'));
});
