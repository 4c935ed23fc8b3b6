// The kafka destination and the kafka source over SASL_SSL against a real
// broker (servers/kafka.mjs with security: 'sasl_ssl': a SASL_SSL listener
// whose certificate a throwaway CA signed, one user for SCRAM-SHA-512 and
// PLAIN), with the librdkafka properties under `options:` as
// docs/configuration.md gives them; kafkajs (an independent client) reads
// the topic back over the same listener, with SCRAM-SHA-512.
//
// What is proved: TLS + SASL (PLAIN and SCRAM-SHA-512) settings work end to
// end (edge → Kafka → hub), with the password taken from forkd's environment
// through ${ENV};
// a wrong password and an untrusted CA are retried, never dead-lettered,
// with the cause in /api/status, and nothing acknowledged meanwhile is lost
// once a reload (SIGHUP) puts the right setting in.
//
// SCRAM needs librdkafka ≥ 2.6.1: before it, the client nonce went twice
// into the SCRAM final message, which Kafka brokers since 3.8.1 refuse as
// invalid credentials (librdkafka#4895); forkd links 2.12.1
// (scripts/librdkafka.sh).
//
// Each test has its own topic and forkd processes (temp dirs), against the
// one broker.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import Database from 'better-sqlite3';
import { createClient } from '../../js/index.mjs';
import { startForkd, tempConfig, endpointFor, readJsonl, freePort } from './helpers.mjs';
import { startKafka, makeCertificates } from './servers/kafka.mjs';

let kafka;
let root;
const nodes = new Set();

before(async () => {
  root = mkdtempSync(path.join(tmpdir(), 'fork-kafka-sec-'));
  kafka = await startKafka({ partitions: 3, security: 'sasl_ssl' });
  console.log(`kafka ${kafka.version}: PLAINTEXT ${kafka.brokers}, SASL_SSL ${kafka.saslBrokers}, answered in ${kafka.startMs} ms`);
});

after(async () => {
  for (const n of nodes) await n.close();
  if (kafka) await kafka.stop();
  if (root) rmSync(root, { recursive: true, force: true });
});

const QUICK = { retry: { initial: '50ms', max: '1s' }, breaker: { failures: 5, cooldown: '1s' } };
const BATCH = { batch: { max_wait: '20ms' } };

// The librdkafka properties for the SASL_SSL listener.
const secure = ({ mechanism = 'PLAIN', password = '${KAFKA_PASSWORD}', ca = kafka.caFile } = {}) => ({
  'security.protocol': 'SASL_SSL',
  'sasl.mechanisms': mechanism,
  'sasl.username': kafka.user,
  'sasl.password': password,
  'ssl.ca.location': ca,
});

