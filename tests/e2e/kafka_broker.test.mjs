// The Kafka harness itself (servers/kafka.mjs), before any forkd test relies
// on it: a one-node KRaft broker starts, a 3-partition topic is created,
// kafkajs produces 100 records with keys and headers and readAll() gives
// every one back in per-partition order; the broker stopped and started
// again (same port, same data) still has them, and takes more.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startKafka } from './servers/kafka.mjs';

let kafka;

before(async () => {
  kafka = await startKafka({ partitions: 1 });
  console.log(`kafka ${kafka.version} on ${kafka.brokers} answered in ${kafka.startMs} ms`);
});

after(async () => {
  if (kafka) await kafka.stop();
});

const message = (i) => ({
  key: `order-${i % 10}`,
  value: JSON.stringify({ orderId: `order-${i % 10}`, seq: i }),
  headers: { 'fork-id': `id-${i}`, seq: String(i) },
});

async function produce(messages) {
  const producer = kafka.client().producer({ allowAutoTopicCreation: false });
  await producer.connect();
  try {
    await producer.send({ topic: 'harness', acks: -1, messages });
  } finally {
    await producer.disconnect();
  }
}

function check(got, n) {
  assert.equal(got.length, n);
  const seen = new Set();
  const keyPartition = new Map();
  const lastSeq = new Map();
  for (const m of got) {
    const body = JSON.parse(m.value.toString());
    assert.equal(m.key.toString(), body.orderId);
    assert.equal(m.headers['fork-id'].toString(), `id-${body.seq}`);
    assert.equal(m.headers.seq.toString(), String(body.seq));
    assert.ok(!seen.has(body.seq), `record ${body.seq} read twice`);
    seen.add(body.seq);
    // One key, one partition, in the order produced.
    const k = m.key.toString();
    if (keyPartition.has(k)) assert.equal(m.partition, keyPartition.get(k), `key ${k} in two partitions`);
    keyPartition.set(k, m.partition);
    assert.ok((lastSeq.get(k) ?? -1) < body.seq, `key ${k} out of order at ${body.seq}`);
    lastSeq.set(k, body.seq);
  }
  for (let i = 0; i < n; i++) assert.ok(seen.has(i), `record ${i} missing`);
  return new Set(got.map((m) => m.partition));
}

test('the harness broker takes a 3-partition topic and gives back 100 records with keys and headers', async () => {
  await kafka.createTopic('harness', 3);
  await assert.rejects(kafka.createTopic('harness', 3), /exists/);
  await produce(Array.from({ length: 100 }, (_, i) => message(i)));
  assert.equal(await kafka.count('harness'), 100);
  const partitions = check(await kafka.readAll('harness'), 100);
  assert.equal(partitions.size, 3, `10 keys spread over the 3 partitions: ${[...partitions]}`);
  const offsets = await kafka.offsets('harness');
  assert.deepEqual(Object.keys(offsets).sort(), ['0', '1', '2']);
});

test('the harness broker stopped and started again keeps its records, on the same port', async () => {
  const port = kafka.port;
  const t0 = Date.now();
  await kafka.stopServer();
  await assert.rejects(kafka.count('harness'));
  await kafka.startServer();
  console.log(`restart (clean stop + start) took ${Date.now() - t0} ms`);
  assert.equal(kafka.port, port);
  check(await kafka.readAll('harness'), 100);
  await produce(Array.from({ length: 20 }, (_, i) => message(100 + i)));
  check(await kafka.readAll('harness'), 120);

  // A crash (SIGKILL) too: what the broker acknowledged is still there.
  await kafka.stopServer({ kill: true });
  await kafka.startServer();
  check(await kafka.readAll('harness'), 120);
});
