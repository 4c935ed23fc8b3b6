// Wrong, hostile and oversized input on the wire: forkd nacks with a reason,
// never crashes, keeps its memory flat (its RSS is measured across hundreds
// of rounds of hostile input), and keeps serving good clients.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { pack, unpack } from 'msgpackr';
import { createClient, ForkError } from '../../js/index.mjs';
import { startForkd, tempConfig, endpointFor, freePort, rssBytes, readJsonl } from './helpers.mjs';
import { rawClient as rawClientAt, routeFrame } from './wire.mjs';

const MAX_FRAME = 4 << 20;
const CONFIG = `
limits: { max_frame: 4MiB, max_event: 64KiB }
destinations:
  logs: { type: file, path: ./out/logs.jsonl }
`;

let dir, forkd, endpoint, admin;
before(async () => {
  const port = await freePort();
  ({ dir } = tempConfig(`${CONFIG}admin: 127.0.0.1:${port}\n`));
  admin = `http://127.0.0.1:${port}`;
  forkd = await startForkd(`${dir}/fork.yaml`);
  endpoint = endpointFor(dir);
});
after(async () => {
  const r = await forkd.stop();
  rmSync(dir, { recursive: true, force: true });
  assert.equal(r.code, 0, forkd.stderr());
});

// forkd's ingest counters: events appended, frames it decoded and found malformed.
async function ingestCounters() {
  const text = await (await fetch(`${admin}/metrics`, { signal: AbortSignal.timeout(5000) })).text();
  const get = (name) => {
    const m = text.match(new RegExp(`^${name}(?:\\{\\})? (\\S+)$`, 'm'));
    assert.ok(m, `${name} in /metrics`);
    return Number(m[1]);
  };
  return { events: get('fork_ingest_events_total'), badFrames: get('fork_ingest_bad_frames_total') };
}

const rawClient = () => rawClientAt(endpoint);

async function expectNack(s, code, pattern) {
  const [m] = await s.receive();
  assert.equal(m[1], 5, `expected a nack, got frame type ${m[1]}`);
  const [c, message] = unpack(m.subarray(18));
  assert.equal(c, code, message);
  if (pattern) assert.match(message, pattern);
  return message;
}

async function expectAck(s, first, last) {
  const [m] = await s.receive();
  assert.equal(m[1], 4, m[1] === 5 ? unpack(m.subarray(18)).join(': ') : `frame ${m[1]}`);
  assert.equal(m.readUInt32LE(2), 1);
  assert.equal(m.readBigUInt64LE(6), BigInt(first));
  assert.equal(m.readBigUInt64LE(14), BigInt(last));
}

const good = (i) => pack([['logs'], null, null, { i }]);

test('a map header claiming 2^32 entries is nacked at once', async () => {
  const s = await rawClient();
  const hostile = Buffer.concat([Buffer.from([0x94, 0x91, 0xa4]), Buffer.from('logs'), Buffer.from([0xc0, 0xc0, 0xdf, 0xff, 0xff, 0xff, 0xff])]);
  await s.send(routeFrame(1, [hostile]));
  await expectNack(s, 'FORK_INVALID_PAYLOAD', /more entries|limit/);
  await s.send(routeFrame(2, [good(2)]));
  await expectAck(s, 2, 2);
  s.close();
});

test('10 000-deep nesting is nacked, forkd survives', async () => {
  const s = await rawClient();
  const deep = Buffer.concat([Buffer.from([0x94, 0x91, 0xa4]), Buffer.from('logs'), Buffer.from([0xc0, 0xc0, 0x81, 0xa1, 0x78]), Buffer.alloc(10000, 0x91), Buffer.from([0xc0])]);
  await s.send(routeFrame(1, [deep]));
  await expectNack(s, 'FORK_INVALID_PAYLOAD', /nesting deeper/);
  s.close();
});

test('truncated frames and events are nacked with what was wrong', async () => {
  const s = await rawClient();
  const ev = good(1);
  const frame = routeFrame(1, [ev]);
  // The frame cut inside the entry: its length claims more bytes than remain.
  await s.send(frame.subarray(0, frame.length - 3));
  await expectNack(s, 'FORK_REJECTED', /claims \d+ bytes/);
  // A route header shorter than 14 bytes.
  await s.send(frame.subarray(0, 9));
  await expectNack(s, 'FORK_REJECTED', /shorter than/);
  // An entry whose msgpack is cut short.
  await s.send(routeFrame(5, [ev.subarray(0, ev.length - 2)]));
  await expectNack(s, 'FORK_INVALID_PAYLOAD', /truncated/);
  // A count that lies.
  await s.send(routeFrame(6, [ev], { count: 1000 }));
  await expectNack(s, 'FORK_REJECTED', /count 1000/);
  // Garbage and an unknown version.
  await s.send(Buffer.from([9, 3, 1, 2, 3]));
  await expectNack(s, 'FORK_REJECTED', /protocol version 9/);
  await s.send(Buffer.from([1, 42]));
  await expectNack(s, 'FORK_REJECTED', /unknown frame type 42/);
  s.close();
});

