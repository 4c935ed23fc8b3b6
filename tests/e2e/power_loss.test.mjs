// Power loss, simulated: forkd runs with FORKD_CRASHFS (sidecar/core/crashfs.h),
// which records every file change and, when the plug is pulled, puts every
// file and directory back to what was last fsynced before the process is
// SIGKILLed, as a machine losing power would leave the disk if nothing
// unsynced survived. The plug is pulled at a random instant (SIGUSR2) or
// instead of a random fsync (FORKD_POWER_OFF=syncs:N), while a producer
// routes events; then forkd restarts on what is left.
//
//   FORK_POWER_LOSS_CYCLES=1000    more power losses for the fsync: batch test (default 100)
//   FORK_POWER_LOSS_SEED=1234      replay a schedule (the seed is printed)
//   FORK_KEEP_FAILED=1             keep the data directory of a failed run
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
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
  readJsonl,
  rng,
} from './helpers.mjs';

const CYCLES = Number(process.env.FORK_POWER_LOSS_CYCLES ?? 100);
const SEED = Number(process.env.FORK_POWER_LOSS_SEED ?? (Date.now() ^ (process.pid << 16)) >>> 0);

const config = (fsync) => `
data_dir: ./.fork
wal: { fsync: ${fsync}, batch_ms: 2, segment_bytes: 64KiB, retention: { max_age: 0 } }
destinations:
  logs: { type: file, path: ./out/logs.jsonl, rotate: 256KiB, batch: { max_events: 200, max_wait: 10ms } }
`;

// A cursor file (docs/log_format.md): its lsn and the sink state after it.
function readCursor(file) {
  const b = readFileSync(file);
  assert.equal(b.subarray(0, 4).toString(), 'FKCR', `${file} is a cursor`);
  const stateLen = b.readUInt32LE(32);
  return { nextLsn: Number(b.readBigUInt64LE(8)), state: b.subarray(36, 36 + stateLen).toString() };
}

// The file sink's cursor says its output file holds `size` committed bytes;
// after a power loss the file must still hold them (else the records in the
// missing bytes are neither in the file nor ever sent again).
function cursorPastOutput(dir) {
  const file = path.join(dir, '.fork', 'cursors', 'logs.cursor');
  if (!existsSync(file)) return null;
  const { state } = readCursor(file);
  const [out, size] = state.split('\n');
  if (!out) return null;
  const have = existsSync(out) ? statSync(out).size : -1;
  if (have >= Number(size)) return null;
  // A rotation the cursor has not seen yet: the active file was renamed to
  // logs-<stamp>[_n].jsonl (the newest by name) and a new one begun; on
  // restart forkd cuts that file back to the committed bytes.
  const dirOf = path.dirname(out);
  const rotated = readdirSync(dirOf).filter((f) => /^logs-.*\.jsonl$/.test(f)).sort().pop();
  const inRotated = rotated ? statSync(path.join(dirOf, rotated)).size : -1;
  if (inRotated >= Number(size)) return null;
  return `cursor says ${out} holds ${size} bytes; it holds ${have}, and the newest rotated file ${rotated ?? '(none)'} ${inRotated}`;
}

function walSegments(dir) {
  const wal = path.join(dir, '.fork', 'wal');
  return existsSync(wal) ? readdirSync(wal).filter((f) => f.endsWith('.log')).sort() : [];
}

const POWER_OFF = /power off \((SIGUSR2|at a sync)\): (\d+) files rolled back, (\d+) unsynced bytes dropped, (\d+) directory changes undone/;

// Runs forkd until the power goes off: at a random instant (SIGUSR2, 50-400 ms
// after it listens) or instead of its Nth fsync/fdatasync (N in 1..400, which
// may fall in start-up). Returns what crashfs says it dropped.
async function runUntilPowerOff(cfg, dir, random) {
  const env = { FORKD_CRASHFS: path.join(dir, 'crashfs') };
  const bySync = random() < 0.5;
  if (bySync) env.FORKD_POWER_OFF = `syncs:${1 + Math.floor(random() * 400)}`;
  const forkd = await startForkd(cfg, { env, wait: false });
  if (!bySync) {
    await forkd.ready;
    await sleep(50 + Math.floor(random() * 350));
    forkd.proc.kill('SIGUSR2');
  }
  const r = await Promise.race([forkd.exited, sleep(20000).then(() => null)]);
  if (r === null) {
    await forkd.stop('SIGKILL');
    assert.fail(`forkd did not power off (${JSON.stringify(env)}):\n${forkd.stderr().slice(-3000)}`);
  }
  const m = POWER_OFF.exec(forkd.stderr());
  assert.ok(m, `forkd ended (${r.signal ?? r.code}) without a power off:\n${forkd.stderr().slice(-3000)}`);
  assert.equal(r.signal, 'SIGKILL', 'a power off ends the process at once');
  return { files: Number(m[2]), bytes: Number(m[3]), entries: Number(m[4]), stderr: forkd.stderr() };
}

