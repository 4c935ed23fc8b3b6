// forkd explain, forkd test and forkd check on routes and transforms: a
// golden dry run of the example config, its test cases, failing and
// malformed case files, and configs built to hurt the loader.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { FORKD, ROOT, tempConfig } from './helpers.mjs';

const EXAMPLE = path.join(ROOT, 'examples', 'fork.yaml');
const EXAMPLE_CASES = path.join(ROOT, 'examples', 'fork.test.yaml');

// The example config hashes with ${HASH_SALT:-demo-salt}: the default, always.
const ENV = { ...process.env };
delete ENV.HASH_SALT;

const forkd = (...args) =>
  spawnSync(FORKD, args, { encoding: 'utf8', env: ENV, timeout: 30_000, maxBuffer: 64 * 1024 * 1024 });

const PURCHASE = {
  event: 'purchase',
  orderId: 'o-1',
  userId: 42,
  amount: 1250,
  currency: 'EUR',
  card: '4111',
  user: { email: 'sue@example.com', name: 'Sue' },
  ts: '2026-11-21T09:59:00Z',
};

const explain = (...args) =>
  forkd('explain', '--config', EXAMPLE, '--received-at', '2026-11-21T10:00:00Z', '--id', 'e-1', ...args);

test('explain: a purchase through the example config (golden)', () => {
  const r = explain('--payload', JSON.stringify(PURCHASE));
  assert.equal(r.status, 0, r.stderr);
  const expected = {
    production: [{ _fork_id: 'e-1', ...PURCHASE }],
    analytics: [
      {
        _fork_id: 'e-1',
        event: 'purchase',
        orderId: 'o-1',
        userId: createHash('sha256').update('demo-salt42').digest('hex'),
        total: 1250,
        currency: 'EUR',
        user: { name: 'Sue' },
        ts: '2026-11-21T09:59:00Z',
        source: 'web',
        received_at: '2026-11-21T10:00:00.000Z',
      },
    ],
    revenue: [
      {
        _fork_id: '2026-11-21T00:00:00.000Z/1d/["EUR"]',
        window_start: '2026-11-21T00:00:00.000Z',
        window: '1d',
        currency: 'EUR',
        revenue: 1250,
        orders: 1,
      },
    ],
    logs: [{ _fork_id: 'e-1', ...PURCHASE }],
  };
  const got = JSON.parse(r.stdout);
  assert.deepStrictEqual(got, expected);
  assert.deepEqual(Object.keys(got), ['production', 'analytics', 'revenue', 'logs'], 'destinations in config order');
  // Exactly that text: field order included (renamed fields stay in place,
  // new ones are appended), one line.
  assert.equal(r.stdout, `${JSON.stringify(expected)}\n`);
  assert.equal(r.stderr, '');
});

