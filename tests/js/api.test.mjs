// Argument validation and every error code reachable without forkd.
import assert from 'node:assert/strict';
import test from 'node:test';
import { ForkError, codes, createClient, routeData } from 'fork-router';
import { freshEndpoint } from './helpers/fake-forkd.mjs';

// A client whose forkd never answers: nothing listens on a fresh endpoint.
function offline(options = {}) {
  return createClient({ endpoint: freshEndpoint(), timeoutMs: 200, ...options });
}

async function rejectsWith(promise, code, check = () => true) {
  assert.ok(promise instanceof Promise, 'routeData returns a promise, even for bad arguments');
  await assert.rejects(promise, (err) => {
    assert.ok(err instanceof ForkError, `expected ForkError, got ${err?.stack ?? err}`);
    assert.ok(err instanceof Error);
    assert.equal(err.name, 'ForkError');
    assert.equal(err.code, code, err.message);
    return check(err) !== false;
  });
}

test('codes are the public set', () => {
  assert.deepEqual(Object.values(codes).sort(), [
    'FORK_BACKPRESSURE',
    'FORK_CLOSED',
    'FORK_INVALID_PAYLOAD',
    'FORK_REJECTED',
    'FORK_TIMEOUT',
    'FORK_TOO_LARGE',
    'FORK_UNAVAILABLE',
    'FORK_UNKNOWN_DESTINATION',
  ]);
});

test('payloads that are not plain objects are FORK_INVALID_PAYLOAD', async (t) => {
  const client = offline();
  t.after(() => client.close(0));
  for (const bad of ['text', 42, null, undefined, true, [1, 2], () => {}, Symbol('s'), 10n, new Date(0)]) {
    await rejectsWith(client.routeData(bad, 'logs'), 'FORK_INVALID_PAYLOAD', (err) => {
      assert.match(err.message, /^payload/);
      assert.equal(err.path, '');
    });
  }
  // Also through the slow path (with options) and the default client's entry point.
  await rejectsWith(client.routeData('x', 'logs', { ack: 'none' }), 'FORK_INVALID_PAYLOAD');
});

test('bad fields inside the payload are named by path', async (t) => {
  const client = offline();
  t.after(() => client.close(0));
  await rejectsWith(
    client.routeData({ items: [{}, {}, {}, { price: () => 1 }] }, 'logs'),
    'FORK_INVALID_PAYLOAD',
    (err) => {
      assert.equal(err.message, 'payload.items[3].price: functions cannot be encoded');
      assert.equal(err.path, 'items[3].price');
    },
  );
  const cyclic = { a: {} };
  cyclic.a.b = cyclic;
  await rejectsWith(client.routeData(cyclic, ['logs']), 'FORK_INVALID_PAYLOAD', (err) => err.path === 'a.b');
});

test('destinations: non-empty names up to 128 characters, arrays of 1..64', async (t) => {
  const client = offline();
  t.after(() => client.close(0));
  const cases = [
    ['', /destination must not be empty/],
    ['x'.repeat(129), /longer than 128/],
    [[], /must not be an empty array/],
    [Array.from({ length: 65 }, (_, i) => `d${i}`), /65 names; at most 64/],
    [['ok', ''], /destination\[1\] must not be empty/],
    [['ok', 7], /destination\[1\] must be a string/],
    [42, /destination must be a string, an array of strings, or omitted/],
    [{ name: 'logs' }, /destination must be a string/],
  ];
  for (const [destination, message] of cases) {
    await rejectsWith(client.routeData({ a: 1 }, destination), 'FORK_INVALID_PAYLOAD', (err) => {
      assert.match(err.message, message);
      assert.ok('destination' in err);
    });
  }
  // The limits themselves are allowed.
  const ok = await client.routeData({ a: 1 }, 'x'.repeat(128), { ack: 'none' });
  assert.deepEqual(ok.destinations, ['x'.repeat(128)]);
  const many = Array.from({ length: 64 }, (_, i) => `d${i}`);
  assert.deepEqual((await client.routeData({ a: 1 }, many, { ack: 'none' })).destinations, many);
});

