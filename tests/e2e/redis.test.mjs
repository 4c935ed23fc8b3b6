// The redis sink against a real redis-server that this file starts
// (servers/redis.mjs: 127.0.0.1, a free port, no persistence) and reads back
// with redis-cli: stream entries with `_fork_id` and the record as JSON,
// keys made from fields, MAXLEN trimming, PUBLISH reaching a subscriber, the
// server down and back (retries, nothing lost), WRONGTYPE keys and records
// without the key's field dead-lettered with the reason while the rest of
// their batch lands once, and `forkd check` on bad options.
//
// Each test runs its own forkd (a temp dir) against the one server, on its
// own keys.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, rmSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { createClient } from '../../js/index.mjs';
import { startForkd, tempConfig, endpointFor, readJsonl, freePort, FORKD } from './helpers.mjs';
import { startRedis } from './servers/redis.mjs';

let server;
const rigs = new Set();

before(async () => {
  server = await startRedis();
});

after(async () => {
  for (const rig of rigs) await rig.close();
  if (server) await server.stop();
});

const QUICK = { retry: { initial: '50ms', max: '500ms' }, breaker: { failures: 5, cooldown: '500ms' } };

// A forkd with these destinations (redis ones get the server's url unless
// they name one) and a client, with an admin server.
async function startRig(destinations) {
  const adminPort = await freePort();
  const dests = {};
  for (const [name, d] of Object.entries(destinations)) {
    dests[name] = { url: server.url, batch: { max_wait: '20ms' }, ...QUICK, ...d };
  }
  const { dir, config } = tempConfig(
    `admin: 127.0.0.1:${adminPort}\nwal: { fsync: batch }\ndestinations: ${JSON.stringify(dests, null, 1)}\n`,
    'fork-redis-e2e-',
  );
  let forkd;
  let client;
  const rig = {
    dir,
    admin: `http://127.0.0.1:${adminPort}`,
    get client() {
      return client;
    },
    deadLetters(name) {
      const p = path.join(dir, '.fork', 'dead_letters', `${name}.jsonl`);
      return existsSync(p) ? readJsonl(p) : [];
    },
    async status(name) {
      const s = await (await fetch(`${rig.admin}/api/status`)).json();
      return s.destinations.find((d) => d.name === name);
    },
    async metric(name, dest) {
      const text = await (await fetch(`${rig.admin}/metrics`)).text();
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
    client = createClient({ endpoint: endpointFor(dir), timeoutMs: 15_000 });
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
      // the server may be down
    }
    if (Date.now() > deadline) throw new Error(`not within ${ms} ms: ${await what()}`);
    await sleep(50);
  }
}

// The entries of stream `key`: { id, fields: {...}, record (the data field parsed) }.
async function xrange(key, field = 'data') {
  const out = (await server.cli('--json', 'XRANGE', key, '-', '+')).trim();
  return JSON.parse(out || '[]').map(([id, flat]) => {
    const fields = {};
    for (let i = 0; i < flat.length; i += 2) fields[flat[i]] = flat[i + 1];
    return { id, fields, record: JSON.parse(fields[field]) };
  });
}
const xlen = async (key) => Number((await server.cli('XLEN', key)).trim());

async function waitForLen(key, n, rig, ms = 20_000) {
  await waitUntil(
    async () => (await xlen(key)) >= n,
    ms,
    async () => `${key} has ${await xlen(key).catch((e) => e.message)} entries, want ${n}\n${rig.log()}`,
  );
}

test('stream: every event is one entry with _fork_id and the record as JSON; keys made from fields', async () => {
  const rig = await startRig({
    live: { type: 'redis', key: 'events', maxlen: 0 },
    byregion: { type: 'redis', key: 'orders:{region}', field: 'payload' },
  });
  const regions = ['eu', 'us', 'ap'];
  const receipts = await Promise.all(
    Array.from({ length: 300 }, (_, i) =>
      rig.client.routeData(
        { orderId: `o-${i}`, amount: i + 0.25, region: regions[i % 3], items: [{ sku: 's', qty: i }], ok: true },
        ['live', 'byregion'],
      ),
    ),
  );
  await waitForLen('events', 300, rig);
  for (const r of regions) await waitForLen(`orders:${r}`, 100, rig);
  await sleep(300);

  const entries = await xrange('events');
  assert.equal(entries.length, 300, 'one entry per event');
  const byId = new Map(entries.map((e) => [e.fields._fork_id, e]));
  assert.equal(byId.size, 300, 'each _fork_id once');
  for (const [i, receipt] of receipts.entries()) {
    const e = byId.get(receipt.id);
    assert.ok(e, `event ${receipt.id} is in the stream`);
    assert.deepEqual(Object.keys(e.fields), ['_fork_id', 'data']);
    assert.deepEqual(e.record, {
      _fork_id: receipt.id,
      orderId: `o-${i}`,
      amount: i + 0.25,
      region: regions[i % 3],
      items: [{ sku: 's', qty: i }],
      ok: true,
    });
  }
  // Entries are in the order the events were routed (one client, one log).
  assert.deepEqual(entries.map((e) => e.record.orderId), receipts.map((_, i) => `o-${i}`));

  for (const [k, r] of regions.entries()) {
    const part = await xrange(`orders:${r}`, 'payload');
    assert.equal(part.length, 100);
    assert.deepEqual(Object.keys(part[0].fields), ['_fork_id', 'payload']);
    assert.ok(part.every((e) => e.record.region === r));
    assert.deepEqual(
      new Set(part.map((e) => e.fields._fork_id)),
      new Set(receipts.filter((_, i) => i % 3 === k).map((x) => x.id)),
    );
  }
  assert.equal(await rig.metric('fork_destination_delivered_total', 'live'), 300);
  assert.deepEqual(rig.deadLetters('live'), []);
  await rig.close();
});