test('explain: a named destination with an hourly aggregate, named destinations, refusals', () => {
  let r = explain('--payload', JSON.stringify(PURCHASE), '--destination', 'revenue', '--options', '{"aggregate":"hourly"}');
  assert.equal(r.status, 0, r.stderr);
  assert.deepStrictEqual(JSON.parse(r.stdout), {
    revenue: [
      {
        _fork_id: '2026-11-21T09:00:00.000Z/1h/["EUR"]',
        window_start: '2026-11-21T09:00:00.000Z',
        window: '1h',
        currency: 'EUR',
        revenue: 1250,
        orders: 1,
      },
    ],
  });

  // Named destinations: the routes (none has `also`) do not apply; a
  // call's timestamp and template do.
  r = explain('--payload', JSON.stringify({ event: 'story_updated', user: { name: 'Ann' } }), '-d', 'logs', '-d', 'production',
    '--options', '{"timestamp": true, "transform": "story"}');
  assert.equal(r.status, 0, r.stderr);
  const stamped = { _fork_id: 'e-1', event: 'story_updated', user: { name: 'Ann' }, timestamp: '2026-11-21T10:00:00.000Z', text: "Ann updated her page's story" };
  assert.equal(r.stdout, `${JSON.stringify({ production: [stamped], logs: [stamped] })}\n`);

  // The refund is filtered out of analytics, and says so.
  r = explain('--payload', JSON.stringify({ event: 'purchase', orderId: 'o-2', amount: -5 }), '-d', 'analytics');
  assert.equal(r.status, 0, r.stderr);
  assert.deepStrictEqual(JSON.parse(r.stdout), { analytics: [] });
  assert.match(r.stderr, /^analytics: filtered out$/m);
  // A dead letter, with its reason.
  r = explain('--payload', JSON.stringify({ event: 'purchase', amount: 5 }), '-d', 'analytics');
  assert.equal(r.status, 0, r.stderr);
  assert.deepStrictEqual(JSON.parse(r.stdout), { analytics: [] });
  assert.match(r.stderr, /^analytics: dead letter: .*orderId: required field is missing/m);

  r = explain('--payload', JSON.stringify(PURCHASE), '--destination', 'nowhere');
  assert.equal(r.status, 1);
  assert.equal(r.stdout, '');
  assert.match(r.stderr, /^FORK_UNKNOWN_DESTINATION: unknown destination 'nowhere'/);

  r = explain('--payload', JSON.stringify({ event: 'page_view' }));
  assert.equal(r.status, 1);
  assert.match(r.stderr, /^FORK_UNKNOWN_DESTINATION: no destination given and no route matches/);

  r = explain('--payload', JSON.stringify(PURCHASE), '-d', 'logs', '--options', '{"aggregate":"daily"}');
  assert.equal(r.status, 1);
  assert.match(r.stderr, /^FORK_REJECTED: options\.aggregate: destination 'logs' has no aggregate step/);

  r = explain('--payload', JSON.stringify(PURCHASE), '-d', 'logs', '--options', '{"transform":"storey"}');
  assert.equal(r.status, 1);
  assert.match(r.stderr, /^FORK_REJECTED: options\.transform: unknown transform template 'storey'/);

  for (const bad of ['{"event": "purchase",', '{event: [}', '']) {
    r = explain('--payload', bad);
    assert.equal(r.status, 2, `--payload ${JSON.stringify(bad)}: ${r.stderr}`);
    assert.match(r.stderr, /--payload/);
    assert.equal(r.stdout, '');
  }
  r = explain('--payload', '[1, 2]');
  assert.equal(r.status, 2);
  assert.match(r.stderr, /--payload: expected a JSON object/);
  r = explain('--payload', '{}', '--options', '{"aggregate": ');
  assert.equal(r.status, 2);
  assert.match(r.stderr, /--options/);
  r = forkd('explain', '--config', EXAMPLE, '--payload', '{}', '--received-at', 'yesterday');
  assert.equal(r.status, 2);
  assert.match(r.stderr, /--received-at/);
});

test('forkd test: the example cases pass', () => {
  const text = readFileSync(EXAMPLE_CASES, 'utf8');
  const count = text.match(/^ {2}- /gm).length;
  assert.ok(count >= 5, `the example has cases (${count})`);
  const r = forkd('test', '--config', EXAMPLE, EXAMPLE_CASES);
  assert.equal(r.status, 0, r.stdout + r.stderr);
  assert.equal(r.stdout.match(/^ok {4}/gm).length, count, r.stdout);
  assert.match(r.stdout, new RegExp(`^${count} passed, 0 failed$`, 'm'));
  assert.doesNotMatch(r.stdout, /FAIL/);
});

