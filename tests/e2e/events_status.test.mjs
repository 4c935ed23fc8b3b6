// Per-event status (GET /api/events/<id> and `forkd status --event`): one
// forkd with an http destination in front of a real local server, a file
// destination, one behind a filter and one behind a validate step. Each test
// follows one event through failure, dead-lettering, recovery or a filter,
// and checks what the admin API and the command line say about it.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { spawnSync } from 'node:child_process';
import { rmSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { createClient } from '../../js/index.mjs';
import { FORKD, startForkd, tempConfig, endpointFor, freePort } from './helpers.mjs';
import { startHttpTarget } from './fixtures/http_target.mjs';

let dir, config, port, forkd, target, client;

before(async () => {
  target = await startHttpTarget();
  port = await freePort();
  const destinations = {
    // Quick retries, no breaker: attempts count up fast; no give-up.
    hook: { type: 'http', url: target.url, retry: { initial: '50ms', max: '200ms' }, breaker: { failures: 0 },
            batch: { max_wait: '10ms' } },
    logs: { type: 'file', format: 'jsonl', path: './out/logs.jsonl', batch: { max_wait: '10ms' } },
    big: { type: 'file', format: 'jsonl', path: './out/big.jsonl', batch: { max_wait: '10ms' },
           transforms: [{ filter: 'amount > 100' }] },
    checked: { type: 'file', format: 'jsonl', path: './out/checked.jsonl', batch: { max_wait: '10ms' },
               transforms: [{ validate: { required: ['total'], on_fail: 'dead_letter' } }] },
  };
  ({ dir, config } = tempConfig(
    [
      `admin: 127.0.0.1:${port}`,
      `destinations: ${JSON.stringify(destinations)}`,
      'routes:',
      "  - { when: 'amount > 1000', to: [logs] }",
      '',
    ].join('\n'),
    'fork-events-',
  ));
  forkd = await startForkd(config);
  client = createClient({ endpoint: endpointFor(dir) });
});

after(async () => {
  await client?.close();
  await forkd?.stop();
  await target?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

// GET /api/events/<raw path>: { status, body }.
function get(rawPath) {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path: `/api/events/${rawPath}` }, (res) => {
      let text = '';
      res.on('data', (d) => (text += d));
      res.on('end', () => {
        let body;
        try {
          body = JSON.parse(text);
        } catch {
          body = text;
        }
        resolve({ status: res.statusCode, body });
      });
    });
    req.on('error', reject);
  });
}

const lookup = (id) => get(encodeURIComponent(id));
const dest = (body, name) => body.destinations.find((d) => d.name === name);

async function until(what, fn, timeoutMs = 15000) {
  const t0 = Date.now();
  let last;
  for (;;) {
    last = await fn();
    if (last.ok) return last.value;
    if (Date.now() - t0 > timeoutMs) throw new Error(`timed out waiting for ${what}; last: ${JSON.stringify(last.value)}`);
    await sleep(50);
  }
}

// Waits until the event's answer for `name` satisfies `pred`; returns the whole answer.
async function untilDest(id, name, pred, what) {
  return until(what, async () => {
    const r = await lookup(id);
    return { ok: r.status === 200 && pred(dest(r.body, name) ?? {}), value: r.body };
  });
}

test('an event to a failing http destination is pending with its attempts, then delivered once the server recovers', async () => {
  target.status(500);
  const receipt = await client.routeData({ order: 1 }, 'hook');
  assert.match(receipt.id, /^[0-9a-f]{32}-\d+$/);
  const pending = await untilDest(receipt.id, 'hook', (d) => d.status === 'pending' && d.attempts >= 2,
    'hook pending with 2 attempts');
  const hook = dest(pending, 'hook');
  assert.equal(hook.state, 'retrying');
  assert.match(hook.last_error, /500/);
  assert.equal(pending.id, receipt.id);
  assert.ok(pending.lsn >= 1);
  assert.ok(Date.parse(pending.received_at) <= Date.now());
  // Routed by the caller to hook only: the others were not chosen.
  assert.equal(dest(pending, 'logs').status, 'filtered');
  assert.equal(dest(pending, 'logs').by, 'routes');

  const failingSince = Date.now();
  target.ok();
  const delivered = await untilDest(receipt.id, 'hook', (d) => d.status === 'delivered', 'hook delivered');
  const d = dest(delivered, 'hook');
  assert.ok(target.records.has(receipt.id), 'the server has the record');
  // Delivered between two samples of the destination's position, after it recovered.
  assert.ok(Date.parse(d.delivered_at) >= failingSince - 100, `${d.delivered_at} after recovery`);
  assert.ok(Date.parse(d.delivered_after) <= Date.parse(d.delivered_at));
  // Seen short of it while the server failed, until about when it recovered.
  assert.ok(Date.parse(d.delivered_after) >= failingSince - 100, `${d.delivered_after} near recovery`);
});