test('options are checked by name, and the error names the option', async (t) => {
  const client = offline();
  t.after(() => client.close(0));
  const cases = [
    ['text', '', /options must be an object/],
    [[1], '', /options must be an object/],
    [{ idempotency_key: 'x' }, 'idempotency_key', /unknown option/],
    [{ ack: 'durable' }, 'ack', /'none', 'accepted' or 'delivered'/],
    [{ timeoutMs: 0 }, 'timeoutMs', /positive integer/],
    [{ timeoutMs: -5 }, 'timeoutMs', /positive integer/],
    [{ timeoutMs: 1.5 }, 'timeoutMs', /positive integer/],
    [{ timeoutMs: '100' }, 'timeoutMs', /positive integer/],
    [{ timeoutMs: 2 ** 31 }, 'timeoutMs', /positive integer/],
    [{ idempotencyKey: '' }, 'idempotencyKey', /non-empty string/],
    [{ idempotencyKey: 7 }, 'idempotencyKey', /non-empty string/],
    [{ idempotencyKey: 'é'.repeat(129) }, 'idempotencyKey', /longer than 256 bytes/],
    [{ key: 5 }, 'key', /non-empty string/],
    [{ transform: [] }, 'transform', /template name or a non-empty array/],
    [{ transform: ['a', ''] }, 'transform[1]', /non-empty template name/],
    [{ transform: 3 }, 'transform', /template name/],
    [{ timestamp: 'yes' }, 'timestamp', /must be true or/],
    [{ timestamp: { format: 'unix' } }, 'timestamp.format', /'iso' or 'epoch_ms'/],
    [{ timestamp: { field: '' } }, 'timestamp.field', /non-empty string/],
    [{ timestamp: { zone: 'utc' } }, 'timestamp.zone', /unknown setting/],
    [{ aggregate: '' }, 'aggregate', /window name/],
    [{ aggregate: 5 }, 'aggregate', /window name/],
    [{ aggregate: { measure: () => 1 } }, 'aggregate.measure', /functions cannot be encoded/],
  ];
  for (const [options, option, message] of cases) {
    await rejectsWith(client.routeData({ a: 1 }, 'logs', options), 'FORK_INVALID_PAYLOAD', (err) => {
      assert.match(err.message, message, JSON.stringify(options));
      assert.equal(err.option, option, err.message);
    });
  }
  // Boundaries that are fine.
  await client.routeData({ a: 1 }, 'logs', { idempotencyKey: 'é'.repeat(128), ack: 'none' });
  await client.routeData({ a: 1 }, 'logs', { timestamp: false, key: undefined, ack: 'none' });
});

test('receipts: ids, ack level and destinations (ack: none resolves once queued)', async (t) => {
  const client = offline();
  t.after(() => client.close(0));
  const a = await client.routeData({ a: 1 }, 'logs', { ack: 'none' });
  assert.match(a.id, /^[0-9a-f]{32}-\d+$/);
  assert.equal(a.id.slice(0, 32), client.clientId);
  assert.equal(a.ack, 'none');
  assert.deepEqual(a.destinations, ['logs']);
  const b = await client.routeData({ a: 1 }, ['x', 'y'], { ack: 'none', idempotencyKey: 'order-42' });
  assert.equal(b.id, 'order-42');
  assert.deepEqual(b.destinations, ['x', 'y']);
  const c = await client.routeData({ a: 1 }, undefined, { ack: 'none' });
  assert.deepEqual(c.destinations, []);
  const seq = (r) => Number(r.id.split('-')[1]);
  const d = await client.routeData({ a: 1 }, null, { ack: 'none' });
  assert.equal(seq(d), seq(a) + 3, 'sequence numbers count every queued event');
  // A Date sends the event through the addon's own encoder: same receipt.
  const names = ['x', 'y'];
  const e = await client.routeData({ at: new Date(0), big: 1n }, names, { ack: 'none' });
  names.push('z');
  assert.deepEqual(Object.keys(e), ['id', 'ack', 'destinations']);
  assert.equal(seq(e), seq(d) + 1);
  assert.deepEqual(e.destinations, ['x', 'y'], "the receipt's list is its own copy");
  const f = await client.routeData({ at: new Date(0) }, 'logs', { ack: 'none', idempotencyKey: 'k-7' });
  assert.deepEqual(f, { id: 'k-7', ack: 'none', destinations: ['logs'] });
});

