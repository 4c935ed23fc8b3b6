// The kafka destination against a real Kafka broker that this file starts
// (servers/kafka.mjs: Kafka 4.x, one KRaft node on 127.0.0.1) and reads back
// with kafkajs, an independent client: every acknowledged event in the topic
// once, with its `fork-id` header and its key, one key's records in order in
// the partition Java clients pick for it; forkd killed -9 while events come
// in (nothing acknowledged missing, duplicates only as at-least-once
// allows); the broker down for 10 s (the kafka destination retries, a file
// destination in the same forkd keeps delivering, nothing lost); a record
// larger than the topic's max.message.bytes dead-lettered with the broker's
// error while the rest land; `forkd check` on a bad brokers value and an
// unknown librdkafka option.
//
// Each test runs its own forkd (a temp dir) against the one broker, on its
// own topic.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import kafkajs from 'kafkajs';
import { createClient } from '../../js/index.mjs';
import { startForkd, tempConfig, endpointFor, readJsonl, readReceipts, startProducer, freePort, FORKD } from './helpers.mjs';
import { startKafka } from './servers/kafka.mjs';

let kafka;
const rigs = new Set();

before(async () => {
  kafka = await startKafka({ partitions: 3 });
});

after(async () => {
  for (const rig of rigs) await rig.close();
  if (kafka) await kafka.stop();
});

const QUICK = { retry: { initial: '50ms', max: '1s' }, breaker: { failures: 5, cooldown: '1s' } };