test('an event the http server refuses for good is dead_lettered with the reason', async () => {
  const key = 'poison-order-7';
  target.poison(key);
  await client.routeData({ order: 7 }, 'hook', { idempotencyKey: key });
  const body = await untilDest(key, 'hook', (d) => d.status === 'dead_lettered', 'hook dead_lettered');
  const d = dest(body, 'hook');
  assert.match(d.reason, /400/);
  assert.ok(d.attempts >= 1);
  assert.match(d.file, /dead_letters\/hook\.jsonl$/);
  target.ok();
});

test('an event a validate step refuses is dead_lettered with the step reason', async () => {
  const receipt = await client.routeData({ n: 1 }, 'checked');
  const body = await untilDest(receipt.id, 'checked', (d) => d.status === 'dead_lettered', 'checked dead_lettered');
  assert.match(dest(body, 'checked').reason, /total/);
});

test('an event a filter step drops is filtered by transforms, and destinations no route chose are filtered by routes', async () => {
  const receipt = await client.routeData({ amount: 5 }, 'big');
  const r = await lookup(receipt.id);
  assert.equal(r.status, 200);
  assert.deepEqual(
    { status: dest(r.body, 'big').status, by: dest(r.body, 'big').by },
    { status: 'filtered', by: 'transforms' },
  );
  // Routed by the config's routes (no destination named): logs matched, big did not.
  const routed = await client.routeData({ amount: 5000 });
  const body = await untilDest(routed.id, 'logs', (d) => d.status === 'delivered', 'logs delivered');
  assert.equal(dest(body, 'big').status, 'filtered');
  assert.equal(dest(body, 'big').reason, 'no route sent it here');
});

test('an idempotency key finds its event, delivered to a file destination', async () => {
  const key = 'order-1234';
  const receipt = await client.routeData({ order: 1234 }, 'logs', { idempotencyKey: key });
  assert.equal(receipt.id, key);
  const body = await untilDest(key, 'logs', (d) => d.status === 'delivered', 'logs delivered');
  assert.equal(body.id, key);
  assert.equal(typeof dest(body, 'logs').delivered_at, 'string');
});

test('an unknown id is a 404 that names the id', async () => {
  const id = '0123456789abcdef0123456789abcdef-999999';
  const r = await lookup(id);
  assert.equal(r.status, 404);
  assert.equal(r.body.id, id);
  assert.match(r.body.error, new RegExp(id));
});

test('hostile ids (too long, control bytes, not UTF-8) are a 400 with a JSON error', async () => {
  for (const raw of [encodeURIComponent('k'.repeat(1000)), 'a%00b', '%ff%fe', 'x%0Ay']) {
    const r = await get(raw);
    assert.equal(r.status, 400, raw);
    assert.equal(typeof r.body.error, 'string', raw);
  }
  // Still answering.
  assert.equal((await lookup('order-1234')).status, 200);
});

test('forkd status --event prints the event per destination, --json the API answer, and exit 1 for an unknown id', async () => {
  const key = 'order-cli';
  await client.routeData({ order: 2 }, 'logs', { idempotencyKey: key });
  await untilDest(key, 'logs', (d) => d.status === 'delivered', 'logs delivered');
  const table = spawnSync(FORKD, ['status', '--config', config, '--event', key], { encoding: 'utf8' });
  assert.equal(table.status, 0, table.stderr);
  assert.match(table.stdout, /^event order-cli$/m);
  assert.match(table.stdout, /^lsn \d+, received \d{4}-/m);
  assert.match(table.stdout, /^logs\s+delivered\s/m);
  assert.match(table.stdout, /^big\s+filtered \(routes\)/m);
  const json = spawnSync(FORKD, ['status', '--config', config, '--event', key, '--json'], { encoding: 'utf8' });
  assert.equal(json.status, 0, json.stderr);
  assert.equal(JSON.parse(json.stdout).id, key);
  const unknown = spawnSync(FORKD, ['status', '--config', config, '--event', 'no-such-event'], { encoding: 'utf8' });
  assert.equal(unknown.status, 1);
  assert.match(unknown.stderr, /no-such-event/);
});

