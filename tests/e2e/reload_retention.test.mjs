// Retention across reloads: a destination whose pipeline fails to start stays
// in the set as failed and keeps the log from its cursor until it runs; a
// destination removed with undelivered events keeps them in the log (also
// across a restart) until it is configured again or its cursor is dropped.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, rmSync, rmdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { createClient } from '../../js/index.mjs';
import { startForkd, tempConfig, readJsonl, idCounts, endpointFor, FORKD } from './helpers.mjs';

async function freePort() {
  return new Promise((resolve) => {
    const srv = net.createServer();
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

// Runs forkd with args; resolves { code, stdout, stderr } (never rejects).
function forkdCli(args) {
  return new Promise((resolve) => {
    execFile(FORKD, args, { timeout: 30000 }, (err, stdout, stderr) => {
      resolve({ code: err ? (err.code ?? 1) : 0, stdout, stderr });
    });
  });
}

// `what`: a string, or a function giving one (read when it times out).
async function until(pred, ms, what) {
  const t0 = Date.now();
  while (!(await pred())) {
    if (Date.now() - t0 > ms) {
      throw new Error(`timed out after ${ms} ms waiting for ${typeof what === 'function' ? what() : what}`);
    }
    await sleep(50);
  }
}

// Small segments, so a few thousand events roll many of them.
const head = (port) => `
data_dir: ./.fork
admin: 127.0.0.1:${port}
wal: { fsync: batch, batch_ms: 2, segment_bytes: 64KiB, retention: { max_age: 0 } }
`;
const file = (name) => `  ${name}: { type: file, path: ./out/${name}.jsonl, batch: { max_wait: 20ms } }\n`;
const range = (n, f) => Array.from({ length: n }, (_, i) => f(i));
const sorted = (a) => [...a].sort();
// About 500 bytes each: some 120 to a 64 KiB segment.
const pad = 'x'.repeat(450);

// Sends `n` events to `destination` in waves; resolves their receipts.
async function send(client, n, destination, tag) {
  const receipts = [];
  for (let i = 0; i < n; i += 250) {
    const wave = range(Math.min(250, n - i), (k) => client.routeData({ tag, n: i + k, pad }, destination));
    receipts.push(...(await Promise.all(wave)));
  }
  return receipts;
}

// One forkd on `yaml` in a fresh directory; everything stopped and removed after.
async function withForkd(yaml, fn) {
  const port = await freePort();
  const { dir, config } = tempConfig(yaml(port), 'fork-retain-');
  const admin = `http://127.0.0.1:${port}`;
  const state = { forkd: null, client: null };
  const get = async (p) => {
    const r = await fetch(`${admin}${p}`, { signal: AbortSignal.timeout(5000) });
    return p === '/metrics' ? r.text() : r.json();
  };
  const ctx = {
    dir,
    config,
    port,
    status: () => get('/api/status'),
    metrics: () => get('/metrics'),
    log: () => ctx.forkd.stderr(),
    get forkd() { return state.forkd; },
    get client() { return state.client; },
    async start() {
      state.forkd = await startForkd(config);
      state.client = createClient({ endpoint: endpointFor(dir), timeoutMs: 10000 });
    },
    async stop() {
      await state.client.close();
      const r = await state.forkd.stop('SIGTERM');
      assert.equal(r.code, 0, `forkd exits 0 on SIGTERM:\n${state.forkd.stderr()}`);
      state.client = null;
      state.forkd = null;
    },
    // Writes the file, sends SIGHUP, waits for the log line; returns the log since.
    async reload(next, expect = /reload: done/) {
      const from = state.forkd.stderr().length;
      writeFileSync(config, next(port));
      state.forkd.proc.kill('SIGHUP');
      await ctx.waitLog(expect, from);
      return state.forkd.stderr().slice(from);
    },
    async waitLog(re, from = 0, ms = 10000) {
      await until(() => {
        if (state.forkd.proc.exitCode !== null) throw new Error(`forkd exited:\n${ctx.log()}`);
        return re.test(ctx.log().slice(from));
      }, ms, () => `${re} in the log:\n${ctx.log().slice(from)}`);
    },
    walSegments: () => readdirSync(path.join(dir, '.fork', 'wal')).length,
  };
  try {
    await ctx.start();
    return await fn(ctx);
  } finally {
    if (state.client) await state.client.close(0);
    if (state.forkd) await state.forkd.stop('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
}

// The log's retention is at work in this set-up: once `logs` has committed
// them, the segments of the first events are deleted.
async function warmUp(ctx) {
  const first = await send(ctx.client, 1000, 'logs', 'warm-up');
  await until(async () => (await ctx.status()).log.first_lsn > 1, 10000, 'the first segments to be deleted');
  return first;
}

// A cursor cannot be written while a directory sits where its temp file goes:
// the pipeline of a destination seen for the first time cannot start.
const blockCursor = (ctx, name) => mkdirSync(path.join(ctx.dir, '.fork', 'cursors', `${name}.cursor.tmp`));
const unblockCursor = (ctx, name) => rmdirSync(path.join(ctx.dir, '.fork', 'cursors', `${name}.cursor.tmp`));

// Reloads to a config adding `orders` while its cursor cannot be written;
// checks it is failed, visible and holding; sends 2000 events to both and
// checks no segment from its hold was deleted. Returns { hold, receipts }.
async function failOrders(ctx, withOrders) {
  blockCursor(ctx, 'orders');
  const log = await ctx.reload(withOrders);
  assert.match(log, /reload: new destination orders/);
  const held = log.match(/destination orders: create failed: \S+orders\.cursor\.tmp: is a directory; it keeps its cursor and the log from lsn (\d+), and is tried again in 1 s \(attempt 1 failed\)/);
  assert.ok(held, `the failure is logged with what it holds:\n${log}`);
  assert.match(log, /reload: done: 1 kept running, 0 restarted, 1 new, 0 stopped; 1 routes; 1 failed to start/);
  const hold = Number(held[1]);

  let s = await ctx.status();
  const orders = s.destinations.find((d) => d.name === 'orders');
  assert.equal(orders?.state, 'failed', JSON.stringify(s.destinations));
  assert.match(orders.last_error, /orders\.cursor\.tmp: is a directory/);
  assert.equal(orders.committed_lsn, hold);
  const m = await ctx.metrics();
  assert.match(m, /^fork_destination_running\{destination="orders"\} 0$/m);
  assert.match(m, /^fork_destination_running\{destination="logs"\} 1$/m);
  assert.match(m, /^fork_destination_up\{destination="orders"\} 0$/m);
  assert.match(m, /^fork_destination_failed_total\{destination="orders",stage="start"\} [1-9]\d*$/m);

  // Many segments' worth, acknowledged (durable in the log), routed to both.
  const receipts = await send(ctx.client, 2000, undefined, 'while failed');
  for (const r of receipts) assert.deepEqual(sorted(r.destinations), ['logs', 'orders']);
  // `logs` commits all of it; retention has ticked many times since.
  await until(async () => {
    const l = (await ctx.status()).destinations.find((d) => d.name === 'logs');
    return l.lag_events === 0 && l.committed_lsn === s.log.next_lsn + 2000;
  }, 15000, 'logs to commit everything');
  // The retries go on meanwhile, each failing.
  await ctx.waitLog(/destination orders: create failed: .*\(attempt 2 failed\)/);
  await sleep(1000);
  s = await ctx.status();
  assert.ok(s.log.first_lsn <= hold, `the log still starts at or before orders' hold ${hold}: ${JSON.stringify(s.log)}`);
  assert.ok(s.log.segments >= 5, `the segments rolled while orders failed are kept: ${JSON.stringify(s.log)}`);
  assert.equal(ctx.walSegments(), s.log.segments);
  const again = s.destinations.find((d) => d.name === 'orders');
  assert.equal(again.state, 'failed');
  assert.equal(again.backlog_events, s.log.next_lsn - hold, 'it holds everything from its hold to the end');
  return { hold, receipts };
}

const v1 = (port) => `${head(port)}destinations:\n${file('logs')}routes:\n  - { to: logs }\n`;
const v2 = (port) => `${head(port)}destinations:\n${file('logs')}${file('orders')}routes:\n  - { to: [logs, orders] }\n`;

test('a destination that fails to start at a reload keeps its log; a later SIGHUP starts it and it receives exactly the acknowledged events', async () => {
  await withForkd(v1, async (ctx) => {
    const warm = await warmUp(ctx);
    const { hold, receipts } = await failOrders(ctx, v2);

    // The store is fixed; a SIGHUP (not the retry timer) starts it. The
    // next retry is at least a second away, so it cannot win the race.
    let s = await ctx.status();
    const waiting = s.destinations.find((d) => d.name === 'orders').retry_in_seconds;
    if (waiting < 1) await ctx.waitLog(/\(attempt 3 failed\)/);
    unblockCursor(ctx, 'orders');
    const log = await ctx.reload(v2, /reload: done/);
    assert.match(log, /reload: destination orders had failed to start \(.*is a directory\); trying it again now/);
    assert.match(log, new RegExp(`destination orders started after \\d+ failed attempts; it resumes at lsn ${hold}`));
    assert.match(log, /reload: done: 1 kept running, 1 restarted, 0 new, 0 stopped; 1 routes\n/);
    const after = await send(ctx.client, 100, undefined, 'after');

    const want = sorted([...receipts, ...after].map((r) => r.id));
    await until(() => readJsonl(path.join(ctx.dir, 'out', 'orders.jsonl')).length >= want.length, 15000, 'orders to catch up');
    s = await ctx.status();
    assert.equal(s.destinations.find((d) => d.name === 'orders').state, 'ok');
    assert.match(await ctx.metrics(), /^fork_destination_running\{destination="orders"\} 1$/m);
    await ctx.stop();
    const rows = readJsonl(path.join(ctx.dir, 'out', 'orders.jsonl'));
    const dups = [...idCounts(rows)].filter(([, c]) => c > 1);
    assert.deepEqual(dups, [], 'no event twice');
    assert.deepEqual(sorted(rows.map((r) => r._fork_id)), want, 'exactly the events acknowledged for orders');
    assert.equal(readJsonl(path.join(ctx.dir, 'out', 'logs.jsonl')).length, warm.length + want.length);
  });
});

test('a destination that fails to start is tried again with backoff and, once it can start, delivers from where it was held', async () => {
  await withForkd(v1, async (ctx) => {
    await warmUp(ctx);
    const { hold, receipts } = await failOrders(ctx, v2);
    const from = ctx.log().length;
    unblockCursor(ctx, 'orders');
    // No SIGHUP: the retry timer (1 s, 2 s, 4 s ... at most 30 s) does it.
    await ctx.waitLog(new RegExp(`destination orders started after (\\d+) failed attempts; it resumes at lsn ${hold}`), from, 20000);
    assert.doesNotMatch(ctx.log().slice(from), /reload/);
    const want = sorted(receipts.map((r) => r.id));
    await until(() => readJsonl(path.join(ctx.dir, 'out', 'orders.jsonl')).length >= want.length, 15000, 'orders to catch up');
    // Now that it has committed, retention moves past its old hold.
    await until(async () => (await ctx.status()).log.first_lsn > hold, 10000, 'the segments it held to be deleted');
    await ctx.stop();
    const rows = readJsonl(path.join(ctx.dir, 'out', 'orders.jsonl'));
    assert.deepEqual(sorted(rows.map((r) => r._fork_id)), want);
    assert.equal(rows.length, want.length);
  });
});

// An HTTP store that records the ids it receives (ndjson bodies).
async function httpStore() {
  const ids = [];
  const server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (d) => (body += d));
    req.on('end', () => {
      for (const line of body.split('\n')) if (line) ids.push(JSON.parse(line)._fork_id);
      res.end('ok');
    });
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  return { ids, port: server.address().port, close: () => new Promise((r) => server.close(r)) };
}

test('removing a destination with a backlog keeps its events in the log, across a restart; adding it back delivers all of them', async () => {
  const closed = await freePort();  // nothing listens there
  const store = await httpStore();
  const hook = (url) => `  hook: { type: http, url: '${url}', retry: { initial: 50ms, max: 200ms } }\n`;
  const withHook = (url) => (port) => `${head(port)}destinations:\n${file('logs')}${hook(url)}routes:\n  - { to: [logs, hook] }\n`;
  const without = (port) => `${head(port)}destinations:\n${file('logs')}routes:\n  - { to: logs }\n`;
  try {
    await withForkd(withHook(`http://127.0.0.1:${closed}/`), async (ctx) => {
      const undelivered = await send(ctx.client, 1500, undefined, 'for hook');
      for (const r of undelivered) assert.deepEqual(sorted(r.destinations), ['hook', 'logs']);
      let s = await ctx.status();
      const cursor = s.destinations.find((d) => d.name === 'hook').committed_lsn;

      const from = ctx.log().length;
      await ctx.reload(without);
      await ctx.waitLog(/warn.* destination hook is no longer configured and has \d+ undelivered events/, from);
      const warned = ctx.log().slice(from).match(/warn.* destination hook is no longer configured and has (\d+) undelivered events \(from lsn (\d+)\); its cursor keeps them in the log until it is configured again \(it resumes there\) or `forkd cursors drop hook` gives them up/);
      assert.ok(warned, ctx.log().slice(from));
      assert.equal(Number(warned[1]), 1500, 'every event routed to hook is counted');
      assert.equal(Number(warned[2]), cursor);

      // Traffic for the others rolls many segments; none of hook's goes.
      await send(ctx.client, 2000, undefined, 'after removal');
      await until(async () => (await ctx.status()).destinations[0].lag_events === 0, 15000, 'logs to catch up');
      await sleep(1000);
      s = await ctx.status();
      assert.ok(s.log.first_lsn <= cursor, `hook's events are still in the log: ${JSON.stringify(s.log)}`);
      assert.ok(s.log.segments >= 5, JSON.stringify(s.log));
      assert.deepEqual(s.removed_destinations, [{
        name: 'hook', state: 'held', undelivered_events: 1500, held_bytes: s.removed_destinations[0]?.held_bytes, committed_lsn: cursor,
      }]);
      assert.ok(s.removed_destinations[0].held_bytes > 500 * 3500);
      assert.deepEqual(s.destinations.map((d) => d.name), ['logs']);
      const m = await ctx.metrics();
      assert.match(m, /^fork_removed_destination_undelivered_events\{destination="hook"\} 1500$/m);
      assert.match(m, /^fork_removed_destination_held_bytes\{destination="hook"\} [1-9]\d*$/m);
      const list = await forkdCli(['cursors', 'list', '--config', ctx.config]);
      assert.equal(list.code, 0, list.stderr);
      assert.match(list.stdout, new RegExp(`^hook +lsn ${cursor} +not configured: holds the log until configured again or dropped$`, 'm'));
      assert.match(list.stdout, /^logs +lsn \d+ +configured$/m);

      // A restart with hook still absent: its cursor is found and still holds.
      await ctx.stop();
      await ctx.start();
      assert.match(ctx.log(), new RegExp(`warn.* destination hook is no longer configured and has 1500 undelivered events \\(from lsn ${cursor}\\)`));
      await send(ctx.client, 500, undefined, 'after restart');
      await until(async () => (await ctx.status()).destinations[0].lag_events === 0, 15000, 'logs to catch up');
      await sleep(1000);
      s = await ctx.status();
      assert.ok(s.log.first_lsn <= cursor, `still held after the restart: ${JSON.stringify(s.log)}`);
      assert.equal(s.removed_destinations[0]?.undelivered_events, 1500);

      // Added back, its store now up: everything routed to it arrives.
      const back = ctx.log().length;
      await ctx.reload(withHook(`http://127.0.0.1:${store.port}/`));
      assert.match(ctx.log().slice(back), new RegExp(`reload: destination hook is configured again; it resumes from its cursor at lsn ${cursor}`));
      const want = sorted(undelivered.map((r) => r.id));
      await until(() => store.ids.length >= want.length, 15000, `hook's ${want.length} events`);
      s = await ctx.status();
      assert.deepEqual(s.removed_destinations, []);
      await ctx.stop();
      assert.deepEqual(sorted(new Set(store.ids)), want, 'exactly the events routed to hook');
      assert.equal(store.ids.length, want.length, 'each once');
    });
  } finally {
    await store.close();
  }
});

test('dropping the cursor of a removed destination gives its events up and lets the log go; a configured one is refused', async () => {
  const closed = await freePort();
  const withHook = (port) => `${head(port)}destinations:\n${file('logs')}  hook: { type: http, url: 'http://127.0.0.1:${closed}/', retry: { initial: 50ms, max: 200ms } }\nroutes:\n  - { to: [logs, hook] }\n`;
  const without = (port) => `${head(port)}destinations:\n${file('logs')}routes:\n  - { to: logs }\n`;
  await withForkd(withHook, async (ctx) => {
    await send(ctx.client, 1000, undefined, 'for hook');
    let r = await forkdCli(['cursors', 'drop', 'hook', '--config', ctx.config]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /destination 'hook' is configured in .*fork\.yaml: remove it from the config \(and reload\) first/);
    r = await forkdCli(['cursors', 'drop', 'nope', '--config', ctx.config]);
    assert.equal(r.code, 2);
    assert.match(r.stdout, /no cursor of destination 'nope' holds the log \(none does\)/);

    const from = ctx.log().length;
    await ctx.reload(without);
    await ctx.waitLog(/destination hook is no longer configured and has 1000 undelivered events/, from);
    await send(ctx.client, 1000, undefined, 'after removal');
    await until(async () => (await ctx.status()).destinations[0].lag_events === 0, 15000, 'logs to catch up');
    const held = await ctx.status();
    assert.equal(held.log.first_lsn, 1, 'nothing deleted while hook holds the log');

    r = await forkdCli(['cursors', 'drop', 'hook', '--config', ctx.config]);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(JSON.parse(r.stdout), { destination: 'hook', dropped_events: 1000 });
    await ctx.waitLog(/warn.* cursor of destination hook dropped: its 1000 undelivered events are given up/, from);
    assert.ok(!existsSync(path.join(ctx.dir, '.fork', 'cursors', 'hook.cursor')));
    await until(async () => (await ctx.status()).log.first_lsn > 1, 10000, 'the segments hook held to be deleted');
    const s = await ctx.status();
    assert.deepEqual(s.removed_destinations, []);
    assert.doesNotMatch(await ctx.metrics(), /^fork_removed_destination_undelivered_events\{/m);

    // With forkd stopped, drop works on the files (nothing left to drop here).
    await ctx.stop();
    r = await forkdCli(['cursors', 'drop', 'hook', '--config', ctx.config]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /no cursor of 'hook' in .*cursors/);
  });
});

test('a destination removed with everything delivered holds nothing: its cursor is deleted', async () => {
  const both = (port) => `${head(port)}destinations:\n${file('logs')}${file('gone')}routes:\n  - { to: [logs, gone] }\n`;
  await withForkd(both, async (ctx) => {
    const receipts = await send(ctx.client, 300, undefined, 'both');
    const from = ctx.log().length;
    await ctx.reload(v1);
    await ctx.waitLog(/destination gone \(removed\): every event routed to it was delivered; its cursor is deleted/, from);
    assert.doesNotMatch(ctx.log().slice(from), /no longer configured and has/);
    assert.ok(!existsSync(path.join(ctx.dir, '.fork', 'cursors', 'gone.cursor')));
    assert.deepEqual((await ctx.status()).removed_destinations, []);
    await ctx.stop();
    // The removal drained it: what it was sent before arrived.
    assert.deepEqual(sorted(readJsonl(path.join(ctx.dir, 'out', 'gone.jsonl')).map((r) => r._fork_id)), sorted(receipts.map((r) => r.id)));
  });
});
