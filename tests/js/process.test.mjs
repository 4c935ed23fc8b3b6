// The addon keeps no handle alive when idle: scripts exit by themselves,
// promptly, whether forkd is up, down, or the client is dropped unclosed.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import test from 'node:test';
import { FakeForkd, freshEndpoint } from './helpers/fake-forkd.mjs';

const root = fileURLToPath(new URL('../..', import.meta.url));

// Runs `source` as an ES module in a child node; resolves with its exit code,
// output and how long it lived. Kills it (and fails) past `limitMs`. The
// tests' own bounds (5 s) catch a hang with room for a loaded host; the
// limit is past them so that a slow child is reported with its time.
function run(source, { env = {}, limitMs = 10000, args = [], cwd = root } = {}) {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const child = spawn(process.execPath, [...args, '--input-type=module', '-e', source], {
      cwd,
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`child still running after ${limitMs} ms\nstdout: ${out}\nstderr: ${err}`));
    }, limitMs);
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, out, err, ms: performance.now() - t0 });
    });
  });
}

test('no forkd: routeData rejects FORK_UNAVAILABLE in time and the process exits by itself', async () => {
  const r = await run(
    `
    import { routeData } from 'fork-router';
    const t0 = performance.now();
    try {
      await routeData({ a: 1 }, 'production', { timeoutMs: 300 });
      console.log('resolved?!');
    } catch (err) {
      console.log(JSON.stringify({ code: err.code, ms: Math.round(performance.now() - t0) }));
    }
    globalThis.done = performance.now();
    process.on('exit', () => console.log(JSON.stringify({ exitAfterMs: Math.round(performance.now() - globalThis.done) })));
    `,
    { env: { FORK_ENDPOINT: freshEndpoint() } },
  );
  assert.equal(r.code, 0, r.err);
  const [settled, exit] = r.out.trim().split('\n').map((l) => JSON.parse(l));
  assert.ok(['FORK_UNAVAILABLE', 'FORK_TIMEOUT'].includes(settled.code), r.out);
  assert.ok(settled.ms >= 280 && settled.ms < 5000, `settled after ${settled.ms} ms`);
  assert.ok(exit.exitAfterMs < 5000, `exited ${exit.exitAfterMs} ms after settling`);
  assert.ok(r.ms < 5000, `child lived ${r.ms} ms`);
});

test('a client that is created and never used does not hold the process', async () => {
  const r = await run(
    `
    import { createClient, getDefaultClient } from 'fork-router';
    createClient();
    getDefaultClient();
    console.log('ok');
    `,
    { env: { FORK_ENDPOINT: freshEndpoint() } },
  );
  assert.equal(r.code, 0, r.err);
  assert.equal(r.out.trim(), 'ok');
  assert.ok(r.ms < 5000, `child lived ${r.ms} ms`);
});

test("ack: 'none' events keep the process alive until their deadline, then it exits", async () => {
  const r = await run(
    `
    import { routeData } from 'fork-router';
    await routeData({ a: 1 }, 'logs', { ack: 'none', timeoutMs: 500 });
    console.log('queued');
    `,
    { env: { FORK_ENDPOINT: freshEndpoint() } },
  );
  assert.equal(r.code, 0, r.err);
  assert.equal(r.out.trim(), 'queued');
  assert.ok(r.ms >= 450 && r.ms < 5000, `child lived ${r.ms} ms`);
});

test('with forkd up, the process exits right after the ack', async (t) => {
  const fake = await new FakeForkd().start();
  t.after(() => fake.stop());
  const r = await run(
    `
    import { routeData } from 'fork-router';
    const receipt = await routeData({ a: 1 }, 'logs');
    console.log(receipt.ack);
    `,
    { env: { FORK_ENDPOINT: fake.endpoint } },
  );
  assert.equal(r.code, 0, r.err);
  assert.equal(r.out.trim(), 'accepted');
  assert.ok(r.ms < 5000, `child lived ${r.ms} ms`);
  assert.equal(fake.events.length, 1);
});

test('clients dropped without close are collected cleanly', async () => {
  const r = await run(
    `
    import { createClient } from 'fork-router';
    for (let i = 0; i < 20; i++) {
      const c = createClient({ timeoutMs: 100 });
      await c.routeData({ i }, 'logs', { ack: 'none' }).catch(() => {});
    }
    await new Promise((r) => setTimeout(r, 300));
    globalThis.gc();
    await new Promise((r) => setTimeout(r, 50));
    globalThis.gc();
    console.log('collected');
    `,
    { env: { FORK_ENDPOINT: freshEndpoint() }, args: ['--expose-gc'] },
  );
  assert.equal(r.code, 0, r.err);
  assert.equal(r.out.trim(), 'collected');
});

