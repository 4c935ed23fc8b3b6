// A planned restart under load: the app keeps calling routeData while forkd
// is stopped with SIGTERM and started again about a second later. Calls made
// across the gap wait within their deadline and succeed once forkd is back
// (no failures at all), and every acknowledged event arrives exactly once.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { createClient } from '../../js/index.mjs';
import { startForkd, tempConfig, endpointFor, verifyDestination } from './helpers.mjs';

const RATE = 5000; // events/s
const CONFIG = `
data_dir: ./.fork
wal: { fsync: batch, batch_ms: 2, segment_bytes: 1MiB }
destinations:
  logs:  { type: file, format: jsonl, path: ./out/logs.jsonl, batch: { max_events: 1000, max_wait: 20ms } }
  audit: { type: file, format: jsonl, path: ./out/audit.jsonl, batch: { max_events: 1000, max_wait: 20ms } }
`;

// Calls routeData at RATE per second until stop(); records receipts and failures.
function load(client) {
  const receipts = new Map(); // id -> n
  const failures = [];
  const pending = new Set();
  let n = 0;
  const t0 = performance.now();
  let due = 0;
  const timer = setInterval(() => {
    const target = Math.floor(((performance.now() - t0) * RATE) / 1000);
    for (; due < target; due++) {
      const k = n++;
      const p = client
        .routeData({ n: k, kind: 'restart' }, ['logs', 'audit'], { ack: 'accepted', timeoutMs: 5000 })
        .then(
          (r) => receipts.set(r.id, k),
          (err) => failures.push({ n: k, code: err.code, message: err.message }),
        )
        .finally(() => pending.delete(p));
      pending.add(p);
    }
  }, 5);
  return {
    receipts,
    failures,
    get issued() {
      return n;
    },
    async stop() {
      clearInterval(timer);
      await Promise.all([...pending]);
    },
  };
}

const TITLE = 'SIGTERM and restart under load: no call fails, every acknowledged event exactly once';

test(TITLE, { timeout: 60_000 }, async () => {
  const { dir, config } = tempConfig(CONFIG, 'fork-restart-');
  let forkd;
  let client;
  try {
    forkd = await startForkd(config);
    client = createClient({ endpoint: endpointFor(dir), timeoutMs: 5000 });
    const app = load(client);
    await sleep(1500);

    const beforeStop = app.issued;
    const sigtermAt = performance.now();
    const stopped = await forkd.stop('SIGTERM');
    assert.equal(stopped.code, 0, `forkd drains and exits 0 on SIGTERM:\n${forkd.stderr()}`);
    const firstStderr = forkd.stderr();
    const exitMs = performance.now() - sigtermAt;
    await sleep(1000);
    forkd = await startForkd(config);
    const gapMs = performance.now() - sigtermAt;
    const duringGap = app.issued - beforeStop;

    await sleep(2000);
    await app.stop();
    const stats = client.stats();
    await client.close();
    const last = await forkd.stop('SIGTERM');
    assert.equal(last.code, 0, `forkd drains and exits 0 on SIGTERM:\n${forkd.stderr()}`);

    const report = [
      `restart under load: ${app.issued} calls at ${RATE}/s, ${duringGap} of them in the ${Math.round(gapMs)} ms ` +
        `from SIGTERM to the new forkd listening (the old one exited after ${Math.round(exitMs)} ms), ` +
        `${app.receipts.size} acknowledged, ${app.failures.length} failed; ` +
        `client resent ${stats.resent}, reconnects ${stats.reconnects}`,
    ];
    const results = {};
    for (const name of ['logs', 'audit']) {
      const v = verifyDestination(path.join(dir, 'out', `${name}.jsonl`), app.receipts);
      results[name] = v;
      report.push(`  ${name.padEnd(5)}: ${v.lines} lines, missing ${v.missing.length}, duplicates ${v.duplicates}`);
    }
    console.log(report.join('\n'));
    const stderrs = `--- first forkd:\n${firstStderr}--- second forkd:\n${forkd.stderr()}`;

    assert.ok(duringGap > 1000, 'calls were made while forkd was down');
    const failed = app.failures.slice(0, 10).map((f) => `n=${f.n} ${f.code}: ${f.message}`);
    assert.deepEqual(failed, [], `${app.failures.length} calls failed across the restart\n${stderrs}`);
    assert.equal(app.receipts.size, app.issued, 'every call was acknowledged');
    assert.ok(stats.reconnects >= 1, 'the client reconnected to the new forkd');
    for (const [name, v] of Object.entries(results)) {
      assert.equal(
        v.missing.length,
        0,
        `${name}: acknowledged events missing, e.g. ${v.missing.slice(0, 20).join(', ')}\n${stderrs}`,
      );
      assert.deepEqual(v.wrong, [], `${name}: records whose payload is not the one acknowledged for their id`);
      const dups = [...v.counts].filter(([, c]) => c > 1).map(([id, c]) => `${id} x${c} (n=${app.receipts.get(id)})`);
      const what = `${name}: ${v.duplicates} duplicate lines after a SIGTERM restart`;
      assert.deepEqual(dups.slice(0, 20), [], `${what}\n${stderrs}`);
      assert.equal(v.ids, app.issued, `${name}: nothing but the acknowledged events arrived`);
    }
  } finally {
    if (client) await client.close(0);
    if (forkd) await forkd.stop('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
});