test('wrong event shapes are nacked with their reason', async () => {
  const s = await rawClient();
  await s.send(routeFrame(1, [pack({ not: 'an array' })]));
  await expectNack(s, 'FORK_INVALID_PAYLOAD', /array \[destinations/);
  await s.send(routeFrame(2, [pack([['logs'], null, null, [1, 2]])]));
  await expectNack(s, 'FORK_INVALID_PAYLOAD', /payload must be a map/);
  await s.send(routeFrame(3, [pack([[42], null, null, {}])]));
  await expectNack(s, 'FORK_INVALID_PAYLOAD', /destinations\[0\]/);
  await s.send(routeFrame(4, [pack([['nope'], null, null, {}])]));
  await expectNack(s, 'FORK_UNKNOWN_DESTINATION', /unknown destination 'nope' \(configured: logs\)/);
  await s.send(routeFrame(5, [pack([null, null, null, {}])]));
  await expectNack(s, 'FORK_UNKNOWN_DESTINATION', /no destination/);
  await s.send(routeFrame(6, [pack([['logs'], null, null, { big: 'x'.repeat(70000) }])]));
  await expectNack(s, 'FORK_TOO_LARGE', /exceeds limits.max_event/);
  s.close();
});

test('a frame over limits.max_frame is dropped by libzmq with its connection (ZMQ_MAXMSGSIZE): forkd never decodes it, the sender reconnects, others are served', async () => {
  const id = randomBytes(16);
  const s = await rawClientAt(endpoint, id);
  const seen = [];
  s.events.on('disconnect', () => seen.push('disconnect'));
  s.events.on('connect', () => seen.push('connect'));
  // At the limit, the frame reaches forkd, which decodes it and finds the
  // bytes after its one event malformed.
  const c0 = await ingestCounters();
  const atLimit = routeFrame(1, [good(1)]);
  await s.send(Buffer.concat([atLimit, Buffer.alloc(MAX_FRAME - atLimit.length)]));
  await expectNack(s, 'FORK_REJECTED');
  const c1 = await ingestCounters();
  assert.equal(c1.badFrames, c0.badFrames + 1, 'a frame at the limit is decoded by forkd');
  assert.deepEqual(seen, [], 'and its connection stays');
  // One byte over (the same valid event, then padding): libzmq drops the
  // connection before forkd sees a byte of it.
  const over = routeFrame(2, [good(2)]);
  await s.send(Buffer.concat([over, Buffer.alloc(MAX_FRAME + 1 - over.length)]));
  for (let t = 0; t < 100 && !(seen.includes('disconnect') && seen.lastIndexOf('connect') > seen.indexOf('disconnect')); t++) {
    await sleep(50);
  }
  assert.ok(seen.includes('disconnect'), `the connection was dropped (socket events: ${seen.join(', ')})`);
  assert.ok(seen.lastIndexOf('connect') > seen.indexOf('disconnect'), `and the sender reconnected (socket events: ${seen.join(', ')})`);
  const c2 = await ingestCounters();
  assert.deepEqual(c2, c1, 'forkd neither decoded nor appended the oversize frame');
  // The reconnected sender says hello again and is served; seq 2 was never taken.
  await s.send(Buffer.concat([Buffer.from([1, 1]), pack({ client: id, protocol: 1, agent: 'raw' })]));
  const [welcome] = await s.receive();
  assert.equal(welcome[1], 2, 'welcomed again');
  await s.send(routeFrame(2, [good(2)]));
  await expectAck(s, 2, 2);
  assert.equal((await ingestCounters()).events, c1.events + 1, 'its next event is appended once');
  s.close();
  const client = createClient({ endpoint });
  const r = await client.routeData({ after: 'oversize' }, 'logs');
  assert.equal(r.ack, 'accepted');
  await client.close();
});

test('forkd\'s RSS grows by less than 2 MiB (under half of one oversize frame) over 300 rounds of every hostile input, 5 MiB frames included', { timeout: 120_000 }, async (t) => {
  const header = Buffer.from([0x94, 0x91, 0xa4]);
  const hostile = [
    Buffer.concat([header, Buffer.from('logs'), Buffer.from([0xc0, 0xc0, 0xdf, 0xff, 0xff, 0xff, 0xff])]),
    Buffer.concat([header, Buffer.from('logs'), Buffer.from([0xc0, 0xc0, 0x81, 0xa1, 0x78]), Buffer.alloc(10000, 0x91), Buffer.from([0xc0])]),
    pack([['logs'], null, null, { big: 'x'.repeat(70000) }]),
    good(0).subarray(0, 5),
  ];
  let seq = 1;
  const round = async (s, i) => {
    for (const h of hostile) {
      await s.send(routeFrame(seq++, [h]));
      const [m] = await s.receive();
      assert.equal(m[1], 5, 'nacked');
    }
    const f = routeFrame(seq, [good(i)]);
    await s.send(f.subarray(0, f.length - 3)); // cut short
    assert.equal((await s.receive())[0][1], 5, 'nacked');
    if (i % 20 === 0) {
      // An oversize frame on a connection of its own: dropped by libzmq.
      const o = await rawClient();
      await o.send(Buffer.alloc(5 << 20, 0x91));
      await sleep(20);
      o.close();
    }
  };
  const s = await rawClient();
  for (let i = 0; i < 30; i++) await round(s, i); // warm-up: arenas, buffers, caches
  const warm = rssBytes(forkd.pid);
  const seenRss = [warm];
  for (let i = 0; i < 300; i++) {
    await round(s, i);
    if (i % 50 === 49) seenRss.push(rssBytes(forkd.pid));
  }
  s.close();
  const end = seenRss[seenRss.length - 1];
  const mib = (b) => (b / 1048576).toFixed(1);
  const report = `forkd RSS: ${mib(warm)} MiB after 30 warm-up rounds, then every 50 rounds: ${seenRss.slice(1).map(mib).join(', ')} MiB`;
  t.diagnostic(report);
  console.log(report);
  assert.ok(Math.max(...seenRss) - warm < 2 << 20, `${report}: grew by 2 MiB or more`);
  assert.equal(forkd.proc.exitCode, null, 'forkd is still running');
});

test('the JS API turns forkd nacks into ForkErrors', async () => {
  const client = createClient({ endpoint });
  await assert.rejects(client.routeData({ a: 1 }, 'nope'), (e) => {
    assert.ok(e instanceof ForkError);
    assert.equal(e.code, 'FORK_UNKNOWN_DESTINATION');
    assert.match(e.message, /nope/);
    return true;
  });
  await assert.rejects(client.routeData({ big: 'y'.repeat(100_000) }, 'logs'), (e) => {
    assert.equal(e.code, 'FORK_TOO_LARGE');
    return true;
  });
  await client.close();
});

test('resending the same sequence numbers does not append twice', async () => {
  const s = await rawClient();
  const marked = (i) => pack([['logs'], null, null, { resend: 'r-42', i }]);
  await s.send(routeFrame(1, [marked(1), marked(2)]));
  await expectAck(s, 1, 2);
  await s.send(routeFrame(1, [marked(1), marked(2)]));
  await expectAck(s, 1, 2);
  await s.send(routeFrame(3, [marked(3)]));
  await expectAck(s, 3, 3);
  s.close();
  const file = `${dir}/out/logs.jsonl`;
  let seen = [];
  for (let t = 0; t < 100 && seen.length < 3; t++) {
    await new Promise((r) => setTimeout(r, 50));
    // Whole records only: forkd may be appending the last line.
    seen = readJsonl(file).filter((r) => r.resend === 'r-42');
  }
  assert.deepEqual(seen.map((r) => r.i), [1, 2, 3]);
});

test('a frame of 800 000 empty entries is refused with one nack of its whole range', async () => {
  const s = await rawClient();
  const n = 800_000;
  const frame = Buffer.alloc(14 + 5 * n);
  frame[0] = 1;
  frame[1] = 3;
  frame.writeBigUInt64LE(1n, 2);
  frame.writeUInt32LE(n, 10);
  await s.send(frame);
  const [m] = await s.receive();
  assert.equal(m[1], 5);
  assert.equal(m.readBigUInt64LE(2), 1n);
  assert.equal(m.readBigUInt64LE(10), BigInt(n));
  assert.match(unpack(m.subarray(18))[1], /truncated|at byte 0/);
  // Nothing else follows it: the next answer is this ack.
  await s.send(routeFrame(n + 1, [good(n + 1)]));
  await expectAck(s, n + 1, n + 1);
  s.close();
});

test('past 1024 separate refusals in one frame, the rest of it is refused unread', async () => {
  const s = await rawClient();
  // Alternating bad and good entries: each bad one a refusal of its own.
  const events = [];
  for (let i = 0; i < 3000; i++) events.push(i % 2 === 0 ? Buffer.from([0xc1]) : good(i + 1));
  await s.send(routeFrame(1, events));
  let nacks = 0, acked = 0, last;
  while (acked === 0) {
    const [m] = await s.receive();
    if (m[1] === 5) {
      nacks++;
      last = { first: Number(m.readBigUInt64LE(2)), last: Number(m.readBigUInt64LE(10)), message: unpack(m.subarray(18))[1] };
    } else {
      assert.equal(m[1], 4);
      acked = m.readUInt32LE(2);
    }
  }
  assert.equal(nacks, 1025);
  // 1024 refusals cover seqs 1, 3, …, 2047; the rest, from 2048 on, is one.
  assert.deepEqual([last.first, last.last], [2048, 3000]);
  assert.match(last.message, /more than 1024 separate refusals/);
  s.close();
});

test('a route frame from a client that said no hello is answered FORK_HELLO_REQUIRED', async () => {
  const { randomBytes } = await import('node:crypto');
  const zmq = await import('zeromq');
  const id = randomBytes(16);
  const s = new zmq.Dealer({ routingId: id.toString('latin1'), receiveTimeout: 5000, linger: 0 });
  s.routingId = id;
  s.connect(endpoint);
  await s.send(routeFrame(7, [good(7), good(8)]));
  await expectNack(s, 'FORK_HELLO_REQUIRED', /send hello/);
  s.close();
});
