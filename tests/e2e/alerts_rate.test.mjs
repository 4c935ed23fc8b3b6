// The `rate` alert signal: a destination that goes quiet (the app stops
// routing events to it) fires one alert, and events flowing again resolve it
// once; meanwhile /api/status lists it as firing.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, rmSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { createClient } from '../../js/index.mjs';
import { startForkd, tempConfig, endpointFor, readJsonl, freePort } from './helpers.mjs';

const cleanups = [];
after(async () => {
  for (const c of cleanups.reverse()) await c();
});

async function until(what, fn, timeoutMs = 30000) {
  const t0 = Date.now();
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() - t0 > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

test('a destination that goes quiet fires one rate alert, and resolves it once when events flow again', { timeout: 90000 }, async () => {
  const port = await freePort();
  const destinations = {
    production: { type: 'file', format: 'jsonl', path: './out/production.jsonl' },
    ops: { type: 'file', format: 'jsonl', path: './out/ops.jsonl', batch: { max_wait: '10ms' } },
  };
  const { dir, config } = tempConfig(
    [
      `admin: 127.0.0.1:${port}`,
      `destinations: ${JSON.stringify(destinations)}`,
      'alerts:',
      '  notify: [ops]',
      '  rules:',
      '    - { name: quiet, signal: rate, destination: production, below: 1, for: 1s }',
      '',
    ].join('\n'),
    'fork-alerts-rate-',
  );
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  const client = createClient({ endpoint: endpointFor(dir) });
  cleanups.push(() => client.close());
  // 20 events a second to production while `flowing`.
  let flowing = true;
  let stopped = false;
  const pump = (async () => {
    let i = 0;
    while (!stopped) {
      if (flowing) await client.routeData({ order: i++ }, 'production').catch(() => {});
      await sleep(50);
    }
  })();
  cleanups.push(() => pump);
  const forkd = await startForkd(config);
  cleanups.push(() => forkd.stop());
  cleanups.push(() => {
    stopped = true; // before forkd stops
  });
  const ops = path.join(dir, 'out', 'ops.jsonl');
  const alerts = () => (existsSync(ops) ? readJsonl(ops) : []);
  const firingNow = async () =>
    (await (await fetch(`http://127.0.0.1:${port}/api/status`)).json()).alerts_firing;

  // Busy: nothing fires.
  await sleep(4000);
  assert.deepEqual(alerts(), []);
  assert.deepEqual(await firingNow(), []);

  flowing = false;
  const quietAt = Date.now();
  const firing = await until('the firing event', () => alerts().find((a) => a.state === 'firing'));
  assert.equal(firing.alert, 'quiet');
  assert.equal(firing.signal, 'rate');
  assert.equal(firing.destination, 'production');
  assert.equal(firing.threshold, 1);
  assert.ok(firing.value < 1, `value ${firing.value}`);
  // It held once the 10 s window had fewer than 10 events, then waited `for: 1s`.
  const since = Date.parse(firing.since);
  const at = Date.parse(firing.at);
  assert.ok(at - since >= 1000 && at - since < 3000, `${firing.since} .. ${firing.at}`);
  assert.ok(since - quietAt > 5000 && since - quietAt < 13000, `held ${since - quietAt} ms after the traffic stopped`);
  const listed = await firingNow();
  assert.deepEqual(listed.map((a) => [a.alert, a.signal, a.destination, a.below]), [['quiet', 'rate', 'production', 1]]);
  assert.equal(listed[0].since, firing.since);

  // Still quiet for a while: no second firing.
  await sleep(2000);
  assert.equal(alerts().length, 1);

  flowing = true;
  const flowAt = Date.now();
  const resolved = await until('the resolved event', () => alerts().find((a) => a.state === 'resolved'));
  assert.equal(resolved.alert, 'quiet');
  assert.equal(resolved.since, firing.since);
  assert.ok(resolved.value >= 1, `value ${resolved.value}`);
  assert.ok(Date.parse(resolved.at) - flowAt < 3000, `resolved ${Date.parse(resolved.at) - flowAt} ms after the traffic came back`);

  // Exactly one of each, after more evaluations with traffic.
  await sleep(3000);
  assert.deepEqual(alerts().map((a) => a.state), ['firing', 'resolved']);
  assert.deepEqual(await firingNow(), []);
  assert.match(forkd.stderr(), /alert quiet firing: rate of production is 0/);
});