test('FORK_UNAVAILABLE when forkd is not reachable, within the deadline', async (t) => {
  const client = offline();
  t.after(() => client.close(0));
  const t0 = performance.now();
  await rejectsWith(client.routeData({ a: 1 }, 'logs', { timeoutMs: 300 }), 'FORK_UNAVAILABLE', (err) => {
    assert.match(err.message, new RegExp(`not reachable at ${client.endpoint.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`));
    assert.match(err.id, /^[0-9a-f]{32}-1$/);
  });
  const elapsed = performance.now() - t0;
  // Upper bound: catches a hang, with room for a loaded host.
  assert.ok(elapsed >= 280 && elapsed < 5000, `settled after ${elapsed} ms`);
  const s = client.stats();
  assert.equal(s.timedOut, 1);
  assert.equal(s.inFlight, 0);
  assert.equal(s.connected, false);
});

test('FORK_TOO_LARGE for events over 1 MiB encoded', async (t) => {
  const client = offline();
  t.after(() => client.close(0));
  await rejectsWith(client.routeData({ blob: 'x'.repeat(1100000) }, 'logs'), 'FORK_TOO_LARGE', (err) =>
    assert.match(err.message, /larger than the limit of 1048576 bytes/),
  );
  assert.equal(client.stats().inFlight, 0, 'rejected events are not queued');
});

test('FORK_BACKPRESSURE past maxInFlight events', async (t) => {
  const client = offline({ maxInFlight: 3, timeoutMs: 5000 });
  t.after(() => client.close(0));
  const queued = [1, 2, 3].map((n) => client.routeData({ n }, 'logs', { ack: 'none' }));
  await Promise.all(queued);
  await rejectsWith(client.routeData({ n: 4 }, 'logs'), 'FORK_BACKPRESSURE', (err) =>
    assert.match(err.message, /maxInFlight 3/),
  );
  assert.equal(client.stats().inFlight, 3);
});

test('FORK_BACKPRESSURE past maxInFlightBytes', async (t) => {
  const client = offline({ maxInFlightBytes: 1000, timeoutMs: 5000 });
  t.after(() => client.close(0));
  await client.routeData({ s: 'x'.repeat(900) }, 'logs', { ack: 'none' });
  await rejectsWith(client.routeData({ s: 'x'.repeat(200) }, 'logs'), 'FORK_BACKPRESSURE', (err) =>
    assert.match(err.message, /maxInFlightBytes 1000/),
  );
  await client.routeData({ s: 'tiny' }, 'logs', { ack: 'none' }); // still fits
});

test('FORK_CLOSED after close(); close is idempotent and settles what is pending', async () => {
  const client = offline({ timeoutMs: 10000 });
  const pending = client.routeData({ a: 1 }, 'logs');
  const first = client.close(100);
  assert.equal(client.close(), first, 'the same promise');
  assert.equal(client.closed, true);
  await rejectsWith(client.routeData({ a: 1 }, 'logs'), 'FORK_CLOSED');
  const t0 = performance.now();
  await first;
  assert.ok(performance.now() - t0 < 5000); // close(100): catches a hang
  await rejectsWith(pending, 'FORK_CLOSED', (err) => assert.match(err.id, /-1$/));
  await rejectsWith(client.routeData({ a: 1 }, 'logs', { ack: 'none' }), 'FORK_CLOSED');
  assert.equal(typeof client.stats().sent, 'number', 'stats still work after close');
});

test('flush resolves at once when idle and rejects FORK_TIMEOUT when events stay in flight', async (t) => {
  const client = offline({ timeoutMs: 10000 });
  t.after(() => client.close(0));
  await client.flush(50);
  const p = client.routeData({ a: 1 }, 'logs');
  p.catch(() => {});
  const t0 = performance.now();
  await rejectsWith(client.flush(150), 'FORK_TIMEOUT', (err) => assert.match(err.message, /1 events still in flight/));
  assert.ok(performance.now() - t0 >= 140);
  await rejectsWith(client.flush(0), 'FORK_INVALID_PAYLOAD');
});