test('stream: MAXLEN ~ N trims the stream while it grows, the newest entries kept', async () => {
  const rig = await startRig({ capped: { type: 'redis', key: 'capped', maxlen: 100 } });
  let last;
  for (let round = 0; round < 10; round++) {
    const rs = await Promise.all(Array.from({ length: 100 }, (_, i) => rig.client.routeData({ n: round * 100 + i }, 'capped')));
    last = rs.at(-1);
  }
  await waitUntil(
    async () => (await rig.metric('fork_destination_delivered_total', 'capped')) === 1000,
    20_000,
    async () => `delivered ${await rig.metric('fork_destination_delivered_total', 'capped')}\n${rig.log()}`,
  );
  const n = await xlen('capped');
  // Approximate trimming removes whole nodes (100 entries by default).
  assert.ok(n >= 100 && n <= 300, `about 100 entries kept, not ${n}`);
  const entries = await xrange('capped');
  assert.equal(entries.at(-1).fields._fork_id, last.id, 'the newest entry is the last event');
  assert.equal(entries.at(-1).record.n, 999);
  const ns = entries.map((e) => e.record.n);
  assert.deepEqual(ns, Array.from({ length: n }, (_, i) => 1000 - n + i), 'the newest, in order, none twice');
  await rig.close();
});

