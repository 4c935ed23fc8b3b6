// HTTP ingest against a real forkd: POST /v1/events with real HTTP requests.
// Events sent this way get what the addon's get (durable before the answer,
// routes, idempotency keys, 'delivered' with outcomes, the same FORK_* codes),
// and every malformed, hostile, oversized or unauthorised request is answered
// with its status and a JSON error naming the code and the path.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, rmSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { createClient } from '../../js/index.mjs';
import { startForkd, tempConfig, readJsonl, endpointFor, freePort } from './helpers.mjs';

const TOKEN = 'http-ingest-test-token-0123456789';

let dir, forkd, port, url, client, adminPort;

const configFor = (ingestPort, closed, adminPort) => `
data_dir: ./.fork
admin: 127.0.0.1:${adminPort}
http_ingest: { listen: 127.0.0.1:${ingestPort}, token: ${TOKEN}, max_body: 256KiB, timeout: 3s }
limits: { max_event: 64KiB }
dedupe: { window: 1h }
destinations:
  logs: { type: file, path: ./out/logs.jsonl, batch: { max_wait: 10ms } }
  orders: { type: file, path: ./out/orders.jsonl, batch: { max_wait: 10ms } }
  checked:
    type: file
    path: ./out/checked.jsonl
    batch: { max_wait: 10ms }
    transforms:
      - validate: { required: [total], on_fail: dead_letter }
  big_only:
    type: file
    path: ./out/big_only.jsonl
    batch: { max_wait: 10ms }
    transforms:
      - filter: 'total > 100'
  stuck:
    type: http
    url: http://127.0.0.1:${closed}/events
    connect_timeout: 1s
    retry: { initial: 1s, max: 1s }
    backlog: { max_events: 3, policy: block }
routes:
  - { when: 'event == "purchase"', to: [orders, logs] }
`;

const read = (name) => {
  const p = path.join(dir, 'out', `${name}.jsonl`);
  return existsSync(p) ? readJsonl(p) : [];
};

async function closedPort() {
  return freePort();
}

async function post(body, { type = 'application/json', token = TOKEN, method = 'POST', headers = {} } = {}) {
  const h = { ...headers };
  if (type !== null) h['content-type'] = type;
  if (token !== null) h.authorization = `Bearer ${token}`;
  const res = await fetch(url, {
    method,
    headers: h,
    body: method === 'GET' ? undefined : typeof body === 'string' || body instanceof Uint8Array ? body : JSON.stringify(body),
  });
  const text = await res.text();
  let json;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: res.status, headers: res.headers, json, text };
}

// Polls until `fn` returns true (a store is written after the ack).
async function until(fn, ms = 5000) {
  const t0 = Date.now();
  while (!fn()) {
    if (Date.now() - t0 > ms) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, 20));
  }
}

before(async () => {
  port = await freePort();
  url = `http://127.0.0.1:${port}/v1/events`;
  let config;
  adminPort = await freePort();
  ({ dir, config } = tempConfig(configFor(port, await closedPort(), adminPort), 'fork-http-ingest-'));
  forkd = await startForkd(config);
  client = createClient({ endpoint: endpointFor(dir), timeoutMs: 10000 });
});

after(async () => {
  await client?.close(0);
  if (forkd) {
    const r = await forkd.stop('SIGTERM');
    assert.equal(r.code, 0, `forkd exits 0 on SIGTERM with HTTP ingest on:\n${forkd.stderr()}`);
  }
  rmSync(dir, { recursive: true, force: true });
});

test('one event: 200 with a receipt shaped like the addon\'s, the event already in the log, then in the store', async () => {
  const r = await post({ payload: { n: 1, s: 'héllo 😀', nested: { a: [1, 2.5, null, true] } }, destination: 'logs' });
  assert.equal(r.status, 200, r.text);
  assert.match(r.json.id, /^[0-9a-f]{32}-\d+$/);
  assert.deepEqual({ ...r.json, id: undefined }, { id: undefined, ack: 'accepted', destinations: ['logs'] });
  await until(() => read('logs').some((x) => x._fork_id === r.json.id));
  const rec = read('logs').find((x) => x._fork_id === r.json.id);
  assert.deepEqual(rec, { _fork_id: r.json.id, n: 1, s: 'héllo 😀', nested: { a: [1, 2.5, null, true] } });
});

test('a JSON array: one receipt per event, in order; the routes name the destinations of events that name none', async () => {
  const r = await post([
    { payload: { event: 'purchase', total: 5 } },
    { payload: { m: 2 }, destination: ['logs', 'orders'], options: { timestamp: { field: 'at', format: 'epoch_ms' } } },
  ]);
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.length, 2);
  assert.deepEqual(r.json[0].destinations.sort(), ['logs', 'orders']);
  assert.deepEqual(r.json[1].destinations, ['logs', 'orders']);
  await until(() => read('orders').some((x) => x._fork_id === r.json[1].id));
  assert.equal(typeof read('orders').find((x) => x._fork_id === r.json[1].id).at, 'number');
});

