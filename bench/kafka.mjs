// Kafka: events/s into a topic through forkd's kafka destination, against
// producers with nothing in front of them, in the same run, on the same
// broker (tests/e2e/servers/kafka.mjs: Kafka 4.x, one KRaft node, started
// here), each into its own topic of 3 partitions:
//   - Fork: one Node process routes N reference events (bench/route.mjs's:
//     purchases(99)) with routeData to a `kafka` destination keyed by
//     userId, ack 'accepted'; timed from the first send until forkd's
//     fork_destination_delivered_total for it (admin /metrics) has grown by
//     N: every event durable in forkd's log, then acknowledged by the broker
//     (acks=all, idempotent).
//   - librdkafka alone: bench/kafka_peer.c (librdkafka's rdkafka_performance
//     needs librdkafka's internal headers, so it does not build against an
//     installed librdkafka; kafka_peer is the smallest equivalent), built
//     here into build/bench/ once, against the librdkafka forkd links
//     (scripts/librdkafka.sh). The kafka destination's settings
//     (enable.idempotence, acks=all, linger.ms 5, murmur2_random), the same
//     N messages: the values Fork writes (the event as JSON with its
//     `_fork_id`), the same keys, the same three headers. Waits for every
//     delivery report.
//   - kafkajs: an idempotent producer, sendBatch of 1 000 messages at a
//     time, acks -1, the same messages.
// Fork does more than either peer (an fsync'd log, an ack to the app, a
// cursor per batch); the ratio says what that costs. The kafka destination
// alone is timed too: the same events made durable while its broker is
// unreachable, drained when forkd restarts with the real one (from the
// restart, and after its first batch: librdkafka asks for a topic's
// metadata only on its next 1 s scan when the topic is first produced to
// after the producer connected, which the first batch waits out; and in its
// steady state, from a quarter to three quarters of the events delivered,
// against the peer's rate over the same part of its run). Its CPU
// per event is read per thread (/proc/PID/task): the destination's thread
// and librdkafka's, against the peer's whole process over its timed
// messages (getrusage): what each spends to put a message into Kafka,
// whatever the two cores' sharing does to the rates.
//
// Then, when forkd has the kafka source (`forkd check` accepts `sources:`),
// end-to-end latency edge -> Kafka -> hub -> SQLite: an edge forkd with a
// kafka destination, a hub forkd whose kafka source feeds a sqlite
// destination; events paced at --rate for --seconds with their send time in
// the payload; the table is polled every 10 ms and each row's first-seen
// time minus its send time gives p50/p99 (so the figures include up to
// 10 ms of polling). Twice: with the destinations' default batches
// (max_wait 100ms at each hop), then with max_wait 5ms at both (with
// --max-wait, once, with that).
//
// N is a million by default so that each contender runs for seconds. With
// 200 000 the peer was done in half a second, most of it spent filling
// librdkafka's in-memory queue faster than the broker drains it (385 000-
// 487 000 ev/s in the middle of its run, against ~300 000 with a million,
// where its middle and whole-run rates agree): the figure then measured
// librdkafka's queue more than what the broker takes. The steady-state
// figure also needs the destination's window (in_flight batches of
// max_events) to be small beside N, or its acks come in a few large steps.
//
// The throughput contenders run --rounds times (3), once a round each, the
// order rotated; the figures are each one's median round, every round in
// the JSON. On two shared cores the broker is the noisy part: the same
// producer varies by 2-3x from round to round, and later rounds are slower
// for everyone.
//
// Prints a table and writes the figures to bench/results/kafka-<date>.json
// (bench/results/ is made when missing; the run's date names the file), and
// to FILE too with --json FILE.
// Figures only: it never fails on timing.
//
//   node bench/kafka.mjs [--events 1000000] [--rounds 3] [--kafkajs-batch 1000]
//                        [--rate 1000] [--seconds 20] [--max-wait 5ms] [--no-latency] [--json FILE]
import { execFileSync, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync, writeSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import Database from 'better-sqlite3';
import kafkajs from 'kafkajs';
import { createClient } from '../js/index.mjs';
import { startForkd, tempConfig, ROOT, FORKD } from '../scripts/lib/forkd.mjs';
import { startKafka } from '../tests/e2e/servers/kafka.mjs';
import { freePort } from '../tests/e2e/helpers.mjs';
import { purchases, percentile } from './workload.mjs';

const { values: args } = parseArgs({
  options: {
    events: { type: 'string', default: '1000000' },
    window: { type: 'string', default: '20000' },
    rounds: { type: 'string', default: '3' },
    'kafkajs-batch': { type: 'string', default: '1000' },
    rate: { type: 'string', default: '1000' },
    seconds: { type: 'string', default: '20' },
    'max-wait': { type: 'string' },
    'no-latency': { type: 'boolean', default: false },
    json: { type: 'string' },
  },
});
const N = Number(args.events);
const WINDOW = Number(args.window);
const ROUNDS = Number(args.rounds);
const KJS_BATCH = Number(args['kafkajs-batch']);
const RATE = Number(args.rate);
const SECONDS = Number(args.seconds);
const MAX_WAIT = args['max-wait'];
const KEY = 'userId';
const PARTITIONS = 3;

const fmt = (n, d = 0) => n.toLocaleString('en-US', { maximumFractionDigits: d, minimumFractionDigits: d });
const cpu = (pid) => {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(f[11]) + Number(f[12])) / 100;
};
// CPU seconds of the threads of `pid` whose names match `re` (the kafka
// destination's thread is fk:<name>, librdkafka's are rdk:*).
const threadCpu = (pid, re) => {
  let s = 0;
  for (const t of readdirSync(`/proc/${pid}/task`)) {
    const st = readFileSync(`/proc/${pid}/task/${t}/stat`, 'utf8');
    if (!re.test(st.slice(st.indexOf('(') + 1, st.lastIndexOf(')')))) continue;
    const f = st.slice(st.lastIndexOf(')') + 2).split(' ');
    s += (Number(f[11]) + Number(f[12])) / 100;
  }
  return s;
};
// What else is running: builds, tests and brokers that share the cores, one
// entry per kind of process with a count; `mine` (this run's broker
// directory) left out.
function others(mine) {
  const lines = spawnSync('pgrep', ['-a', '-f', 'ninja|cmake|zig|node --test|cc1plus|java|fork_tests'], { encoding: 'utf8' })
    .stdout.split('\n')
    .filter((l) => l && !l.includes('pgrep -a') && !(mine && l.includes(mine)));
  const kinds = new Map();
  for (const l of lines) {
    const pid = Number(l.split(' ')[0]);
    if (pid === process.pid || pid === process.ppid) continue;
    const cmd = l.split(' ').slice(1);
    const base = path.basename(cmd[0]);
    let kind;
    if (base === 'cc1plus' || base === 'cc1') kind = 'gcc (compiling)';
    else if (base === 'zig') kind = 'zig clang (cross build)';
    else if (base === 'java') kind = l.includes('kafka.Kafka') ? 'another Kafka broker (java)' : 'java';
    else kind = cmd.join(' ').slice(0, 70);
    kinds.set(kind, (kinds.get(kind) ?? 0) + 1);
  }
  return [...kinds].map(([k, n]) => (n > 1 ? `${k} (x${n})` : k));
}
const seenOthers = new Set();
const noteOthers = (mine) => {
  for (const o of others(mine)) seenOthers.add(o);
};

