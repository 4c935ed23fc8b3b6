// A destination's lag in seconds is the age of the oldest event it has not
// delivered: it grows while its store fails and events pile up, the same in
// /api/status and /metrics, and it is 0 again once everything is delivered.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { createClient } from '../../js/index.mjs';
import { startForkd, tempConfig, endpointFor, freePort } from './helpers.mjs';
import { startHttpTarget } from './fixtures/http_target.mjs';

let dir, forkd, target, base;

const get = (path) => fetch(`${base}${path}`, { signal: AbortSignal.timeout(5000) });
const status = async () => (await get('/api/status')).json();
const dest = async (name) => (await status()).destinations.find((d) => d.name === name);
async function metric(name, destination) {
  const text = await (await get('/metrics')).text();
  const m = text.match(new RegExp(`^${name}\\{destination="${destination}"\\} (\\S+)$`, 'm'));
  assert.ok(m, `${name} for ${destination} not in /metrics`);
  return Number(m[1]);
}
async function until(pred, ms, what) {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (await pred()) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  if (typeof what === "function") what = await what();
  assert.fail(`timed out waiting for ${what}\n${forkd.stderr().slice(-2000)}`);
}

before(async () => {
  target = await startHttpTarget();
  target.status(500);
  const port = await freePort();
  base = `http://127.0.0.1:${port}`;
  ({ dir } = tempConfig(
    `admin: 127.0.0.1:${port}\n` +
      'destinations:\n' +
      `  hook: { type: http, url: "${target.url}", retry: { initial: 50ms, max: 300ms }, breaker: { cooldown: 500ms } }\n` +
      '  logs: { type: file, path: ./logs.jsonl }\n',
  ));
  forkd = await startForkd(`${dir}/fork.yaml`);
});
after(async () => {
  await forkd?.stop();
  await target?.close();
  rmSync(dir, { recursive: true, force: true });
});

test('lag_seconds is the age of the oldest undelivered event while the store fails, then 0', async () => {
  const idle = await dest('hook');
  assert.equal(idle.lag_events, 0);
  assert.equal(idle.lag_seconds, 0, 'nothing pending: no lag');

  const c = createClient({ endpoint: endpointFor(dir) });
  // The oldest event: forkd receives it between t0 and t1.
  const t0 = Date.now();
  await c.routeData({ i: 0 }, ['hook', 'logs']);
  const t1 = Date.now();
  for (let i = 1; i < 2000; i += 100) {
    const n = Math.min(100, 2000 - i);
    await Promise.all(Array.from({ length: n }, (_, k) => c.routeData({ i: i + k }, ['hook', 'logs'])));
  }
  await c.close();

  await until(async () => (await dest('hook')).lag_events === 2000, 10000, async () => `hook to hold 2000 events: ${JSON.stringify(await status())}`);
  await until(async () => (await dest('logs')).lag_events === 0, 10000, 'logs to catch up');
  const logs = await dest('logs');
  assert.equal(logs.lag_seconds, 0, 'a destination that keeps up has no lag');
  assert.equal(await metric('fork_destination_lag_seconds', 'logs'), 0);

  await until(async () => (await dest('hook')).lag_seconds > 1.2, 10000, 'hook lag past 1.2 s');
  // Exact: the age of event 0, not of anything delivered or received later.
  const a = Date.now();
  const first = await dest('hook');
  const b = Date.now();
  assert.notEqual(first.state, 'ok');
  assert.match(first.last_error, /500/);
  assert.ok(first.lag_seconds >= (a - t1) / 1000 - 0.01, `lag ${first.lag_seconds} s < ${(a - t1) / 1000} s`);
  assert.ok(first.lag_seconds <= (b - t0) / 1000 + 0.01, `lag ${first.lag_seconds} s > ${(b - t0) / 1000} s`);

  const c2 = Date.now();
  const inMetrics = await metric('fork_destination_lag_seconds', 'hook');
  const d2 = Date.now();
  assert.ok(inMetrics >= (c2 - t1) / 1000 - 0.01 && inMetrics <= (d2 - t0) / 1000 + 0.01, `metrics lag ${inMetrics}`);
  assert.equal(await metric('fork_destination_lag_events', 'hook'), 2000);

  // It keeps growing while the store fails.
  await new Promise((r) => setTimeout(r, 600));
  const later = await dest('hook');
  assert.equal(later.lag_events, 2000);
  assert.ok(later.lag_seconds >= first.lag_seconds + 0.5, `${later.lag_seconds} after ${first.lag_seconds}`);

  target.ok();
  await until(async () => target.records.size === 2000, 15000, 'the store to get all 2000 events');
  await until(async () => (await dest('hook')).lag_events === 0, 10000, 'hook to catch up');
  const done = await dest('hook');
  assert.equal(done.lag_seconds, 0);
  assert.equal(done.delivered, 2000);
  assert.equal(await metric('fork_destination_lag_seconds', 'hook'), 0);
});