test('/metrics reports the event index: its entries, its bytes, and how far it trails the log', async () => {
  const text = await new Promise((resolve, reject) => {
    http.get({ host: '127.0.0.1', port, path: '/metrics' }, (res) => {
      let t = '';
      res.on('data', (d) => (t += d));
      res.on('end', () => resolve(t));
    }).on('error', reject);
  });
  const value = (name) => Number(text.match(new RegExp(`^${name} (\\S+)$`, 'm'))?.[1]);
  assert.ok(value('fork_event_index_entries') >= 7, text); // the events sent so far
  assert.ok(value('fork_event_index_bytes') > 0);
  assert.ok(value('fork_event_index_lag_events') >= 0);
});

test('forkd status --event, with forkd stopped, reads the log, cursors and dead letters itself', async () => {
  const key = 'order-offline';
  await client.routeData({ order: 3 }, 'logs', { idempotencyKey: key });
  await untilDest(key, 'logs', (d) => d.status === 'delivered', 'logs delivered');
  const refused = await client.routeData({ n: 2 }, 'checked');
  await untilDest(refused.id, 'checked', (d) => d.status === 'dead_lettered', 'checked dead_lettered');
  await client.close();
  client = null;
  const { code } = await forkd.stop();
  assert.equal(code, 0);
  forkd = null;
  const r = spawnSync(FORKD, ['status', '--config', config, '--event', key, '--json'], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stderr, /forkd is not running: read from its log, cursors and dead letters/);
  const body = JSON.parse(r.stdout);
  assert.equal(body.id, key);
  assert.equal(dest(body, 'logs').status, 'delivered');
  assert.equal(typeof dest(body, 'logs').delivered_at, 'string');
  assert.equal(dest(body, 'big').status, 'filtered');
  const letter = spawnSync(FORKD, ['status', '--config', config, '--event', refused.id], { encoding: 'utf8' });
  assert.equal(letter.status, 0, letter.stderr);
  assert.match(letter.stdout, /^checked\s+dead_lettered\s+.*total/m);
  const unknown = spawnSync(FORKD, ['status', '--config', config, '--event', 'no-such-event'], { encoding: 'utf8' });
  assert.equal(unknown.status, 1);
  assert.match(unknown.stderr, /no event with id no-such-event is in the retained log/);
});

test('ids older than the retained log are expired: a receipt id, and an idempotency key the dedupe journal remembers', async () => {
  const p = await freePort();
  const { dir: d, config: c } = tempConfig(
    [
      `admin: 127.0.0.1:${p}`,
      'wal: { segment_bytes: 64KiB, retention: { max_age: 0 } }',
      "destinations: { logs: { type: file, format: jsonl, path: ./out/logs.jsonl, batch: { max_wait: '10ms' } } }",
      '',
    ].join('\n'),
    'fork-events-expired-',
  );
  const f = await startForkd(c);
  const cl = createClient({ endpoint: endpointFor(d) });
  try {
    const first = await cl.routeData({ n: 0, pad: 'x'.repeat(2000) }, 'logs');
    await cl.routeData({ n: 1, pad: 'x'.repeat(2000) }, 'logs', { idempotencyKey: 'old-order' });
    // Enough to fill several segments; every one delivered, so retention deletes them.
    for (let i = 2; i < 200; i++) await cl.routeData({ n: i, pad: 'x'.repeat(2000) }, 'logs');
    const getOn = (id) =>
      new Promise((resolve, reject) => {
        http.get({ host: '127.0.0.1', port: p, path: `/api/events/${encodeURIComponent(id)}` }, (res) => {
          let t = '';
          res.on('data', (x) => (t += x));
          res.on('end', () => resolve({ status: res.statusCode, body: JSON.parse(t) }));
        }).on('error', reject);
      });
    const expired = await until('the first receipt id expired', async () => {
      const r = await getOn(first.id);
      return { ok: r.status === 200 && r.body.status === 'expired', value: r };
    });
    assert.ok(expired.body.retained_from_lsn > 1);
    const key = await until('the old key expired', async () => {
      const r = await getOn('old-order');
      return { ok: r.status === 200 && r.body.status === 'expired', value: r };
    });
    assert.equal(key.body.lsn, 2);
    assert.equal(typeof key.body.received_at, 'string');
    // A client never seen is still unknown.
    assert.equal((await getOn('00000000000000000000000000000001-1')).status, 404);
  } finally {
    await cl.close();
    await f.stop();
    rmSync(d, { recursive: true, force: true });
  }
});
