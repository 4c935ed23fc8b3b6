// Aggregation exactness across SIGKILL: purchases are summed per (day,
// currency) while forkd is killed -9 and restarted several times; after a
// clean stop, the last row of every group equals the sum and count over the
// acknowledged events — each counted once, none missing.
//
//   FORK_AGG_KILLS=20     more kills (default 6)
//   FORK_AGG_SEED=1234    replay a schedule (the seed is printed)
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { createClient } from '../../js/index.mjs';
import { startForkd, tempConfig, readJsonl, endpointFor, rng } from './helpers.mjs';

const KILLS = Number(process.env.FORK_AGG_KILLS ?? 6);
const SEED = Number(process.env.FORK_AGG_SEED ?? (Date.now() ^ (process.pid << 16)) >>> 0);
const CURRENCIES = ['EUR', 'USD', 'GBP', 'JPY'];
const DAY = 86_400_000;

const CONFIG = `
data_dir: ./.fork
wal: { fsync: batch, batch_ms: 2, segment_bytes: 1MiB }
destinations:
  revenue:
    type: file
    format: jsonl
    path: ./out/revenue.jsonl
    batch: { max_wait: 20ms }
    transforms:
      - aggregate: { window: 1d, time_field: ts, group_by: [currency],
                     measures: { revenue: sum(amount), orders: count() }, emit_every: 200ms }
`;

test(`aggregate rows stay exact across ${KILLS} SIGKILLs`, { timeout: 60_000 }, async () => {
  console.log(`aggregate kill test seed ${SEED} (FORK_AGG_SEED=${SEED} replays it)`);
  const random = rng(SEED);
  const { dir, config } = tempConfig(CONFIG, 'fork-agg-');
  let forkd;
  let client;
  let passed = false;
  try {
    forkd = await startForkd(config);
    // Calls outlive the down periods: the client resends what forkd did not
    // acknowledge when it comes back.
    client = createClient({ endpoint: endpointFor(dir), timeoutMs: 15_000 });
    const events = []; // every payload sent, by index
    const acked = new Set(); // indices acknowledged
    const failed = new Map(); // index -> error code
    const inFlight = new Set();
    const send = (i) => {
      const p = client
        .routeData(events[i], 'revenue', { ack: 'accepted', idempotencyKey: events[i].orderId })
        .then(
          () => {
            acked.add(i);
            failed.delete(i);
          },
          (e) => failed.set(i, e.code),
        );
      inFlight.add(p);
      p.then(() => inFlight.delete(p));
      return p;
    };

    // ~2000 purchases/s until the kills are done.
    let producing = true;
    const producer = (async () => {
      while (producing) {
        if (inFlight.size < 20_000) {
          for (let k = 0; k < 20; k++) {
            const i = events.length;
            events.push({
              event: 'purchase',
              orderId: `o-${i}`,
              currency: CURRENCIES[Math.floor(random() * CURRENCIES.length)],
              amount: 1 + Math.floor(random() * 1000),
              ts: Date.now(),
            });
            send(i);
          }
        }
        await sleep(10);
      }
    })();

    let kills = 0;
    let restored = 0;
    while (kills < KILLS) {
      // Up for 0.3 to 1.2 s (the first time long enough to commit an aggregate).
      await sleep((kills === 0 ? 600 : 300) + Math.floor(random() * 900));
      assert.equal(forkd.proc.exitCode, null, `forkd exited before kill ${kills + 1}:\n${forkd.stderr()}`);
      const r = await forkd.stop('SIGKILL');
      assert.equal(r.signal, 'SIGKILL');
      kills += 1;
      await sleep(Math.floor(random() * 300));
      forkd = await startForkd(config);
      // Each restart restores the aggregate committed with the cursor.
      if (/aggregate restored/.test(forkd.stderr())) restored += 1;
      const warning = forkd.stderr().match(/.*aggregate state not restored.*/);
      assert.equal(warning, null, `the aggregate state is restored after kill ${kills}`);
    }
    await sleep(300);
    producing = false;
    await producer;
    await Promise.all(inFlight);
    // A call that failed may or may not be in the log: resend it with its
    // idempotency key until it is acknowledged (once, whichever way).
    const firstFailures = failed.size;
    for (let round = 0; round < 5 && failed.size > 0; round++) {
      await Promise.all([...failed.keys()].map(send));
    }
    assert.equal(failed.size, 0, `calls still failing: ${JSON.stringify([...failed].slice(0, 10))}`);
    assert.equal(acked.size, events.length);
    const stats = client.stats();
    await client.close();
    const stopped = await forkd.stop('SIGTERM');
    assert.equal(stopped.code, 0, `forkd drains and exits 0:\n${forkd.stderr()}`);

    const expected = {};
    for (const i of acked) {
      const e = events[i];
      const windowStart = new Date(Math.floor(e.ts / DAY) * DAY).toISOString();
      const k = `${windowStart}/1d/${JSON.stringify([e.currency])}`;
      const g = (expected[k] ??= { window_start: windowStart, window: '1d', currency: e.currency, revenue: 0, orders: 0 });
      g.revenue += e.amount;
      g.orders += 1;
    }
    const rows = readJsonl(path.join(dir, 'out', 'revenue.jsonl'));
    const last = {};
    for (const r of rows) {
      const { _fork_id, ...rest } = r;
      last[_fork_id] = rest;
    }
    console.log(
      `aggregate: ${events.length} purchases, ${kills} kills, ${firstFailures} calls resent by the test, ` +
        `client resent ${stats.resent}, reconnects ${stats.reconnects}, aggregate restored ${restored} times; ${rows.length} rows for ${Object.keys(last).length} groups`,
    );
    assert.ok(events.length > 2000, `enough purchases (${events.length})`);
    assert.equal(restored, kills, 'every restart restored the aggregate state from the cursor');
    assert.deepEqual(last, expected, 'the last row of each (window, currency) is the exact sum and count');
    passed = true;
  } finally {
    if (client) await client.close(0);
    if (forkd) await forkd.stop('SIGKILL');
    if (passed || !process.env.FORK_KEEP_FAILED) rmSync(dir, { recursive: true, force: true });
    else console.log(`kept ${dir}`);
  }
});
