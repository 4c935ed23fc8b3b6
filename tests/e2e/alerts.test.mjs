// Alerts: a rule over a destination's health sends one `firing` and then one
// `resolved` event to the notify destination, as ordinary events; and a bad
// rule is reported by `forkd check` at its position.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { createClient } from '../../js/index.mjs';
import { FORKD, startForkd, tempConfig, endpointFor, readJsonl } from './helpers.mjs';
import { startHttpTarget } from './fixtures/http_target.mjs';

const cleanups = [];
after(async () => {
  for (const c of cleanups.reverse()) await c();
});

async function until(what, fn, timeoutMs = 15000) {
  const t0 = Date.now();
  for (;;) {
    const v = fn();
    if (v) return v;
    if (Date.now() - t0 > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

test('a failing http destination fires one alert, and its recovery resolves it once', async () => {
  const target = await startHttpTarget();
  cleanups.push(() => target.close());
  target.status(500);
  const destinations = {
    // Quick retries and no breaker: recovery shows within one backoff.
    hook: { type: 'http', url: target.url, retry: { initial: '50ms', max: '200ms' }, breaker: { failures: 0 } },
    ops: { type: 'file', format: 'jsonl', path: './out/ops.jsonl', batch: { max_wait: '10ms' } },
  };
  const { dir, config } = tempConfig(
    [
      `destinations: ${JSON.stringify(destinations)}`,
      'alerts:',
      '  notify: [ops]',
      '  rules:',
      '    - { name: hook_failing, signal: destination_failing, destination: hook, for: 1s }',
      '',
    ].join('\n'),
    'fork-alerts-',
  );
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  const forkd = await startForkd(config);
  cleanups.push(() => forkd.stop());
  const client = createClient({ endpoint: endpointFor(dir) });
  cleanups.push(() => client.close());
  const ops = path.join(dir, 'out', 'ops.jsonl');
  const alerts = () => (existsSync(ops) ? readJsonl(ops) : []);

  await client.routeData({ order: 1 }, 'hook');
  const firing = await until('the firing event', () => alerts().find((a) => a.state === 'firing'));
  assert.equal(firing.alert, 'hook_failing');
  assert.equal(firing.signal, 'destination_failing');
  assert.equal(firing.destination, 'hook');
  assert.equal(firing.value, 1);
  assert.equal(firing.threshold, 0);
  assert.equal(typeof firing.instance, 'string');
  assert.ok(firing.instance.length > 0);
  // It waited for `for: 1s` of failing (evaluated every 250 ms).
  const since = Date.parse(firing.since);
  const at = Date.parse(firing.at);
  assert.ok(at - since >= 1000 && at - since < 3000, `${firing.since} .. ${firing.at}`);
  assert.equal(target.records.size, 0);

  target.ok();
  const resolved = await until('the resolved event', () => alerts().find((a) => a.state === 'resolved'));
  assert.equal(target.records.size, 1);
  assert.equal(resolved.alert, 'hook_failing');
  assert.equal(resolved.signal, 'destination_failing');
  assert.equal(resolved.destination, 'hook');
  assert.equal(resolved.value, 0);
  assert.equal(resolved.threshold, 0);
  assert.equal(resolved.since, firing.since);
  assert.ok(Date.parse(resolved.at) > at);
  assert.equal(resolved.instance, firing.instance);
  assert.notEqual(resolved._fork_id, firing._fork_id);

  // Nothing more: one of each, even after several more evaluations.
  await sleep(1500);
  const all = alerts();
  assert.deepEqual(
    all.map((a) => a.state),
    ['firing', 'resolved'],
    JSON.stringify(all),
  );
  assert.match(forkd.stderr(), /alert hook_failing firing/);
  assert.match(forkd.stderr(), /alert hook_failing resolved/);
});

test('SIGHUP applies changed rules', async () => {
  const target = await startHttpTarget();
  cleanups.push(() => target.close());
  target.status(500);
  const destinations = {
    hook: { type: 'http', url: target.url, retry: { initial: '50ms', max: '200ms' }, breaker: { failures: 0 } },
    ops: { type: 'file', format: 'jsonl', path: './out/ops.jsonl', batch: { max_wait: '10ms' } },
  };
  const yaml = (forSpec) =>
    [
      `destinations: ${JSON.stringify(destinations)}`,
      'alerts:',
      '  notify: [ops]',
      '  rules:',
      `    - { name: hook_failing, signal: destination_failing, destination: hook, for: ${forSpec} }`,
      '',
    ].join('\n');
  const { dir, config } = tempConfig(yaml('1h'), 'fork-alerts-reload-');
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  const forkd = await startForkd(config);
  cleanups.push(() => forkd.stop());
  const client = createClient({ endpoint: endpointFor(dir) });
  cleanups.push(() => client.close());
  const ops = path.join(dir, 'out', 'ops.jsonl');
  const alerts = () => (existsSync(ops) ? readJsonl(ops) : []);

  await client.routeData({ order: 1 }, 'hook');
  await until('a failed attempt', () => target.requests.length >= 2);
  await sleep(500);
  assert.deepEqual(alerts(), []); // for: 1h has not passed
  writeFileSync(config, yaml('200ms'));
  forkd.proc.kill('SIGHUP');
  const firing = await until('the firing event', () => alerts().find((a) => a.state === 'firing'));
  assert.equal(firing.alert, 'hook_failing');
  assert.equal(firing.destination, 'hook');
  target.ok();
  await until('the resolved event', () => alerts().find((a) => a.state === 'resolved'));
});

test('forkd check reports a bad rule as file:line:col', () => {
  const { dir, config } = tempConfig(
    [
      'destinations:',
      '  hook: { type: http, url: "http://127.0.0.1:9/" }',
      '  ops: { type: file, path: ./ops.jsonl }',
      'alerts:',
      '  notify: [ops, pager]',
      '  rules:',
      '    - { name: failing, signal: destination_failin, destination: hook }',
      '    - { name: lag, signal: destination_lag_seconds, destination: hook }',
      '    - { name: loop, signal: dead_letters, destination: ops, above: 0 }',
      '',
    ].join('\n'),
    'fork-alerts-check-',
  );
  try {
    const r = spawnSync(FORKD, ['check', '--config', config], { encoding: 'utf8' });
    assert.equal(r.status, 2, r.stderr);
    const lines = r.stderr.trim().split('\n');
    const expected = [
      `${config}:5:17: alerts.notify: unknown destination 'pager'`,
      `${config}:7:32: alerts.rules[0].signal: unknown signal 'destination_failin' (did you mean 'destination_failing'?)`,
      `${config}:8:7: alerts.rules[1]: a threshold is missing: set above or below (a number)`,
      `${config}:9:56: alerts.rules[2].destination: 'ops' is a notify destination`,
    ];
    for (const e of expected) {
      assert.ok(lines.some((l) => l.startsWith(e)), `missing ${e} in:\n${r.stderr}`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
