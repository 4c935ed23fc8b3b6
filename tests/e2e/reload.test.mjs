// SIGHUP reloads: a bad file changes nothing; new, changed, unchanged and
// removed destinations; routes switch for the next event.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { createClient, ForkError } from '../../js/index.mjs';
import { startForkd, tempConfig, readJsonl, idCounts, endpointFor } from './helpers.mjs';

const HEAD = `
data_dir: ./.fork
wal: { fsync: batch, batch_ms: 2 }
`;
const file = (name, extra = '') =>
  `  ${name}: { type: file, path: ./out/${name}.jsonl, batch: { max_wait: 20ms }${extra} }\n`;

// Runs fn with a forkd on `yaml`; forkd and the client always stopped, the
// directory removed. fn gets { dir, config, forkd, client, reload(yaml), stop, read }.
async function withForkd(yaml, fn) {
  const { dir, config } = tempConfig(yaml, 'fork-reload-');
  let forkd;
  let client;
  try {
    forkd = await startForkd(config);
    client = createClient({ endpoint: endpointFor(dir), timeoutMs: 5000 });
    // Writes the file, sends SIGHUP and waits for the outcome's log line.
    const reload = async (next, { expect = /reload: done/ } = {}) => {
      const from = forkd.stderr().length;
      writeFileSync(config, next);
      forkd.proc.kill('SIGHUP');
      await waitForLog(forkd, expect, from);
      return forkd.stderr().slice(from);
    };
    const stop = async () => {
      await client.close();
      const r = await forkd.stop('SIGTERM');
      assert.equal(r.code, 0, `forkd exits 0 on SIGTERM:\n${forkd.stderr()}`);
    };
    const read = (name) => readJsonl(path.join(dir, 'out', `${name}.jsonl`));
    return await fn({ dir, config, forkd, client, reload, stop, read });
  } finally {
    if (client) await client.close(0);
    if (forkd) await forkd.stop('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
}

async function waitForLog(forkd, re, from = 0, timeoutMs = 5000) {
  const t0 = Date.now();
  while (!re.test(forkd.stderr().slice(from))) {
    if (forkd.proc.exitCode !== null || forkd.proc.signalCode !== null) {
      throw new Error(`forkd exited while waiting for ${re}:\n${forkd.stderr()}`);
    }
    if (Date.now() - t0 > timeoutMs) throw new Error(`no ${re} in forkd's log within ${timeoutMs} ms:\n${forkd.stderr()}`);
    await sleep(10);
  }
}

async function sendAll(client, payloads, destination, options = { ack: 'delivered' }) {
  return Promise.all(payloads.map((p) => client.routeData(p, destination, options)));
}

const range = (n, f) => Array.from({ length: n }, (_, i) => f(i));
const sorted = (a) => [...a].sort();

test('SIGHUP with an invalid file: the old configuration keeps running and the error is logged with file:line:col', async () => {
  const v1 = `${HEAD}destinations:\n${file('logs')}routes:\n  - { to: logs }\n`;
  await withForkd(v1, async ({ config, forkd, client, reload, stop, read }) => {
    const first = await sendAll(client, range(5, (i) => ({ phase: 'before', i })));

    // A YAML syntax error (an unclosed flow map) in a file that would add a destination.
    const broken = `${HEAD}destinations:\n${file('logs')}  extra: { type: file, path: ./out/extra.jsonl\nroutes:\n  - { to: [logs, extra] }\n`;
    // The summary line, then one line per error.
    const failed = /still running the previous configuration\n.*error .*fork\.yaml:\d+:\d+: .*\n/;
    let log = await reload(broken, { expect: failed });
    assert.match(log, new RegExp(`${config}:\\d+:\\d+: `), `the error's position is logged:\n${log}`);
    assert.doesNotMatch(log, /reload: done|reloading/);
    const second = await sendAll(client, range(5, (i) => ({ phase: 'after syntax error', i })));
    for (const r of second) assert.deepEqual(r.destinations, ['logs']);

    // An unknown key, in a file otherwise valid that routes to a new destination.
    const unknown = `${HEAD}destinations:\n${file('logs')}${file('extra')}rotues:\n  - { to: [logs, extra] }\n`;
    log = await reload(unknown, { expect: failed });
    const line = unknown.split('\n').findIndex((l) => l.startsWith('rotues:')) + 1;
    assert.match(
      log,
      new RegExp(`${config}:${line}:1: (\\S+: )?unknown option 'rotues' \\(did you mean 'routes'\\?\\)`),
      `the unknown key is logged at ${line}:1:\n${log}`,
    );
    await assert.rejects(client.routeData({ phase: 'x' }, 'extra'), (e) => e instanceof ForkError && e.code === 'FORK_UNKNOWN_DESTINATION');
    const third = await sendAll(client, range(5, (i) => ({ phase: 'after unknown key', i })));
    for (const r of third) assert.deepEqual(r.destinations, ['logs']);

    assert.equal(forkd.proc.exitCode, null, 'forkd is still running');
    await stop();
    const ids = read('logs').map((r) => r._fork_id);
    assert.deepEqual(sorted(ids), sorted([...first, ...second, ...third].map((r) => r.id)));
    assert.equal(read('extra').length, 0);
  });
});

test('SIGHUP adding a destination (from: latest) and a route to it: only events after the reload reach it', async () => {
  const v1 = `${HEAD}destinations:\n${file('logs')}routes:\n  - { to: logs }\n`;
  const v2 = `${HEAD}destinations:\n${file('logs')}${file('new1', ', from: latest')}routes:\n  - { to: logs }\n  - { when: 'kind == "order"', to: new1 }\n`;
  await withForkd(v1, async ({ client, reload, stop, read }) => {
    const before = await sendAll(client, range(20, (i) => ({ kind: 'order', phase: 'before', i })));
    const log = await reload(v2);
    assert.match(log, /reload: new destination new1/);
    assert.match(log, /reload: done: 1 kept running, 0 restarted, 1 new, 0 stopped; 2 routes/);
    const after = await sendAll(client, range(20, (i) => ({ kind: 'order', phase: 'after', i })));
    for (const r of after) assert.deepEqual(sorted(r.destinations), ['logs', 'new1']);
    const other = await client.routeData({ kind: 'view' }, undefined, { ack: 'delivered' });
    assert.deepEqual(other.destinations, ['logs']);
    await stop();
    assert.deepEqual(sorted(read('new1').map((r) => r._fork_id)), sorted(after.map((r) => r.id)));
    assert.deepEqual(
      sorted(read('logs').map((r) => r._fork_id)),
      sorted([...before, ...after, other].map((r) => r.id)),
    );
  });
});

test('SIGHUP adding a destination with from: earliest: the events logged before it go through today\'s routes (a backfill)', async () => {
  const v1 = `${HEAD}destinations:\n${file('logs')}${file('audit')}routes:\n  - { to: logs }\n`;
  const v2 =
    `${HEAD}transforms:\n  tag: [ { set: { via: route } } ]\n` +
    `destinations:\n${file('logs')}${file('audit')}${file('orders', ', from: earliest')}routes:\n` +
    `  - { to: logs }\n` +
    `  - { when: 'kind == "order"', to: orders, transform: tag }\n` +
    `  - { when: 'vip == true', to: orders, also: true }\n`;
  await withForkd(v1, async ({ client, reload, stop, read, forkd }) => {
    // Routed by the rules (no destination named): orders and views.
    const orders = await sendAll(client, range(20, (i) => ({ kind: 'order', phase: 'before', i })), undefined);
    const views = await sendAll(client, range(10, (i) => ({ kind: 'view', phase: 'before', i })), undefined);
    // Named by the caller: only an `also` route may add a destination to them.
    const named = await sendAll(client, range(5, (i) => ({ kind: 'order', phase: 'named', i })), 'audit');
    const vip = await sendAll(client, range(3, (i) => ({ kind: 'view', vip: true, i })), 'audit');
    const log = await reload(v2);
    assert.match(log, /reload: new destination orders/);
    const after = await sendAll(client, range(10, (i) => ({ kind: 'order', phase: 'after', i })), undefined);
    for (const r of after) assert.deepEqual(sorted(r.destinations), ['logs', 'orders']);

    const want = sorted([...orders, ...vip, ...after].map((r) => r.id));
    const t0 = Date.now();
    while (read('orders').length < want.length && Date.now() - t0 < 10000) await sleep(20);
    await stop();
    const rows = read('orders');
    assert.deepEqual(sorted(rows.map((r) => r._fork_id)), want,
      `orders holds the routed orders and the vip events named to audit, and nothing else:\n${forkd.stderr()}`);
    // The route's template applies to backfilled events as to new ones.
    const byId = new Map(rows.map((r) => [r._fork_id, r]));
    for (const r of [...orders, ...after]) assert.equal(byId.get(r.id).via, 'route', `${r.id} went through the route's transform`);
    for (const r of vip) assert.equal(byId.get(r.id).via, undefined, 'the also route has no transform');
    assert.equal(rows.filter((r) => r.phase === 'named').length, 0, 'events named to audit are not taken by a route without also');
    assert.equal(rows.filter((r) => r.kind === 'view' && !r.vip).length, 0);
    assert.deepEqual(sorted(read('logs').map((r) => r._fork_id)), sorted([...orders, ...views, ...after].map((r) => r.id)));
  });
});

test('from: earliest backfill survives a restart: the end of the history is kept beside the cursor', async () => {
  const v1 = `${HEAD}destinations:\n${file('logs')}routes:\n  - { to: logs }\n`;
  const v2 = `${HEAD}destinations:\n${file('logs')}  late: { type: http, url: 'http://127.0.0.1:9/never', from: earliest, retry: { initial: 50ms, max: 50ms } }\n` +
    `routes:\n  - { to: logs }\n  - { when: 'n % 2 == 0', to: late }\n`;
  const v3 = `${HEAD}destinations:\n${file('logs')}${file('late', ', from: earliest')}routes:\n  - { to: logs }\n  - { when: 'n % 2 == 0', to: late }\n`;
  await withForkd(v1, async ({ dir, config, client, reload, read, forkd }) => {
    const before = await sendAll(client, range(40, (n) => ({ n })), undefined);
    // `late` appears while its store is unreachable: it holds the backfill undelivered.
    await reload(v2);
    await sleep(300);
    await client.close();
    await forkd.stop('SIGKILL');
    const backfill = path.join(dir, '.fork', 'cursors', 'late.backfill');
    assert.ok(existsSync(backfill), `the backfill's end is kept at ${backfill}`);
    // Restarted with `late` now a file (changed options keep the cursor).
    writeFileSync(config, v3);
    const again = await startForkd(config);
    try {
      const t0 = Date.now();
      while (read('late').length < 20 && Date.now() - t0 < 10000) await sleep(20);
      const got = sorted(read('late').map((x) => x._fork_id));
      assert.deepEqual(got, sorted(before.filter((x, i) => i % 2 === 0).map((x) => x.id)),
        `the even events logged before late existed reach it after the restart:\n${again.stderr()}`);
    } finally {
      await again.stop('SIGTERM');
    }
  });
});

test('under load: an unchanged destination keeps running, a changed one restarts; nothing lost or duplicated', async () => {
  const v1 = `${HEAD}destinations:\n${file('keep')}${file('change')}routes:\n  - { to: [keep, change] }\n`;
  const vn = (version) =>
    `${HEAD}transforms:\n  stamp: [ { set: { version: ${version} } } ]\n` +
    `destinations:\n${file('keep')}${file('change', ', transforms: [stamp]')}routes:\n  - { to: [keep, change] }\n`;
  await withForkd(v1, async ({ client, reload, stop, read }) => {
    const receipts = [];
    const failures = [];
    let sending = true;
    let n = 0;
    // ~5000 events/s, pipelined, until told to stop; then every call settles.
    const inFlight = new Set();
    const sender = (async () => {
      while (sending) {
        for (let k = 0; k < 50; k++) {
          const p = client.routeData({ n: n++ }).then((r) => receipts.push(r), (e) => failures.push(e));
          inFlight.add(p);
          p.then(() => inFlight.delete(p));
        }
        await sleep(10);
      }
      await Promise.all(inFlight);
    })();
    // Three reloads under load, each changing `change` (its template's
    // text is part of it) and not `keep`.
    const counts = [];
    let log = '';
    // Until more than 500 further events are acknowledged (about 0.1 s at that
    // rate; a loaded host may take longer, a stalled forkd fails here).
    const more = async () => {
      const from = counts.at(-1) ?? 0;
      for (const deadline = Date.now() + 20000; receipts.length <= from + 500; await sleep(20)) {
        assert.ok(Date.now() < deadline, `500 more events acknowledged within 20 s: ${counts}, now ${receipts.length}, ${failures.length} failed`);
      }
    };
    for (const version of [2, 3, 4]) {
      await more();
      counts.push(receipts.length);
      log += await reload(vn(version));
    }
    await more();
    sending = false;
    await sender;
    counts.push(receipts.length);
    await stop();

    assert.deepEqual(failures.map((e) => e.code), [], 'every call acknowledged');
    for (let i = 1; i < counts.length; i++) {
      assert.ok(counts[i] - counts[i - 1] > 500, `events acknowledged between reloads: ${counts}`);
    }
    assert.equal(log.match(/reload: destination change changed; restarting it from its cursor/g)?.length, 3, log);
    assert.doesNotMatch(log, /destination keep (changed|removed)|reload: new destination keep|destination keep: new/);
    assert.equal(log.match(/reload: done: 1 kept running, 1 restarted, 0 new, 0 stopped/g)?.length, 3, log);

    const acked = receipts.map((r) => r.id);
    for (const name of ['keep', 'change']) {
      const records = read(name);
      const counts = idCounts(records);
      const missing = acked.filter((id) => !counts.has(id));
      const dups = [...counts].filter(([, c]) => c > 1);
      assert.equal(missing.length, 0, `${name}: ${missing.length} acknowledged events missing, e.g. ${missing.slice(0, 5)}`);
      assert.equal(dups.length, 0, `${name}: ${dups.length} ids written more than once, e.g. ${JSON.stringify(dups.slice(0, 5))}`);
      assert.equal(records.length, acked.length, `${name}: one line per acknowledged event`);
    }
    // The changed destination's records follow its versions, in order.
    const versions = read('change').map((r) => r.version ?? 1);
    assert.equal(versions[0], 1, 'the first record predates the reloads');
    assert.equal(versions.at(-1), 4, 'the last record has the last transform');
    for (let i = 1; i < versions.length; i++) {
      assert.ok(versions[i] >= versions[i - 1], `record ${i}: version ${versions[i]} after ${versions[i - 1]}`);
    }
    assert.deepEqual([...new Set(versions)], [1, 2, 3, 4]);
    assert.ok(read('keep').every((r) => r.version === undefined), 'keep has no transform');
  });
});

test('SIGHUP removing a destination: it receives nothing more', async () => {
  const v1 = `${HEAD}destinations:\n${file('logs')}${file('gone')}routes:\n  - { to: [logs, gone] }\n`;
  const v2 = `${HEAD}destinations:\n${file('logs')}routes:\n  - { to: logs }\n`;
  await withForkd(v1, async ({ client, reload, stop, read }) => {
    const before = await sendAll(client, range(10, (i) => ({ phase: 'before', i })));
    for (const r of before) assert.deepEqual(sorted(r.destinations), ['gone', 'logs']);
    const log = await reload(v2);
    assert.match(log, /reload: destination gone removed/);
    assert.match(log, /reload: done: 1 kept running, 0 restarted, 0 new, 1 stopped; 1 routes/);
    const after = await sendAll(client, range(10, (i) => ({ phase: 'after', i })));
    for (const r of after) assert.deepEqual(r.destinations, ['logs']);
    await assert.rejects(
      client.routeData({ phase: 'named' }, 'gone'),
      (e) => e instanceof ForkError && e.code === 'FORK_UNKNOWN_DESTINATION',
    );
    await stop();
    assert.deepEqual(sorted(read('gone').map((r) => r._fork_id)), sorted(before.map((r) => r.id)));
    assert.equal(read('logs').length, 20);
  });
});

test('SIGHUP adding a template and a route using it: a destination that keeps running applies it', async () => {
  const v1 = `${HEAD}destinations:\n${file('logs')}routes:\n  - { to: logs }\n`;
  const v2 = `${HEAD}transforms:\n  tag: [ { set: { tagged: true } } ]\ndestinations:\n${file('logs')}routes:\n  - { when: 'kind == "order"', to: logs, transform: tag }\n  - { to: logs }\n`;
  await withForkd(v1, async ({ client, reload, stop, read }) => {
    const before = await sendAll(client, range(5, (i) => ({ kind: 'order', i })), undefined);
    const log = await reload(v2);
    assert.match(log, /reload: done: 1 kept running, 0 restarted/);
    const after = await sendAll(client, range(5, (i) => ({ kind: 'order', i })), undefined);
    // A call naming the new template, too.
    const called = await client.routeData({ kind: 'view' }, 'logs', { transform: 'tag', ack: 'delivered' });
    await stop();
    const byId = new Map(read('logs').map((r) => [r._fork_id, r]));
    for (const r of before) assert.equal(byId.get(r.id).tagged, undefined, 'events before the reload are untouched');
    for (const r of after) assert.equal(byId.get(r.id)?.tagged, true, `routed after the reload: ${JSON.stringify(byId.get(r.id))}`);
    assert.equal(byId.get(called.id)?.tagged, true);
  });
});
