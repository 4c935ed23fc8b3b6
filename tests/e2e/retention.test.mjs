// A destination that none of the traffic is for still follows the log: its
// cursor moves past others' events, so they do not pile up behind it and the
// log's segments are deleted once the busy destination has them (with
// `retention: { max_age: 0 }`, at once). With history retained, delivered
// segments stay until wal.retention's max_age or max_bytes lets them go.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, rmSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { createClient } from '../../js/index.mjs';
import { FORKD, startForkd, tempConfig, endpointFor, freePort } from './helpers.mjs';


test("an idle destination's cursor follows others' events, and the segments behind both are deleted", { timeout: 60_000 }, async () => {
  const port = await freePort();
  const { dir, config } = tempConfig(
    `data_dir: ./.fork
admin: 127.0.0.1:${port}
wal: { segment_bytes: 64KiB, retention: { max_age: 0 } }
destinations:
  busy: { type: file, format: jsonl, path: ./out/busy.jsonl }
  idle: { type: file, format: jsonl, path: ./out/idle.jsonl }
`,
    'fork-retention-',
  );
  const forkd = await startForkd(config);
  const client = createClient({ endpoint: endpointFor(dir) });
  try {
    const pending = [];
    for (let i = 0; i < 20000; i++) pending.push(client.routeData({ i, pad: 'x'.repeat(100) }, 'busy'));
    await Promise.all(pending);
    const status = async () => (await fetch(`http://127.0.0.1:${port}/api/status`)).json();
    let s;
    const t0 = Date.now();
    // Cursors of destinations with nothing to write are committed at most
    // once a second; segments go at the next housekeeping tick after.
    while (Date.now() - t0 < 10_000) {
      s = await status();
      const idle = s.destinations.find((d) => d.name === 'idle');
      if (idle.lag_events === 0 && idle.committed_lsn >= s.log.next_lsn && s.log.segments <= 2) break;
      await sleep(200);
    }
    const idle = s.destinations.find((d) => d.name === 'idle');
    assert.equal(idle.lag_events, 0, `idle's lag: ${JSON.stringify(idle)}`);
    assert.equal(idle.committed_lsn, s.log.next_lsn, 'its cursor is committed at the end of the log');
    // 20 000 events of ~150 bytes fill about 45 segments of 64 KiB.
    assert.ok(s.log.segments <= 2, `${s.log.segments} segments kept (of about 45 written)`);
  } finally {
    await client.close(0);
    await forkd.stop('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
});

async function withHistory(retention, fn) {
  const port = await freePort();
  const { dir, config } = tempConfig(
    `data_dir: ./.fork
admin: 127.0.0.1:${port}
wal: { segment_bytes: 64KiB, retention: ${retention} }
destinations:
  logs: { type: file, format: jsonl, path: ./out/logs.jsonl, batch: { max_wait: 5ms } }
`,
    'fork-retention-',
  );
  const forkd = await startForkd(config);
  const client = createClient({ endpoint: endpointFor(dir) });
  const status = async () => (await fetch(`http://127.0.0.1:${port}/api/status`)).json();
  const onDisk = () => readdirSync(path.join(dir, '.fork', 'wal')).filter((f) => f.endsWith('.log')).length;
  try {
    // 3000 events of ~150 bytes in 30 commits (a segment rolls between
    // commits): about 7 segments of 64 KiB.
    for (let k = 0; k < 30; k++) {
      const pending = [];
      for (let i = 0; i < 100; i++) pending.push(client.routeData({ i: k * 100 + i, pad: 'x'.repeat(100) }, 'logs', { ack: 'delivered' }));
      await Promise.all(pending);
    }
    await fn({ config, status, onDisk });
  } finally {
    await client.close(0);
    await forkd.stop('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
}

test('delivered segments stay on disk until wal.retention.max_age, then go', { timeout: 90_000 }, async () => {
  // max_age well past the time the 3000 events take to send on a slow host
  // plus the wait below: the first segment is not old enough yet when checked.
  await withHistory('{ max_age: 15s, max_bytes: 100MiB }', async ({ config, status, onDisk }) => {
    let s = await status();
    assert.equal(s.destinations[0].lag_events, 0);
    await sleep(1500);  // several housekeeping ticks
    s = await status();
    assert.equal(s.log.first_lsn, 1, `nothing deleted yet: ${JSON.stringify(s.log)}`);
    assert.ok(s.log.segments >= 5, JSON.stringify(s.log));
    assert.equal(onDisk(), s.log.segments);
    const t0 = Date.now();
    while (Date.now() - t0 < 30_000 && (await status()).log.segments > 2) await sleep(200);
    s = await status();
    assert.ok(s.log.first_lsn > 1 && s.log.segments <= 2, `past max_age the passed segments go: ${JSON.stringify(s.log)}`);
    assert.equal(onDisk(), s.log.segments);
    // A replay cannot reach before what is left, and says how far back it goes.
    const r = spawnSync(FORKD, ['replay', '--config', config, '--destination', 'logs', '--since', '1h'], { encoding: 'utf8' });
    assert.equal(r.status, 1, r.stderr);
    assert.match(r.stderr, new RegExp(`are no longer all in the log: the log goes back to .* \\(lsn ${s.log.first_lsn}\\)`));
  });
});

test('past wal.retention.max_bytes the oldest delivered segments go first', { timeout: 60_000 }, async () => {
  await withHistory('{ max_age: 1h, max_bytes: 200KiB }', async ({ status, onDisk }) => {
    const t0 = Date.now();
    let s;
    while (Date.now() - t0 < 10_000) {
      s = await status();
      if (s.log.first_lsn > 1 && s.destinations[0].committed_lsn === s.log.next_lsn) break;
      await sleep(200);
    }
    await sleep(600);  // a few housekeeping ticks more: nothing else goes
    s = await status();
    assert.ok(s.log.first_lsn > 1, `the oldest went: ${JSON.stringify(s.log)}`);
    // Passed segments of at most 200 KiB (three of 64 KiB), plus the ones
    // the cursor is in.
    assert.ok(s.log.segments >= 3 && s.log.segments <= 5, JSON.stringify(s.log));
    assert.ok(s.log.bytes <= 200 * 1024 + 2 * 70 * 1024, JSON.stringify(s.log));
    assert.equal(onDisk(), s.log.segments);
  });
});