// Cycles of power losses under a producer's load; then a last forkd drains.
async function storm(fsync, cycles, seed) {
  const random = rng(seed);
  const { dir, config: cfg } = tempConfig(config(fsync), 'fork-power-');
  const receiptsFile = path.join(dir, 'receipts.txt');
  const producer = startProducer({
    endpoint: endpointFor(dir),
    receipts: receiptsFile,
    rate: 5000,
    timeoutMs: 10000,
    destinations: ['logs'],
  });
  const totals = { cycles: 0, withLoss: 0, files: 0, bytes: 0, entries: 0, cursorPast: [] };
  let forkd;
  let ok = false;
  try {
    for (let i = 0; i < cycles; i++) {
      const p = await runUntilPowerOff(cfg, dir, random);
      totals.cycles += 1;
      totals.files += p.files;
      totals.bytes += p.bytes;
      totals.entries += p.entries;
      if (p.bytes > 0 || p.entries > 0) totals.withLoss += 1;
      const past = cursorPastOutput(dir);
      if (past) totals.cursorPast.push(`cycle ${i}: ${past}`);
    }
    forkd = await startForkd(cfg);
    await producer.waitFor((s) => s.acked > 0, 15000);
    await sleep(300);
    const done = await producer.stop();
    assert.equal((await forkd.stop('SIGTERM')).code, 0, forkd.stderr());
    const receipts = readReceipts(receiptsFile);
    assert.equal(receipts.size, done.acked, 'the receipts file holds every acknowledgement');
    const v = verifyDestination(path.join(dir, 'out', 'logs.jsonl'), receipts);
    ok = true;
    return { dir, done, receipts, v, totals, segments: walSegments(dir) };
  } finally {
    await producer.kill();
    if (forkd) await forkd.stop('SIGKILL');
    if (ok || !process.env.FORK_KEEP_FAILED) rmSync(dir, { recursive: true, force: true });
    else console.log(`kept ${dir}`);
  }
}

function report(name, r) {
  const t = r.totals;
  return (
    `${name}: ${t.cycles} power losses (${t.withLoss} dropped something: ${t.files} files rolled back, ` +
    `${t.bytes} unsynced bytes, ${t.entries} directory changes); ` +
    `${r.done.issued} calls, ${r.done.acked} acknowledged, ${r.done.failed} failed ${JSON.stringify(r.done.errors)}; ` +
    `logs: ${r.v.lines} lines, missing ${r.v.missing.length}, duplicates ${r.v.duplicates}`
  );
}

test(`fsync: batch: ${CYCLES} power losses under load lose nothing acknowledged`, { timeout: 60_000 + CYCLES * 1500 }, async () => {
  console.log(`power loss seed ${SEED} (FORK_POWER_LOSS_SEED=${SEED} replays this schedule)`);
  const r = await storm('batch', CYCLES, SEED);
  console.log(report('fsync: batch', r));
  // The plug was pulled with unsynced changes in hand, again and again.
  assert.ok(r.totals.withLoss >= CYCLES / 4, `only ${r.totals.withLoss} of ${CYCLES} power losses dropped anything`);
  assert.ok(r.done.acked > 0, 'events were acknowledged');
  assert.deepEqual(r.totals.cursorPast, [], 'no cursor is ahead of the output it describes');
  const sample = r.v.missing.slice(0, 10).map((id) => `${id} (n=${r.receipts.get(id)})`);
  assert.equal(r.v.missing.length, 0, `acknowledged events lost, e.g. ${sample.join(', ')} (seed ${SEED})`);
  assert.deepEqual(r.v.wrong, [], 'every record carries the payload acknowledged for its id');
  assert.ok(!r.segments.includes('00000000000000000001.log'), `segments were rolled and deleted (${r.segments.join(', ')})`);
});

