// Routing end to end: routeData without a destination follows the config's
// routes, `also` routes add to what the caller named, route and call
// templates, unmatched events, per-call options, rollouts and dead letters,
// against a real forkd writing JSON Lines files.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import { createClient, ForkError } from '../../js/index.mjs';
import { FORKD, startForkd, tempConfig, readJsonl, idCounts, endpointFor, rng } from './helpers.mjs';

const FILES = ['orders', 'payments', 'logs', 'audit', 'revenue', 'strict'];

const CONFIG = `
data_dir: ./.fork
wal: { fsync: batch, batch_ms: 2 }
transforms:
  tag: [ { set: { tagged: refund-route } } ]
  mark:
    - set: { marked: true }
    - rename: { note: remark }
  strict_checks:
    - validate: { required: [orderId], types: { amount: integer }, on_fail: dead_letter }
  only_big: [ { filter: 'amount > 100' } ]
destinations:
  orders:   { type: file, path: ./out/orders.jsonl }
  payments: { type: file, path: ./out/payments.jsonl }
  logs:     { type: file, path: ./out/logs.jsonl }
  audit:    { type: file, path: ./out/audit.jsonl }
  revenue:
    type: file
    path: ./out/revenue.jsonl
    transforms:
      - aggregate: { window: 1d, time_field: ts, group_by: [currency],
                     measures: { revenue: sum(amount), orders: count() }, emit_every: 100ms }
  strict:
    type: file
    path: ./out/strict.jsonl
    transforms: [strict_checks]
routes:
  - { when: 'event == "purchase"', to: [orders, payments] }
  - { when: 'event == "refund"', to: payments, transform: tag }
  - { when: 'event == "login"', to: logs }
  - { when: 'event in ["purchase", "refund"]', to: audit, also: true }
`;