// A forkd with these destinations (kafka ones get the broker unless they
// name one) and a client, with an admin server.
async function startRig(destinations) {
  const adminPort = await freePort();
  const dests = {};
  for (const [name, d] of Object.entries(destinations)) {
    dests[name] = d.type === 'kafka'
      ? { brokers: kafka.brokers, batch: { max_wait: '20ms' }, ...QUICK, ...d }
      : { batch: { max_wait: '20ms' }, ...d };
  }
  const { dir, config } = tempConfig(
    `admin: 127.0.0.1:${adminPort}\nwal: { fsync: batch }\ndestinations: ${JSON.stringify(dests, null, 1)}\n`,
    'fork-kafka-e2e-',
  );
  let forkd;
  let client;
  const rig = {
    dir,
    config,
    endpoint: endpointFor(dir),
    admin: `http://127.0.0.1:${adminPort}`,
    get client() {
      return client ?? (client = createClient({ endpoint: endpointFor(dir), timeoutMs: 30_000 }));
    },
    get forkd() {
      return forkd;
    },
    async restart() {
      forkd = await startForkd(config);
    },
    deadLetters(name) {
      const p = path.join(dir, '.fork', 'dead_letters', `${name}.jsonl`);
      return existsSync(p) ? readJsonl(p) : [];
    },
    async status(name) {
      const s = await (await fetch(`${rig.admin}/api/status`, { signal: AbortSignal.timeout(5000) })).json();
      return s.destinations.find((d) => d.name === name);
    },
    async metric(name, dest) {
      const text = await (await fetch(`${rig.admin}/metrics`, { signal: AbortSignal.timeout(5000) })).text();
      const line = text.split('\n').find((l) => l.startsWith(`${name}{destination="${dest}"`));
      return line === undefined ? undefined : Number(line.split(' ').pop());
    },
    log: () => (forkd ? forkd.stderr().slice(-4000) : ''),
    async close() {
      if (!rigs.delete(rig)) return;
      if (client) await client.close(0);
      if (forkd) await forkd.stop('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    },
  };
  rigs.add(rig);
  try {
    forkd = await startForkd(config);
  } catch (e) {
    await rig.close();
    throw e;
  }
  return rig;
}

// Polls `pred` until it holds; fails with `what()` after `ms`.
async function waitUntil(pred, ms, what) {
  const deadline = Date.now() + ms;
  for (;;) {
    try {
      if (await pred()) return;
    } catch {
      // the broker or forkd may be down
    }
    if (Date.now() > deadline) throw new Error(`not within ${ms} ms: ${await what()}`);
    await sleep(200);
  }
}

const header = (m, name) => m.headers[name]?.toString();

// Reads the topic until every id in `ids` is there (or `ms` passes); returns
// { messages, byId: Map(fork-id -> [messages]), missing: [id...] }.
async function readUntilAll(topic, ids, rig, ms = 60_000) {
  let last;
  const look = async () => {
    const messages = await kafka.readAll(topic);
    const byId = new Map();
    for (const m of messages) {
      const id = header(m, 'fork-id');
      if (!byId.has(id)) byId.set(id, []);
      byId.get(id).push(m);
    }
    const missing = [...ids].filter((id) => !byId.has(id));
    last = { messages, byId, missing };
    return missing.length === 0;
  };
  await waitUntil(look, ms, async () =>
    `${last?.missing.length} of ${ids.size ?? ids.length} acknowledged events not in ${topic} ` +
    `(first: ${last?.missing.slice(0, 5)}); status ${JSON.stringify(await rig.status('bus').catch((e) => e.message))}\n${rig.log()}`,
  );
  return last;
}

test('every acknowledged event reaches the topic once, with its fork-id header and key, one key in order in its partition', async () => {
  await kafka.createTopic('orders', 3);
  const rig = await startRig({ bus: { type: 'kafka', topic: 'orders', key: 'orderId' } });
  const N = 600;
  const KEYS = 20;
  const receipts = [];
  // In rounds, each awaited: one client, so the log has them in this order.
  for (let round = 0; round < N / 100; round++) {
    receipts.push(
      ...(await Promise.all(
        Array.from({ length: 100 }, (_, j) => {
          const i = round * 100 + j;
          return rig.client.routeData({ orderId: `o-${i % KEYS}`, seq: i, amount: i + 0.5, items: [{ sku: 's', qty: i }] }, 'bus');
        }),
      )),
    );
  }
  const ids = new Set(receipts.map((r) => r.id));
  assert.equal(ids.size, N);
  const { messages, byId } = await readUntilAll('orders', ids, rig);
  assert.equal(messages.length, N, 'one message per event, none twice');
  assert.equal(byId.size, N);

  // The partition a Java client (kafkajs's default, murmur2) gives the key.
  const partitioner = kafkajs.Partitioners.DefaultPartitioner();
  const partitionMetadata = [0, 1, 2].map((partitionId) => ({ partitionId, leader: 1 }));
  const lastSeq = new Map();
  const partitionOf = new Map();
  for (const m of messages) {
    const id = header(m, 'fork-id');
    const value = JSON.parse(m.value.toString());
    const i = value.seq;
    assert.equal(id, receipts[i].id, `message ${m.partition}/${m.offset}: fork-id is the receipt's id`);
    assert.deepEqual(value, { _fork_id: id, orderId: `o-${i % KEYS}`, seq: i, amount: i + 0.5, items: [{ sku: 's', qty: i }] });
    assert.equal(m.key?.toString(), value.orderId, 'the key is payload.orderId');
    assert.equal(header(m, 'fork-destination'), 'bus');
    const k = value.orderId;
    if (partitionOf.has(k)) assert.equal(m.partition, partitionOf.get(k), `key ${k} in one partition`);
    partitionOf.set(k, m.partition);
    assert.equal(
      m.partition,
      partitioner({ topic: 'orders', partitionMetadata, message: { key: m.key } }),
      `key ${k}: the partition Java's murmur2 partitioner picks`,
    );
    assert.ok((lastSeq.get(k) ?? -1) < i, `key ${k}: record ${i} after ${lastSeq.get(k)} in partition ${m.partition}`);
    lastSeq.set(k, i);
  }
  assert.equal(new Set(partitionOf.values()).size, 3, 'the keys spread over the 3 partitions');
  assert.equal(await rig.metric('fork_destination_delivered_total', 'bus'), N);
  assert.deepEqual(rig.deadLetters('bus'), []);
  await rig.close();
});

test('forkd killed -9 while events come in: every acknowledged event is in the topic after the restart', { timeout: 240_000 }, async () => {
  await kafka.createTopic('crash', 3);
  const rig = await startRig({ bus: { type: 'kafka', topic: 'crash', key: 'orderId' } });
  const receipts = path.join(tmpdir(), `${path.basename(rig.dir)}-receipts.txt`);
  const producer = startProducer({ endpoint: rig.endpoint, receipts, rate: 500, timeoutMs: 60_000, destinations: ['bus'] });
  try {
    for (let k = 0; k < 3; k++) {
      await producer.waitFor((p) => p.acked > 300 * (k + 1), 60_000);
      await sleep(200 + Math.floor(Math.random() * 600));
      await rig.forkd.stop('SIGKILL');
      await sleep(Math.floor(Math.random() * 300));
      await rig.restart();
    }
    await sleep(1000);
    const done = await producer.stop();
    assert.equal(done.failed, 0, `every call acknowledged (${JSON.stringify(done.errors)})`);
    const acked = readReceipts(receipts); // id -> n
    assert.equal(acked.size, done.acked);
    const ids = new Set(acked.keys());
    const { messages, byId } = await readUntilAll('crash', ids, rig, 90_000);
    // An event made durable whose ack went with the kill may be there too.
    const unknown = [...byId.keys()].filter((id) => !ids.has(id));
    const duplicates = messages.length - byId.size;
    console.log(`acknowledged ${ids.size}, messages ${messages.length}, duplicates ${duplicates}, not acknowledged ${unknown.length}`);
    for (const [id, n] of acked) {
      const value = JSON.parse(byId.get(id)[0].value.toString());
      assert.equal(value.n, n, `event ${id} carries its payload`);
    }
  } finally {
    await producer.kill();
    rmSync(receipts, { force: true });
    await rig.close();
  }
});

test('the broker down for 10 s: the kafka destination retries, a file destination keeps delivering, nothing is lost', { timeout: 240_000 }, async () => {
  await kafka.createTopic('outage', 3);
  const rig = await startRig({
    bus: { type: 'kafka', topic: 'outage', key: 'orderId', timeout: '2s' },
    files: { type: 'file', path: './files.jsonl' },
  });
  const receipts = path.join(tmpdir(), `${path.basename(rig.dir)}-receipts.txt`);
  const producer = startProducer({ endpoint: rig.endpoint, receipts, rate: 300, timeoutMs: 60_000, destinations: ['bus', 'files'] });
  const fileLines = () => {
    const p = path.join(rig.dir, 'files.jsonl');
    return existsSync(p) ? readFileSync(p, 'utf8').split('\n').length - 1 : 0;
  };
  try {
    await producer.waitFor((p) => p.acked > 500, 60_000);
    await kafka.waitForCount('outage', 200);
    await kafka.stopServer();
    const downAt = Date.now();
    await sleep(1500);
    const linesEarly = fileLines();
    const deliveredEarly = await rig.metric('fork_destination_delivered_total', 'bus');
    await sleep(7000);
    const linesLate = fileLines();
    const bus = await rig.status('bus');
    const deliveredLate = await rig.metric('fork_destination_delivered_total', 'bus');
    const retries = await rig.metric('fork_destination_retries_total', 'bus');
    await sleep(Math.max(0, 10_000 - (Date.now() - downAt)));
    await kafka.startServer();
    console.log(
      `broker down ${Date.now() - downAt} ms: file lines ${linesEarly} -> ${linesLate}, kafka delivered ` +
        `${deliveredEarly} -> ${deliveredLate}, retries ${retries}, bus ${JSON.stringify(bus)}`,
    );
    assert.ok(linesLate > linesEarly + 300, `the file destination kept delivering while the broker was down (${linesEarly} -> ${linesLate})`);
    assert.equal(deliveredLate, deliveredEarly, 'nothing delivered to kafka while the broker was down');
    assert.ok(retries > 0, 'the kafka destination retried');
    assert.equal(bus.condition, 'retrying', `the kafka destination says it is retrying: ${JSON.stringify(bus)}`);
    assert.match(bus.last_error, /not acknowledged by the broker|Connection refused|_TRANSPORT/);

    await sleep(2000);
    const done = await producer.stop();
    assert.equal(done.failed, 0, `every call acknowledged (${JSON.stringify(done.errors)})`);
    const acked = readReceipts(receipts); // id -> n
    const ids = new Set(acked.keys());
    const { messages, byId } = await readUntilAll('outage', ids, rig, 120_000);
    console.log(`acknowledged ${ids.size}, messages ${messages.length}, duplicates ${messages.length - byId.size}`);
    await waitUntil(
      () => fileLines() >= ids.size,
      30_000,
      () => `file has ${fileLines()} lines, ${ids.size} acknowledged`,
    );
    const inFile = new Set(readJsonl(path.join(rig.dir, 'files.jsonl')).map((r) => r._fork_id));
    assert.deepEqual([...ids].filter((id) => !inFile.has(id)), [], 'the file has every acknowledged event');
    assert.deepEqual(rig.deadLetters('bus'), []);
  } finally {
    await producer.kill();
    if (!kafka.running) await kafka.startServer();
    rmSync(receipts, { force: true });
    await rig.close();
  }
});

test('a record over the topic\'s max.message.bytes goes to dead letters with the broker\'s error; the rest are delivered', async () => {
  await kafka.createTopic('small', 3, { 'max.message.bytes': 10000 });
  const rig = await startRig({ bus: { type: 'kafka', topic: 'small', key: 'orderId' } });
  const send = (i, extra = {}) => rig.client.routeData({ orderId: `o-${i % 7}`, seq: i, ...extra }, 'bus');
  const before = await Promise.all(Array.from({ length: 30 }, (_, i) => send(i)));
  const big = await send(30, { blob: 'x'.repeat(20_000) });
  const after = await Promise.all(Array.from({ length: 30 }, (_, i) => send(31 + i)));
  const good = new Set([...before, ...after].map((r) => r.id));
  const { messages, byId } = await readUntilAll('small', good, rig);
  await waitUntil(
    () => rig.deadLetters('bus').length === 1,
    30_000,
    async () => `dead letters ${JSON.stringify(rig.deadLetters('bus')).slice(0, 2000)}\n${rig.log()}`,
  );
  assert.equal(messages.length, 60, 'the 60 others, each once');
  assert.ok(!byId.has(big.id), 'the oversize record is not in the topic');
  const [letter] = rig.deadLetters('bus');
  console.log(`dead letter: reason ${letter.reason}, attempts ${letter.attempts}, last_error ${letter.last_error}`);
  assert.equal(letter._fork_id, big.id);
  assert.match(`${letter.last_error} ${letter.reason}`, /MSG_SIZE_TOO_LARGE: Broker: Message size too large/, JSON.stringify({ ...letter, raw: undefined, payload: undefined }));

  const list = spawnSync(FORKD, ['dlq', 'list', '--config', rig.config, '--destination', 'bus', '--json'], { encoding: 'utf8' });
  assert.equal(list.status, 0, list.stderr);
  const listed = list.stdout.trim().split('\n').map((l) => JSON.parse(l));
  assert.deepEqual(listed.map((l) => l._fork_id), [big.id]);
  assert.equal(await rig.metric('fork_destination_dead_lettered_total', 'bus'), 1);
  await rig.close();
});

const BAD_CONFIG = [
  'destinations:',
  '  a:',
  '    type: kafka',
  '    brokers: "127.0.0.1:9092"',
  '    topic: orders',
  '    options:',
  '      compression.type: lz4',
  '      no.such.property: 1',
  '  b: { type: kafka, brokers: "127.0.0.1:99999", topic: orders }',
  '  c: { type: kafka, brokers: "127.0.0.1:9092", topic: orders, options: { acks: "1" } }',
  '  d: { type: kafka, brokers: "127.0.0.1:9092,localhost:9093", topic: orders, key: orderId, options: { linger.ms: 2 } }',
  '  e: { type: kafka, brokers: "127.0.0.1:9092", topic: "bad topic" }',
  '',
].join('\n');

// `forkd check` on BAD_CONFIG: { status, text, msg(dest) -> its line }.
function checkBad() {
  const { dir, config } = tempConfig(BAD_CONFIG, 'fork-kafka-e2e-');
  try {
    const check = spawnSync(FORKD, ['check', '--config', config], { encoding: 'utf8' });
    const text = check.stdout + check.stderr;
    const lines = text.split('\n');
    return { status: check.status, text, msg: (dest) => lines.find((l) => l.includes(`destinations.${dest}.`)) ?? '' };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test('forkd check refuses an unknown librdkafka option, a reserved one, a bad brokers value and topic at file:line:col', () => {
  const { status, text, msg } = checkBad();
  assert.equal(status, 2, text);
  assert.match(msg('a'), /fork\.yaml:\d+:\d+: destinations\.a\.options\.no\.such\.property: librdkafka has no such property/, text);
  assert.match(msg('b'), /fork\.yaml:9:\d+: destinations\.b\.brokers: '127\.0\.0\.1:99999': the port must be 1-65535/, text);
  assert.match(msg('c'), /fork\.yaml:10:\d+: destinations\.c\.options\.acks: .*acks=all/, text);
  assert.equal(msg('d'), '', `a good kafka destination passes\n${text}`);
  assert.match(msg('e'), /fork\.yaml:12:\d+: destinations\.e\.topic: /, text);
});

// forkd reports a property librdkafka refuses at the `options:` map (its
// first entry, line 7 here), not at the entry itself (line 8).
test('forkd check puts an unknown librdkafka option at its own line', () => {
  const { msg } = checkBad();
  assert.match(msg('a'), /fork\.yaml:8:7: destinations\.a\.options\.no\.such\.property: /);
});
