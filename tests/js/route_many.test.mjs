// routeMany's arguments and the errors reachable without forkd: every
// payload is checked (and encoded) before any is queued, so a bad one
// rejects the call naming its index, with nothing in flight afterwards.
import assert from 'node:assert/strict';
import test from 'node:test';
import { ForkError, createClient, routeMany } from 'fork-router';
import { freshEndpoint } from './helpers/fake-forkd.mjs';

function offline(options = {}) {
  return createClient({ endpoint: freshEndpoint(), timeoutMs: 200, ...options });
}

async function rejectsWith(promise, code, check = () => true) {
  assert.ok(promise instanceof Promise, 'routeMany returns a promise, even for bad arguments');
  await assert.rejects(promise, (err) => {
    assert.ok(err instanceof ForkError, `expected ForkError, got ${err?.stack ?? err}`);
    assert.equal(err.code, code, err.message);
    return check(err) !== false;
  });
}

test('payloads must be an array of plain objects; the error names the index', async (t) => {
  const client = offline();
  t.after(() => client.close(0));
  for (const bad of [undefined, null, 'x', 42, { a: 1 }, new Set([{}])]) {
    await rejectsWith(client.routeMany(bad, 'logs'), 'FORK_INVALID_PAYLOAD', (err) =>
      assert.match(err.message, /^routeMany: payloads must be an array of plain objects/),
    );
  }
  for (const [i, bad] of [[0, null], [2, 'text'], [1, [1]], [3, Buffer.from('x')], [2, undefined]]) {
    const payloads = [{ a: 1 }, { a: 2 }, { a: 3 }, { a: 4 }];
    payloads[i] = bad;
    await rejectsWith(client.routeMany(payloads, 'logs'), 'FORK_INVALID_PAYLOAD', (err) => {
      assert.match(err.message, new RegExp(`^routeMany: payloads\\[${i}\\] must be a plain object`));
      assert.equal(err.index, i);
    });
  }
  // A hole in a sparse array is a missing payload.
  await rejectsWith(client.routeMany([{ a: 1 }, , { a: 3 }], 'logs'), 'FORK_INVALID_PAYLOAD', (err) => // eslint-disable-line no-sparse-arrays
    assert.equal(err.index, 1),
  );
  assert.equal(client.stats().inFlight, 0, 'nothing was queued');
});

test('a payload the encoder refuses rejects the whole call by its path; none of the others is queued', async (t) => {
  const client = offline({ timeoutMs: 5000 });
  t.after(() => client.close(0));
  const payloads = Array.from({ length: 10 }, (_, n) => ({ n }));
  payloads[7] = { items: [{}, { price: () => 1 }] };
  await rejectsWith(client.routeMany(payloads, 'logs'), 'FORK_INVALID_PAYLOAD', (err) => {
    assert.equal(err.message, 'routeMany: payloads[7].items[1].price: functions cannot be encoded');
    assert.equal(err.index, 7);
    assert.equal(err.path, 'items[1].price');
  });
  const cyclic = { a: {} };
  cyclic.a.self = cyclic;
  await rejectsWith(client.routeMany([{ ok: 1 }, cyclic], 'logs'), 'FORK_INVALID_PAYLOAD', (err) => {
    assert.match(err.message, /^routeMany: payloads\[1\]\.a\.self/);
    assert.equal(err.index, 1);
  });
  await rejectsWith(client.routeMany([{ ok: 1 }, { blob: 'x'.repeat(1100000) }], 'logs'), 'FORK_TOO_LARGE', (err) => {
    assert.match(err.message, /^routeMany: payloads\[1\]/);
    assert.equal(err.index, 1);
  });
  // A getter that throws: its exception is the cause.
  const boom = new Error('boom');
  await rejectsWith(
    client.routeMany([{ get x() { throw boom; } }], 'logs'),
    'FORK_INVALID_PAYLOAD',
    (err) => assert.equal(err.cause, boom),
  );
  assert.equal(client.stats().inFlight, 0, 'nothing was queued');
  assert.equal(client.stats().sent, 0);
});

test('options: routeData\'s, idempotencyKey refused for idempotencyKeys (one per payload, all different)', async (t) => {
  const client = offline();
  t.after(() => client.close(0));
  const two = [{ a: 1 }, { a: 2 }];
  await rejectsWith(client.routeMany(two, 'logs', { idempotencyKey: 'k' }), 'FORK_INVALID_PAYLOAD', (err) => {
    assert.match(err.message, /idempotencyKey would give every event the same key: use options.idempotencyKeys/);
    assert.equal(err.option, 'idempotencyKey');
  });
  for (const [keys, option, message] of [
    ['k', 'idempotencyKeys', /must be an array of 2 keys, one per payload \(got the string "k"\)/],
    [['k'], 'idempotencyKeys', /must be an array of 2 keys, one per payload \(got an array of 1\)/],
    [['k', 'l', 'm'], 'idempotencyKeys', /got an array of 3/],
    [['k', ''], 'idempotencyKeys[1]', /idempotencyKeys\[1\] must be a non-empty string/],
    [['k', 7], 'idempotencyKeys[1]', /idempotencyKeys\[1\] must be a non-empty string \(got number 7\)/],
    [['k', 'x'.repeat(257)], 'idempotencyKeys[1]', /idempotencyKeys\[1\] is longer than 256 bytes/],
    [['same', 'same'], 'idempotencyKeys[1]', /idempotencyKeys\[1\] repeats options.idempotencyKeys\[0\]/],
  ]) {
    await rejectsWith(client.routeMany(two, 'logs', { idempotencyKeys: keys }), 'FORK_INVALID_PAYLOAD', (err) => {
      assert.match(err.message, message);
      assert.equal(err.option, option);
    });
  }
  await rejectsWith(client.routeMany(two, 'logs', { ack: 'maybe' }), 'FORK_INVALID_PAYLOAD', (err) =>
    assert.equal(err.option, 'ack'),
  );
  await rejectsWith(client.routeMany(two, 'logs', { nope: 1 }), 'FORK_INVALID_PAYLOAD', (err) =>
    assert.equal(err.option, 'nope'),
  );
  await rejectsWith(client.routeMany(two, ''), 'FORK_INVALID_PAYLOAD', (err) => assert.match(err.message, /destination/));
  await rejectsWith(client.routeMany(two, 'x'.repeat(129)), 'FORK_INVALID_PAYLOAD');
  assert.equal(client.stats().inFlight, 0);
});