// Runs fn against a fresh forkd on `yaml`; forkd and the client are always
// stopped and the directory removed, whatever fn does. fn gets
// { dir, forkd, client, stop (SIGTERM, drains, asserts exit 0), read(name) }.
async function withForkd(yaml, fn) {
  const { dir, config } = tempConfig(yaml, 'fork-routes-');
  let forkd;
  let client;
  try {
    forkd = await startForkd(config);
    client = createClient({ endpoint: endpointFor(dir), timeoutMs: 5000 });
    const stop = async () => {
      await client.close();
      const r = await forkd.stop('SIGTERM');
      assert.equal(r.code, 0, `forkd exits 0 on SIGTERM:\n${forkd.stderr()}`);
    };
    const read = (name) => readJsonl(path.join(dir, 'out', `${name}.jsonl`));
    return await fn({ dir, forkd, client, stop, read });
  } finally {
    if (client) await client.close(0);
    if (forkd) await forkd.stop('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
}

// The ids in each destination's file, sorted.
function idsByFile(read, names = FILES) {
  const out = {};
  for (const n of names) out[n] = read(n).map((r) => r._fork_id).sort();
  return out;
}

const sorted = (a) => [...a].sort();

async function rejects(promise, code, re) {
  await assert.rejects(promise, (err) => {
    assert.ok(err instanceof ForkError, `a ForkError, got ${err}`);
    assert.equal(err.code, code, `${err.code}: ${err.message}`);
    if (re) assert.match(err.message, re);
    return true;
  });
}

test('no destination: the matching `when` routes decide; records land in those files only', async () => {
  await withForkd(CONFIG, async ({ client, stop, read }) => {
    const purchase = { event: 'purchase', orderId: 'o-1', amount: 1250, currency: 'EUR' };
    const login = { event: 'login', user: 'sue' };
    const refund = { event: 'refund', orderId: 'o-1', amount: 1250 };
    const p = await client.routeData(purchase);
    const l = await client.routeData(login);
    const r = await client.routeData(refund);
    assert.deepEqual(sorted(p.destinations), ['audit', 'orders', 'payments']);
    assert.deepEqual(l.destinations, ['logs']);
    assert.deepEqual(sorted(r.destinations), ['audit', 'payments']);
    await stop();

    assert.deepEqual(idsByFile(read), {
      orders: [p.id],
      payments: sorted([p.id, r.id]),
      logs: [l.id],
      audit: sorted([p.id, r.id]),
      revenue: [],
      strict: [],
    });
    // Unchanged where no transform applies.
    assert.deepEqual(read('orders')[0], { _fork_id: p.id, ...purchase });
    assert.deepEqual(read('logs')[0], { _fork_id: l.id, ...login });
  });
});

test('`also: true` adds its destinations to the named ones; other routes do not apply when the caller names one', async () => {
  await withForkd(CONFIG, async ({ client, stop, read }) => {
    const purchase = { event: 'purchase', orderId: 'o-2', amount: 10 };
    // Named logs: the purchase route (orders, payments) does not apply, the
    // also route (audit) does.
    const a = await client.routeData(purchase, 'logs');
    assert.deepEqual(sorted(a.destinations), ['audit', 'logs']);
    // Named orders, which the purchase route also targets: still no payments.
    const b = await client.routeData(purchase, ['orders']);
    assert.deepEqual(sorted(b.destinations), ['audit', 'orders']);
    // Named the also route's own destination: once.
    const c = await client.routeData(purchase, 'audit');
    assert.deepEqual(c.destinations, ['audit']);
    // A login matches no also route: exactly what was named.
    const d = await client.routeData({ event: 'login', user: 'ann' }, 'orders');
    assert.deepEqual(d.destinations, ['orders']);
    await stop();

    assert.deepEqual(idsByFile(read), {
      orders: sorted([b.id, d.id]),
      payments: [],
      logs: [a.id],
      audit: sorted([a.id, b.id, c.id]),
      revenue: [],
      strict: [],
    });
    assert.equal(idCounts(read('audit')).get(c.id), 1, 'audit has the event once');
  });
});

test("a route's `transform` applies only on that route's destinations", async () => {
  await withForkd(CONFIG, async ({ client, stop, read }) => {
    const refund = { event: 'refund', orderId: 'o-3', amount: 99 };
    const routed = await client.routeData(refund);
    // Named by the caller: the refund route is not used, so neither is its template.
    const named = await client.routeData(refund, 'payments');
    const purchase = await client.routeData({ event: 'purchase', orderId: 'o-4', amount: 5 });
    assert.deepEqual(sorted(routed.destinations), ['audit', 'payments']);
    assert.deepEqual(sorted(named.destinations), ['audit', 'payments']);
    await stop();

    const payments = new Map(read('payments').map((r) => [r._fork_id, r]));
    const audit = new Map(read('audit').map((r) => [r._fork_id, r]));
    assert.deepEqual(payments.get(routed.id), { _fork_id: routed.id, ...refund, tagged: 'refund-route' });
    assert.deepEqual(audit.get(routed.id), { _fork_id: routed.id, ...refund }, 'the also route has no template');
    assert.deepEqual(payments.get(named.id), { _fork_id: named.id, ...refund });
    assert.deepEqual(audit.get(named.id), { _fork_id: named.id, ...refund });
    assert.equal(payments.get(purchase.id).tagged, undefined, 'the purchase route has no template');
    assert.equal(payments.size, 3);
  });
});

test('no route matches: FORK_UNKNOWN_DESTINATION; with `unmatched:` the event lands there', async () => {
  await withForkd(CONFIG, async ({ client, stop, read }) => {
    await rejects(client.routeData({ event: 'page_view', path: '/' }), 'FORK_UNKNOWN_DESTINATION', /no route matches/);
    const ok = await client.routeData({ event: 'login', user: 'bob' });
    await stop();
    const all = FILES.flatMap((n) => read(n));
    assert.deepEqual(
      all.map((r) => r._fork_id),
      [ok.id],
      'the refused event is nowhere',
    );
  });

  await withForkd(`${CONFIG}\nunmatched: logs\n`, async ({ client, stop, read }) => {
    const view = { event: 'page_view', path: '/' };
    const r = await client.routeData(view);
    assert.deepEqual(r.destinations, ['logs']);
    // A matching event does not also go to `unmatched`.
    const p = await client.routeData({ event: 'purchase', orderId: 'o-5', amount: 1 });
    assert.deepEqual(sorted(p.destinations), ['audit', 'orders', 'payments']);
    await stop();
    assert.deepEqual(read('logs'), [{ _fork_id: r.id, ...view }]);
    assert.deepEqual(idsByFile(read, ['orders', 'audit']), { orders: [p.id], audit: [p.id] });
  });
});

test('per-call options: timestamp, transform templates, aggregate windows', async () => {
  await withForkd(CONFIG, async ({ client, stop, read }) => {
    const before = Date.now();
    const stamped = await client.routeData({ event: 'signup', n: 1 }, 'logs', { timestamp: true });
    const epoch = await client.routeData({ event: 'signup', n: 2 }, 'logs', {
      timestamp: { field: 'at', format: 'epoch_ms' },
    });
    const after = Date.now();
    const marked = await client.routeData({ event: 'signup', n: 3, note: 'hi' }, 'logs', { transform: 'mark' });
    const both = await client.routeData({ event: 'signup', n: 4, note: 'yo' }, 'orders', {
      transform: ['tag', 'mark'],
    });

    await rejects(
      client.routeData({ event: 'signup', n: 5 }, 'logs', { transform: 'no_such_template' }),
      'FORK_REJECTED',
      /no_such_template/,
    );
    await rejects(
      client.routeData({ event: 'signup', n: 6, amount: 1 }, 'logs', { aggregate: 'daily' }),
      'FORK_REJECTED',
      /logs/,
    );

    // Aggregates: the configured 1d window, a call's 'daily' (the same
    // windows) and a call's 'hourly' (windows of its own).
    const ts = Date.UTC(2026, 10, 21, 9, 59, 0);
    const sends = [
      [{ currency: 'EUR', amount: 100 }, undefined],
      [{ currency: 'EUR', amount: 250 }, { aggregate: 'daily' }],
      [{ currency: 'USD', amount: 7 }, { aggregate: 'daily' }],
      [{ currency: 'USD', amount: 30 }, { aggregate: 'hourly' }],
    ];
    for (const [p, options] of sends) {
      const r = await client.routeData({ event: 'sale', ts, ...p }, 'revenue', options);
      assert.deepEqual(r.destinations, ['revenue']);
    }
    await stop();

    const logs = new Map(read('logs').map((r) => [r._fork_id, r]));
    const t = logs.get(stamped.id).timestamp;
    assert.match(t, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/, 'ISO-8601 UTC with milliseconds');
    assert.ok(Date.parse(t) >= before - 1000 && Date.parse(t) <= after + 1000, `${t} is the receipt time`);
    assert.deepEqual(Object.keys(logs.get(stamped.id)), ['_fork_id', 'event', 'n', 'timestamp']);
    const at = logs.get(epoch.id).at;
    assert.equal(typeof at, 'number');
    assert.ok(at >= before - 1000 && at <= after + 1000, `${at} is the receipt time in epoch ms`);
    assert.equal(logs.get(epoch.id).timestamp, undefined);
    assert.deepEqual(logs.get(marked.id), { _fork_id: marked.id, event: 'signup', n: 3, remark: 'hi', marked: true });
    assert.equal(logs.size, 3, 'the refused calls wrote nothing');
    assert.deepEqual(read('orders'), [
      { _fork_id: both.id, event: 'signup', n: 4, remark: 'yo', tagged: 'refund-route', marked: true },
    ]);

    // The last row of each (window, group) is current.
    const rows = new Map();
    for (const r of read('revenue')) rows.set(r._fork_id, r);
    assert.deepEqual(Object.fromEntries(rows), {
      '2026-11-21T00:00:00.000Z/1d/["EUR"]': {
        _fork_id: '2026-11-21T00:00:00.000Z/1d/["EUR"]',
        window_start: '2026-11-21T00:00:00.000Z',
        window: '1d',
        currency: 'EUR',
        revenue: 350,
        orders: 2,
      },
      '2026-11-21T00:00:00.000Z/1d/["USD"]': {
        _fork_id: '2026-11-21T00:00:00.000Z/1d/["USD"]',
        window_start: '2026-11-21T00:00:00.000Z',
        window: '1d',
        currency: 'USD',
        revenue: 7,
        orders: 1,
      },
      '2026-11-21T09:00:00.000Z/1h/["USD"]': {
        _fork_id: '2026-11-21T09:00:00.000Z/1h/["USD"]',
        window_start: '2026-11-21T09:00:00.000Z',
        window: '1h',
        currency: 'USD',
        revenue: 30,
        orders: 1,
      },
    });
  });
});

test('rollout: 30% of users by a stable hash of userId, the same answer every time', async () => {
  const yaml = `
data_dir: ./.fork
wal: { fsync: batch, batch_ms: 2 }
destinations:
  stable: { type: file, path: ./out/stable.jsonl }
  canary: { type: file, path: ./out/canary.jsonl }
routes:
  - { when: 'event == "checkout"', to: canary, rollout: { percent: 30, key: userId } }
  - { when: 'event == "checkout"', to: stable }
`;
  await withForkd(yaml, async ({ client, stop, read }) => {
    const USERS = 3000;
    const users = Array.from({ length: USERS }, (_, i) => (i % 3 === 0 ? 100000 + i : `user-${i}`));
    // Each user twice: once in order, once shuffled.
    const random = rng(7);
    const second = [...users];
    for (let i = second.length - 1; i > 0; i--) {
      const j = Math.floor(random() * (i + 1));
      [second[i], second[j]] = [second[j], second[i]];
    }
    const receipts = await Promise.all(
      [...users, ...second].map((userId, i) => client.routeData({ event: 'checkout', userId, i }).then((r) => [userId, r])),
    );
    const answers = new Map();
    const canaryIds = new Set();
    for (const [userId, r] of receipts) {
      const inCanary = r.destinations.includes('canary');
      assert.ok(r.destinations.includes('stable'), 'every checkout reaches stable');
      if (inCanary) canaryIds.add(r.id);
      const prev = answers.get(userId);
      if (prev === undefined) answers.set(userId, inCanary);
      else assert.equal(inCanary, prev, `user ${JSON.stringify(userId)} got a different answer the second time`);
    }
    const share = [...answers.values()].filter(Boolean).length / USERS;
    assert.ok(share >= 0.27 && share <= 0.33, `canary share ${share} is 30% ± 3%`);
    await stop();

    const canary = read('canary');
    assert.deepEqual(sorted(canary.map((r) => r._fork_id)), sorted(canaryIds), 'the canary file holds exactly the routed events');
    for (const r of canary) assert.equal(answers.get(r.userId), true);
    assert.equal(read('stable').length, 2 * USERS);
  });
});

test('a transform that dead-letters: the reason and the original payload in dead_letters/<dest>.jsonl; the rest of the batch is delivered', async () => {
  await withForkd(CONFIG, async ({ dir, client, stop, read }) => {
    const payloads = [
      { orderId: 'g-1', amount: 10 },
      { amount: 11, note: 'no order id' },
      { orderId: 'g-2', amount: 12 },
      { orderId: 'g-3', amount: 'thirteen' },
      { orderId: 'g-4', amount: 14, nested: { a: [1, 2, { b: null }] } },
      { amount: 15 },
      { orderId: 'g-5', amount: 16 },
    ];
    // One turn of the event loop: one frame, one batch.
    const receipts = await Promise.all(payloads.map((p) => client.routeData(p, 'strict')));
    await stop();

    const bad = new Set([1, 3, 5]);
    const good = payloads.map((p, i) => [p, receipts[i]]).filter((_, i) => !bad.has(i));
    assert.deepEqual(
      read('strict'),
      good.map(([p, r]) => ({ _fork_id: r.id, ...p })),
      'the valid records of the batch are delivered, in order',
    );
    const dlFile = path.join(dir, '.fork', 'dead_letters', 'strict.jsonl');
    assert.ok(existsSync(dlFile), `${dlFile} exists`);
    const dead = readJsonl(dlFile);
    assert.equal(dead.length, 3, JSON.stringify(dead));
    const byId = new Map(dead.map((d) => [d._fork_id, d]));
    for (const i of bad) {
      const d = byId.get(receipts[i].id);
      assert.ok(d, `dead letter for payload ${i}`);
      assert.equal(d.destination, 'strict');
      assert.deepEqual(d.payload, payloads[i], 'the original payload');
      assert.match(d.reason, i === 3 ? /amount/ : /orderId: required field is missing/);
      assert.ok(!Number.isNaN(Date.parse(d.at)), `at is a time: ${d.at}`);
    }
    // No other destination has dead letters.
    assert.ok(!existsSync(path.join(dir, '.fork', 'dead_letters', 'logs.jsonl')));
  });
});

test("ack 'delivered' settles for a record its destination's transforms dead-letter (rejected) or filter out (filtered)", async () => {
  await withForkd(CONFIG, async ({ dir, client, stop, read }) => {
    // Each the only record of its destination: nothing written after it ends the batch.
    let deadId;
    await rejects(
      client.routeData({ amount: 1 }, 'strict', { ack: 'delivered', timeoutMs: 3000 }).catch((err) => {
        deadId = err.id;
        assert.equal(err.destination, 'strict');
        assert.deepEqual(err.outcomes, { strict: 'dead_letter' });
        throw err;
      }),
      'FORK_REJECTED',
      /destination 'strict' did not store the event \(dead_letter\): validate: orderId: required field is missing/,
    );
    const dl = readFileSync(path.join(dir, '.fork', 'dead_letters', 'strict.jsonl'), 'utf8');
    assert.ok(dl.includes(deadId), "the dead letter is written when 'delivered' rejects");
    const dropped = await client.routeData({ event: 'signup', amount: 1 }, 'logs', {
      transform: 'only_big',
      ack: 'delivered',
      timeoutMs: 3000,
    });
    assert.equal(dropped.ack, 'delivered');
    assert.deepEqual(dropped.outcomes, { logs: 'filtered' });
    const kept = await client.routeData({ event: 'signup', amount: 101 }, 'logs', {
      transform: 'only_big',
      ack: 'delivered',
      timeoutMs: 3000,
    });
    await stop();
    assert.deepEqual(read('logs').map((r) => r._fork_id), [kept.id], 'the filter dropped the small one');
    assert.deepEqual(read('strict'), []);
  });
});

test('more destinations than 64: a route to the 70th is listed in the receipt and confirmed delivered (or check refuses the config)', async () => {
  const names = Array.from({ length: 70 }, (_, i) => `d${i}`);
  const yaml =
    'data_dir: ./.fork\ndestinations:\n' +
    names.map((n) => `  ${n}: { type: file, path: ./out/${n}.jsonl, batch: { max_wait: 10ms } }\n`).join('') +
    `routes:\n  - { when: 'k == 1', to: d69 }\n  - { when: 'k == 2', to: [d0, d69] }\n`;
  const { dir, config } = tempConfig(yaml, 'fork-routes-');
  const check = spawnSync(FORKD, ['check', '--config', config], { encoding: 'utf8' });
  rmSync(dir, { recursive: true, force: true });
  if (check.status === 2) {
    // A limit is a fine answer, if it is said up front.
    assert.match(check.stderr, /destinations/);
    return;
  }
  assert.equal(check.status, 0, check.stderr);
  await withForkd(yaml, async ({ client, stop, read }) => {
    const one = await client.routeData({ k: 1 }, undefined, { ack: 'delivered', timeoutMs: 3000 });
    assert.deepEqual(one.destinations, ['d69']);
    const two = await client.routeData({ k: 2 }, undefined, { ack: 'delivered', timeoutMs: 3000 });
    assert.deepEqual(sorted(two.destinations), ['d0', 'd69']);
    const named = await client.routeData({ k: 3 }, 'd69', { ack: 'delivered', timeoutMs: 3000 });
    assert.deepEqual(named.destinations, ['d69']);
    await stop();
    assert.deepEqual(read('d69').map((r) => r._fork_id), [one.id, two.id, named.id]);
  });
});

test('a call with aggregate also reaching a destination that does not aggregate: it aggregates where it can', async () => {
  await withForkd(CONFIG, async ({ client, stop, read }) => {
    const ts = Date.UTC(2026, 10, 21, 9, 0, 0);
    // The `also` route adds audit, which has no aggregate step.
    const r = await client.routeData({ event: 'purchase', currency: 'GBP', amount: 12, ts }, 'revenue', {
      aggregate: 'daily',
      ack: 'delivered',
    });
    assert.deepEqual([...r.destinations].sort(), ['audit', 'revenue']);
    // Named alone, a destination without an aggregate step still refuses it.
    await rejects(
      client.routeData({ event: 'purchase', amount: 1 }, ['audit', 'logs'], { aggregate: 'daily' }),
      'FORK_REJECTED',
      /none of the destinations 'audit', 'logs' has an aggregate step/,
    );
    await stop();
    assert.deepEqual(read('audit').map((x) => x._fork_id), [r.id]);
    const rows = read('revenue');
    assert.equal(rows.at(-1).currency, 'GBP');
    assert.equal(rows.at(-1).revenue, 12);
  });
});