test('createClient checks its options', () => {
  const cases = [
    [{ endpoint: 'not an endpoint' }, 'endpoint'],
    [{ endpoint: 42 }, 'endpoint'],
    [{ timeoutMs: 0 }, 'timeoutMs'],
    [{ maxInFlight: -1 }, 'maxInFlight'],
    [{ maxInFlightBytes: 1.5 }, 'maxInFlightBytes'],
    [{ endpoints: 'ipc:///x' }, 'endpoints'],
    ['ipc:///x', ''],
  ];
  for (const [options, option] of cases) {
    assert.throws(() => createClient(options), (err) => {
      assert.ok(err instanceof ForkError);
      assert.equal(err.code, 'FORK_INVALID_PAYLOAD');
      assert.equal(err.option, option);
      assert.match(err.message, /^createClient: /);
      return true;
    });
  }
  // An endpoint ZeroMQ itself refuses.
  assert.throws(() => createClient({ endpoint: `ipc:///${'x'.repeat(300)}` }), {
    code: 'FORK_INVALID_PAYLOAD',
  });
});

test('createClient checks CURVE keys, from options and from FORK_CURVE_*', async () => {
  const server = 'rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7';
  const pub = 'Yne@$w-vo<fVvi]a<NY6T1ed:M$fCG*[IaLV{hID';
  const sec = 'D:)Q[IlAW!ahhC2ac:9*A}h:p?([4%wOTJ%JR%cs';
  const cases = [
    [{ curveServerKey: 'short' }, 'curveServerKey', /curveServerKey must be a CURVE key: 40 Z85 characters .* \(got 5 characters\)/],
    [{ curveServerKey: 42 }, 'curveServerKey', /curveServerKey must be a string/],
    [{ curveServerKey: `${server.slice(0, 39)} ` }, 'curveServerKey', /holds " " at position 40, which is not a Z85 character/],
    [{ curveServerKey: `#####${server.slice(5)}` }, 'curveServerKey', /is not valid Z85 \(characters 1-5 are out of range\)/],
    [{ curveServerKey: server, curvePublicKey: pub }, 'curveSecretKey', /curvePublicKey is set but curveSecretKey is not/],
    [{ curveServerKey: server, curveSecretKey: sec }, 'curvePublicKey', /curveSecretKey is set but curvePublicKey is not/],
    [{ curvePublicKey: pub, curveSecretKey: sec }, 'curveServerKey', /curveServerKey is not: set it \(or FORK_CURVE_SERVER_KEY\)/],
  ];
  for (const [options, option, message] of cases) {
    assert.throws(() => offline(options), (err) => {
      assert.ok(err instanceof ForkError);
      assert.equal(err.code, 'FORK_INVALID_PAYLOAD');
      assert.equal(err.option, option);
      assert.match(err.message, message);
      assert.ok(!err.message.includes(sec), 'a secret key is never put in a message');
      return true;
    });
  }
  process.env.FORK_CURVE_SERVER_KEY = 'not-a-key';
  try {
    assert.throws(() => offline(), (err) => {
      assert.equal(err.option, 'FORK_CURVE_SERVER_KEY');
      assert.match(err.message, /^createClient: FORK_CURVE_SERVER_KEY \(from the environment\) must be a CURVE key/);
      return true;
    });
  } finally {
    delete process.env.FORK_CURVE_SERVER_KEY;
  }
  // Keys of two different pairs.
  assert.throws(() => offline({ curveServerKey: server, curvePublicKey: server, curveSecretKey: sec }), (err) => {
    assert.equal(err.code, 'FORK_INVALID_PAYLOAD');
    assert.match(err.message, /curvePublicKey is not the public key of curveSecretKey/);
    return true;
  });
  // Valid keys: the client is created; with no forkd, calls are unavailable.
  const c = offline({ curveServerKey: server, curvePublicKey: pub, curveSecretKey: sec });
  await rejectsWith(c.routeData({ a: 1 }, 'logs'), 'FORK_UNAVAILABLE');
  await c.close(0);
});

test('the default client is created on first use and shared through globalThis', async () => {
  const key = Symbol.for('fork-router.client');
  const before = globalThis[key];
  const p = routeData({ a: 1 }, 'logs', { ack: 'none', timeoutMs: 100 });
  const client = globalThis[key];
  assert.ok(client && typeof client.routeData === 'function');
  assert.ok(before === undefined || before === client || before.closed);
  await p;
  routeData({ b: 2 }, 'logs', { ack: 'none', timeoutMs: 100 });
  assert.equal(globalThis[key], client, 'reused');
  await client.close(0);
  await routeData({ c: 3 }, 'logs', { ack: 'none', timeoutMs: 100 });
  assert.notEqual(globalThis[key], client, 'a closed default client is replaced');
  await globalThis[key].close(0);
});
