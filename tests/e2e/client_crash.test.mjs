// The app dies mid-run: a child process routing events (ack 'accepted') is
// SIGKILLed with calls in flight. forkd keeps serving, drains on SIGTERM, and
// every event the app saw acknowledged is in the destinations exactly once.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { createClient } from '../../js/index.mjs';
import {
  startForkd,
  tempConfig,
  endpointFor,
  startProducer,
  readReceipts,
  verifyDestination,
  rng,
} from './helpers.mjs';

const SEED = Number(process.env.FORK_CLIENT_CRASH_SEED ?? (Date.now() ^ (process.pid << 16)) >>> 0);

const CONFIG = `
data_dir: ./.fork
wal: { fsync: batch, batch_ms: 2, segment_bytes: 1MiB }
destinations:
  logs:  { type: file, format: jsonl, path: ./out/logs.jsonl, batch: { max_events: 1000, max_wait: 20ms } }
  audit: { type: file, format: jsonl, path: ./out/audit.jsonl, batch: { max_events: 1000, max_wait: 20ms } }
`;

const TITLE = 'a client SIGKILLed mid-run: every event it saw acknowledged is delivered, once';

test(TITLE, { timeout: 60_000 }, async () => {
  const random = rng(SEED);
  const { dir, config } = tempConfig(CONFIG, 'fork-crash-');
  const receiptsFile = path.join(dir, 'receipts.txt');
  let forkd;
  let producer;
  try {
    forkd = await startForkd(config);
    producer = startProducer({ endpoint: endpointFor(dir), receipts: receiptsFile, rate: 20000 });
    await producer.waitFor((p) => p.acked > 0, 15000);
    const runMs = 1000 + Math.floor(random() * 1000);
    console.log(`client crash seed ${SEED}: the producer dies after ${runMs} ms (or once 10 000 calls are acknowledged, if later)`);
    await sleep(runMs);
    // Many acknowledgements on file first, however slow the host (at 20 000/s
    // there are 20 000+ by now and this does not wait).
    await producer.waitFor((p) => p.acked > 10000, 30000);
    const last = producer.last;
    const killed = await producer.kill('SIGKILL');
    assert.equal(killed.signal, 'SIGKILL', 'the producer was still running when killed');

    // forkd serves the next client as if nothing happened.
    const client = createClient({ endpoint: endpointFor(dir) });
    const after = await client.routeData({ n: -1, after: 'crash' }, ['logs', 'audit'], { ack: 'delivered' });
    assert.equal(after.ack, 'delivered');
    await client.close();

    assert.equal(forkd.proc.exitCode, null, `forkd is still running:\n${forkd.stderr()}`);
    const stopped = await forkd.stop('SIGTERM');
    assert.equal(stopped.code, 0, `forkd drains and exits 0 on SIGTERM:\n${forkd.stderr()}`);

    const receipts = readReceipts(receiptsFile);
    assert.ok(receipts.size > 10000, `the producer saw many acknowledgements (${receipts.size})`);
    receipts.set(after.id, -1);
    const report = [
      `client crash: ${receipts.size - 1} receipts on file at the kill ` +
        `(at its last report, up to 250 ms earlier: ${last.issued} calls made, ${last.inFlight} in flight)`,
    ];
    const results = {};
    for (const name of ['logs', 'audit']) {
      const v = verifyDestination(path.join(dir, 'out', `${name}.jsonl`), receipts);
      results[name] = v;
      const unreceipted = v.ids - (receipts.size - v.missing.length);
      report.push(
        `  ${name.padEnd(5)}: ${v.lines} lines (${unreceipted} durable without a receipt), ` +
          `missing ${v.missing.length}, duplicates ${v.duplicates}`,
      );
    }
    console.log(report.join('\n'));
    for (const [name, v] of Object.entries(results)) {
      assert.equal(
        v.missing.length,
        0,
        `${name}: acknowledged events missing, e.g. ${v.missing.slice(0, 20).join(', ')}\n${forkd.stderr()}`,
      );
      assert.deepEqual(v.wrong, [], `${name}: records whose payload is not the one acknowledged for their id`);
      assert.equal(v.duplicates, 0, `${name}: nothing was resent, so nothing is duplicated`);
    }
  } finally {
    if (producer) await producer.kill();
    if (forkd) await forkd.stop('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
});