test('process.exit with events in flight is clean', async () => {
  const r = await run(
    `
    import { routeData } from 'fork-router';
    routeData({ a: 1 }, 'logs').catch(() => {});
    setTimeout(() => process.exit(3), 50);
    `,
    { env: { FORK_ENDPOINT: freshEndpoint() } },
  );
  assert.equal(r.code, 3, r.err);
  assert.equal(r.signal, null);
  assert.equal(r.err, '');
});

test('the default endpoint is FORK_ENDPOINT, else ipc://<cwd>/.fork/fork.sock', async () => {
  const source = `
    import { getDefaultClient } from 'fork-router';
    console.log(getDefaultClient().endpoint);
  `;
  const fromEnv = await run(source, { env: { FORK_ENDPOINT: 'tcp://127.0.0.1:7999' } });
  assert.equal(fromEnv.out.trim(), 'tcp://127.0.0.1:7999');
  const fallback = await run(source, { env: { FORK_ENDPOINT: '' } });
  assert.equal(fallback.out.trim(), `ipc://${root.replace(/\/$/, '')}/.fork/fork.sock`);
});

test('warmup() creates the default client, except while next build runs; neither holds the process', async () => {
  const source = `
    import { warmup, getDefaultClient } from 'fork-router';
    const c = warmup();
    console.log(c === undefined ? 'none' : c === getDefaultClient() ? 'default' : 'other');
  `;
  const env = { FORK_ENDPOINT: freshEndpoint() };
  const building = await run(source, { env: { ...env, NEXT_PHASE: 'phase-production-build' } });
  assert.equal(building.code, 0, building.err);
  assert.equal(building.out.trim(), 'none');
  const serving = await run(source, { env: { ...env, NEXT_PHASE: 'phase-production-server' } });
  assert.equal(serving.code, 0, serving.err);
  assert.equal(serving.out.trim(), 'default');
  assert.ok(serving.ms < 5000, `child lived ${serving.ms} ms`);
});

test('FORK_AUTOSTART=1: the first call starts forkd with ./fork.yaml when none listens; it stops with the process', async () => {
  const { mkdtempSync, writeFileSync, readFileSync, rmSync, existsSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const path = await import('node:path');
  const dir = mkdtempSync(path.join(tmpdir(), 'fork-autostart-'));
  try {
    writeFileSync(
      path.join(dir, 'fork.yaml'),
      'data_dir: ./.fork\ndestinations:\n  logs: { type: file, path: ./out/logs.jsonl, batch: { max_wait: 10ms } }\n',
    );
    const source = `
      import { routeData } from ${JSON.stringify(path.join(root, 'js', 'index.mjs'))};
      const r = await routeData({ hello: 'dev' }, 'logs', { ack: 'delivered', timeoutMs: 8000 });
      console.log(r.id);
    `;
    const env = { FORK_AUTOSTART: '1', FORK_ENDPOINT: '', FORK_CONFIG: '' };
    const first = await run(source, { env, cwd: dir, limitMs: 15000 });
    assert.equal(first.code, 0, first.err);
    const lines = readFileSync(path.join(dir, 'out', 'logs.jsonl'), 'utf8').trim().split('\n');
    assert.equal(JSON.parse(lines[0])._fork_id, first.out.trim());
    // The forkd it started stopped with it: the socket no longer answers.
    const sock = path.join(dir, '.fork', 'fork.sock');
    const net = await import('node:net');
    const t0 = Date.now();
    let answers = true;
    while (answers && Date.now() - t0 < 10000) {
      answers = await new Promise((resolve) => {
        const c = net.connect(sock);
        c.once('connect', () => (c.destroy(), resolve(true)));
        c.once('error', () => resolve(false));
      });
      if (answers) await new Promise((r) => setTimeout(r, 50));
    }
    assert.equal(answers, false, 'the autostarted forkd is gone');
    // Without FORK_AUTOSTART nothing is started: the call fails FORK_UNAVAILABLE.
    const off = await run(
      source.replace("timeoutMs: 8000", "timeoutMs: 500").replace('console.log(r.id);', ''),
      { env: { FORK_ENDPOINT: '', FORK_AUTOSTART: '' }, cwd: dir, limitMs: 10000 },
    );
    assert.notEqual(off.code, 0);
    assert.match(off.err, /FORK_UNAVAILABLE|FORK_TIMEOUT/);
    assert.ok(existsSync(path.join(dir, 'fork.yaml')));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