test('NDJSON: one event per line, blank lines skipped, answered with an array of receipts', async () => {
  const body = '{"payload":{"line":1},"destination":"logs"}\n\n{"payload":{"line":2},"destination":"logs"}\r\n';
  const r = await post(body, { type: 'application/x-ndjson' });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.length, 2);
  await until(() => read('logs').filter((x) => x.line).length === 2);
});

test('idempotencyKey dedupes across HTTP requests and the addon: one record, every receipt with the key as id', async () => {
  const a = await post({ payload: { v: 'first' }, destination: 'orders', options: { idempotencyKey: 'http-key-1' } });
  const b = await post([{ payload: { v: 'again' }, destination: 'orders', options: { idempotencyKey: 'http-key-1' } }]);
  const c = await client.routeData({ v: 'addon' }, 'orders', { idempotencyKey: 'http-key-1', ack: 'delivered' });
  assert.equal(a.json.id, 'http-key-1');
  assert.equal(b.json[0].id, 'http-key-1');
  assert.equal(c.id, 'http-key-1');
  const d = await post({ payload: { v: 'last' }, destination: 'orders', options: { idempotencyKey: 'http-key-1', ack: 'delivered' } });
  assert.equal(d.status, 200, d.text);
  const recs = read('orders').filter((x) => x._fork_id === 'http-key-1');
  assert.deepEqual(recs, [{ _fork_id: 'http-key-1', v: 'first' }]);
});

test("ack 'delivered': answered once stored, with outcomes; a filtered destination says 'filtered'", async () => {
  const r = await post({ payload: { total: 7 }, destination: ['logs', 'big_only'], options: { ack: 'delivered' } });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.ack, 'delivered');
  assert.deepEqual(r.json.outcomes, { logs: 'delivered', big_only: 'filtered' });
  assert.ok(read('logs').some((x) => x._fork_id === r.json.id), "'delivered' means in the store when the answer comes");
});

test("ack 'delivered' to a destination that dead-letters: 422 FORK_REJECTED naming it, its reason and every outcome", async () => {
  const r = await post({ payload: { n: 1 }, destination: ['logs', 'checked'], options: { ack: 'delivered', idempotencyKey: 'no-total-http' } });
  assert.equal(r.status, 422, r.text);
  const e = r.json.error;
  assert.equal(e.code, 'FORK_REJECTED');
  assert.equal(e.id, 'no-total-http');
  assert.equal(e.destination, 'checked');
  assert.match(e.reason, /validate: total: required field is missing/);
  assert.deepEqual(e.outcomes, { logs: 'delivered', checked: 'dead_letter' });
});

test("ack 'none' answers without waiting, with receipts of level 'none'", async () => {
  const r = await post({ payload: { quick: true }, destination: 'logs', options: { ack: 'none' } });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.ack, 'none');
  await until(() => read('logs').some((x) => x.quick));
});

test('401 without a token (with WWW-Authenticate), 403 with a wrong one or another scheme; nothing is stored', async () => {
  const before = read('logs').length;
  const none = await post({ payload: { sneaky: 1 }, destination: 'logs' }, { token: null });
  assert.equal(none.status, 401, none.text);
  assert.match(none.headers.get('www-authenticate'), /^Bearer/);
  assert.match(none.json.error.message, /Authorization: Bearer/);
  const wrong = await post({ payload: { sneaky: 2 }, destination: 'logs' }, { token: 'not-the-token-at-all-0000' });
  assert.equal(wrong.status, 403, wrong.text);
  assert.equal(wrong.json.error.message, 'wrong ingest token');
  const basic = await post({ payload: { sneaky: 3 }, destination: 'logs' }, { token: null, headers: { authorization: 'Basic eDp5' } });
  assert.equal(basic.status, 403, basic.text);
  await new Promise((r) => setTimeout(r, 100));
  assert.equal(read('logs').length, before);
  assert.ok(!read('logs').some((x) => x.sneaky));
});