test('publish: each record reaches a subscriber as one JSON message', async () => {
  const sub = spawn('redis-cli', ['-h', '127.0.0.1', '-p', String(server.port), 'SUBSCRIBE', 'news'], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let out = '';
  sub.stdout.on('data', (d) => (out += d));
  try {
    await waitUntil(
      async () => (await server.cli('PUBSUB', 'NUMSUB', 'news')).trim().split('\n')[1] === '1',
      10_000,
      async () => `no subscriber: ${out}`,
    );
    const rig = await startRig({ news: { type: 'redis', mode: 'publish', key: 'news' } });
    const receipts = await Promise.all(
      Array.from({ length: 50 }, (_, i) => rig.client.routeData({ headline: `story ${i}`, n: i }, 'news')),
    );
    const messages = () => {
      const lines = out.split('\n');
      const got = [];
      for (let i = 0; i + 2 < lines.length; i++) {
        if (lines[i] === 'message' && lines[i + 1] === 'news') got.push(JSON.parse(lines[i + 2]));
      }
      return got;
    };
    await waitUntil(async () => messages().length >= 50, 20_000, async () => `${messages().length} messages\n${rig.log()}`);
    await sleep(200);
    const got = messages();
    assert.equal(got.length, 50, 'each record once');
    assert.deepEqual(
      got,
      receipts.map((r, i) => ({ _fork_id: r.id, headline: `story ${i}`, n: i })),
    );
    assert.equal(await xlen('news'), 0, 'nothing kept at a key');
    await rig.close();
  } finally {
    sub.kill();
  }
});

test('redis down: the destination retries and shows it; once redis is back everything arrives', { timeout: 90_000 }, async () => {
  const rig = await startRig({ out: { type: 'redis', key: 'outage', maxlen: 0, timeout: '1s' } });
  const acked = new Set();
  for (let i = 0; i < 100; i++) acked.add((await rig.client.routeData({ n: i, phase: 'before' }, 'out')).id);
  await waitForLen('outage', 100, rig);

  // Down, its data saved for the restart (the server keeps nothing else).
  await server.cli('SHUTDOWN', 'SAVE').catch(() => {});
  await server.stopServer();
  const sends = [];
  for (let i = 0; i < 200; i++) sends.push(rig.client.routeData({ n: 100 + i, phase: 'down' }, 'out').then((r) => acked.add(r.id)));
  await Promise.all(sends);
  assert.equal(acked.size, 300, 'forkd acknowledges while redis is down');
  await waitUntil(
    async () => (await rig.status('out')).state === 'failing',
    15_000,
    async () => `status ${JSON.stringify(await rig.status('out'))}`,
  );
  const down = await rig.status('out');
  // The kept connection's first failure, or a reconnect's.
  assert.match(down.last_error, /redis:\/\/127\.0\.0\.1:\d+: (cannot connect|Server closed the connection)/);
  assert.equal(await rig.metric('fork_destination_up', 'out'), 0);
  assert.ok((await rig.metric('fork_destination_retries_total', 'out')) > 0, 'flushes retried');

  await server.startServer();
  await waitForLen('outage', 300, rig, 30_000);
  await waitUntil(async () => (await rig.status('out')).state === 'ok', 10_000, async () => JSON.stringify(await rig.status('out')));
  await sleep(300);
  const entries = await xrange('outage');
  const ids = entries.map((e) => e.fields._fork_id);
  assert.deepEqual(new Set(ids), acked, 'every acknowledged event, nothing else');
  assert.equal(ids.length, 300, 'none twice');
  assert.equal(await rig.metric('fork_destination_up', 'out'), 1);
  assert.deepEqual(rig.deadLetters('out'), []);
  await rig.close();
});

test('WRONGTYPE and a missing key field: those records dead-lettered with the reason, the rest of the batch lands once', async () => {
  await server.cli('SET', 'ev:bad', 'a string, not a stream');
  const rig = await startRig({ ev: { type: 'redis', key: 'ev:{kind}', batch: { max_wait: '200ms', max_events: 500 } } });
  const payloads = Array.from({ length: 60 }, (_, i) =>
    i % 10 === 3 ? { n: i, kind: 'bad' } : i % 10 === 7 ? { n: i } : { n: i, kind: 'good' },
  );
  const receipts = await Promise.all(payloads.map((p) => rig.client.routeData(p, 'ev')));
  const bad = receipts.filter((_, i) => payloads[i].kind === 'bad').map((r) => r.id);
  const keyless = receipts.filter((_, i) => payloads[i].kind === undefined).map((r) => r.id);
  const good = receipts.filter((_, i) => payloads[i].kind === 'good').map((r) => r.id);
  await waitUntil(
    async () => rig.deadLetters('ev').length >= bad.length + keyless.length,
    20_000,
    async () => `${rig.deadLetters('ev').length} dead letters\n${rig.log()}`,
  );
  await waitForLen('ev:good', good.length, rig);
  await sleep(300);
  const letters = rig.deadLetters('ev');
  const reasons = new Map(letters.map((l) => [l.event_id ?? l.id ?? l._fork_id, l.reason ?? l.error]));
  assert.equal(letters.length, bad.length + keyless.length, `only the refused records: ${JSON.stringify(letters[0])}`);
  for (const id of bad) assert.match(reasons.get(id), /^XADD ev:bad at redis:\/\/127\.0\.0\.1:\d+: WRONGTYPE /, id);
  for (const id of keyless) assert.equal(reasons.get(id), 'key: the record has no field kind');
  const split = rig.log().match(/a batch of (\d+) was refused/);
  assert.ok(split && Number(split[1]) > 1, 'good and refused records came in one batch, split by the pipeline');
  const entries = await xrange('ev:good');
  assert.deepEqual(entries.map((e) => e.fields._fork_id), good, 'each accepted record once, in order');
  assert.equal((await server.cli('GET', 'ev:bad')).trim(), 'a string, not a stream');
  assert.ok((await rig.metric('fork_destination_dead_lettered_total', 'ev')) === bad.length + keyless.length);
  await rig.close();
});

test('forkd check refuses a bad url, mode, key or maxlen at file:line:col', () => {
  const { dir, config } = tempConfig(
    [
      'destinations:',
      '  a: { type: redis, url: "rediss://127.0.0.1:6380", key: k }',
      '  b: { type: redis, url: "redis://127.0.0.1", key: k, mode: xadd }',
      '  c: { type: redis, url: "redis://127.0.0.1:99999", key: k }',
      '  d: { type: redis, url: "redis://127.0.0.1", key: "orders:{region" }',
      '  e: { type: redis, url: "redis://127.0.0.1", key: k, maxlen: -5 }',
      '  f: { type: redis, url: "redis://:secret@127.0.0.1/2", key: "o:{a.b}", mode: publish }',
      '',
    ].join('\n'),
    'fork-redis-e2e-',
  );
  try {
    const check = spawnSync(FORKD, ['check', '--config', config], { encoding: 'utf8' });
    const text = check.stdout + check.stderr;
    assert.equal(check.status, 2, text);
    const at = (line) => new RegExp(`fork\\.yaml:${line}:\\d+: destinations\\.`);
    const lines = text.split('\n');
    const msg = (dest) => lines.find((l) => l.includes(`destinations.${dest}.`)) ?? '';
    assert.match(msg('a'), at(2));
    assert.match(msg('a'), /destinations\.a\.url: rediss:\/\/ \(TLS\) is not supported/);
    assert.match(msg('b'), at(3));
    assert.match(msg('b'), /destinations\.b\.mode: .*stream.*publish/);
    assert.match(msg('c'), /fork\.yaml:4:\d+: destinations\.c\.url: port '99999'/);
    assert.match(msg('d'), /fork\.yaml:5:\d+: destinations\.d\.key: unclosed '\{'/);
    assert.match(msg('e'), /fork\.yaml:6:\d+: destinations\.e\.maxlen: /);
    assert.equal(msg('f'), '', 'a good redis destination passes');
    assert.ok(!text.includes('secret'));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
