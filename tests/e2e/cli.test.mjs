// forkd's command line: check, version, config-reference, run's failures.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { FORKD, ROOT, startForkd, tempConfig } from './helpers.mjs';

const forkd = (...args) => spawnSync(FORKD, args, { encoding: 'utf8' });

test('check accepts the example config', () => {
  const r = forkd('check', '--config', path.join(ROOT, 'examples/fork.yaml'));
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /ok \(4 destinations\)/);
});

test('check reports every problem as file:line:col: message and exits 2', () => {
  const { dir, config } = tempConfig(
    [
      'data_dir: ./d',
      'wall: { fsync: batch }',
      'destinations:',
      '  a: { type: fiel, path: x }',
      '  b: { type: file, pth: y, format: jsnl }',
      '  "bad name!": { type: stdout }',
      'limits: { max_event: lots }',
      '',
    ].join('\n'),
  );
  try {
    const r = forkd('check', '--config', config);
    assert.equal(r.status, 2);
    const lines = r.stderr.trim().split('\n');
    const expect = [
      [2, 1, /unknown option 'wall' \(did you mean 'wal'\?\)/],
      [4, 14, /destinations\.a\.type: expected one of clickhouse, file, http, kafka, postgres, redis, sqlite, stdout, stream, got 'fiel' \(did you mean 'file'\?\)/],
      [5, 3, /destinations\.b\.path: required option is missing/],
      [5, 20, /destinations\.b: unknown option 'pth' \(did you mean 'path'\?\)/],
      [5, 36, /destinations\.b\.format: expected one of jsonl, csv, got 'jsnl'/],
      [6, 3, /names are 1-64 letters/],
      [7, 22, /limits\.max_event: expected a size/],
    ];
    for (const [line, col, re] of expect) {
      const hit = lines.find((l) => l.startsWith(`${config}:${line}:${col}: `) && re.test(l));
      assert.ok(hit, `expected ${line}:${col} ${re} in:\n${r.stderr}`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('check warns, at the destination, of a batch.in_flight that has no effect (file sink, postgres upsert, aggregate) and exits 0; pipelining ones pass quietly', () => {
  const { dir, config } = tempConfig(
    [
      'data_dir: ./d',
      'destinations:',
      '  logs: { type: file, path: ./out.jsonl, batch: { in_flight: 4 } }',
      '  pg_up: { type: postgres, url: "postgres://u@127.0.0.1:1/db", table: t, mode: upsert, key: id, batch: { in_flight: 3 } }',
      '  pg_app: { type: postgres, url: "postgres://u@127.0.0.1:1/db", table: t, batch: { in_flight: 3 } }',
      '  ch: { type: clickhouse, url: "http://127.0.0.1:1", table: t, batch: { in_flight: 4 } }',
      '  ch_agg:',
      '    type: clickhouse',
      '    url: "http://127.0.0.1:1"',
      '    table: daily',
      '    batch: { in_flight: 2 }',
      '    transforms: [ { aggregate: { window: 1d, time_field: ts, group_by: [sku], measures: { n: count() } } } ]',
      '  one: { type: file, path: ./one.jsonl, batch: { in_flight: 1 } }',
      '',
    ].join('\n'),
  );
  try {
    const r = forkd('check', '--config', config);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /ok \(6 destinations\)/);
    const warnings = r.stderr.trim().split('\n');
    assert.deepEqual(
      warnings.map((l) => l.slice(config.length + 1).replace(/ has no effect.*/, '')),
      ['3:3: warning: destinations.logs.batch.in_flight 4', '4:3: warning: destinations.pg_up.batch.in_flight 3', '7:3: warning: destinations.ch_agg.batch.in_flight 2'],
      r.stderr,
    );
    assert.match(warnings[0], /the file sink does not pipeline/);
    assert.match(warnings[2], /aggregate step is not pipelined/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('check reports YAML syntax errors with their position', () => {
  const { dir, config } = tempConfig('destinations:\n  a: { type: file\n');
  try {
    const r = forkd('check', '--config', config);
    assert.equal(r.status, 2);
    assert.match(r.stderr, new RegExp(`^${config}:\\d+:\\d+: `));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('check with a missing file or unset ${ENV} says so', () => {
  let r = forkd('check', '--config', '/nonexistent/fork.yaml');
  assert.equal(r.status, 2);
  assert.match(r.stderr, /\/nonexistent\/fork\.yaml: cannot read the file/);
  const { dir, config } = tempConfig('destinations:\n  a: { type: file, path: "${FORK_TEST_UNSET_VAR}" }\n');
  try {
    r = forkd('check', '--config', config);
    assert.equal(r.status, 2);
    assert.match(r.stderr, /:2:26: destinations\.a\.path: environment variable \$\{FORK_TEST_UNSET_VAR\} is not set/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('bad command lines are refused with usage', () => {
  assert.notEqual(forkd().status, 0);
  assert.notEqual(forkd('frobnicate').status, 0);
  const r = forkd('check', '--payload');
  assert.notEqual(r.status, 0);
  assert.match(r.stderr + r.stdout, /payload/);
});

test('version, its allocator (mimalloc, reached by malloc) and config-reference; docs/configuration.md is current', () => {
  const version = forkd('version').stdout;
  assert.match(version, /^forkd \d+\.\d+\.\d+/);
  // The line is mimalloc's own answer: a block from malloc() is in its heap.
  assert.match(version, /^allocator: mimalloc \d+\.\d+\.\d+$/m);
  const ref = forkd('config-reference').stdout;
  assert.equal(ref, readFileSync(path.join(ROOT, 'docs/configuration.md'), 'utf8'),
    'regenerate with: build/bin/forkd config-reference > docs/configuration.md');
});

test('a second forkd on the same data_dir refuses to start', async () => {
  const { dir, config } = tempConfig('destinations:\n  a: { type: stdout }\n');
  try {
    const first = await startForkd(config);
    const r = forkd('run', '--config', config);
    assert.equal(r.status, 1);
    assert.match(r.stderr, /another forkd is running with data_dir/);
    assert.equal((await first.stop()).code, 0);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('run with an invalid config exits 2 before touching anything', () => {
  const { dir, config } = tempConfig('destinations: []\n');
  try {
    const r = forkd('run', '--config', config);
    assert.equal(r.status, 2);
    assert.match(r.stderr, /destinations: expected a map/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('stdout destination writes JSON Lines to forkd stdout', async () => {
  const { dir, config } = tempConfig('destinations:\n  out: { type: stdout }\n');
  try {
    const { createClient } = await import('../../js/index.mjs');
    const f = await startForkd(config);
    const c = createClient({ endpoint: `ipc://${dir}/.fork/fork.sock` });
    const r = await c.routeData({ hello: 'world', n: 1 }, 'out', { ack: 'delivered' });
    await c.close();
    assert.equal((await f.stop()).code, 0);
    assert.deepEqual(JSON.parse(f.stdout().trim()), { _fork_id: r.id, hello: 'world', n: 1 });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
