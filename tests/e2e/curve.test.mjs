// forkd over tcp: CURVE keys from `forkd keygen`, the allow-list of client
// keys, the insecure_tcp escape hatch, and client ids bound to the client
// that first said hello with them (no other peer can take over an id and
// its sequence numbers).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync, rmSync, statSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import * as zmq from 'zeromq';
import { pack, unpack } from 'msgpackr';
import { createClient, ForkError } from '../../js/index.mjs';
import { FORKD, startForkd, tempConfig, readJsonl, idCounts, endpointFor, freePort } from './helpers.mjs';
import { routeFrame } from './wire.mjs';

const forkd = (...args) => spawnSync(FORKD, args, { encoding: 'utf8' });


// `forkd keygen` on stdout: { publicKey, secretKey }.
function keygen() {
  const r = forkd('keygen');
  assert.equal(r.status, 0, r.stderr);
  const m = /^public: (\S{40})\nsecret: (\S{40})\n$/.exec(r.stdout);
  assert.ok(m, `unexpected keygen output:\n${r.stdout}`);
  return { publicKey: m[1], secretKey: m[2] };
}

// A forkd on a free tcp port of 127.0.0.1 with `extra` config lines (its
// curve section); an admin port for the ingest counters.
async function tcpForkd(extra, prefix = 'fork-curve-') {
  const port = await freePort();
  const adminPort = await freePort();
  const { dir, config } = tempConfig(
    [
      'data_dir: ./.fork',
      `listen: tcp://127.0.0.1:${port}`,
      `admin: 127.0.0.1:${adminPort}`,
      extra,
      'destinations:',
      '  logs: { type: file, format: jsonl, path: ./out/logs.jsonl, batch: { max_wait: 10ms } }',
      '',
    ].join('\n'),
    prefix,
  );
  const proc = await startForkd(config);
  const metric = async (name) => {
    const text = await (await fetch(`http://127.0.0.1:${adminPort}/metrics`)).text();
    const m = new RegExp(`^${name} (\\S+)$`, 'm').exec(text);
    assert.ok(m, `${name} not in /metrics`);
    return Number(m[1]);
  };
  return {
    dir,
    config,
    proc,
    endpoint: `tcp://127.0.0.1:${port}`,
    metric,
    logs: () => readJsonl(path.join(dir, 'out/logs.jsonl')),
    async stop() {
      const r = await proc.stop();
      rmSync(dir, { recursive: true, force: true });
      assert.equal(r.code, 0, proc.stderr());
    },
  };
}

async function expectUnavailable(client, pattern) {
  await assert.rejects(client.routeData({ n: 1 }, 'logs', { timeoutMs: 1500 }), (err) => {
    assert.ok(err instanceof ForkError);
    assert.equal(err.code, 'FORK_UNAVAILABLE', err.message);
    assert.match(err.message, pattern);
    return true;
  });
}