test('405 for other methods (with Allow: POST), 404 for other paths, 415 for another Content-Type', async () => {
  const get = await post(undefined, { method: 'GET', type: null });
  assert.equal(get.status, 405);
  assert.equal(get.headers.get('allow'), 'POST');
  const put = await post({ payload: {} }, { method: 'PUT' });
  assert.equal(put.status, 405);
  const other = await fetch(`http://127.0.0.1:${port}/v1/other`, { method: 'POST', headers: { authorization: `Bearer ${TOKEN}` }, body: '{}' });
  assert.equal(other.status, 404);
  const text = await post('{"payload":{}}', { type: 'text/plain' });
  assert.equal(text.status, 415, text.text);
  assert.equal(text.json.error.code, 'FORK_INVALID_PAYLOAD');
  const missing = await post(new TextEncoder().encode('{"payload":{}}'), { type: null });
  assert.equal(missing.status, 415, missing.text);
  const charset = await post('{"payload":{"cs":1},"destination":"logs"}', { type: 'application/json; charset=utf-8' });
  assert.equal(charset.status, 200, charset.text);
});

test('400 with the addon\'s codes and the path of what is wrong; nothing of a malformed body is stored', async () => {
  const cases = [
    [[{ payload: { ok: 1 }, destination: 'logs' }, { payload: { ok: 2 }, destination: 'logs', options: { ack: 'soon' } }], 'FORK_INVALID_PAYLOAD', '[1].options.ack'],
    [{ payload: { ok: 3 }, destination: 'logs', options: { timeoutMs: -5 } }, 'FORK_INVALID_PAYLOAD', 'options.timeoutMs'],
    [{ payload: { ok: 4 }, destination: 'logs', options: { bogus: true } }, 'FORK_INVALID_PAYLOAD', 'options.bogus'],
    [{ payload: [1, 2], destination: 'logs' }, 'FORK_INVALID_PAYLOAD', 'payload'],
    [{ destination: 'logs' }, 'FORK_INVALID_PAYLOAD', 'payload'],
    [{ payload: { ok: 5 }, destination: ['logs', 7] }, 'FORK_INVALID_PAYLOAD', 'destination[1]'],
    ['{"payload":{"ok":6,"a":[1,2,}},"destination":"logs"}', 'FORK_INVALID_PAYLOAD', 'payload.a[2]'],
    ['{"payload":{"ok":7}', 'FORK_INVALID_PAYLOAD', ''],
    ['{"payload":{"ok":8,"s":"\u0001"},"destination":"logs"}', 'FORK_INVALID_PAYLOAD', 'payload.s'],
    [Buffer.from('{"payload":{"ok":9,"s":"\xff"},"destination":"logs"}', 'latin1'), 'FORK_INVALID_PAYLOAD', 'payload.s'],
    ['{"payload":{"ok":10,"n":NaN},"destination":"logs"}', 'FORK_INVALID_PAYLOAD', 'payload.n'],
    ['[]', 'FORK_INVALID_PAYLOAD', ''],
    ['', 'FORK_INVALID_PAYLOAD', ''],
    [`{"payload":{"ok":11,"deep":${'['.repeat(100000)}`, 'FORK_INVALID_PAYLOAD', `payload.deep${'[0]'.repeat(63)}`],
  ];
  for (const [body, code, where] of cases) {
    const r = await post(body);
    assert.equal(r.status, 400, `${String(body).slice(0, 80)} -> ${r.text}`);
    assert.equal(r.json.error.code, code);
    assert.equal(r.json.error.path, where, r.json.error.message);
  }
  await new Promise((r) => setTimeout(r, 100));
  assert.ok(!read('logs').some((x) => x.ok), 'a body with any malformed event stores none of its events');
});

test('an unknown destination: 400 FORK_UNKNOWN_DESTINATION for that event, with every event\'s result', async () => {
  const r = await post([
    { payload: { u: 1 }, destination: 'logs' },
    { payload: { u: 2 }, destination: 'nope' },
  ]);
  assert.equal(r.status, 400, r.text);
  assert.equal(r.json.error.code, 'FORK_UNKNOWN_DESTINATION');
  assert.equal(r.json.error.path, '[1]');
  assert.match(r.json.error.message, /unknown destination 'nope'/);
  assert.equal(r.json.results[0].ack, 'accepted');
  assert.equal(r.json.results[1].error.code, 'FORK_UNKNOWN_DESTINATION');
});

test('413: an event over limits.max_event (FORK_TOO_LARGE with its path), and a body over max_body', async () => {
  const big = await post([{ payload: { small: 1 }, destination: 'logs' }, { payload: { s: 'x'.repeat(70 * 1024) }, destination: 'logs' }]);
  assert.equal(big.status, 413, big.text);
  assert.equal(big.json.error.code, 'FORK_TOO_LARGE');
  assert.equal(big.json.error.path, '[1]');
  const events = Array.from({ length: 300 }, (_, i) => ({ payload: { i, pad: 'y'.repeat(1000) }, destination: 'logs' }));
  const huge = await post(events);
  assert.equal(huge.status, 413, huge.text);
  assert.equal(huge.json.error.code, 'FORK_TOO_LARGE');
});