test('forkd test: a failing case shows expected and actual records; exit 1', () => {
  const { dir, config: cases } = tempConfig(
    [
      'cases:',
      '  - name: passes',
      '    input: { event: story_updated, user: { name: Ann } }',
      '    expect:',
      '      logs: [ { event: story_updated, user: { name: Ann }, text: "Ann updated her page\'s story" } ]',
      '  - name: wrong text',
      '    input: { event: story_updated, user: { name: Bob } }',
      '    expect:',
      '      logs: [ { event: story_updated, user: { name: Bob }, text: "Bob updated his page\'s story" } ]',
      '  - name: expected a refusal',
      '    input: { event: story_updated }',
      '    error: FORK_UNKNOWN_DESTINATION',
      '  - name: a destination it does not reach',
      '    input: { event: story_updated, user: { name: Cy } }',
      '    expect: { production: [] }',
      '',
    ].join('\n'),
    'fork-cases-',
  );
  try {
    const r = forkd('test', '--config', EXAMPLE, cases);
    assert.equal(r.status, 1, r.stdout + r.stderr);
    const out = r.stdout;
    assert.match(out, /^ok {4}passes$/m);
    assert.match(out, new RegExp(`^FAIL  wrong text \\(${cases}:6:5\\)$`, 'm'));
    assert.match(out, /logs: records differ/);
    const minus = out.split('\n').filter((l) => l.startsWith('    - '));
    const plus = out.split('\n').filter((l) => l.startsWith('    + '));
    assert.deepEqual(minus.map((l) => JSON.parse(l.slice(6))), [
      { event: 'story_updated', user: { name: 'Bob' }, text: "Bob updated his page's story" },
    ]);
    assert.deepEqual(plus.map((l) => JSON.parse(l.slice(6))), [
      { event: 'story_updated', user: { name: 'Bob' }, text: "Bob updated her page's story" },
    ]);
    assert.match(out, /^FAIL  expected a refusal .*\n.*refused with FORK_UNKNOWN_DESTINATION, but it was routed/m);
    assert.match(out, /^FAIL  a destination it does not reach /m);
    assert.match(out, /expected records for production, which the event does not reach/);
    assert.match(out, /reached logs, which `expect` does not list/);
    assert.match(out, /^1 passed, 3 failed$/m);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('forkd test: malformed case files exit 2 with file:line:col', () => {
  const { dir, config: cases } = tempConfig('', 'fork-cases-');
  const run = (text) => {
    writeFileSync(cases, text);
    return forkd('test', '--config', EXAMPLE, cases);
  };
  try {
    let r = run('cases:\n  - name: typo\n    input: { event: purchase }\n    expct: { logs: [] }\n');
    assert.equal(r.status, 2, r.stdout + r.stderr);
    assert.equal(r.stderr, `${cases}:4:5: typo: unknown key 'expct' (did you mean 'expect'?)\n`);
    assert.equal(r.stdout, '', 'no case ran');

    r = run('cases:\n  - name: bad input\n    input: [1, 2]\n    expect: { logs: [] }\n');
    assert.equal(r.status, 2);
    assert.match(r.stderr, new RegExp(`^${cases}:2:5: bad input: \`input\` must be a map`));

    r = run('- input: "just text"\n');
    assert.equal(r.status, 2);
    assert.match(r.stderr, new RegExp(`^${cases}:1:3: case 1: \`input\` must be a map`));

    r = run('cases:\n  - name: x\n    input: { event: purchase\n');
    assert.equal(r.status, 2);
    assert.match(r.stderr, new RegExp(`^${cases}:\\d+:\\d+: `));

    r = run('cases:\n  - name: expect is a list\n    input: { event: story_updated, user: { name: A } }\n    expect: [ logs ]\n');
    assert.equal(r.status, 2);
    assert.match(r.stderr, new RegExp(`^${cases}:4:13: expect is a list: \`expect\` maps destinations`));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

// Runs `forkd check` on `yaml`; asserts exit 2 without a crash, every line
// `file:line:col: <key path>: message`, and returns the lines.
function checkFails(yaml, what) {
  const { dir, config } = tempConfig(yaml, 'fork-check-');
  try {
    const t0 = Date.now();
    const r = forkd('check', '--config', config);
    const ms = Date.now() - t0;
    assert.equal(r.signal, null, `${what}: forkd check died of ${r.signal}`);
    assert.equal(r.status, 2, `${what}: exit 2, got ${r.status}:\n${r.stdout}${r.stderr.slice(0, 2000)}`);
    assert.ok(ms < 10_000, `${what}: check took ${ms} ms`);
    const lines = r.stderr.trimEnd().split('\n');
    for (const l of lines) {
      assert.ok(l.length < 4096, `${what}: an error line of ${l.length} characters`);
      assert.match(l, /^(.+):(\d+):(\d+): [A-Za-z_][\w.[\]-]*: \S/, `${what}: ${l.slice(0, 300)}`);
      assert.ok(l.startsWith(`${config}:`));
    }
    return lines.map((l) => l.slice(config.length + 1));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const DEST = 'destinations:\n  audit: { type: stdout }\n  orders: { type: stdout }\n';

test('check: an expression of 10 000 nested parentheses is an error, not a crash', () => {
  const deep = `${'('.repeat(10_000)}true${')'.repeat(10_000)}`;
  let lines = checkFails(`${DEST}routes:\n  - when: '${deep}'\n    to: audit\n`, 'nested when');
  assert.equal(lines.length, 1);
  assert.match(lines[0], /^5:\d+: routes\[0\]\.when: expression nested too deeply at column \d+$/);
  lines = checkFails(`${DEST}transforms:\n  f: [ { filter: '${deep}' } ]\n`, 'nested filter');
  assert.match(lines[0], /^5:\d+: transforms\.f\[0\]\.filter: expression nested too deeply/);
  lines = checkFails(`${DEST}transforms:\n  f: [ { filter: '${'!'.repeat(10_000)}true' } ]\n`, 'nested not');
  assert.match(lines[0], /^5:\d+: transforms\.f\[0\]\.filter: expression nested too deeply/);
  lines = checkFails(`${DEST}transforms:\n  f: [ { set: { x: { expr: '${'-'.repeat(10_000)}1' } } } ]\n`, 'nested minus');
  assert.match(lines[0], /^5:\d+: transforms\.f\[0\]\.set\.x(\.expr)?: expression nested too deeply/);
});

test('check: YAML nested 100 000 deep is an error with its position, not a crash', () => {
  const { dir, config } = tempConfig(
    `destinations:\n  a: { type: stdout, transforms: [ { set: { x: ${'['.repeat(100_000)}1${']'.repeat(100_000)} } } ] }\n`,
    'fork-check-',
  );
  try {
    const r = forkd('check', '--config', config);
    assert.equal(r.signal, null, `died of ${r.signal}`);
    assert.equal(r.status, 2, r.stderr.slice(0, 500));
    assert.match(r.stderr, new RegExp(`^${config}:2:\\d+: `));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('check: a 1 MiB `when` is parsed, and its error points into it', () => {
  const body = 'amount == 1 && '.repeat(Math.ceil((1 << 20) / 15));
  const expr = `${body}(currency == "EUR"`; // the ')' is missing at the very end
  const line = `  - when: '${expr}'`;
  const lines = checkFails(`${DEST}routes:\n${line}\n    to: audit\n`, '1 MiB when');
  assert.ok(expr.length > 1 << 20);
  // The quote is column 11; the expression's column c is column 11 + c.
  assert.deepEqual(lines, [`5:${11 + expr.length + 1}: routes[0].when: expected ')' at column ${expr.length + 1}`]);
  // Valid, it loads.
  const { dir, config } = tempConfig(`${DEST}routes:\n  - when: '${body}true'\n    to: audit\n`, 'fork-check-');
  try {
    const r = forkd('check', '--config', config);
    assert.equal(r.status, 0, r.stderr.slice(0, 2000));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('check: a route to an unknown destination, unknown and self-referencing templates, bad measures', () => {
  let lines = checkFails(`${DEST}routes:\n  - { when: 'true', to: [orders, audt] }\n  - { to: ordres, also: true }\n`, 'route to');
  assert.deepEqual(lines, [
    "5:34: routes[0].to: unknown destination 'audt' (did you mean 'audit'?)",
    "6:11: routes[1].to: unknown destination 'ordres' (did you mean 'orders'?)",
  ]);
  lines = checkFails(`${DEST}unmatched: adit\n`, 'unmatched');
  assert.deepEqual(lines, ["4:12: unmatched: unknown destination 'adit' (did you mean 'audit'?)"]);

  // A template may use those defined above it: not itself, not a later one.
  lines = checkFails(
    `${DEST}transforms:\n  loop: [ loop ]\n  early: [ { set: { t: 1 } }, later ]\n  later: [ { drop: [x] } ]\n` +
      `  tag: [ later, { set: { t: 2 } } ]\nroutes:\n  - { to: audit, transform: [tag, tga] }\n`,
    'templates',
  );
  assert.deepEqual(lines, [
    "5:11: transforms.loop[0]: unknown transform template 'loop'",
    "6:31: transforms.early[1]: unknown transform template 'later'",
    "10:35: routes[0].transform: unknown transform template 'tga' (did you mean 'tag'?)",
  ]);

  lines = checkFails(
    'destinations:\n' +
      '  a: { type: stdout, transforms: [ clean_purchse ] }\n' +
      'transforms:\n  clean_purchase: [ { drop: [card] } ]\n',
    'destination template',
  );
  assert.deepEqual(lines, ["2:36: destinations.a.transforms[0]: unknown transform template 'clean_purchse' (did you mean 'clean_purchase'?)"]);

  const agg = (measures) =>
    `destinations:\n  a:\n    type: stdout\n    transforms:\n      - aggregate: { window: 1d, group_by: [c], measures: ${measures} }\n`;
  lines = checkFails(agg('{ revenue: summ(amount) }'), 'measure name');
  assert.match(lines[0], /^5:\d+: destinations\.a\.transforms\[0\]\.aggregate\.measures\.revenue: unknown measure 'summ' \(did you mean 'sum'\?\)/);
  lines = checkFails(agg('{ revenue: sum() }'), 'measure field');
  assert.match(lines[0], /^5:\d+: destinations\.a\.transforms\[0\]\.aggregate\.measures\.revenue: sum\(\) needs a field/);
  lines = checkFails(agg('{ revenue: sum(amount }'), 'measure syntax');
  assert.match(lines[0], /^5:\d+: destinations\.a\.transforms\[0\]\.aggregate\.measures\.revenue: /);
  lines = checkFails(agg('[ sum(amount) ]'), 'measures list');
  assert.match(lines[0], /^5:\d+: destinations\.a\.transforms\[0\]\.aggregate\.measures: /);

  // An aggregating template on a route is refused: its state lives with a destination.
  lines = checkFails(
    `${DEST}transforms:\n  daily: [ { aggregate: { window: 1d } } ]\nroutes:\n  - { to: audit, transform: daily }\n`,
    'aggregate on a route',
  );
  assert.deepEqual(lines, ["7:29: routes[0].transform: template 'daily' aggregates; an aggregate belongs in a destination's transforms, where its state is kept"]);

  // Bad rollouts.
  lines = checkFails(`${DEST}routes:\n  - { to: audit, rollout: { percent: 130 } }\n  - { to: audit, rollout: { precent: 5 } }\n`, 'rollout');
  assert.equal(lines.length >= 2, true, lines.join('\n'));
  assert.match(lines[0], /^5:\d+: routes\[0\]\.rollout\.percent: expected a number from 0 to 100, got '130'$/);
  assert.ok(lines.some((l) => /^6:\d+: routes\[1\]\.rollout: unknown option 'precent' \(did you mean 'percent'\?\)$/.test(l)), lines.join('\n'));
});