test('check exits 2 for a tcp listen without keys, naming CURVE; insecure_tcp: true passes and run warns', async () => {
  const base = 'listen: tcp://127.0.0.1:7600\ndestinations:\n  logs: { type: stdout }\n';
  const { dir, config } = tempConfig(base);
  try {
    const r = forkd('check', '--config', config);
    assert.equal(r.status, 2, r.stdout);
    assert.match(r.stderr, new RegExp(`^${config}:1:9: listen: tcp://127.0.0.1:7600 can be reached over the network, so it needs CURVE keys`));
    assert.match(r.stderr, /forkd keygen --out forkd\.key/);
    assert.match(r.stderr, /insecure_tcp: true/);
    const run = spawnSync(FORKD, ['run', '--config', config], { encoding: 'utf8', timeout: 10000 });
    assert.equal(run.status, 2, 'run refuses the same config');
    assert.match(run.stderr, /needs CURVE keys/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  const open = await tcpForkd('insecure_tcp: true');
  try {
    assert.equal(forkd('check', '--config', open.config).status, 0);
    assert.match(open.proc.stderr(), /WITHOUT CURVE \(insecure_tcp: true\): anyone who can reach it can send events/);
    const c = createClient({ endpoint: open.endpoint });
    const r = await c.routeData({ n: 1 }, 'logs', { ack: 'delivered' });
    assert.deepEqual(open.logs().map((x) => x._fork_id), [r.id]);
    await c.close();
  } finally {
    await open.stop();
  }
});

test('forkd keygen --out writes a 0600 pair that forkd and the addon use: events are delivered', async () => {
  const port = await freePort();
  const { dir, config } = tempConfig(
    `listen: tcp://127.0.0.1:${port}\ncurve: { secret_key_file: forkd.key }\ndestinations:\n  logs: { type: file, path: ./out/logs.jsonl, batch: { max_wait: 10ms } }\n`,
  );
  let proc;
  try {
    const out = path.join(dir, 'forkd.key');
    const r = forkd('keygen', '--out', out);
    assert.equal(r.status, 0, r.stderr);
    const publicKey = /^public: (\S{40})\n$/.exec(r.stdout)?.[1];
    assert.ok(publicKey, r.stdout);
    assert.equal(statSync(out).mode & 0o777, 0o600);
    const file = readFileSync(out, 'utf8');
    assert.match(file, new RegExp(`^public: ${publicKey.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`, 'm'));
    assert.match(file, /^secret: \S{40}$/m);
    const again = forkd('keygen', '--out', out);
    assert.equal(again.status, 1, 'an existing key file is never overwritten');
    assert.match(again.stderr, /remove it first/);

    proc = await startForkd(config);
    assert.match(proc.stderr(), new RegExp(`with CURVE: public key ${publicKey.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`));
    assert.doesNotMatch(proc.stderr(), new RegExp(/^secret: (\S{40})$/m.exec(file)[1].replace(/[.*+?^${}()|[\]\\]/g, '\\$&')));
    const c = createClient({ endpoint: `tcp://127.0.0.1:${port}`, curveServerKey: publicKey });
    const receipts = await Promise.all(
      Array.from({ length: 50 }, (_, i) => c.routeData({ i }, 'logs', { ack: 'delivered' })),
    );
    await c.close();
    const got = idCounts(readJsonl(path.join(dir, 'out/logs.jsonl')));
    assert.equal(got.size, 50);
    for (const rc of receipts) assert.equal(got.get(rc.id), 1);
  } finally {
    if (proc) assert.equal((await proc.stop()).code, 0, proc.stderr());
    rmSync(dir, { recursive: true, force: true });
  }
});

test('with CURVE, a client without the server key or with a wrong one gets nothing in: FORK_UNAVAILABLE naming CURVE', async () => {
  const server = keygen();
  const f = await tcpForkd(`curve: { secret_key: "${server.secretKey}" }`);
  try {
    const none = createClient({ endpoint: f.endpoint });
    await expectUnavailable(none, /forkd requires CURVE on this endpoint; set curveServerKey/);
    await none.close(0);
    const wrong = createClient({ endpoint: f.endpoint, curveServerKey: keygen().publicKey });
    await expectUnavailable(wrong, /CURVE handshake failed.*is curveServerKey forkd's public key\?/);
    await wrong.close(0);
    assert.equal(await f.metric('fork_ingest_events_total'), 0);
    assert.equal(await f.metric('fork_ingest_bad_frames_total'), 0);
    assert.deepEqual(f.logs(), []);
    // The right key still gets through.
    const right = createClient({ endpoint: f.endpoint, curveServerKey: server.publicKey });
    await right.routeData({ ok: true }, 'logs');
    await right.close();
    assert.equal(await f.metric('fork_ingest_events_total'), 1);
  } finally {
    await f.stop();
  }
});

test('an allow-listed client key is accepted; a key not in curve.clients is refused and counted', async () => {
  const server = keygen();
  const listed = keygen();
  const f = await tcpForkd(`curve:\n  secret_key: "${server.secretKey}"\n  clients: ["${listed.publicKey}"]`);
  try {
    const stranger = createClient({ endpoint: f.endpoint, curveServerKey: server.publicKey });
    await expectUnavailable(stranger, /forkd refused this client's CURVE key .*curve\.clients/);
    await stranger.close(0);
    assert.equal(await f.metric('fork_ingest_events_total'), 0);
    assert.ok((await f.metric('fork_ingest_refused_connections_total')) >= 1);
    assert.match(f.proc.stderr(), /its CURVE public key \S{40} is not in curve\.clients/);

    const friend = createClient({
      endpoint: f.endpoint,
      curveServerKey: server.publicKey,
      curvePublicKey: listed.publicKey,
      curveSecretKey: listed.secretKey,
    });
    const r = await friend.routeData({ friend: true }, 'logs', { ack: 'delivered' });
    await friend.close();
    assert.deepEqual(f.logs(), [{ _fork_id: r.id, friend: true }]);
  } finally {
    await f.stop();
  }
});

test('FORK_CURVE_* in the environment configure the default keys', async () => {
  const server = keygen();
  const listed = keygen();
  const f = await tcpForkd(`curve:\n  secret_key: "${server.secretKey}"\n  clients: ["${listed.publicKey}"]`);
  const saved = { ...process.env };
  try {
    process.env.FORK_CURVE_SERVER_KEY = server.publicKey;
    process.env.FORK_CURVE_PUBLIC_KEY = listed.publicKey;
    process.env.FORK_CURVE_SECRET_KEY = listed.secretKey;
    const c = createClient({ endpoint: f.endpoint });
    const r = await c.routeData({ env: true }, 'logs', { ack: 'delivered' });
    await c.close();
    assert.deepEqual(f.logs(), [{ _fork_id: r.id, env: true }]);
  } finally {
    for (const k of ['FORK_CURVE_SERVER_KEY', 'FORK_CURVE_PUBLIC_KEY', 'FORK_CURVE_SECRET_KEY']) {
      if (saved[k] === undefined) delete process.env[k];
      else process.env[k] = saved[k];
    }
    await f.stop();
  }
});

// --- client ids are bound to their client

function hello(id, extra = {}) {
  return Buffer.concat([Buffer.from([1, 1]), pack({ client: id, protocol: 1, agent: 'thief', ...extra })]);
}

// Every frame `s` receives within `ms`: [{ type, code?, message? }].
// `every` (optional) runs before each receive.
async function drain(s, ms, every) {
  const frames = [];
  const until = Date.now() + ms;
  while (Date.now() < until) {
    await every?.();
    try {
      const [m] = await s.receive();
      const f = { type: m[1] };
      if (m[1] === 5) [f.code, f.message] = unpack(m.subarray(18));
      frames.push(f);
    } catch {
      // receiveTimeout: nothing more yet
    }
  }
  return frames;
}

test("a raw peer claiming a live client's id gets nothing in, and the client's events are all delivered exactly once", { timeout: 60_000 }, async () => {
  const { dir, config } = tempConfig(
    'destinations:\n  logs: { type: file, path: ./out/logs.jsonl, batch: { max_wait: 10ms } }\n',
    'fork-hijack-',
  );
  const proc = await startForkd(config);
  const endpoint = endpointFor(dir);
  const thieves = [];
  const thief = (id) => {
    const s = new zmq.Dealer({ routingId: id.toString('latin1'), receiveTimeout: 200, linger: 0 });
    s.routingId = id;
    s.connect(endpoint);
    thieves.push(s);
    return s;
  };
  const stolen = Array.from({ length: 200 }, (_, k) => pack([['logs'], null, null, { who: 'thief', k }]));
  try {
    const c = createClient({ endpoint });
    const receipts = await Promise.all(Array.from({ length: 20 }, (_, i) => c.routeData({ i, who: 'app' }, 'logs')));
    const id = Buffer.from(c.clientId, 'hex');
    assert.equal(receipts[19].id, `${c.clientId}-20`);

    // While the client is connected, a peer with its id says hello and
    // claims its next sequence numbers, again and again, as the client keeps
    // sending. forkd never reads that connection.
    const t1 = thief(id);
    const during = [];
    const sender = (async () => {
      for (let i = 20; i < 120; i++) {
        during.push(c.routeData({ i, who: 'app' }, 'logs'));
        await sleep(5);
      }
    })();
    const got = await drain(t1, 1500, async () => {
      await t1.send(hello(id));
      await t1.send(routeFrame(21, stolen));
    });
    await sender;
    receipts.push(...(await Promise.all(during)));
    assert.deepEqual(got, [], 'the peer claiming a live id got an answer');
    assert.equal(c.stats().reconnects, 0, 'the client was not disturbed');

    // Once the client is gone, its id is free to connect with, but not to
    // use: the hello is refused (another session), its frames are dropped.
    receipts.push(await c.routeData({ i: 120, who: 'app' }, 'logs', { ack: 'delivered' }));
    await c.close();
    // Until forkd has seen the client's connection close, a second connection
    // under the same routing id is ignored by its ROUTER socket (no answer):
    // on a loaded machine that can take a while, so try again on a fresh
    // connection until one is answered.
    let after = [];
    for (let attempt = 0; attempt < 10 && after.length === 0; attempt++) {
      const t2 = thief(id);
      after = await drain(t2, 1000, async () => {
        await t2.send(hello(id));
        await t2.send(routeFrame(122, stolen));
      });
      if (after.length === 0) t2.close();
    }
    assert.ok(after.length > 0, 'the hello was not answered in 10 tries');
    for (const f of after) {
      assert.equal(f.type, 5, JSON.stringify(after));
      assert.equal(f.code, 'FORK_REJECTED');
      assert.match(f.message, new RegExp(`^client id ${c.clientId} is in use by another client \\(a different session\\)`));
    }
    assert.match(proc.stderr(), new RegExp(`refused a hello on connection \\d+: client id ${c.clientId} is in use by another client`));
    assert.match(proc.stderr(), new RegExp(`dropping route frames of connection \\d+ for client ${c.clientId}: it has no accepted hello`));

    // Every event of the app is in the destination exactly once, as sent;
    // none of the peer's.
    assert.equal(receipts.length, 121);
    await sleep(200);
    const records = readJsonl(path.join(dir, 'out/logs.jsonl'));
    assert.equal(records.filter((r) => r.who === 'thief').length, 0);
    const counts = idCounts(records);
    for (const r of receipts) assert.equal(counts.get(r.id), 1, `${r.id} delivered ${counts.get(r.id) ?? 0} times`);
    assert.equal(records.length, 121);
    const byId = new Map(records.map((r) => [r._fork_id, r.i]));
    receipts.forEach((r, i) => assert.equal(byId.get(r.id), i, `${r.id} holds another event`));
  } finally {
    for (const t of thieves) t.close();
    assert.equal((await proc.stop()).code, 0, proc.stderr());
    rmSync(dir, { recursive: true, force: true });
  }
});

test('with CURVE, a client id stays bound to its key after the client disconnects', async () => {
  const server = keygen();
  const f = await tcpForkd(`curve: { secret_key: "${server.secretKey}" }`);
  let thief;
  try {
    const c = createClient({ endpoint: f.endpoint, curveServerKey: server.publicKey });
    const r = await c.routeData({ who: 'app' }, 'logs', { ack: 'delivered' });
    const id = Buffer.from(c.clientId, 'hex');
    await c.close();

    const keys = zmq.curveKeyPair();
    thief = new zmq.Dealer({
      routingId: id.toString('latin1'),
      receiveTimeout: 3000,
      linger: 0,
      curveServerKey: server.publicKey,
      curvePublicKey: keys.publicKey,
      curveSecretKey: keys.secretKey,
    });
    thief.routingId = id;
    thief.connect(f.endpoint);
    await thief.send(hello(id));
    const [refusal] = await thief.receive();
    assert.equal(refusal[1], 5);
    const [code, message] = unpack(refusal.subarray(18));
    assert.equal(code, 'FORK_REJECTED');
    assert.match(message, new RegExp(`client id ${c.clientId} belongs to another CURVE key`));
    await thief.send(routeFrame(2, [pack([['logs'], null, null, { who: 'thief' }])]));
    await assert.rejects(thief.receive(), /timed out/i, 'route frames without an accepted hello are not answered');
    assert.equal(await f.metric('fork_ingest_refused_frames_total'), 1);
    assert.equal(await f.metric('fork_ingest_events_total'), 1);
    assert.equal(await f.metric('fork_ingest_refused_hellos_total'), 1);
    assert.deepEqual(f.logs(), [{ _fork_id: r.id, who: 'app' }]);
  } finally {
    thief?.close();
    await f.stop();
  }
});

test('a hello naming another id than its routing id is refused', async () => {
  const { dir, config } = tempConfig('destinations:\n  logs: { type: stdout }\n', 'fork-hello-');
  const proc = await startForkd(config);
  const s = new zmq.Dealer({ receiveTimeout: 3000, linger: 0 });
  const routing = Buffer.alloc(16, 7);
  s.routingId = routing;
  try {
    s.connect(endpointFor(dir));
    await s.send(hello(Buffer.alloc(16, 9)));
    const [m] = await s.receive();
    assert.equal(m[1], 5);
    assert.match(unpack(m.subarray(18))[1], /hello: client id 0909.* is not this connection's routing id 0707/);
  } finally {
    s.close();
    assert.equal((await proc.stop()).code, 0, proc.stderr());
    rmSync(dir, { recursive: true, force: true });
  }
});

test('after a network blip that forkd does not see, the client gets its id back and every event is delivered once', { timeout: 60_000 }, async () => {
  // A tcp proxy between the client and forkd. The blip cuts the client's
  // side and leaves forkd's side open and silent (half-open, as when a
  // network path dies): forkd still holds the id's old connection until its
  // heartbeat gives up on it.
  const f = await tcpForkd('insecure_tcp: true');
  const upstream = new URL(f.endpoint.replace('tcp://', 'http://'));
  const pairs = [];
  const proxy = net.createServer((down) => {
    const up = net.connect(Number(upstream.port), upstream.hostname);
    down.pipe(up);
    up.pipe(down);
    pairs.push({ down, up });
    down.on('error', () => {});
    up.on('error', () => {});
  });
  await new Promise((resolve) => proxy.listen(0, '127.0.0.1', resolve));
  const c = createClient({ endpoint: `tcp://127.0.0.1:${proxy.address().port}`, timeoutMs: 30_000 });
  try {
    const receipts = await Promise.all(Array.from({ length: 10 }, (_, i) => c.routeData({ i }, 'logs', { ack: 'delivered' })));
    const old = pairs.at(-1);
    old.down.unpipe(old.up);
    old.up.unpipe(old.down);
    old.up.pause(); // forkd's side: open, never read again, never closed
    old.down.destroy();
    const later = Array.from({ length: 10 }, (_, i) => c.routeData({ i: 10 + i }, 'logs', { ack: 'delivered' }));
    receipts.push(...(await Promise.all(later)));
    assert.ok(c.stats().reconnects >= 1);
    await c.close();
    const counts = idCounts(f.logs());
    for (const r of receipts) assert.equal(counts.get(r.id), 1, `${r.id} delivered ${counts.get(r.id) ?? 0} times`);
    assert.equal(f.logs().length, 20);
  } finally {
    await c.close(0);
    for (const p of pairs) {
      p.down.destroy();
      p.up.destroy();
    }
    proxy.close();
    await f.stop();
  }
});
