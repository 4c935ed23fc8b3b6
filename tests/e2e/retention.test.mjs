// A destination that none of the traffic is for still follows the log: its
// cursor moves past others' events, so they do not pile up behind it and the
// log's segments are deleted once the busy destination has them.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { createClient } from '../../js/index.mjs';
import { startForkd, tempConfig, endpointFor, freePort } from './helpers.mjs';


test("an idle destination's cursor follows others' events, and the segments behind both are deleted", { timeout: 60_000 }, async () => {
  const port = await freePort();
  const { dir, config } = tempConfig(
    `data_dir: ./.fork
admin: 127.0.0.1:${port}
wal: { segment_bytes: 64KiB }
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
