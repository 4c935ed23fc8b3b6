// The addon's I/O thread against a fake forkd (helpers/fake-forkd.mjs):
// handshake, acks, routed trailers, nacks, delivered and its outcomes, batching, timeouts,
// reconnects and resends.
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import test from 'node:test';
import { ForkError, createClient } from 'fork-router';
import { pack } from 'msgpackr';
import { FakeForkd, FLAG_WANT_DELIVERED, FrameType, freshEndpoint, header, ranges } from './helpers/fake-forkd.mjs';

async function until(predicate, timeoutMs = 3000) {
  const t0 = Date.now();
  while (!predicate()) {
    if (Date.now() - t0 > timeoutMs) throw new Error(`condition not met within ${timeoutMs} ms`);
    await sleep(5);
  }
}

async function setup(t, fakeOptions = {}, clientOptions = {}) {
  const fake = await new FakeForkd(fakeOptions).start();
  const client = createClient({ endpoint: fake.endpoint, timeoutMs: 3000, ...clientOptions });
  t.after(async () => {
    await client.close(0);
    await fake.stop();
  });
  return { fake, client };
}

test('hello, welcome, route, ack: the receipt and what forkd received', async (t) => {
  const { fake, client } = await setup(t);
  const purchase = { event: 'purchase', orderId: 'o-1', amount: 12.5, items: [{ sku: 'a', qty: 1, price: 12.5 }] };
  const receipt = await client.routeData(purchase, 'production', { timestamp: true, key: 'u1' });
  assert.deepEqual(receipt, { id: `${client.clientId}-1`, ack: 'accepted', destinations: ['production'] });
  assert.equal(fake.hellos.length, 1);
  const hello = fake.hellos[0];
  assert.equal(hello.protocol, 1);
  assert.match(hello.agent, /^fork-router\/\d+\.\d+\.\d+ node\/v\d+/);
  assert.equal(Buffer.from(hello.client).toString('hex'), client.clientId);
  assert.equal(hello.identity.toString('hex'), client.clientId, 'the routing id is the client id');
  assert.equal(fake.events.length, 1);
  const ev = fake.events[0];
  assert.equal(ev.seq, 1);
  assert.equal(ev.flags, 0);
  assert.deepEqual(ev.destinations, ['production']);
  assert.equal(ev.key, null);
  assert.deepEqual(ev.options, { timestamp: true, key: 'u1' });
  assert.deepEqual(ev.payload, purchase);
  const s = client.stats();
  assert.equal(s.connected, true);
  assert.equal(s.sent, 1);
  assert.equal(s.acked, 1);
  assert.equal(s.inFlight, 0);
  assert.equal(s.inFlightBytes, 0);
});

test('idempotencyKey travels as the event key and becomes the id', async (t) => {
  const { fake, client } = await setup(t);
  const r = await client.routeData({ a: 1 }, ['logs', 'analytics'], { idempotencyKey: 'order-7' });
  assert.equal(r.id, 'order-7');
  assert.deepEqual(r.destinations, ['logs', 'analytics']);
  assert.equal(fake.events[0].key, 'order-7');
});

test('without destinations, the receipt lists what the routes chose', async (t) => {
  const { client } = await setup(t, { route: (ev) => (ev.destinations ? undefined : ['production', 'logs']) });
  const r = await client.routeData({ event: 'purchase' });
  assert.deepEqual(r.destinations, ['production', 'logs']);
  const named = await client.routeData({ event: 'purchase' }, 'analytics');
  assert.deepEqual(named.destinations, ['analytics']);
});

test("many calls in one turn share frames and all resolve in order", async (t) => {
  const { fake, client } = await setup(t);
  const n = 20000;
  const receipts = await Promise.all(Array.from({ length: n }, (_, i) => client.routeData({ i }, 'logs')));
  assert.equal(receipts.length, n);
  receipts.forEach((r, i) => assert.equal(r.id, `${client.clientId}-${i + 1}`));
  assert.ok(fake.frames.length < n / 10, `${fake.frames.length} frames for ${n} events`);
  assert.deepEqual(
    fake.events.map((e) => e.payload.i),
    Array.from({ length: n }, (_, i) => i),
  );
  const s = client.stats();
  assert.equal(s.sent, n);
  assert.equal(s.acked, n);
  assert.equal(s.inFlight, 0);
});