test('fsync: never: power losses lose acknowledged events (what batch prevents)', { timeout: 60_000 }, async () => {
  const r = await storm('never', 10, SEED ^ 0x5a5a);
  console.log(report('fsync: never', r));
  assert.ok(r.totals.bytes > 0, 'unsynced log writes were dropped');
  assert.ok(r.v.missing.length > 0, `with fsync: never, ${r.done.acked} acknowledged events all survived 10 power losses`);
});

test('fsync: batch: idempotency keys acknowledged before a power loss still dedupe after it', { timeout: 90_000 }, async () => {
  const random = rng(SEED ^ 0x1234);
  const { dir, config: cfg } = tempConfig(config('batch'), 'fork-power-keys-');
  const endpoint = endpointFor(dir);
  const acked = new Map(); // key -> payload
  let resent = 0;
  let forkd;
  let ok = false;
  try {
    for (let cycle = 0; cycle < 12; cycle++) {
      forkd = await startForkd(cfg, { env: { FORKD_CRASHFS: path.join(dir, 'crashfs') } });
      const client = createClient({ endpoint });
      // Every key acknowledged so far comes again: each is a duplicate.
      const again = await Promise.allSettled(
        [...acked].map(([key, p]) => client.routeData(p, 'logs', { idempotencyKey: key, timeoutMs: 10000 })),
      );
      const failed = again.filter((x) => x.status === 'rejected');
      assert.deepEqual(failed.map((x) => x.reason.code), [], `cycle ${cycle}: repeats are acknowledged`);
      resent += again.length;
      // New keyed events for 0.3-2.3 s (the key journal syncs once a second;
      // 64 KiB segments roll and go, so older keys are only in the journal),
      // then the plug is pulled with calls in flight.
      const until = Date.now() + 300 + Math.floor(random() * 2000);
      const inflight = new Set();
      let i = 0;
      while (Date.now() < until) {
        for (let k = 0; k < 20; k++, i++) {
          const key = `k-${cycle}-${i}`;
          const payload = { key, cycle, i, pad: 'x'.repeat(400) };
          const pr = client.routeData(payload, 'logs', { idempotencyKey: key, timeoutMs: 10000 }).then(
            () => acked.set(key, payload),
            () => {},
          );
          inflight.add(pr);
          pr.finally(() => inflight.delete(pr));
        }
        await sleep(10);
      }
      forkd.proc.kill('SIGUSR2');
      const r = await forkd.exited;
      assert.match(forkd.stderr(), POWER_OFF, `cycle ${cycle}: ended by ${r.signal ?? r.code}`);
      await Promise.allSettled([...inflight]);
      await client.close(100);
    }
    forkd = await startForkd(cfg);
    const client = createClient({ endpoint });
    const last = await Promise.allSettled(
      [...acked].map(([key, p]) => client.routeData(p, 'logs', { idempotencyKey: key, timeoutMs: 10000 })),
    );
    assert.equal(last.filter((x) => x.status === 'rejected').length, 0, 'the last repeats are acknowledged');
    await client.close();
    assert.equal((await forkd.stop('SIGTERM')).code, 0, forkd.stderr());
    const counts = new Map();
    for (const rec of readJsonl(path.join(dir, 'out', 'logs.jsonl'))) {
      counts.set(rec._fork_id, (counts.get(rec._fork_id) ?? 0) + 1);
    }
    const missing = [...acked.keys()].filter((k) => !counts.has(k));
    const twice = [...acked.keys()].filter((k) => counts.get(k) > 1);
    console.log(
      `keys: ${acked.size} acknowledged over 12 power losses, ${resent + last.length} repeats sent; ` +
        `missing ${missing.length}, delivered more than once ${twice.length}; log segments now ${walSegments(dir).join(', ')}`,
    );
    assert.ok(acked.size > 1000, `${acked.size} keys acknowledged`);
    assert.deepEqual(missing.slice(0, 10), [], 'every acknowledged key is delivered');
    assert.deepEqual(twice.slice(0, 10), [], 'no acknowledged key is delivered twice: repeats after a power loss are deduped');
    assert.ok(!walSegments(dir).includes('00000000000000000001.log'), 'segments were deleted: old keys lived in the journal alone');
    ok = true;
  } finally {
    if (forkd) await forkd.stop('SIGKILL');
    if (ok || !process.env.FORK_KEEP_FAILED) rmSync(dir, { recursive: true, force: true });
    else console.log(`kept ${dir}`);
  }
});