test('a Content-Length claiming gigabytes is refused with 413 before a byte of it is read', async () => {
  const answer = await new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1', () => {
      s.write(
        `POST /v1/events HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nAuthorization: Bearer ${TOKEN}\r\n` +
          'Content-Type: application/json\r\nContent-Length: 10000000000\r\n\r\n{"payload":',
      );
    });
    let data = '';
    s.on('data', (d) => {
      data += d;
      if (data.includes('\r\n\r\n')) s.destroy();
    });
    s.on('close', () => resolve(data));
    s.on('error', reject);
    setTimeout(() => s.destroy(), 3000);
  });
  assert.match(answer, /^HTTP\/1\.1 413/);
});

test('backpressure: events for a destination past its backlog quota get 429 FORK_BACKPRESSURE with Retry-After; others still go', async () => {
  let refused;
  for (let i = 0; i < 200 && refused === undefined; i++) {
    const r = await post({ payload: { i }, destination: 'stuck', options: { ack: 'accepted' } });
    if (r.status === 429) refused = r;
    else assert.equal(r.status, 200, r.text);
    await new Promise((res) => setTimeout(res, 50));
  }
  assert.ok(refused, 'a 429 came within 200 requests');
  assert.equal(refused.json.error.code, 'FORK_BACKPRESSURE');
  assert.equal(refused.headers.get('retry-after'), '1');
  const other = await post({ payload: { fine: true }, destination: 'logs' });
  assert.equal(other.status, 200, other.text);
});

test('keep-alive: many requests over one connection, each answered in turn', async () => {
  const t0 = Date.now();
  for (let i = 0; i < 50; i++) {
    const r = await post(Array.from({ length: 10 }, (_, k) => ({ payload: { ka: i * 10 + k }, destination: 'logs' })));
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.length, 10);
  }
  await until(() => read('logs').filter((x) => x.ka !== undefined).length === 500, 10000);
  assert.ok(Date.now() - t0 < 20000);
});

test('/metrics counts HTTP ingest requests, events answered with receipts, and refusals', async () => {
  const text = await (await fetch(`http://127.0.0.1:${adminPort}/metrics`)).text();
  const value = (name) => Number((text.match(new RegExp(`^${name} (\\S+)$`, 'm')) || [])[1]);
  assert.ok(value('fork_http_ingest_requests_total') > 50, text);
  assert.ok(value('fork_http_ingest_events_total') > 500);
  assert.ok(value('fork_http_ingest_refused_total') >= 20);
});

test("a connection ingest forgot while idle (limits.client_idle) says hello again: the next request is answered, not refused", async () => {
  const p = await freePort();
  const ap = await freePort();
  const { dir: d, config } = tempConfig(
    `
data_dir: ./.fork
admin: 127.0.0.1:${ap}
http_ingest: { listen: 127.0.0.1:${p}, token: ${TOKEN}, threads: 1 }
limits: { client_idle: 1s }
destinations:
  logs: { type: file, path: ./out/logs.jsonl, batch: { max_wait: 10ms } }
`,
    'fork-http-idle-',
  );
  const f = await startForkd(config);
  try {
    const send = (n) =>
      fetch(`http://127.0.0.1:${p}/v1/events`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${TOKEN}` },
        body: JSON.stringify({ payload: { n }, destination: 'logs' }),
      });
    assert.equal((await send(1)).status, 200);
    // Idle past client_idle and the next once-a-second sweep: wait until ingest
    // counts its one client (the http ingest connection) forgotten.
    const forgotten = async () =>
      Number((await (await fetch(`http://127.0.0.1:${ap}/metrics`)).text()).match(/^fork_ingest_forgotten_clients_total (\S+)$/m)?.[1]);
    for (const deadline = Date.now() + 15000; !((await forgotten()) >= 1); ) {
      assert.ok(Date.now() < deadline, 'the idle connection forgotten within 15 s');
      await new Promise((r) => setTimeout(r, 100));
    }
    const again = await send(2);
    assert.equal(again.status, 200, await again.text());
    const file = path.join(d, 'out', 'logs.jsonl');
    await until(() => existsSync(file) && readJsonl(file).length === 2);
    assert.deepEqual(readJsonl(file).map((r) => r.n), [1, 2]);
    const hellos = f.stderr().match(/client [0-9a-f]{32} connected \(forkd\/http-ingest\)/g) ?? [];
    assert.equal(hellos.length, 2, `one hello, then another after ingest forgot the client:\n${f.stderr()}`);
  } finally {
    await f.stop();
    rmSync(d, { recursive: true, force: true });
  }
});
