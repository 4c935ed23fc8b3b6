// Files forkd keeps on disk, edited or damaged by hand: a dead-letter file
// whose lines were cut or changed, and a log segment holding an entry whose
// checksum holds but whose event is malformed. forkd keeps running, says
// what it skipped and where, restarts cleanly, and everything intact is
// delivered.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { execFile } from 'node:child_process';
import { appendFileSync, existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createClient } from '../../js/index.mjs';
import { startForkd, tempConfig, endpointFor, readJsonl, FORKD } from './helpers.mjs';

async function freePort() {
  return new Promise((resolve) => {
    const srv = net.createServer();
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

function forkdCli(args) {
  return new Promise((resolve) => {
    execFile(FORKD, args, { timeout: 30000 }, (err, stdout, stderr) => {
      resolve({ code: err ? (err.code ?? 1) : 0, stdout, stderr });
    });
  });
}

async function until(pred, ms = 10000, what = 'condition') {
  const t0 = Date.now();
  while (!(await pred())) {
    if (Date.now() - t0 > ms) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const records = (p) => (existsSync(p) ? readJsonl(p) : []);
const ids = (p) => records(p).map((r) => r._fork_id).sort();

test('an edited dead-letter file: the intact letters replay, the edited ones stay, named', async () => {
  const port = await freePort();
  const configFor = (required) => `admin: 127.0.0.1:${port}
destinations:
  checked:
    type: file
    path: ./out.jsonl
    transforms:
      - validate: { required: [${required}], on_fail: dead_letter }
`;
  const { dir, config } = tempConfig(configFor('total'));
  const dlq = `${dir}/.fork/dead_letters/checked.jsonl`;
  const out = `${dir}/out.jsonl`;
  let forkd = await startForkd(config);
  try {
    const c = createClient({ endpoint: endpointFor(dir) });
    // Each goes to dead letters: 'delivered' rejects, naming why.
    for (let i = 0; i < 4; i++) {
      await assert.rejects(c.routeData({ n: i }, 'checked', { idempotencyKey: `k${i}`, ack: 'delivered' }), {
        code: 'FORK_REJECTED',
        reason: /validate/,
      });
    }
    await c.close();
    await until(() => records(dlq).length === 4, 10000, '4 dead letters');

    // Edit: k1's raw cut after its header, k2's payload made a number, and a
    // line that is not JSON at all.
    const lines = readFileSync(dlq, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    assert.deepEqual(lines.map((l) => l._fork_id), ['k0', 'k1', 'k2', 'k3']);
    lines[1].raw = Buffer.from([0x92]).toString('base64');
    lines[2].raw = Buffer.from([0x92, 0xc0, 0x05]).toString('base64');
    writeFileSync(dlq, lines.map((l) => JSON.stringify(l)).join('\n') + '\n{"destination":"checked",\n');

    // The fix that makes the intact letters deliverable.
    writeFileSync(config, configFor('n'));
    forkd.proc.kill('SIGHUP');
    await until(() => forkd.stderr().includes('reload: done'), 10000, 'the reload');

    const r = await forkdCli(['dlq', 'replay', '--config', config, '-d', 'checked']);
    assert.equal(r.code, 1, 'an invalid letter makes the replay incomplete');
    const answer = JSON.parse(r.stdout);
    assert.equal(answer.replayed, 2);
    assert.equal(answer.invalid, 2);
    assert.equal(answer.unreadable, 1);
    assert.equal(answer.errors.length, 3);
    assert.match(answer.errors[0], /checked\.jsonl:2: id k1: event: truncated/);
    assert.match(answer.errors[1], /checked\.jsonl:3: id k2: event: payload must be a map/);
    assert.match(answer.errors[2], /checked\.jsonl:5: not JSON/);
    for (const e of answer.errors) assert.ok(r.stderr.includes(e), `stderr names: ${e}`);

    await until(() => ids(out).length === 2, 10000, 'the intact letters delivered');
    assert.deepEqual(ids(out), ['k0', 'k3']);
    assert.equal(forkd.proc.exitCode, null, 'forkd keeps running');
    const health = await fetch(`http://127.0.0.1:${port}/healthz`, { signal: AbortSignal.timeout(5000) });
    assert.equal(health.status, 200);
    const left = readFileSync(dlq, 'utf8').trim().split('\n');
    assert.equal(left.length, 3, 'the edited lines stay for a fix or a drop');
    assert.deepEqual(left.slice(0, 2).map((l) => JSON.parse(l)._fork_id), ['k1', 'k2']);
    // An empty line before them: list still names each line as the file numbers it.
    writeFileSync(dlq, '\n' + left.join('\n') + '\n');
    const list = await forkdCli(['dlq', 'list', '--config', config, '-d', 'checked']);
    assert.equal(list.code, 0, list.stderr);
    assert.match(list.stdout, /^2 dead letters of checked$/m);
    assert.match(list.stderr, /checked\.jsonl:4: not JSON/);

    // A restart is clean and delivers nothing twice; new events flow.
    assert.equal((await forkd.stop()).code, 0, forkd.stderr());
    forkd = await startForkd(config);
    const c2 = createClient({ endpoint: endpointFor(dir) });
    await c2.routeData({ n: 9 }, 'checked', { idempotencyKey: 'after', ack: 'delivered' });
    await c2.close();
    assert.deepEqual(ids(out), ['after', 'k0', 'k3']);
  } finally {
    const r = await forkd.stop();
    rmSync(dir, { recursive: true, force: true });
    assert.equal(r.code, 0, forkd.stderr());
  }
});

// ---- a log entry that passes its checksum but is not an event ----

const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let i = 0; i < 256; i++) {
    let c = i;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
    t[i] = c >>> 0;
  }
  return t;
})();

function crc32c(buf) {
  let c = 0xffffffff;
  for (const b of buf) c = CRC_TABLE[(c ^ b) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

// A FULL record (docs/log_format.md) holding one entry.
function fullRecord(lsn, event) {
  const entry = Buffer.alloc(40 + event.length);
  entry.writeBigUInt64LE(BigInt(lsn), 0);
  entry.writeBigInt64LE(BigInt(Date.now()) * 1000n, 8);
  entry.writeBigUInt64LE(1n, 32);
  event.copy(entry, 40);
  const typed = Buffer.concat([Buffer.from([1]), entry]);
  const c = crc32c(typed);
  const masked = ((((c >>> 15) | (c << 17)) >>> 0) + 0xa282ead8) >>> 0;
  const header = Buffer.alloc(7);
  header.writeUInt32LE(masked, 0);
  header.writeUInt16LE(entry.length, 4);
  header[6] = 1;
  return Buffer.concat([header, entry]);
}

test('a checksummed log entry that is not an event is skipped and reported; the rest is delivered', async () => {
  const { dir, config } = tempConfig(`
destinations:
  logs: { type: file, path: ./out.jsonl }
`);
  const out = `${dir}/out.jsonl`;
  let forkd = await startForkd(config);
  try {
    let c = createClient({ endpoint: endpointFor(dir) });
    for (const id of ['a', 'b']) await c.routeData({ id }, 'logs', { idempotencyKey: id, ack: 'delivered' });
    await c.close();
    assert.equal((await forkd.stop()).code, 0, forkd.stderr());

    // Entry 3: [[{a map where a name belongs}], nil, nil, {}], valid msgpack
    // whose destination entry is not a name. Its checksum is right.
    const wal = `${dir}/.fork/wal`;
    const segment = readdirSync(wal).filter((f) => f.endsWith('.log')).sort().pop();
    const event = Buffer.from([0x94, 0x91, 0x91, 0x84, 1, 1, 1, 1, 1, 1, 1, 1, 0xc0, 0xc0, 0x80]);
    appendFileSync(`${wal}/${segment}`, fullRecord(3, event));

    forkd = await startForkd(config);
    c = createClient({ endpoint: endpointFor(dir) });
    await c.routeData({ id: 'c' }, 'logs', { idempotencyKey: 'c', ack: 'delivered' });
    await c.close();
    assert.deepEqual(ids(out), ['a', 'b', 'c']);
    assert.match(forkd.stderr(), /destination logs: log damage .*entry lsn 3: stored event: destinations\[0\] must be a name, nil or \[name, template\.\.\.\]; entry skipped/);
    assert.equal(forkd.proc.exitCode, null, 'forkd keeps running');

    // And again: the cursor moved past it, so a restart does not meet it.
    assert.equal((await forkd.stop()).code, 0, forkd.stderr());
    forkd = await startForkd(config);
    c = createClient({ endpoint: endpointFor(dir) });
    await c.routeData({ id: 'd' }, 'logs', { idempotencyKey: 'd', ack: 'delivered' });
    await c.close();
    assert.deepEqual(ids(out), ['a', 'b', 'c', 'd']);
    assert.doesNotMatch(forkd.stderr(), /log damage/);
  } finally {
    const r = await forkd.stop();
    rmSync(dir, { recursive: true, force: true });
    assert.equal(r.code, 0, forkd.stderr());
  }
});