// 0. The peer, built once.
function buildPeer() {
  const src = path.join(ROOT, 'bench', 'kafka_peer.c');
  const bin = path.join(ROOT, 'build', 'bench', 'kafka_peer');
  const prefix = execFileSync('bash', [path.join(ROOT, 'scripts', 'librdkafka.sh')], { encoding: 'utf8' }).trim();
  const lib = path.join(prefix, 'lib', 'librdkafka.a');
  if (!existsSync(bin) || statSync(bin).mtimeMs < Math.max(statSync(src).mtimeMs, statSync(lib).mtimeMs)) {
    mkdirSync(path.dirname(bin), { recursive: true });
    execFileSync('cc', ['-O2', '-DLIBRDKAFKA_STATICLIB', '-I', path.join(prefix, 'include'), src, '-o', bin, lib,
      '-lssl', '-lcrypto', '-lz', '-lm', '-lpthread'], { stdio: 'inherit' });
  }
  return bin;
}

async function metric(admin, name, label) {
  const text = await (await fetch(`${admin}/metrics`, { signal: AbortSignal.timeout(5000) })).text();
  const line = text.split('\n').find((l) => l.startsWith(`${name}{${label}`));
  return line === undefined ? undefined : Number(line.split(' ').pop());
}
const delivered = (admin, dest) => metric(admin, 'fork_destination_delivered_total', `destination="${dest}"`);

async function waitFor(pred, ms, what, every = 20) {
  const deadline = Date.now() + ms;
  for (;;) {
    try {
      if (await pred()) return;
    } catch {}
    if (Date.now() > deadline) throw new Error(`not within ${ms} ms: ${typeof what === 'function' ? await what() : what}`);
    await sleep(every);
  }
}