test('ack none: resolves at once with a receipt per payload, in order, with its key or a sequence id', async (t) => {
  const client = offline({ timeoutMs: 2000 });
  t.after(() => client.close(0));
  assert.deepEqual(await client.routeMany([], 'logs'), [], 'no payloads: no receipts');
  const receipts = await client.routeMany([{ a: 1 }, { a: 2 }, { a: 3 }], ['x', 'y'], {
    ack: 'none',
    idempotencyKeys: ['k1', 'k2', 'k3'],
  });
  assert.deepEqual(receipts.map((r) => r.id), ['k1', 'k2', 'k3']);
  for (const r of receipts) {
    assert.equal(r.ack, 'none');
    assert.deepEqual(r.destinations, ['x', 'y']);
  }
  const more = await client.routeMany([{ a: 1 }, { a: 2 }], 'logs', { ack: 'none' });
  const seq = (r) => Number(r.id.split('-')[1]);
  assert.equal(more[0].id.slice(0, 32), client.clientId);
  assert.deepEqual(more.map(seq), [4, 5], 'sequence numbers go on from the keyed events');
  assert.equal(client.stats().inFlight, 5, 'each event is still tracked until acknowledged');
});

test('unreachable forkd: the call rejects FORK_UNAVAILABLE once every event timed out, with each result', async (t) => {
  const client = offline();
  t.after(() => client.close(0));
  const t0 = performance.now();
  await rejectsWith(client.routeMany([{ a: 1 }, { a: 2 }, { a: 3 }], 'logs', { timeoutMs: 300 }), 'FORK_UNAVAILABLE', (err) => {
    assert.match(err.message, /^routeMany: 3 of 3 events failed; payloads\[0\]: forkd is not reachable/);
    assert.equal(err.index, 0);
    assert.equal(err.results.length, 3);
    for (const [i, r] of err.results.entries()) {
      assert.ok(r instanceof ForkError);
      assert.equal(r.code, 'FORK_UNAVAILABLE');
      assert.match(r.id, new RegExp(`^[0-9a-f]{32}-${i + 1}$`));
    }
    assert.equal(err.cause, err.results[0]);
  });
  const elapsed = performance.now() - t0;
  // Upper bound: catches a hang, with room for a loaded host.
  assert.ok(elapsed >= 280 && elapsed < 5000, `settled after ${elapsed} ms`);
});

test('backpressure: a call past maxInFlight (events or bytes) is refused whole, nothing queued', async (t) => {
  const client = offline({ maxInFlight: 5, maxInFlightBytes: 4000, timeoutMs: 5000 });
  t.after(() => client.close(0));
  await client.routeMany([{ n: 1 }, { n: 2 }, { n: 3 }], 'logs', { ack: 'none' });
  await rejectsWith(client.routeMany([{ n: 4 }, { n: 5 }, { n: 6 }], 'logs'), 'FORK_BACKPRESSURE', (err) =>
    assert.match(err.message, /^routeMany of 3 events: too many events in flight \(maxInFlight 5, 3 in flight\)/),
  );
  assert.equal(client.stats().inFlight, 3);
  await rejectsWith(client.routeMany([{ s: 'x'.repeat(2000) }, { s: 'y'.repeat(2000) }], 'logs'), 'FORK_BACKPRESSURE', (err) =>
    assert.match(err.message, /too many bytes in flight \(maxInFlightBytes 4000\)/),
  );
  assert.equal(client.stats().inFlight, 3, 'the refused calls queued nothing');
  // More than maxInFlight in one call can never fit: refused before encoding
  // (the function in it would otherwise be the error).
  const tooMany = Array.from({ length: 6 }, (_, n) => ({ n }));
  tooMany[5] = { f() {} };
  await rejectsWith(client.routeMany(tooMany, 'logs'), 'FORK_BACKPRESSURE', (err) =>
    assert.match(err.message, /^routeMany of 6 events: more than maxInFlight \(5\) at once; split the call or raise maxInFlight$/),
  );
  assert.equal(client.stats().inFlight, 3);
});

test('close() rejects a pending call FORK_CLOSED with every result; later calls reject FORK_CLOSED', async () => {
  const client = offline({ timeoutMs: 10000 });
  const pending = client.routeMany([{ a: 1 }, { a: 2 }], 'logs');
  await client.close(0);
  await rejectsWith(pending, 'FORK_CLOSED', (err) => {
    assert.equal(err.results.length, 2);
    assert.ok(err.results.every((r) => r.code === 'FORK_CLOSED'));
  });
  await rejectsWith(client.routeMany([{ a: 1 }], 'logs'), 'FORK_CLOSED');
});

test('the default client\'s routeMany checks its arguments the same way', async () => {
  await rejectsWith(routeMany('nope', 'logs'), 'FORK_INVALID_PAYLOAD');
});