test('receipts of 4 000 events acked at once: keyed, routed, delivered, nacked and plain ones interleaved, then 2 500 plain ones in a row; each right, its own, settled in order', async (t) => {
  // The addon has the JS layer make receipts, up to 1 024 per call, and
  // makes errors (and receipts with outcomes) itself: a run of receipts is
  // cut short by each of those and by its size, and nothing is reordered.
  const { fake, client } = await setup(t, { mode: 'silent' });
  const n = 4000;
  const dests = (i) => (i % 3 === 0 ? 'logs' : i % 3 === 1 ? ['production', 'analytics'] : 'production');
  const keyed = (i) => i < 1500 && i % 7 === 3;
  const delivered = (i) => i < 1400 && i % 10 === 4;
  const nacked = new Set([700, 1500, 2500]); // sequence numbers
  const order = [];
  const promises = Array.from({ length: n }, (_, i) => {
    const options = { ...(keyed(i) && { idempotencyKey: `k-${i}` }), ...(delivered(i) && { ack: 'delivered' }) };
    const p = client.routeData({ i }, dests(i), Object.keys(options).length ? options : undefined);
    p.then(
      () => order.push(i),
      () => order.push(i),
    );
    return p;
  });
  await until(() => fake.events.length === n);
  const routed = [];
  for (let seq = 5; seq <= 1400; seq += 13) routed.push([seq, ['analytics', 'logs']]);
  // Acks and nacks in frames back to back, in sequence order, while the JS
  // thread is held: the addon settles them all in one pass.
  let from = 1;
  for (const seq of [...nacked, n + 1]) {
    const list = routed.filter(([s]) => s >= from && s < seq);
    await fake.send(Buffer.concat([header(FrameType.ack), ranges([[from, seq - 1]]), ...(list.length ? [pack(list)] : [])]));
    if (seq > n) break;
    const b = Buffer.alloc(16);
    b.writeBigUInt64LE(BigInt(seq), 0);
    b.writeBigUInt64LE(BigInt(seq), 8);
    await fake.send(Buffer.concat([header(FrameType.nack), b, pack(['FORK_REJECTED', `no to ${seq}`])]));
    from = seq + 1;
  }
  const holdUntil = Date.now() + 300;
  while (Date.now() < holdUntil);
  const deliveredSeqs = [];
  for (let i = 0; i < n; i++) if (delivered(i)) deliveredSeqs.push(i + 1);
  await until(() => order.length === n - deliveredSeqs.length);
  await fake.send(Buffer.concat([header(FrameType.delivered), ranges(deliveredSeqs.map((s) => [s, s]))]));
  const results = await Promise.allSettled(promises);
  const routedBySeq = new Map(routed);
  results.forEach((result, i) => {
    const seq = i + 1;
    if (nacked.has(seq)) {
      assert.equal(result.status, 'rejected', `event ${i}`);
      assert.equal(result.reason.code, 'FORK_REJECTED');
      assert.equal(result.reason.message, `no to ${seq}`);
      return;
    }
    const r = result.value;
    assert.deepEqual(Object.keys(r), ['id', 'ack', 'destinations'], `receipt ${i}`);
    assert.equal(r.id, keyed(i) ? `k-${i}` : `${client.clientId}-${seq}`, `receipt ${i}`);
    assert.equal(r.ack, delivered(i) ? 'delivered' : 'accepted', `receipt ${i}`);
    assert.deepEqual(r.destinations, routedBySeq.get(seq) ?? [dests(i)].flat(), `receipt ${i}`);
  });
  const all = Array.from({ length: n }, (_, i) => i);
  assert.deepEqual(
    order,
    [...all.filter((i) => !delivered(i)), ...all.filter(delivered)],
    'promises settle in the order forkd answered, then confirmed delivery',
  );
  const last = results.at(-3).value;
  last.destinations.push('changed');
  assert.deepEqual(results.at(-6).value.destinations, [dests(n - 6)].flat(), 'each receipt has its own list');
});