// Routes `events` to `dest` with routeMany, 1 000 a call, at most WINDOW
// events in flight; resolves when all are accepted (durable in forkd's log).
// The peers produce from messages they hold all at once; so does this.
async function route(client, events, dest) {
  const CHUNK = 1000;
  const inFlight = new Set();
  for (let i = 0; i < events.length; i += CHUNK) {
    const p = client.routeMany(events.slice(i, i + CHUNK), dest, { ack: 'accepted' });
    inFlight.add(p);
    p.then(() => inFlight.delete(p), () => {});
    if (inFlight.size * CHUNK >= WINDOW) await Promise.race(inFlight);
  }
  await Promise.all(inFlight);
}

// 1a. Fork.
async function benchFork(kafka, events, topic, withSample) {
  const adminPort = await freePort();
  const batch = MAX_WAIT ? `, batch: { max_wait: ${MAX_WAIT} }` : '';
  const { dir, config } = tempConfig(
    `admin: 127.0.0.1:${adminPort}
wal: { fsync: batch }
destinations:
  bus: { type: kafka, brokers: "${kafka.brokers}", topic: ${topic}, key: ${KEY}${batch} }
  sample: { type: kafka, brokers: "${kafka.brokers}", topic: fork-sample, key: ${KEY}${batch} }
`,
    'fork-bench-kafka-',
  );
  const admin = `http://127.0.0.1:${adminPort}`;
  const forkd = await startForkd(config);
  const client = createClient({ endpoint: `ipc://${dir}/.fork/fork.sock`, maxInFlight: WINDOW * 2, timeoutMs: 60_000 });
  try {
    // Warm up (the producers connected, the log and the broker going) with
    // 1 000 other events, also sent to a small topic read back to see what
    // Fork writes.
    const warm = Array.from({ length: 1000 }, purchases(7));
    await route(client, warm, withSample ? ['bus', 'sample'] : 'bus');
    await waitFor(async () => (await delivered(admin, 'bus')) >= 1000 && (!withSample || (await delivered(admin, 'sample')) >= 1000), 60_000,
      () => `warm-up not delivered\n${forkd.stderr().slice(-2000)}`);
    const sample = withSample ? await kafka.readAll('fork-sample') : [];

    noteOthers(kafka.dir);
    const d0 = await delivered(admin, 'bus');
    const cpu0 = cpu(forkd.pid);
    const t0 = performance.now();
    await route(client, events, 'bus');
    const acceptedS = (performance.now() - t0) / 1000;
    await waitFor(async () => (await delivered(admin, 'bus')) >= d0 + N, 120_000,
      async () => `delivered ${(await delivered(admin, 'bus')) - d0} of ${N}\n${forkd.stderr().slice(-2000)}`);
    const s = (performance.now() - t0) / 1000;
    const forkdCpu = cpu(forkd.pid) - cpu0;
    const inTopic = await kafka.count(topic);
    return { s, acceptedS, forkdCpu, inTopic: inTopic - 1000, sample, warm };
  } finally {
    await client.close();
    await forkd.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

// 1a'. The kafka destination alone: the same events made durable in the
// log while the destination's brokers are unreachable (nothing listens on
// port 1), then forkd restarted with the real broker; timed from the
// restart until delivered_total reaches N.
async function benchForkDrain(kafka, events, topic) {
  const adminPort = await freePort();
  const batch = MAX_WAIT ? `, batch: { max_wait: ${MAX_WAIT} }` : '';
  const yaml = (brokers) => `admin: 127.0.0.1:${adminPort}
wal: { fsync: batch }
destinations:
  bus: { type: kafka, brokers: "${brokers}", topic: ${topic}, key: ${KEY}${batch}, retry: { initial: 50ms, max: 1s } }
`;
  const { dir, config } = tempConfig(yaml('127.0.0.1:1'), 'fork-bench-kafka-drain-');
  const admin = `http://127.0.0.1:${adminPort}`;
  let forkd = await startForkd(config);
  try {
    const client = createClient({ endpoint: `ipc://${dir}/.fork/fork.sock`, maxInFlight: WINDOW * 2, timeoutMs: 60_000 });
    await route(client, events, 'bus');
    await client.close();
    await forkd.stop('SIGKILL');
    writeFileSync(config, yaml(kafka.brokers));
    noteOthers(kafka.dir);
    const t0 = performance.now();
    forkd = await startForkd(config);
    const readyS = (performance.now() - t0) / 1000;
    let firstS;
    let firstN;
    // The steady state: the delivered count and time when it first passes a
    // quarter and three quarters of N (the metric moves a batch at a time:
    // the counts seen are used, not the quarters).
    let q1;
    let q3;
    await waitFor(async () => {
      const d = await delivered(admin, 'bus');
      const t = (performance.now() - t0) / 1000;
      if (d > 0 && firstS === undefined) {
        firstS = t;
        firstN = d;
      }
      if (q1 === undefined && d >= N / 4) q1 = { d, t };
      if (q3 === undefined && d >= (3 * N) / 4) q3 = { d, t };
      return d >= N;
    }, 120_000,
      async () => `drained ${await delivered(admin, 'bus')} of ${N}\n${forkd.stderr().slice(-2000)}`, 5);
    const middlePerSec = q1 && q3 && q3.t > q1.t ? (q3.d - q1.d) / (q3.t - q1.t) : null;
    const s = (performance.now() - t0) / 1000;
    // librdkafka's own complaints on the way (a producer id refused for a
    // while: the broker's "coordinator load in progress").
    const warnings = forkd.stderr().split('\n').filter((l) => / (warning|error) /.test(l)).map((l) => l.slice(25, 220));
    return { s, readyS, firstS, firstN, middlePerSec, warnings, forkdCpu: cpu(forkd.pid), inTopic: await kafka.count(topic),
      sinkCpu: threadCpu(forkd.pid, /^(fk:bus|rdk:)/) };
  } finally {
    await forkd.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

// The messages Fork wrote for `events`, as the peers send them: value the
// event as JSON led by `_fork_id` (an id as Fork makes one: the client id
// in hex, a dash, the sequence number), key the event's userId.
function peerMessages(events) {
  const client = randomBytes(16).toString('hex');
  return events.map((ev, i) => {
    const id = `${client}-${i + 1}`;
    return { key: String(ev[KEY]), id, value: JSON.stringify({ _fork_id: id, ...ev }) };
  });
}

// 1b. librdkafka alone.
function runPeer(bin, kafka, topic, file) {
  const r = spawnSync(bin, [kafka.brokers, topic, file], { encoding: 'utf8', timeout: 300_000 });
  if (r.status !== 0) throw new Error(`kafka_peer: exit ${r.status}\n${r.stdout}${r.stderr}`);
  return JSON.parse(r.stdout.trim().split('\n').pop());
}

// 1c. kafkajs.
async function benchKafkajs(kafka, messages, topic) {
  const producer = kafka
    .client()
    .producer({ idempotent: true, maxInFlightRequests: 1, createPartitioner: kafkajs.Partitioners.DefaultPartitioner });
  await producer.connect();
  const toKjs = (m) => ({
    key: m.key,
    value: m.value,
    headers: { 'fork-id': m.id, 'fork-destination': 'bus', 'fork-instance': 'kafkajs' },
  });
  await producer.send({ topic, acks: -1, messages: [toKjs(messages[0])] });
  const batches = [];
  for (let i = 0; i < messages.length; i += KJS_BATCH) batches.push(messages.slice(i, i + KJS_BATCH).map(toKjs));
  noteOthers(kafka.dir);
  const t0 = performance.now();
  for (const b of batches) await producer.sendBatch({ acks: -1, topicMessages: [{ topic, messages: b }] });
  const s = (performance.now() - t0) / 1000;
  await producer.disconnect();
  return { s, inTopic: (await kafka.count(topic)) - 1 };
}

// 2. Does this forkd have the kafka source?
function hasKafkaSource() {
  const { dir, config } = tempConfig(
    `sources:
  bus: { type: kafka, brokers: "127.0.0.1:9092", topic: t, group: g, to: [store] }
destinations:
  store: { type: sqlite, path: ./hub.db, table: events }
`,
    'fork-bench-kafka-check-',
  );
  const r = spawnSync(FORKD, ['check', '--config', config], { encoding: 'utf8' });
  rmSync(dir, { recursive: true, force: true });
  return { ok: r.status === 0, why: `${r.stdout}${r.stderr}`.trim() };
}

async function benchLatency(kafka, maxWait, topic) {
  await kafka.createTopic(topic, PARTITIONS);
  const batch = maxWait ? `, batch: { max_wait: ${maxWait} }` : '';
  const edgeCfg = tempConfig(
    `destinations:
  bus: { type: kafka, brokers: "${kafka.brokers}", topic: ${topic}, key: ${KEY}${batch} }
`,
    'fork-bench-kafka-edge-',
  );
  const hubAdminPort = await freePort();
  const hubCfg = tempConfig(
    `admin: 127.0.0.1:${hubAdminPort}
sources:
  bus: { type: kafka, brokers: "${kafka.brokers}", topic: ${topic}, group: fork-bench-${topic}, to: [store] }
destinations:
  store: { type: sqlite, path: ./hub.db, table: events${batch} }
`,
    'fork-bench-kafka-hub-',
  );
  const edge = await startForkd(edgeCfg.config);
  const hub = await startForkd(hubCfg.config);
  const client = createClient({ endpoint: `ipc://${edgeCfg.dir}/.fork/fork.sock`, timeoutMs: 30_000 });
  const dbPath = path.join(hubCfg.dir, 'hub.db');
  let db;
  const seen = new Map(); // orderId -> latency ms
  let lastRow = 0;
  const now = () => performance.timeOrigin + performance.now();
  const poll = () => {
    try {
      if (!db) {
        if (!existsSync(dbPath)) return;
        db = new Database(dbPath, { fileMustExist: true });
      }
      const rows = db.prepare('SELECT rowid AS r, "orderId" AS id, "sentAt" AS sent FROM events WHERE rowid > ? ORDER BY rowid').all(lastRow);
      const t = now();
      for (const row of rows) {
        lastRow = row.r;
        if (!seen.has(row.id)) seen.set(row.id, t - Number(row.sent));
      }
    } catch {
      // no table yet, or busy: the next tick
    }
  };
  try {
    // The path warm: 200 events through to the table (the hub's consumer
    // has joined its group and has every partition by then).
    const warm = purchases(11);
    const warmIds = [];
    for (let i = 0; i < 200; i++) {
      const ev = { ...warm(), sentAt: now() };
      warmIds.push(ev.orderId);
      await client.routeData(ev, 'bus');
    }
    await waitFor(() => (poll(), warmIds.every((id) => seen.has(id))), 60_000,
      () => `warm-up: ${warmIds.filter((id) => seen.has(id)).length} of 200 in the table\n${hub.stderr().slice(-2000)}`, 10);
    seen.clear();

    const next = purchases(99);
    const total = RATE * SECONDS;
    const sent = [];
    const pending = [];
    let failed = 0;
    const poller = setInterval(poll, 10);
    const t0 = performance.now();
    for (let n = 0; n < total; ) {
      const due = Math.min(total, Math.floor(((performance.now() - t0) / 1000) * RATE));
      for (; n < due; n++) {
        const ev = { ...next(), sentAt: now() };
        sent.push(ev.orderId);
        pending.push(client.routeData(ev, 'bus').catch(() => failed++));
      }
      await sleep(5);
    }
    const sendS = (performance.now() - t0) / 1000;
    await Promise.all(pending);
    const deadline = Date.now() + 60_000;
    while (sent.some((id) => !seen.has(id)) && Date.now() < deadline) await sleep(50);
    clearInterval(poller);
    poll();
    const lat = sent.filter((id) => seen.has(id)).map((id) => seen.get(id)).sort((a, b) => a - b);
    return {
      sent: sent.length,
      sendSeconds: sendS,
      failed,
      seen: lat.length,
      p50: percentile(lat, 50),
      p90: percentile(lat, 90),
      p99: percentile(lat, 99),
      max: lat[lat.length - 1] ?? 0,
      pollMs: 10,
    };
  } finally {
    db?.close();
    await client.close();
    await edge.stop();
    await hub.stop();
    rmSync(edgeCfg.dir, { recursive: true, force: true });
    rmSync(hubCfg.dir, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------------------
const started = new Date();
noteOthers();
const load0 = os.loadavg();
const peerBin = buildPeer();
const events = Array.from({ length: N }, purchases(99));
const messages = peerMessages(events);
const valueBytes = messages.reduce((n, m) => n + m.value.length, 0) / N;
const tmp = tempConfig('', 'fork-bench-kafka-peer-');
const peerFile = path.join(tmp.dir, 'messages.tsv');
// A chunk at a time: a million messages are past the longest string V8 makes.
const writeTsv = (file, msgs) => {
  const fd = openSync(file, 'w');
  for (let i = 0; i < msgs.length; i += 10000) {
    writeSync(fd, msgs.slice(i, i + 10000).map((m) => `${m.key}\t${m.id}\t${m.value}\n`).join(''));
  }
  closeSync(fd);
};
writeTsv(peerFile, messages);
writeTsv(path.join(tmp.dir, 'warm.tsv'), messages.slice(0, 20000));

const kafka = await startKafka({ partitions: PARTITIONS });
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
let result;
try {
  for (const t of ['warm', 'fork-sample']) await kafka.createTopic(t, PARTITIONS);
  // The broker's JIT warm: 20 000 messages from the peer first.
  runPeer(peerBin, kafka, 'warm', path.join(tmp.dir, 'warm.tsv'));

  // Rounds, each contender once a round, the order rotated: the broker's
  // throughput drifts over a run (its heap, its page cache), so one run
  // each in a fixed order would favour whoever goes first.
  const runs = { fork: [], drain: [], rdkafka: [], kafkajs: [] };
  let sample = [];
  let warmEvents = [];
  const contenders = {
    fork: async (r) => {
      const f = await benchFork(kafka, events, `fork-${r}`, r === 0);
      if (r === 0) {
        sample = f.sample;
        warmEvents = f.warm;
      }
      runs.fork.push({ eventsPerSec: Math.round(N / f.s), seconds: f.s, acceptedSeconds: f.acceptedS,
        forkdCpuUsPerEvent: (f.forkdCpu * 1e6) / N, inTopic: f.inTopic });
    },
    drain: async (r) => {
      const d = await benchForkDrain(kafka, events, `drain-${r}`);
      runs.drain.push({ eventsPerSec: Math.round(N / d.s), seconds: d.s,
        afterFirstBatchPerSec: d.firstN < N ? Math.round((N - d.firstN) / (d.s - d.firstS)) : null, firstBatch: d.firstN,
        middlePerSec: d.middlePerSec === null ? null : Math.round(d.middlePerSec),
        readySeconds: d.readyS, firstDeliveredSeconds: d.firstS, warnings: d.warnings,
        forkdCpuUsPerEvent: (d.forkdCpu * 1e6) / N, sinkCpuUsPerEvent: (d.sinkCpu * 1e6) / N, inTopic: d.inTopic });
    },
    rdkafka: async (r) => {
      const p = runPeer(peerBin, kafka, `peer-${r}`, peerFile);
      runs.rdkafka.push({ eventsPerSec: p.msgs_per_sec, middlePerSec: p.middle_msgs_per_sec, seconds: p.seconds, firstMessageSeconds: p.first_message_seconds,
        cpuUsPerEvent: (p.cpu_seconds * 1e6) / N,
        delivered: p.delivered, failed: p.failed });
    },
    kafkajs: async (r) => {
      const k = await benchKafkajs(kafka, messages, `kafkajs-${r}`);
      runs.kafkajs.push({ eventsPerSec: Math.round(N / k.s), seconds: k.s, inTopic: k.inTopic });
    },
  };
  const names = Object.keys(contenders);
  const order = [];
  for (let r = 0; r < ROUNDS; r++) {
    const turn = names.map((_, i) => names[(i + r) % names.length]);
    order.push(turn);
    for (const name of turn) {
      await kafka.createTopic(name === 'rdkafka' ? `peer-${r}` : `${name}-${r}`, PARTITIONS);
      noteOthers(kafka.dir);
      await contenders[name](r);
    }
  }
  // What Fork wrote is what the peers send: the event as JSON led by its
  // _fork_id, keyed by userId.
  const byOrder = new Map(warmEvents.map((e) => [e.orderId, e]));
  const formatMatches = sample.filter((m) => {
    const id = m.headers['fork-id']?.toString();
    const ev = byOrder.get(JSON.parse(m.value).orderId);
    return ev && m.value.toString() === JSON.stringify({ _fork_id: id, ...ev }) && m.key?.toString() === ev[KEY];
  }).length;
  const forkHeaders = Object.keys(sample[0]?.headers ?? {});

  const latencyCheck = args['no-latency'] ? { ok: false, why: '--no-latency' } : hasKafkaSource();
  // Twice: the destinations' default batches (max_wait 100ms at each hop),
  // then max_wait 5ms at both.
  const latency = [];
  if (latencyCheck.ok) {
    for (const [maxWait, topic] of [[MAX_WAIT, 'e2e'], [MAX_WAIT ? null : '5ms', 'e2e-5ms']]) {
      if (maxWait === null) continue;
      noteOthers(kafka.dir);
      latency.push({ batchMaxWait: maxWait ?? 'default (100ms)', ...(await benchLatency(kafka, maxWait, topic)) });
    }
  }
  noteOthers(kafka.dir);

  // The median round of each contender (by events/s).
  const mid = (xs) => {
    const m = median(xs.map((x) => x.eventsPerSec));
    return { ...xs.find((x) => x.eventsPerSec === m), rounds: xs.map((x) => x.eventsPerSec) };
  };
  const fork = mid(runs.fork);
  const drain = mid(runs.drain);
  const rdkafka = mid(runs.rdkafka);
  const kjs = mid(runs.kafkajs);
  drain.afterFirstBatch = median(runs.drain.map((x) => x.afterFirstBatchPerSec ?? 0));
  drain.sinkCpuUsPerEvent = median(runs.drain.map((x) => x.sinkCpuUsPerEvent));
  drain.middle = median(runs.drain.map((x) => x.middlePerSec ?? 0));
  rdkafka.middle = median(runs.rdkafka.map((x) => x.middlePerSec ?? 0));
  rdkafka.cpuUsPerEvent = median(runs.rdkafka.map((x) => x.cpuUsPerEvent));
  result = {
    bench: 'kafka',
    date: started.toISOString(),
    machine: { cores: os.cpus().length, cpu: os.cpus()[0]?.model, node: process.version, loadavgStart: load0, loadavgEnd: os.loadavg() },
    othersRunning: [...seenOthers],
    broker: { kafka: kafka.version, partitions: PARTITIONS, replicas: 1 },
    events: N,
    rounds: ROUNDS,
    order,
    key: KEY,
    valueBytes: Math.round(valueBytes),
    forkFormatChecked: `${formatMatches} of ${sample.length} messages Fork wrote are byte for byte what the peers send for the same event (value and key)`,
    forkHeaders,
    forkValueExample: sample[0]?.value.toString(),
    batchMaxWait: MAX_WAIT ?? 'default (100ms)',
    fork,
    forkSinkAlone: drain,
    rdkafka,
    kafkajs: { ...kjs, batch: KJS_BATCH },
    ratio: {
      forkOverRdkafka: fork.eventsPerSec / rdkafka.eventsPerSec,
      forkOverKafkajs: fork.eventsPerSec / kjs.eventsPerSec,
      forkSinkAloneOverRdkafka: drain.eventsPerSec / rdkafka.eventsPerSec,
      forkSinkAfterFirstBatchOverRdkafka: drain.afterFirstBatch / rdkafka.eventsPerSec,
      // Both in their steady state: from a quarter to three quarters delivered.
      forkSinkMiddleOverRdkafkaMiddle: rdkafka.middle ? drain.middle / rdkafka.middle : null,
      of: 'medians of the rounds',
      target: 0.8,
    },
    runs,
    latency: latency.length
      ? latency.map((l) => ({ ...l, rate: RATE, seconds: SECONDS, measuredBy: 'polling the SQLite table every 10 ms' }))
      : { skipped: `the kafka source is not in this forkd (forkd check: ${latencyCheck.why.split('\n')[0]})` },
  };
} finally {
  await kafka.stop();
  rmSync(tmp.dir, { recursive: true, force: true });
}

const r = result;
const rounds = (x) => `rounds: ${x.rounds.map((v) => fmt(v)).join(', ')}`;
console.log(`kafka ${r.broker.kafka}, one broker, topics of ${PARTITIONS} partitions; ${fmt(N)} reference purchase events, key ${KEY}, ` +
  `value ~${r.valueBytes} B JSON, headers ${r.forkHeaders.join(', ')}; acks=all, idempotent; batch.max_wait ${r.batchMaxWait}`);
console.log(`machine: ${r.machine.cores} cores, node ${process.version}, load ${r.machine.loadavgStart.map((x) => x.toFixed(2)).join(' ')} at start`);
console.log(r.forkFormatChecked);
console.log(`${ROUNDS} rounds, each contender once a round in rotated order; figures are the median round`);
console.log(`also running: ${r.othersRunning.length ? r.othersRunning.join(' | ') : 'no build or test'}\n`);
const rows = [
  ['Fork: routeData -> kafka destination, all acked by the broker', `${fmt(r.fork.eventsPerSec)} events/s`,
    `${r.fork.seconds.toFixed(2)} s (accepted after ${r.fork.acceptedSeconds.toFixed(2)} s; forkd ${r.fork.forkdCpuUsPerEvent.toFixed(1)} us CPU/event); ${rounds(r.fork)}`],
  ['Fork: the kafka destination alone (log -> broker, on restart)', `${fmt(r.forkSinkAlone.eventsPerSec)} events/s`,
    `${r.forkSinkAlone.seconds.toFixed(2)} s from the restart (forkd up after ${r.forkSinkAlone.readySeconds.toFixed(2)} s, first batch acked at ${r.forkSinkAlone.firstDeliveredSeconds?.toFixed(2)} s); ${rounds(r.forkSinkAlone)}`],
  ['  … after its first batch was acknowledged', r.forkSinkAlone.afterFirstBatch ? `${fmt(r.forkSinkAlone.afterFirstBatch)} events/s` : '-',
    `the events after the first batch (${fmt(r.forkSinkAlone.firstBatch)})`],
  ['  … steady state (from 1/4 to 3/4 delivered)', r.forkSinkAlone.middle ? `${fmt(r.forkSinkAlone.middle)} events/s` : '-',
    `vs the peer's own steady state ${fmt(r.rdkafka.middle)} events/s: ${r.ratio.forkSinkMiddleOverRdkafkaMiddle ? fmt(r.ratio.forkSinkMiddleOverRdkafkaMiddle, 2) + 'x' : '-'} (medians of the rounds)`],
  ['  … its CPU: the destination\'s thread and librdkafka\'s', `${fmt(r.forkSinkAlone.sinkCpuUsPerEvent, 2)} us/event`,
    `vs the peer's whole process ${fmt(r.rdkafka.cpuUsPerEvent, 2)} us/event: ${fmt(r.forkSinkAlone.sinkCpuUsPerEvent / r.rdkafka.cpuUsPerEvent, 2)}x (medians of the rounds)`],
  ['librdkafka producer alone (bench/kafka_peer.c)', `${fmt(r.rdkafka.eventsPerSec)} events/s`,
    `${r.rdkafka.seconds.toFixed(2)} s; ${rounds(r.rdkafka)}`],
  [`kafkajs, idempotent, sendBatch of ${fmt(KJS_BATCH)}`, `${fmt(r.kafkajs.eventsPerSec)} events/s`, `${r.kafkajs.seconds.toFixed(2)} s; ${rounds(r.kafkajs)}`],
  ['  ratio Fork / librdkafka', `${fmt(r.ratio.forkOverRdkafka, 2)}x`, 'target >= 0.8x'],
  ['  ratio Fork / kafkajs', `${fmt(r.ratio.forkOverKafkajs, 2)}x`, ''],
  ['  ratio Fork destination alone / librdkafka', `${fmt(r.ratio.forkSinkAloneOverRdkafka, 2)}x`,
    `${fmt(r.ratio.forkSinkAfterFirstBatchOverRdkafka, 2)}x after its first batch`],
];
if (r.latency.skipped) {
  rows.push(['edge -> kafka -> hub -> sqlite latency', 'skipped', r.latency.skipped]);
} else {
  for (const l of r.latency) {
    rows.push([`edge -> kafka -> hub -> sqlite, ${fmt(RATE)} events/s, ${SECONDS} s, batch.max_wait ${l.batchMaxWait}`,
      `p50 ${fmt(l.p50, 1)} ms, p99 ${fmt(l.p99, 1)} ms`,
      `measured by polling the table every 10 ms; p90 ${fmt(l.p90, 1)}, max ${fmt(l.max, 1)} ms; ${fmt(l.seen)} of ${fmt(l.sent)} seen`]);
  }
}
const w = Math.max(...rows.map((x) => x[0].length));
for (const [a, b, c] of rows) console.log(`${a.padEnd(w)}  ${b.padEnd(28)} ${c}`);
const warnings = [...new Set(r.runs.drain.flatMap((x) => x.warnings))];
if (warnings.length) console.log(`\nforkd said, while draining: ${warnings.slice(0, 3).join('\n  ')}`);
const short = [
  ...r.runs.fork.map((x, i) => [`fork-${i}`, x.inTopic]),
  ...r.runs.drain.map((x, i) => [`drain-${i}`, x.inTopic]),
  ...r.runs.kafkajs.map((x, i) => [`kafkajs-${i}`, x.inTopic]),
  ...r.runs.rdkafka.map((x, i) => [`peer-${i}`, x.delivered]),
].filter(([, n]) => n < N);
if (short.length) console.log(`\nnote: fewer than ${N} messages in ${short.map(([t, n]) => `${t} (${n})`).join(', ')}`);

const outDir = path.join(ROOT, 'bench', 'results');
mkdirSync(outDir, { recursive: true });
const out = path.join(outDir, `kafka-${started.toISOString().slice(0, 10)}.json`);
writeFileSync(out, JSON.stringify(r, null, 2) + '\n');
console.log(`\nwrote ${path.relative(ROOT, out)}`);
if (args.json) writeFileSync(args.json, JSON.stringify(r, null, 2) + '\n');
