// A throwaway Kafka broker for the tests: Kafka 4.x in KRaft mode, one node
// that is both broker and controller, PLAINTEXT on 127.0.0.1 and a free port
// (the controller on another), its data in a temp directory, removed by
// stop(). Topics are not created on first use: createTopic() makes them.
// Read back with kafkajs (an independent client: not librdkafka).
//
//   const kafka = await startKafka();   // { brokers, port, dir, createTopic(), readAll(), ... }
//   await kafka.createTopic('orders', 3);
//   ... brokers: "127.0.0.1:<port>" ...
//   const messages = await kafka.readAll('orders');   // [{ partition, offset, key, value, headers, timestamp }]
//   await kafka.stopServer(); await kafka.startServer();   // same port, same data
//   await kafka.stop();
//
// The jars come from scripts/fetch-kafka.sh (build/kafka/<version>/libs,
// fetched from Maven Central once); startKafka runs it when they are missing.
// FORK_KAFKA_VERSION picks another version, JAVA another java.
//
// With security: 'sasl_ssl' the broker also listens for SASL_SSL on another
// free port: TLS with a broker certificate for 127.0.0.1 and localhost
// signed by a throwaway CA (made with openssl in the temp dir; the broker's
// keystore is PKCS12), and one user (`user`, a random password) for both
// SCRAM-SHA-512 (its credentials written into the metadata log at format
// time) and PLAIN (in the listener's JAAS config). PLAINTEXT stays for the harness's own admin and
// reads (and between broker and controller); secureClient() is a kafkajs
// client over SASL_SSL with SCRAM-SHA-512.
//
//   const kafka = await startKafka({ security: 'sasl_ssl' });
//   // + { saslBrokers: '127.0.0.1:<port>', saslPort, caFile, user, password,
//   //     saslMechanisms, secureClient(), ... }; readAll(topic, { secure: true })
//   // reads over SASL_SSL
import { execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, openSync, closeSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import kafkajs from 'kafkajs';

const { Kafka, logLevel } = kafkajs;
const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..');

export const KAFKA_VERSION = process.env.FORK_KAFKA_VERSION || '4.4.0';

// The broker's classpath directory, fetched first if it is not there yet.
export function kafkaLibs(version = KAFKA_VERSION) {
  const libs = path.join(ROOT, 'build', 'kafka', version, 'libs');
  if (!existsSync(path.join(libs, '.complete'))) {
    execFileSync('bash', [path.join(ROOT, 'scripts', 'fetch-kafka.sh')], {
      env: { ...process.env, FORK_KAFKA_VERSION: version },
      stdio: ['ignore', 'ignore', 'inherit'],
    });
  }
  return libs;
}

async function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

// A cluster id as Kafka's Uuid.randomUuid makes one: 16 random bytes,
// base64url without padding, never starting with '-'.
function clusterId() {
  for (;;) {
    const id = randomBytes(16).toString('base64url');
    if (!id.startsWith('-')) return id;
  }
}

// A CA (ca.pem, the file clients trust) and a broker certificate for
// 127.0.0.1 and localhost signed by it, in a PKCS12 keystore (broker.p12,
// its password `storePassword`). Returns the files.
export function makeCertificates(dir, storePassword, prefix = '') {
  const f = (name) => path.join(dir, `${prefix}${name}`);
  const openssl = (...args) => execFileSync('openssl', args, { stdio: 'pipe' });
  openssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', f('ca.key'), '-out', f('ca.pem'), '-days', '2',
    '-subj', `/CN=fork-test-ca-${randomBytes(4).toString('hex')}`,
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign');
  openssl('req', '-newkey', 'rsa:2048', '-nodes', '-keyout', f('broker.key'), '-out', f('broker.csr'), '-subj', '/CN=localhost');
  writeFileSync(f('broker.ext'), [
    'basicConstraints=CA:FALSE',
    'keyUsage=critical,digitalSignature,keyEncipherment',
    'extendedKeyUsage=serverAuth',
    'subjectAltName=IP:127.0.0.1,DNS:localhost',
  ].join('\n') + '\n');
  openssl('x509', '-req', '-in', f('broker.csr'), '-CA', f('ca.pem'), '-CAkey', f('ca.key'), '-CAcreateserial',
    '-out', f('broker.pem'), '-days', '2', '-extfile', f('broker.ext'));
  openssl('pkcs12', '-export', '-in', f('broker.pem'), '-inkey', f('broker.key'), '-certfile', f('ca.pem'),
    '-name', 'broker', '-out', f('broker.p12'), '-passout', `pass:${storePassword}`);
  return { caFile: f('ca.pem'), keystore: f('broker.p12') };
}

function tail(file, bytes = 6000) {
  if (!existsSync(file)) return '';
  const text = readFileSync(file, 'utf8');
  return text.slice(-bytes);
}

const live = new Set();
// A test that dies without stop(): no broker left behind.
process.on('exit', () => {
  for (const s of live) s.stopSync();
});

// A kafkajs message as plain data: key and value Buffers (key null when the
// record has none), headers { name: Buffer } (an array when a name repeats),
// offset a Number.
function plain(partition, m) {
  return {
    partition,
    offset: Number(m.offset),
    key: m.key,
    value: m.value,
    headers: m.headers ?? {},
    timestamp: Number(m.timestamp),
  };
}

// partitions: the broker's num.partitions (a topic created without a count).
// properties: more server.properties, e.g. { 'message.max.bytes': 10000 }.
// startTimeoutMs: how long startServer() waits for the broker to answer.
// security: 'sasl_ssl' adds the SASL_SSL listener (above); user its SASL
// user, for SCRAM-SHA-512 and PLAIN (a random password is made).
export async function startKafka({
  partitions = 1,
  properties = {},
  version = KAFKA_VERSION,
  startTimeoutMs = 90_000,
  security,
  user = 'fork',
} = {}) {
  if (security !== undefined && security !== 'sasl_ssl') throw new Error(`startKafka: security '${security}': only 'sasl_ssl'`);
  const libs = kafkaLibs(version);
  const java = process.env.JAVA || (process.env.JAVA_HOME ? path.join(process.env.JAVA_HOME, 'bin', 'java') : 'java');
  const dir = mkdtempSync(path.join(tmpdir(), 'fork-kafka-'));
  const port = await freePort();
  let controllerPort = await freePort();
  while (controllerPort === port) controllerPort = await freePort();
  const brokers = `127.0.0.1:${port}`;
  let sasl = null;
  if (security === 'sasl_ssl') {
    let saslPort = await freePort();
    while (saslPort === port || saslPort === controllerPort) saslPort = await freePort();
    const storePassword = randomBytes(12).toString('hex');
    let certs;
    try {
      certs = makeCertificates(dir, storePassword);
    } catch (e) {
      rmSync(dir, { recursive: true, force: true });
      throw new Error(`making the test certificates failed: ${e.message}\n${e.stderr ?? ''}`);
    }
    sasl = { port: saslPort, brokers: `127.0.0.1:${saslPort}`, user, password: randomBytes(12).toString('hex'), storePassword, ...certs };
  }
  const propsFile = path.join(dir, 'server.properties');
  const logFile = path.join(dir, 'server.log');
  const outFile = path.join(dir, 'stdout.log');
  const props = {
    'process.roles': 'broker,controller',
    'node.id': 1,
    'controller.quorum.bootstrap.servers': `127.0.0.1:${controllerPort}`,
    listeners: `PLAINTEXT://127.0.0.1:${port},CONTROLLER://127.0.0.1:${controllerPort}`,
    'advertised.listeners': `PLAINTEXT://127.0.0.1:${port},CONTROLLER://127.0.0.1:${controllerPort}`,
    'controller.listener.names': 'CONTROLLER',
    'inter.broker.listener.name': 'PLAINTEXT',
    'listener.security.protocol.map': 'PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT',
    'log.dirs': path.join(dir, 'data'),
    'num.partitions': partitions,
    'auto.create.topics.enable': false,
    'offsets.topic.replication.factor': 1,
    'offsets.topic.num.partitions': 1,
    'transaction.state.log.replication.factor': 1,
    'transaction.state.log.min.isr': 1,
    'transaction.state.log.num.partitions': 1,
    'share.coordinator.state.topic.replication.factor': 1,
    'share.coordinator.state.topic.min.isr': 1,
    'group.initial.rebalance.delay.ms': 0,
    // After a crash the restarted node waits out its old registration's
    // session: 9 s by default.
    'broker.heartbeat.interval.ms': 500,
    'broker.session.timeout.ms': 2000,
    ...(sasl
      ? {
          listeners: `PLAINTEXT://127.0.0.1:${port},CONTROLLER://127.0.0.1:${controllerPort},SASL_SSL://127.0.0.1:${sasl.port}`,
          'advertised.listeners': `PLAINTEXT://127.0.0.1:${port},CONTROLLER://127.0.0.1:${controllerPort},SASL_SSL://127.0.0.1:${sasl.port}`,
          'listener.security.protocol.map': 'PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,SASL_SSL:SASL_SSL',
          'sasl.enabled.mechanisms': 'SCRAM-SHA-512,PLAIN',
          'listener.name.sasl_ssl.sasl.enabled.mechanisms': 'SCRAM-SHA-512,PLAIN',
          'listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config':
            'org.apache.kafka.common.security.scram.ScramLoginModule required;',
          'listener.name.sasl_ssl.plain.sasl.jaas.config':
            `org.apache.kafka.common.security.plain.PlainLoginModule required user_${sasl.user}="${sasl.password}";`,
          'listener.name.sasl_ssl.ssl.keystore.type': 'PKCS12',
          'listener.name.sasl_ssl.ssl.keystore.location': sasl.keystore,
          'listener.name.sasl_ssl.ssl.keystore.password': sasl.storePassword,
          'listener.name.sasl_ssl.ssl.key.password': sasl.storePassword,
        }
      : {}),
    ...properties,
  };
  writeFileSync(propsFile, Object.entries(props).map(([k, v]) => `${k}=${v}`).join('\n') + '\n');
  writeFileSync(
    path.join(dir, 'log4j2.properties'),
    [
      'status = warn',
      'appender.file.type = File',
      'appender.file.name = file',
      `appender.file.fileName = ${logFile}`,
      'appender.file.layout.type = PatternLayout',
      'appender.file.layout.pattern = [%d] %p %m (%c)%n',
      'rootLogger.level = INFO',
      'rootLogger.appenderRef.file.ref = file',
      // The config dump at each start is long and says nothing new.
      'logger.config.name = org.apache.kafka.common.config.AbstractConfig',
      'logger.config.level = WARN',
    ].join('\n') + '\n',
  );
  // A small heap and the serial collector: the broker starts in seconds on
  // two shared cores and leaves them to forkd.
  const jvm = [
    '-Xms256m', '-Xmx512m', '-XX:+UseSerialGC', '-XX:TieredStopAtLevel=1', '-Djava.awt.headless=true',
    `-Dlog4j2.configurationFile=${path.join(dir, 'log4j2.properties')}`, `-Dkafka.logs.dir=${dir}`,
    '-cp', `${libs}/*`,
  ];
  try {
    const scram = sasl ? ['--add-scram', `SCRAM-SHA-512=[name=${sasl.user},password=${sasl.password}]`] : [];
    execFileSync(java, [...jvm, 'kafka.tools.StorageTool', 'format', '-t', clusterId(), '-c', propsFile, '--standalone', ...scram], {
      stdio: 'pipe',
    });
  } catch (e) {
    rmSync(dir, { recursive: true, force: true });
    throw new Error(`kafka storage format failed: ${e.message}\n${e.stdout ?? ''}${e.stderr ?? ''}`);
  }

  const client = (options = {}) =>
    new Kafka({ clientId: 'fork-test', brokers: [brokers], logLevel: logLevel.NOTHING, ...options });
  // kafkajs over the SASL_SSL listener: TLS trusting the test CA, SCRAM-SHA-512.
  const secureClient = (options = {}) => {
    if (!sasl) throw new Error('secureClient(): start the broker with security: \'sasl_ssl\'');
    return new Kafka({
      clientId: 'fork-test-secure',
      brokers: [sasl.brokers],
      logLevel: logLevel.NOTHING,
      ssl: { ca: [readFileSync(sasl.caFile, 'utf8')] },
      sasl: { mechanism: 'scram-sha-512', username: sasl.user, password: sasl.password },
      ...options,
    });
  };
  const withAdmin = async (fn) => {
    const admin = client({ retry: { retries: 2, initialRetryTime: 100 } }).admin();
    await admin.connect();
    try {
      return await fn(admin);
    } finally {
      await admin.disconnect();
    }
  };

  let child = null;
  const server = {
    brokers,
    port,
    controllerPort,
    dir,
    version,
    // A kafkajs client on this broker (quiet unless options.logLevel says).
    client,
    ...(sasl
      ? {
          saslBrokers: sasl.brokers,
          saslPort: sasl.port,
          caFile: sasl.caFile,
          user: sasl.user,
          password: sasl.password,
          saslMechanisms: ['SCRAM-SHA-512', 'PLAIN'],
          secureClient,
        }
      : {}),
    log: () => tail(logFile, 1 << 20),
    logTail: () => `${tail(outFile, 2000)}${tail(logFile)}`,
    get running() {
      return child !== null;
    },
    async startServer() {
      if (child) return;
      const out = openSync(outFile, 'a');
      const started = Date.now();
      const proc = spawn(java, [...jvm, 'kafka.Kafka', propsFile], { stdio: ['ignore', out, out] });
      closeSync(out);
      child = proc;
      proc.exited = new Promise((resolve) => proc.once('exit', (code, signal) => resolve({ code, signal })));
      const deadline = started + startTimeoutMs;
      let lastError;
      for (;;) {
        if (proc.exitCode !== null || proc.signalCode !== null) {
          child = null;
          throw new Error(`kafka broker exited (${proc.exitCode ?? proc.signalCode}) while starting\n${server.logTail()}`);
        }
        try {
          await withAdmin((admin) => admin.listTopics());
          // The SASL_SSL listener answers too: TLS and SCRAM accepted.
          if (sasl) {
            const admin = secureClient({ retry: { retries: 0 } }).admin();
            await admin.connect();
            try {
              await admin.listTopics();
            } finally {
              await admin.disconnect();
            }
          }
          server.startMs = Date.now() - started;
          return;
        } catch (e) {
          lastError = e;
        }
        if (Date.now() > deadline) {
          const log = server.logTail();
          await server.stopServer({ kill: true });
          throw new Error(
            `kafka broker on ${brokers} did not answer within ${startTimeoutMs} ms ` +
              `(last: ${lastError?.message})\n${log}`,
          );
        }
        await sleep(200);
      }
    },
    // Stops the broker: SIGTERM (a clean shutdown, killed if it takes over
    // 30 s) or, with kill: true, SIGKILL (a crash; the OS keeps what it
    // wrote). The data stays for startServer().
    async stopServer({ kill = false } = {}) {
      if (!child) return;
      const proc = child;
      child = null;
      if (proc.exitCode !== null || proc.signalCode !== null) return;
      proc.kill(kill ? 'SIGKILL' : 'SIGTERM');
      const timer = setTimeout(() => proc.kill('SIGKILL'), 30_000);
      await proc.exited;
      clearTimeout(timer);
    },
    // A topic with `partitions` partitions (the broker's default without)
    // and topic configs, e.g. { 'max.message.bytes': '10000' }; waits for
    // every partition's leader.
    async createTopic(name, count = partitions, config = {}) {
      await withAdmin(async (admin) => {
        const made = await admin.createTopics({
          topics: [{
            topic: name,
            numPartitions: count,
            replicationFactor: 1,
            configEntries: Object.entries(config).map(([k, v]) => ({ name: k, value: String(v) })),
          }],
          waitForLeaders: true,
        });
        if (!made) throw new Error(`topic ${name} exists already`);
      });
    },
    // { partition: { low, high } } (high: the offset the next record gets).
    async offsets(topic) {
      const rows = await withAdmin((admin) => admin.fetchTopicOffsets(topic));
      return Object.fromEntries(rows.map((r) => [r.partition, { low: Number(r.low), high: Number(r.high) }]));
    },
    // How many records the topic holds now (all partitions).
    async count(topic) {
      const o = await server.offsets(topic);
      return Object.values(o).reduce((n, { low, high }) => n + high - low, 0);
    },
    // Waits until the topic holds at least n records; returns the count.
    async waitForCount(topic, n, { timeoutMs = 60_000 } = {}) {
      const deadline = Date.now() + timeoutMs;
      let have = 0;
      for (;;) {
        try {
          have = await server.count(topic);
          if (have >= n) return have;
        } catch {}
        if (Date.now() > deadline) throw new Error(`topic ${topic} has ${have} records, not ${n}, after ${timeoutMs} ms`);
        await sleep(200);
      }
    },
    // Every record in the topic now (up to each partition's high watermark
    // when called), in partition then offset order. A fresh consumer group
    // each call, reading from the beginning; secure: true reads over the
    // SASL_SSL listener.
    async readAll(topic, { timeoutMs = 60_000, secure = false } = {}) {
      const ends = await server.offsets(topic);
      const want = Object.values(ends).reduce((n, { low, high }) => n + high - low, 0);
      const out = [];
      if (want === 0) return out;
      const consumer = (secure ? secureClient() : client()).consumer({
        groupId: `fork-test-read-${randomBytes(6).toString('hex')}`,
        maxWaitTimeInMs: 100,
        retry: { retries: 10 },
      });
      await consumer.connect();
      try {
        await consumer.subscribe({ topic, fromBeginning: true });
        await new Promise((resolve, reject) => {
          const timer = setTimeout(
            () => reject(new Error(`readAll(${topic}): ${out.length} of ${want} records after ${timeoutMs} ms`)),
            timeoutMs,
          );
          consumer
            .run({
              autoCommit: false,
              eachMessage: async ({ partition, message }) => {
                if (Number(message.offset) >= ends[partition].high) return;
                out.push(plain(partition, message));
                if (out.length >= want) {
                  clearTimeout(timer);
                  resolve();
                }
              },
            })
            .catch(reject);
        });
      } finally {
        await consumer.disconnect();
      }
      out.sort((a, b) => a.partition - b.partition || a.offset - b.offset);
      return out;
    },
    stopSync() {
      live.delete(server);
      if (child) child.kill('SIGKILL');
      child = null;
      rmSync(dir, { recursive: true, force: true });
    },
    async stop() {
      live.delete(server);
      try {
        await server.stopServer({ kill: true });
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
  };
  live.add(server);
  try {
    await server.startServer();
  } catch (e) {
    server.stopSync();
    throw e;
  }
  return server;
}
