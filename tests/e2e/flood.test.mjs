// forkd's memory stays bounded while 8 hostile raw ZeroMQ clients flood it
// for 15 s (maximum-size frames of valid events, frames of empty entries,
// empty frames, garbage, lying counts and lengths, messages past max_frame,
// and a new client id per hello) over a slow disk (every fsync 100 ms
// longer), and a normal client's calls all succeed meanwhile.
//
// The bound: limits.max_pending (4 MiB here, twice: the batch being
// committed and the one collecting) plus, per connection, ZeroMQ's receive
// queue of (RCVHWM + 1) messages of max_frame (1 MiB here, so RCVHWM is 4)
// for 9 connections — about 55 MiB at worst; the test allows 64 MiB over
// the RSS before the flood. bench/flood.mjs runs the same for 60 s.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { rmSync } from 'node:fs';
import { startForkd, tempConfig, endpointFor, readJsonl } from './helpers.mjs';
import { normalClient, rssMiB, startPeers } from './flood.mjs';

const FLOOD_SECONDS = 15;

async function freePort() {
  return new Promise((resolve) => {
    const srv = net.createServer();
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

async function metric(port, name) {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`, { signal: AbortSignal.timeout(5000) })).text();
  const m = text.match(new RegExp(`^${name} (\\S+)$`, 'm'));
  assert.ok(m, `${name} missing from /metrics`);
  return Number(m[1]);
}

test(`forkd RSS grows ≤ 64 MiB under a ${FLOOD_SECONDS} s flood from 8 hostile clients; a normal client's calls all succeed`, { timeout: 120000 }, async () => {
  const port = await freePort();
  const { dir } = tempConfig(`
admin: 127.0.0.1:${port}
wal: { fsync: batch }
limits: { max_frame: 1MiB, max_event: 256KiB, max_pending: 4MiB, max_clients: 16 }
destinations:
  logs: { type: file, path: ./out/logs.jsonl }
  flood:
    type: file
    path: ./out/flood.jsonl
    transforms:
      - filter: 'pad == "none"'
`);
  const forkd = await startForkd(`${dir}/fork.yaml`, { env: { FORKD_FSYNC_DELAY_MS: '100' } });
  const endpoint = endpointFor(dir);
  try {
    // Warm up: forkd's steady state with a normal client, then the flood.
    const calm = await normalClient({ endpoint, pid: forkd.pid, seconds: 3, tag: 'calm' });
    assert.equal(calm.failures.length, 0, String(calm.failures[0]));
    const before = rssMiB(forkd.pid);

    const peers = await startPeers({ endpoint, clients: 8, maxFrame: 1 << 20, maxEvent: 256 << 10 });
    let flood, counts;
    try {
      flood = await normalClient({ endpoint, pid: forkd.pid, seconds: FLOOD_SECONDS, tag: 'flood' });
    } finally {
      counts = await peers.stop();
    }
    const peak = Math.max(...flood.rss);
    const summary = `RSS ${before.toFixed(1)} MiB before, peak ${peak.toFixed(1)} MiB during the flood; ` +
      `normal client: ${flood.acks} acks (${calm.acks} in 3 s calm), p50 ${flood.p50.toFixed(1)} ms, ` +
      `p99 ${flood.p99.toFixed(1)} ms; peers sent ${counts.sent} messages (${(counts.bytes / 2 ** 20).toFixed(0)} MiB), ` +
      `${counts.churned} client ids (${counts.churnStarted} started, ${counts.errors} send errors, timer lag ≤ ${counts.maxLagMs} ms)`;
    console.log(summary);

    assert.equal(flood.failures.length, 0, `normal client failed: ${flood.failures[0]}`);
    assert.ok(peak - before <= 64, summary);
    // The flood was one: the peers got through, reading paused at
    // max_pending, and clients were forgotten past max_clients (16: the
    // churning peer makes a few dozen client ids even on a loaded machine).
    assert.ok(counts.bytes > 256 * 2 ** 20, summary);
    assert.ok(await metric(port, 'fork_ingest_read_pauses_total') > 0, summary);
    assert.ok(await metric(port, 'fork_ingest_forgotten_clients_total') > 0, summary);
    assert.ok(await metric(port, 'fork_ingest_clients') <= 16, summary);
    // Kept working: a call at least every 100 ms on average, none slower than 10 s.
    assert.ok(flood.acks >= FLOOD_SECONDS * 10, summary);
    assert.ok(flood.max < 10000, summary);

    // Nothing acknowledged was lost: every acked event of the normal client is stored.
    const want = calm.acks + flood.acks;
    let got = 0;
    for (let t = 0; t < 200 && got < want; t++) {
      await new Promise((r) => setTimeout(r, 100));
      got = readJsonl(`${dir}/out/logs.jsonl`).length;
    }
    assert.ok(got >= want, `${got} of ${want} acknowledged events stored`);
  } finally {
    const r = await forkd.stop();
    rmSync(dir, { recursive: true, force: true });
    assert.equal(r.code, 0, forkd.stderr().slice(-2000));
  }
});