test("ack: 'delivered' waits for kDelivered", async (t) => {
  const { fake, client } = await setup(t, { deliver: true });
  const r = await client.routeData({ a: 1 }, 'logs', { ack: 'delivered' });
  assert.equal(r.ack, 'delivered');
  assert.equal(fake.events[0].flags & FLAG_WANT_DELIVERED, FLAG_WANT_DELIVERED);
  assert.equal(client.stats().delivered, 1);
});

test("ack: 'delivered' times out when delivery is not confirmed", async (t) => {
  const { client } = await setup(t, { deliver: false });
  await assert.rejects(client.routeData({ a: 1 }, 'logs', { ack: 'delivered', timeoutMs: 300 }), (err) => {
    assert.equal(err.code, 'FORK_TIMEOUT');
    assert.match(err.message, /accepted the event, but not every destination confirmed delivery within 300 ms/);
    return true;
  });
  assert.equal(client.stats().acked, 1);
});

test('the hello asks for outcomes; a forkd that sends none gives receipts without them', async (t) => {
  const { fake, client } = await setup(t, { deliver: true });
  const r = await client.routeData({ a: 1 }, 'logs', { ack: 'delivered' });
  assert.equal(fake.hellos[0].outcomes, true);
  assert.deepEqual(r, { id: `${client.clientId}-1`, ack: 'delivered', destinations: ['logs'] });
});

test("outcomes: filtered resolves with them, dead_letter and shed reject naming destination and reason", async (t) => {
  const { client } = await setup(t, {
    deliver: true,
    welcome: { outcomes: true },
    route: (ev) => (ev.destinations ? undefined : ['production', 'analytics']),
    outcomes: (ev) =>
      ({
        filtered: [['analytics', 'filtered', '']],
        dead: [
          ['analytics', 'filtered', ''],
          ['logs', 'dead_letter', 'validate: total: required field is missing'],
        ],
        shed: [['logs', 'shed', '']],
      })[ev.payload.case],
  });
  const plain = await client.routeData({ case: 'plain' }, ['logs', 'production'], { ack: 'delivered' });
  assert.deepEqual(plain.outcomes, { logs: 'delivered', production: 'delivered' });
  const filtered = await client.routeData({ case: 'filtered' }, undefined, { ack: 'delivered' });
  assert.deepEqual(filtered.destinations, ['production', 'analytics']);
  assert.deepEqual(filtered.outcomes, { production: 'delivered', analytics: 'filtered' });
  await assert.rejects(client.routeData({ case: 'dead' }, ['analytics', 'logs'], { ack: 'delivered' }), (err) => {
    assert.ok(err instanceof ForkError);
    assert.equal(err.code, 'FORK_REJECTED');
    assert.equal(err.id, `${client.clientId}-3`);
    assert.equal(err.destination, 'logs');
    assert.equal(err.reason, 'validate: total: required field is missing');
    assert.deepEqual(err.outcomes, { analytics: 'filtered', logs: 'dead_letter' });
    assert.equal(
      err.message,
      "destination 'logs' did not store the event (dead_letter): validate: total: required field is missing",
    );
    return true;
  });
  await assert.rejects(client.routeData({ case: 'shed' }, 'logs', { ack: 'delivered' }), (err) => {
    assert.equal(err.code, 'FORK_REJECTED');
    assert.equal(err.destination, 'logs');
    assert.equal(err.reason, 'shed', 'no reason given: the outcome');
    assert.deepEqual(err.outcomes, { logs: 'shed' });
    return true;
  });
  const s = client.stats();
  assert.equal(s.delivered, 2);
  assert.equal(s.nacked, 2);
});

