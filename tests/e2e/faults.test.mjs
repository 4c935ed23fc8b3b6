// Write errors at the syscall boundary: forkd stops acknowledging what it
// cannot write, says why, corrupts nothing, and carries on when writes
// succeed again. Every write, fsync and rename of the log, the cursors and
// the file sink goes through one layer (sidecar/core/fs.cc) where
// FORKD_FAULT=kind:nth[:sticky][:errno] makes the nth call fail, and says so
// on stderr when it does: each variant below shows its fault fired.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync, unlinkSync } from 'node:fs';
import path from 'node:path';
import { createClient } from '../../js/index.mjs';
import { startForkd, tempConfig, readJsonl, idCounts, endpointFor } from './helpers.mjs';

const ENOSPC = 28;
const CONFIG = `
wal: { fsync: batch, segment_bytes: 64KiB }
destinations:
  logs: { type: file, path: ./out/logs.jsonl, batch: { max_wait: 5ms }, retry: { initial: 10ms, max: 50ms } }
`;

// Routes `groups` x `per` events, a group at a time; returns what happened.
async function workload(endpoint, tag, groups = 5, per = 10) {
  const client = createClient({ endpoint });
  const acked = [];
  const rejected = [];
  for (let g = 0; g < groups; g++) {
    const rs = await Promise.allSettled(
      Array.from({ length: per }, (_, i) => client.routeData({ tag, g, i }, 'logs', { timeoutMs: 3000 })),
    );
    for (const r of rs) {
      if (r.status === 'fulfilled') acked.push(r.value.id);
      else rejected.push(r.reason);
    }
  }
  await client.close();
  return { acked, rejected };
}

// One run with a fault armed; true if the fault fired (forkd says so on
// stderr, "injected fault: this <kind> fails ...", when it does).
async function runWithFault(kind, nth, sticky) {
  const { dir, config } = tempConfig(CONFIG);
  try {
    const spec = `${kind}:${nth}:${sticky ? 'sticky' : 'once'}:${ENOSPC}`;
    let forkd = await startForkd(config, { env: { FORKD_FAULT: spec } });
    const { acked, rejected } = await workload(endpointFor(dir), spec);
    assert.equal(forkd.proc.exitCode, null, `forkd must not exit under ${spec}:\n${forkd.stderr()}`);
    // The file destination writes what was acknowledged and then commits its
    // cursor (a write and a rename) on its own thread, which may come after
    // the last ack: up to 2 s for the nth call, so whether it counts does not
    // hang on how quickly the acks came back (once, the workload ended before
    // the destination's first rename).
    const fired = () => new RegExp(`injected fault: this ${kind} fails with No space left on device`).test(forkd.stderr());
    for (let t = 0; t < 100 && !fired(); t++) await new Promise((r) => setTimeout(r, 20));
    const hit = fired();
    if (hit) {
      // forkd reports the failure it met, beyond the fault's own line (a
      // write of the last batch fails after the workload's last ack: wait).
      const reported = () => forkd.stderr().split('\n').some((l) => !l.startsWith('injected fault') && /no space left on device/i.test(l));
      for (let t = 0; t < 100 && !reported(); t++) await new Promise((r) => setTimeout(r, 20));
      assert.ok(reported(), `${spec}: the fault fired, and forkd said nothing of it:\n${forkd.stderr()}`);
    }
    for (const e of rejected) {
      // What is not acknowledged is rejected with the reason, or timed out
      // while the log could not be written.
      assert.ok(['FORK_REJECTED', 'FORK_TIMEOUT'].includes(e.code), `${spec}: ${e.code} ${e.message}`);
      if (e.code === 'FORK_REJECTED') assert.match(e.message, /failed: .*no space left on device/);
    }
    if (!sticky && kind !== 'rename') {
      // A single failure costs at most the events of one or two commits.
      assert.ok(acked.length >= 30, `${spec}: only ${acked.length} of 50 acknowledged`);
    }
    // Stop the hard way (a failing sink could retry for the whole drain
    // timeout), restart without the fault and let everything drain.
    await forkd.stop('SIGKILL');
    forkd = await startForkd(config);
    const after = await workload(endpointFor(dir), `${spec}/after`, 1, 5);
    assert.equal(after.acked.length, 5, `${spec}: forkd recovers: ${after.rejected.map((e) => e.message)}`);
    const firstErr = forkd.stderr();
    assert.equal((await forkd.stop()).code, 0, forkd.stderr());
    const counts = idCounts(readJsonl(path.join(dir, 'out/logs.jsonl')));
    for (const id of [...acked, ...after.acked]) {
      assert.ok(counts.get(id) >= 1, `${spec}: acknowledged ${id} is missing; have ${[...counts.keys()].join(' ')}\n${firstErr}\n${forkd.stderr()}`);
    }
    return hit;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

for (const kind of ['write', 'fsync', 'rename']) {
  for (const sticky of [false, true]) {
    test(`fail the nth ${kind}, ${sticky ? 'from then on' : 'once'}, for every n until the workload completes`, async () => {
      let n = 1;
      let hits = 0;
      for (; n <= 200; n++) {
        const hit = await runWithFault(kind, n, sticky);
        if (!hit) break;
        hits++;
      }
      assert.ok(n <= 200, 'the workload completes once n passes its call count');
      assert.ok(hits > 0, `${kind}: the fault fired at least once`);
      console.log(`# ${kind} ${sticky ? 'sticky' : 'once'}: workload completes at n=${n} (${hits} runs hit the fault)`);
    });
  }
}

test('a full disk rejects with the reason, then forkd resumes by itself when space returns', async (t) => {
  const { dir, config } = tempConfig(CONFIG.replace('wal:', 'data_dir: ./mnt/.fork\nwal:'));
  const mnt = path.join(dir, 'mnt');
  mkdirSync(mnt);
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', mnt]);
  try {
    const forkd = await startForkd(config);
    const endpoint = `ipc://${mnt}/.fork/fork.sock`;
    // Fill the disk but for a few KiB.
    const ballast = path.join(mnt, 'ballast');
    try {
      writeFileSync(ballast, Buffer.alloc(1 << 20));
    } catch {}
    const full = await workload(endpoint, 'full', 4, 50);
    const reasons = full.rejected.filter((e) => e.code === 'FORK_REJECTED');
    assert.ok(reasons.length > 0, 'a full disk rejects events');
    assert.match(reasons[0].message, /log write failed: .*no space left on device/);
    unlinkSync(ballast);
    const later = await workload(endpoint, 'later', 2, 10);
    assert.equal(later.acked.length, 20, 'with space back, events are acknowledged again');
    assert.equal((await forkd.stop()).code, 0, forkd.stderr());
    const counts = idCounts(readJsonl(path.join(dir, 'out/logs.jsonl')));
    for (const id of [...full.acked, ...later.acked]) assert.ok(counts.get(id) >= 1, `${id} missing`);
    t.diagnostic(`full disk: ${full.acked.length} acknowledged, ${reasons.length} rejected with the reason`);
  } finally {
    execFileSync('umount', [mnt]);
    rmSync(dir, { recursive: true, force: true });
  }
});