// A forkd in a directory of its own: fork.yaml is `config` (an object,
// written as JSON, which YAML reads) plus an admin server; `env` is added to
// its environment. write(config) + reload() change it with SIGHUP.
async function startNode(config, label, env = {}) {
  const adminPort = await freePort();
  const text = (c) => JSON.stringify({ admin: `127.0.0.1:${adminPort}`, wal: { fsync: 'batch' }, ...c }, null, 1) + '\n';
  const { dir, config: file } = tempConfig(text(config), `fork-${label}-`);
  let forkd;
  let client;
  const admin = `http://127.0.0.1:${adminPort}`;
  const node = {
    dir,
    config: file,
    get forkd() {
      return forkd;
    },
    get client() {
      return client ?? (client = createClient({ endpoint: endpointFor(dir), timeoutMs: 30_000 }));
    },
    write: (c) => writeFileSync(file, text(c)),
    // SIGHUP; resolves once the log says the reload is done.
    async reload() {
      const from = forkd.stderr().length;
      forkd.proc.kill('SIGHUP');
      await waitUntil(
        () => /reload: done/.test(forkd.stderr().slice(from)),
        10_000,
        () => `no "reload: done" in the log\n${node.log()}`,
      );
      return forkd.stderr().slice(from);
    },
    async status() {
      return (await fetch(`${admin}/api/status`, { signal: AbortSignal.timeout(5000) })).json();
    },
    async destination(name = 'bus') {
      return (await node.status()).destinations.find((d) => d.name === name);
    },
    async source(name = 'bus') {
      return (await node.status()).sources.find((s) => s.name === name);
    },
    async metric(name, label) {
      const text = await (await fetch(`${admin}/metrics`, { signal: AbortSignal.timeout(5000) })).text();
      const line = text.split('\n').find((l) => l.startsWith(`${name}{${label}`));
      return line === undefined ? undefined : Number(line.split(' ').pop());
    },
    deadLetters(name = 'bus') {
      const p = path.join(dir, '.fork', 'dead_letters', `${name}.jsonl`);
      return existsSync(p) ? readJsonl(p) : [];
    },
    log: (bytes = 3000) => `--- ${label}'s log:\n${forkd ? forkd.stderr().slice(-bytes) : ''}`,
    async close() {
      if (!nodes.delete(node)) return;
      if (client) await client.close(0);
      if (forkd) await forkd.stop('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    },
  };
  nodes.add(node);
  try {
    forkd = await startForkd(file, { env });
  } catch (e) {
    await node.close();
    throw e;
  }
  return node;
}

// An edge: one kafka destination, bus, on the SASL_SSL listener.
const edgeConfig = (topic, options) => ({
  destinations: {
    bus: { type: 'kafka', brokers: kafka.saslBrokers, topic, key: 'orderId', timeout: '2s', options, ...BATCH, ...QUICK },
  },
});

// Polls `pred` until it holds; fails with `what()` after `ms`.
async function waitUntil(pred, ms, what) {
  const deadline = Date.now() + ms;
  for (;;) {
    try {
      if (await pred()) return;
    } catch {
      // forkd restarting, a table being created
    }
    if (Date.now() > deadline) throw new Error(`not within ${ms} ms: ${await what()}`);
    await sleep(200);
  }
}

const header = (m, name) => m.headers[name]?.toString();

// Sends n events to the edge's bus in rounds of 100; returns the receipts.
async function send(edge, n, tag) {
  const receipts = [];
  for (let round = 0; round < n / 100; round++) {
    receipts.push(
      ...(await Promise.all(
        Array.from({ length: Math.min(100, n - round * 100) }, (_, j) => {
          const i = round * 100 + j;
          return edge.client.routeData({ orderId: `o-${i % 10}`, seq: i, tag }, 'bus');
        }),
      )),
    );
  }
  return receipts;
}

// Reads the topic over SASL_SSL until it holds every id; returns the messages.
async function readUntilAll(topic, ids, logs, ms = 40_000) {
  let messages = [];
  let missing = [...ids];
  await waitUntil(
    async () => {
      messages = await kafka.readAll(topic, { secure: true });
      const have = new Set(messages.map((m) => header(m, 'fork-id')));
      missing = [...ids].filter((id) => !have.has(id));
      return missing.length === 0;
    },
    ms,
    () => `${missing.length} of ${ids.size} acknowledged events not in ${topic}\n${logs()}`,
  );
  return messages;
}

// Every message once: one per id, with its fork-id and fork-destination
// headers, its key and its payload.
function checkMessages(messages, receipts, tag) {
  assert.equal(messages.length, receipts.length, 'one message per acknowledged event, none twice');
  const bySeq = new Map();
  for (const m of messages) {
    const value = JSON.parse(m.value.toString());
    assert.equal(value.tag, tag);
    assert.ok(!bySeq.has(value.seq), `seq ${value.seq} twice`);
    bySeq.set(value.seq, m);
    assert.equal(header(m, 'fork-id'), receipts[value.seq].id, `seq ${value.seq}: fork-id is the receipt's id`);
    assert.equal(value._fork_id, receipts[value.seq].id);
    assert.equal(header(m, 'fork-destination'), 'bus');
    assert.equal(m.key?.toString(), `o-${value.seq % 10}`);
  }
}

// Waits until the destination is retrying with a last_error matching `re`.
async function waitRetrying(node, re) {
  let d;
  await waitUntil(
    async () => {
      d = await node.destination('bus');
      return ['retrying', 'breaker_open'].includes(d.condition) && re.test(d.last_error ?? '');
    },
    30_000,
    () => `bus: ${JSON.stringify(d)}\n${node.log()}`,
  );
  return d;
}

// Edge → Kafka → hub over SASL_SSL with `mechanism`: n events from the
// edge's kafka destination, read back by kafkajs, and by the hub's kafka
// source into SQLite. A librdkafka that cannot authenticate fails at once.
async function endToEnd(mechanism, topic, N) {
  await kafka.createTopic(topic, 3);
  const env = { KAFKA_PASSWORD: kafka.password };
  const edge = await startNode(edgeConfig(topic, secure({ mechanism })), `${topic}-edge`, env);
  assert.ok(!readFileSync(edge.config, 'utf8').includes(kafka.password), 'the password is not in the file');
  const db = path.join(root, `${topic}.db`);
  const hub = await startNode(
    {
      sources: { bus: { type: 'kafka', brokers: kafka.saslBrokers, topic, group: `${topic}-hub`, to: ['store'], options: secure({ mechanism }) } },
      destinations: { store: { type: 'sqlite', path: db, table: 'events', ...BATCH, ...QUICK } },
    },
    `${topic}-hub`,
    env,
  );
  const logs = () => `${edge.log()}\n${hub.log()}`;
  const receipts = await send(edge, N, topic);
  const ids = new Set(receipts.map((r) => r.id));
  assert.equal(ids.size, N);
  let d;
  await waitUntil(
    async () => (d = await edge.destination('bus')).delivered === N || /authentication/i.test(d.last_error ?? ''),
    40_000,
    () => `bus: ${JSON.stringify(d)}\n${logs()}`,
  );
  assert.doesNotMatch(d.last_error ?? '', /authentication/i, `${mechanism}: the broker refused forkd's credentials`);
  checkMessages(await readUntilAll(topic, ids, logs), receipts, topic);
  assert.equal(await edge.metric('fork_destination_delivered_total', 'destination="bus"'), N);
  assert.deepEqual(edge.deadLetters(), []);

  let rows = [];
  await waitUntil(
    () => {
      if (!existsSync(db)) return false;
      const d = new Database(db, { readonly: true, fileMustExist: true });
      try {
        rows = d.prepare('SELECT _fork_id, seq FROM events').all();
      } finally {
        d.close();
      }
      return rows.length >= N;
    },
    40_000,
    async () => `sqlite has ${rows.length} of ${N} rows; source ${JSON.stringify(await hub.source())}\n${logs()}`,
  );
  assert.equal(rows.length, N, 'each event once in SQLite');
  for (const r of rows) assert.equal(r._fork_id, receipts[Number(r.seq)].id, `row seq ${r.seq}: _fork_id is the edge's receipt id`);
  const src = await hub.source();
  assert.equal(src.ingested, N, JSON.stringify(src));
  assert.equal(src.rejected, 0);
  for (const n of [edge, hub]) assert.ok(!n.forkd.stderr().includes(kafka.password), `the password is not in the log\n${n.log()}`);
  await hub.close();
  await edge.close();
}

test('SASL_SSL + PLAIN end to end: a kafka destination (sasl.password from ${KAFKA_PASSWORD} in forkd\'s environment, ssl.ca.location the test CA) delivers 500 events that kafkajs reads back over SASL_SSL with their fork-id headers and keys, and a kafka source on the same listener puts each once into SQLite', () =>
  endToEnd('PLAIN', 'sec-plain', 500));

test('SASL_SSL + SCRAM-SHA-512 end to end: the same with sasl.mechanisms SCRAM-SHA-512 against a Kafka 4 broker (100 events)', () =>
  endToEnd('SCRAM-SHA-512', 'sec-scram', 100));

test('a wrong SASL/PLAIN password: the kafka destination retries (/api/status retrying, last_error an authentication failure), dead-letters nothing and sends nothing; after the file gets the right ${KAFKA_PASSWORD} and SIGHUP reloads it, the 200 events acknowledged meanwhile are each delivered once', async () => {
  await kafka.createTopic('sec-password', 3);
  const edge = await startNode(edgeConfig('sec-password', secure({ password: 'not-the-password' })), 'sec-pw', {
    KAFKA_PASSWORD: kafka.password,
  });
  const receipts = await send(edge, 200, 'pw');
  const d = await waitRetrying(edge, /authentication/i);
  console.log(`wrong password: bus ${JSON.stringify(d)}`);
  await sleep(2000); // more failed flushes
  assert.ok((await edge.metric('fork_destination_retries_total', 'destination="bus"')) > 0, 'it retried');
  assert.equal(await kafka.count('sec-password'), 0, 'nothing reached the topic');
  assert.deepEqual(edge.deadLetters(), [], 'nothing dead-lettered');
  assert.equal(await edge.metric('fork_destination_dead_lettered_total', 'destination="bus"') ?? 0, 0);
  assert.ok(!edge.forkd.stderr().includes('not-the-password'), `the wrong password is not in the log\n${edge.log()}`);

  edge.write(edgeConfig('sec-password', secure()));
  const log = await edge.reload();
  assert.match(log, /reload: destination bus changed/);
  const ids = new Set(receipts.map((r) => r.id));
  checkMessages(await readUntilAll('sec-password', ids, () => edge.log()), receipts, 'pw');
  assert.deepEqual(edge.deadLetters(), []);
  let after;
  await waitUntil(async () => (after = await edge.destination('bus')).condition === 'running', 10_000, () => JSON.stringify(after));
  await edge.close();
});

test('a CA that did not sign the broker\'s certificate: the kafka destination retries (/api/status retrying, last_error an SSL certificate failure), dead-letters nothing and sends nothing; with the right ssl.ca.location and SIGHUP the 100 events acknowledged meanwhile are each delivered once', async () => {
  await kafka.createTopic('sec-ca', 3);
  const other = makeCertificates(root, 'unused-store-pass', 'other-').caFile;
  const edge = await startNode(edgeConfig('sec-ca', secure({ ca: other })), 'sec-ca', { KAFKA_PASSWORD: kafka.password });
  const receipts = await send(edge, 100, 'ca');
  const d = await waitRetrying(edge, /ssl|certificate/i);
  console.log(`untrusted CA: bus ${JSON.stringify(d)}`);
  await sleep(2000);
  assert.ok((await edge.metric('fork_destination_retries_total', 'destination="bus"')) > 0, 'it retried');
  assert.equal(await kafka.count('sec-ca'), 0, 'nothing reached the topic');
  assert.deepEqual(edge.deadLetters(), [], 'nothing dead-lettered');
  assert.equal(await edge.metric('fork_destination_dead_lettered_total', 'destination="bus"') ?? 0, 0);

  edge.write(edgeConfig('sec-ca', secure()));
  await edge.reload();
  const ids = new Set(receipts.map((r) => r.id));
  checkMessages(await readUntilAll('sec-ca', ids, () => edge.log()), receipts, 'ca');
  assert.deepEqual(edge.deadLetters(), []);
  await edge.close();
});