test('a delivered frame with a malformed outcomes trailer settles nothing', async (t) => {
  const { fake, client } = await setup(t, { welcome: { outcomes: true } });
  const call = client.routeData({ a: 1 }, 'logs', { ack: 'delivered', timeoutMs: 400 });
  await until(() => fake.events.length === 1);
  // The trailer lists only what was not plainly delivered: 'delivered' there is refused.
  await fake.send(Buffer.concat([header(6), ranges([[1, 1]]), pack([[1, [['logs', 'delivered', '']]]])]));
  await assert.rejects(call, { code: 'FORK_TIMEOUT' });
});

test('nacks reject with forkd’s code and message', async (t) => {
  const { client } = await setup(t, {
    nack: (ev) =>
      ev.destinations?.includes('nowhere')
        ? ['FORK_UNKNOWN_DESTINATION', "unknown destination 'nowhere' (configured: production, logs)"]
        : undefined,
  });
  await assert.rejects(client.routeData({ a: 1 }, ['logs', 'nowhere']), (err) => {
    assert.ok(err instanceof ForkError);
    assert.equal(err.code, 'FORK_UNKNOWN_DESTINATION');
    assert.equal(err.message, "unknown destination 'nowhere' (configured: production, logs)");
    assert.equal(err.destination, 'nowhere');
    assert.match(err.id, /-1$/);
    return true;
  });
  // Neighbours in the same frame are unaffected.
  const [ok, bad] = await Promise.allSettled([
    client.routeData({ a: 2 }, 'logs'),
    client.routeData({ a: 3 }, 'nowhere'),
  ]);
  assert.equal(ok.status, 'fulfilled');
  assert.equal(bad.reason.code, 'FORK_UNKNOWN_DESTINATION');
  assert.equal(client.stats().nacked, 2);
});

test('unknown nack codes become FORK_REJECTED', async (t) => {
  const { client } = await setup(t, { nack: () => ['SOMETHING_NEW', 'no'] });
  await assert.rejects(client.routeData({ a: 1 }, 'logs'), { code: 'FORK_REJECTED', message: 'no' });
});

test('a connected forkd that never acks gives FORK_TIMEOUT, not FORK_UNAVAILABLE', async (t) => {
  const { client } = await setup(t, { mode: 'silent' });
  const t0 = performance.now();
  await assert.rejects(client.routeData({ a: 1 }, 'logs', { timeoutMs: 300 }), {
    code: 'FORK_TIMEOUT',
    message: 'forkd did not acknowledge the event within 300 ms',
  });
  assert.ok(performance.now() - t0 < 5000); // catches a hang, with room for a loaded host
  assert.equal(client.stats().timedOut, 1);
});

test("the welcome's max_event lowers the size limit", async (t) => {
  const { client } = await setup(t, { welcome: { max_event: 100 } });
  await client.routeData({ a: 1 }, 'logs'); // connected now
  await assert.rejects(client.routeData({ s: 'x'.repeat(200) }, 'logs'), {
    code: 'FORK_TOO_LARGE',
    message: 'event is larger than the limit of 100 bytes once encoded',
  });
});

test('events queued before forkd starts are sent once it is up', async (t) => {
  const endpoint = freshEndpoint();
  const client = createClient({ endpoint, timeoutMs: 5000 });
  const pending = Array.from({ length: 10 }, (_, i) => client.routeData({ i }, 'logs'));
  await sleep(200);
  assert.equal(client.stats().sent, 0);
  const fake = await new FakeForkd({ endpoint }).start();
  t.after(async () => {
    await client.close(0);
    await fake.stop();
  });
  const receipts = await Promise.all(pending);
  assert.equal(receipts.length, 10);
  assert.equal(client.stats().resent, 0);
  assert.equal(client.stats().reconnects, 0);
});

test('after a reconnect, unacknowledged events are sent again and then acked', async (t) => {
  const endpoint = freshEndpoint();
  const first = await new FakeForkd({ endpoint, mode: 'silent' }).start();
  const client = createClient({ endpoint, timeoutMs: 8000 });
  let second;
  t.after(async () => {
    await client.close(0);
    await second?.stop();
  });
  const acked = client.routeData({ n: 1 }, 'logs');
  const pending = [acked, client.routeData({ n: 2 }, 'logs', { idempotencyKey: 'k2' })];
  await until(() => first.events.length === 2);
  await first.stop(); // forkd goes away without acking
  await until(() => client.stats().connected === false);
  second = await new FakeForkd({ endpoint }).start();
  const receipts = await Promise.all(pending);
  assert.deepEqual(
    receipts.map((r) => r.ack),
    ['accepted', 'accepted'],
  );
  assert.deepEqual(
    second.events.map((e) => [e.seq, e.payload.n, e.key]),
    [
      [1, 1, null],
      [2, 2, 'k2'],
    ],
    'the same sequence numbers, so forkd can dedupe',
  );
  const s = client.stats();
  assert.equal(s.reconnects, 1);
  assert.equal(s.resent, 2);
  assert.equal(s.sent, 2);
  assert.equal(second.hellos.length, 1, 'hello again on the new connection');
  assert.equal(second.hellos[0].identity.toString('hex'), client.clientId);
});

test('resends skip events that settled meanwhile', async (t) => {
  const endpoint = freshEndpoint();
  // The first forkd acks only even sequence numbers.
  const first = await new FakeForkd({ endpoint, nack: () => undefined, mode: 'silent' }).start();
  const client = createClient({ endpoint, timeoutMs: 8000 });
  let second;
  t.after(async () => {
    await client.close(0);
    await second?.stop();
  });
  const calls = Array.from({ length: 6 }, (_, i) => client.routeData({ i }, 'logs'));
  await until(() => first.events.length === 6);
  const b = Buffer.alloc(4 + 16 * 3);
  b.writeUInt32LE(3, 0);
  [2, 4, 6].forEach((seq, k) => {
    b.writeBigUInt64LE(BigInt(seq), 4 + 16 * k);
    b.writeBigUInt64LE(BigInt(seq), 12 + 16 * k);
  });
  await first.send(Buffer.concat([Buffer.from([1, 4]), b]));
  await until(() => client.stats().acked === 3);
  await first.stop();
  await until(() => client.stats().connected === false);
  second = await new FakeForkd({ endpoint }).start();
  await Promise.all(calls);
  assert.deepEqual(
    second.events.map((e) => e.seq),
    [1, 3, 5],
  );
  assert.deepEqual(
    second.frames.map((f) => [f.first, f.count]),
    [
      [1, 1],
      [3, 1],
      [5, 1],
    ],
    'runs of consecutive sequence numbers',
  );
  assert.equal(client.stats().resent, 3);
});

test('flush waits for acks; close flushes first', async (t) => {
  const { fake, client } = await setup(t);
  for (let i = 0; i < 100; i++) client.routeData({ i }, 'logs', { ack: 'none' });
  await client.flush(2000);
  assert.equal(client.stats().acked, 100);
  assert.equal(client.stats().inFlight, 0);
  for (let i = 0; i < 50; i++) client.routeData({ i }, 'logs', { ack: 'none' });
  await client.close(2000);
  assert.equal(fake.events.length, 150);
  assert.equal(client.stats().acked, 150);
});

test('malformed frames from forkd are ignored', async (t) => {
  const { fake, client } = await setup(t);
  await client.routeData({ a: 1 }, 'logs');
  await fake.send(Buffer.from([9, 9]));
  await fake.send(Buffer.from([1, 4, 1, 0, 0, 0]));
  await fake.send(Buffer.from([1, 5, 0]));
  await fake.send(Buffer.from([1]));
  const r = await client.routeData({ a: 2 }, 'logs');
  assert.equal(r.ack, 'accepted');
});
