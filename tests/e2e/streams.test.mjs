// `stream` destinations: a destination's records served live as
// Server-Sent Events at GET /streams/<name>, resumable exactly after any id,
// through forkd restarts (kill -9 included), with explicit resets past
// retention, overflow for a subscriber that reads too slowly, keep-alives,
// and public, token or admin access.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { rmSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { createClient, subscribe, streamResponse } from '../../js/index.mjs';
import { startForkd, tempConfig, endpointFor, freePort } from './helpers.mjs';

const cleanups = [];
after(async () => {
  for (const c of cleanups.reverse()) await c();
});

// Reads raw SSE for `ms` (or until `until(text)` holds for the whole messages
// read so far, or `signal` aborts), returning the text and status. `onOpen(status)`
// is called once the response headers are in: forkd registers a subscriber
// before it sends them, so from then on the subscriber gets what is routed.
async function readRaw(url, { headers = {}, ms = 1500, until, onOpen, signal } = {}) {
  const ac = new AbortController();
  const timer = setTimeout(() => ac.abort(), ms);
  signal?.addEventListener('abort', () => ac.abort());
  let text = '';
  let status = 0;
  let responseHeaders;
  try {
    const r = await fetch(url, { headers, signal: ac.signal });
    onOpen?.(r.status);
    status = r.status;
    responseHeaders = r.headers;
    for await (const chunk of r.body) {
      text += Buffer.from(chunk).toString('utf8');
      // `until` sees whole messages only: a chunk may end inside a record
      // that mentions what it waits for.
      if (until && until(text.slice(0, text.lastIndexOf('\n\n') + 2))) break;
    }
  } catch (e) {
    if (e.name !== 'AbortError') throw e;
  } finally {
    clearTimeout(timer);
    ac.abort();
  }
  return { status, text, headers: responseHeaders };
}

// readRaw, with `opened`: resolves with the status once the headers are in and
// so the subscriber is registered (or once the read is over, whichever comes
// first, so that a failed read does not hang).
function readRawOpen(url, options) {
  let onOpen;
  const open = new Promise((resolve) => (onOpen = resolve));
  const done = readRaw(url, { ...options, onOpen });
  return { done, opened: Promise.race([open, done.then((x) => x.status)]) };
}

// The status and headers of a GET sent with node:http (fetch does not let a
// test set Host).
function statusWithHost(url, host) {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { headers: { Host: host } }, (res) => {
      let body = '';
      res.on('data', (d) => {
        body += d;
        if (res.statusCode === 200) req.destroy();
      });
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body }));
      res.on('close', () => resolve({ status: res.statusCode, headers: res.headers, body }));
    });
    req.on('error', reject);
  });
}

// The messages of an SSE text: [{ id, event, data }]. As in a browser, a
// block the connection's end cut short (no blank line after it) is dropped.
function messages(text) {
  const out = [];
  const blocks = text.split('\n\n');
  blocks.pop(); // what follows the last blank line: empty, or cut short
  for (const block of blocks) {
    const m = { id: null, event: 'message', data: null };
    let any = false;
    for (const line of block.split('\n')) {
      const [, k, v] = line.match(/^([a-z]+): ?(.*)$/) || [];
      if (k === 'id') (m.id = v), (any = true);
      if (k === 'event') (m.event = v), (any = true);
      if (k === 'data') (m.data = JSON.parse(v)), (any = true);
    }
    if (any && (m.data !== null || m.event !== 'message')) out.push(m);
  }
  return out;
}

async function rig(yaml, prefix) {
  const port = await freePort();
  const t = tempConfig(`data_dir: ./.fork\nadmin: 127.0.0.1:${port}\n${yaml}`, prefix);
  cleanups.push(() => rmSync(t.dir, { recursive: true, force: true }));
  let forkd = await startForkd(t.config);
  const client = createClient({ endpoint: endpointFor(t.dir) });
  cleanups.push(() => client.close());
  const base = `http://127.0.0.1:${port}`;
  return {
    ...t,
    base,
    client,
    forkd: () => forkd,
    async restart(signal = 'SIGTERM') {
      await forkd.stop(signal);
      forkd = await startForkd(t.config);
    },
    async stop() {
      await forkd.stop();
    },
  };
}

test('a subscriber resuming after any id gets exactly the records after it, from the ring or (further back) from the log', { timeout: 60_000 }, async () => {
  const r = await rig(`destinations:\n  ticker: { type: stream, buffer: 10, public: true }\n  other: { type: stdout }\n`, 'fork-streams-');
  cleanups.push(() => r.stop());
  const sent = [];
  for (let i = 0; i < 40; i++) {
    const rec = await r.client.routeData({ i, amount: i * 1.5 }, i % 5 === 4 ? 'other' : 'ticker', { ack: 'delivered' });
    if (i % 5 !== 4) sent.push({ i, id: rec.id });
  }
  // From the start: 32 records, 22 of them from the log (the ring keeps 10).
  const all = messages((await readRaw(`${r.base}/streams/ticker?after=0`, { until: (t) => t.includes('"i":38') })).text);
  assert.deepEqual(all.map((m) => m.data.i), sent.map((s) => s.i));
  assert.deepEqual(all.map((m) => m.data._fork_id), sent.map((s) => s.id));
  const ids = all.map((m) => m.id);
  assert.equal(new Set(ids).size, ids.length, 'ids are distinct');
  // After each id: exactly what follows, whether it is in the ring or not.
  for (const k of [0, 5, 20, 25, 30]) {
    // Until the last record sent (i 38; 39 went to `other`): nothing follows it.
    const rest = messages((await readRaw(`${r.base}/streams/ticker`, { headers: { 'Last-Event-ID': ids[k] }, ms: 15000, until: (t) => t.includes('"i":38') })).text);
    assert.deepEqual(rest.map((m) => m.data.i), sent.slice(k + 1).map((s) => s.i), `after ${ids[k]}`);
  }
  // Without a position: only what comes next.
  const live = readRawOpen(`${r.base}/streams/ticker`, { ms: 15000, until: (t) => t.includes('"i":100') });
  await live.opened;
  await r.client.routeData({ i: 100 }, 'ticker', { ack: 'delivered' });
  assert.deepEqual(messages((await live.done).text).map((m) => m.data.i), [100]);
});

test('subscribe() follows a stream across a kill -9 and restart of forkd without losing or repeating a record', { timeout: 90_000 }, async () => {
  const r = await rig(`destinations:\n  ticker: { type: stream, buffer: 50, public: true }\n`, 'fork-streams-kill-');
  cleanups.push(() => r.stop());
  const ac = new AbortController();
  const got = [];
  const reader = (async () => {
    for await (const m of subscribe('ticker', { url: r.base, after: '0', signal: ac.signal })) {
      assert.ok(!m.reset, `no reset expected: ${m.reason}`);
      got.push(m.record.i);
    }
  })();
  const sentIds = [];
  let i = 0;
  const send = async (n) => {
    for (let k = 0; k < n; k++, i++) {
      await r.client.routeData({ i }, 'ticker');
      sentIds.push(i);
    }
  };
  await send(100);
  await r.restart('SIGKILL');
  await send(100);
  await r.restart('SIGKILL');
  await send(100);
  const t0 = Date.now();
  while (got.length < 300 && Date.now() - t0 < 20000) await sleep(100);
  ac.abort();
  await reader.catch(() => {});
  assert.deepEqual(got, sentIds);
});

test('a position older than the log\'s retention gets an explicit reset, then the oldest retained records', { timeout: 60_000 }, async () => {
  const r = await rig(
    `wal: { segment_bytes: 65536, retention: { max_age: 0 } }\ndestinations:\n  ticker: { type: stream, buffer: 5, public: true }\n`,
    'fork-streams-reset-',
  );
  cleanups.push(() => r.stop());
  for (let i = 0; i < 60; i++) await r.client.routeData({ i, pad: "x".repeat(3000) }, 'ticker', { ack: 'delivered' });
  // Retention runs on forkd's tick: wait until it deleted the segment holding lsn 2.
  const deadline = Date.now() + 20000;
  for (;;) {
    const s = await (await fetch(`${r.base}/api/status`)).json();
    if (s.log.first_lsn > 2) break;
    assert.ok(Date.now() < deadline, `retention deleted no segment in 20 s: ${JSON.stringify(s.log)}`);
    await sleep(100);
  }
  const { text } = await readRaw(`${r.base}/streams/ticker?after=1`, { until: (t) => t.includes('"i":59') });
  const m = messages(text);
  assert.equal(m[0].event, 'reset', text.slice(0, 300));
  assert.match(m[0].data.reason, /older than the log's retention/);
  const rest = m.slice(1).map((x) => x.data.i);
  assert.ok(rest[0] > 1, `segments were deleted: first ${rest[0]}`);
  assert.deepEqual(rest, Array.from({ length: 60 - rest[0] }, (_, k) => rest[0] + k), 'no gap after the reset');
});

test('a subscriber that reads too slowly is cut off with event: overflow, and resumes from its last id without a gap', { timeout: 90_000 }, async () => {
  const r = await rig(`destinations:\n  ticker: { type: stream, buffer: 20, public: true }\n`, 'fork-streams-slow-');
  cleanups.push(() => r.stop());
  const url = new URL(`${r.base}/streams/ticker`);
  let text = '';
  let first;
  const reading = new Promise((resolve) => (first = resolve));
  let open;
  const opened = new Promise((resolve) => (open = resolve));
  const closed = new Promise((resolve, reject) => {
    const req = http.get(url, (res) => {
      open(); // the headers are in: forkd registered the subscriber before sending them
      const onData = (d) => {
        text += d;
        if (!text.includes('"i":0,')) return;
        // It has read from the live ring; now it stops reading while the
        // records pile up, and reads again 2 s later: well within the 5 s
        // a blocked write may wait before forkd closes the connection.
        res.off('data', onData);
        res.pause();
        first();
        setTimeout(() => {
          res.on('data', (more) => (text += more));
          res.resume();
        }, 2000);
      };
      res.on('data', onData);
      res.on('end', resolve);
      res.on('close', resolve);
    });
    req.on('error', reject);
  });
  await Promise.race([opened, closed]);
  const big = 'y'.repeat(8000);
  await r.client.routeData({ i: 0, big }, 'ticker', { ack: 'delivered' });
  await reading;
  // Far more than the socket buffers hold: forkd's writes block, the ring moves on.
  const sends = [];
  for (let i = 1; i < 3000; i++) sends.push(r.client.routeData({ i, big }, 'ticker'));
  await Promise.all(sends);
  await closed;
  const m = messages(text);
  assert.equal(m.at(-1).event, 'overflow', text.slice(-300));
  assert.match(m.at(-1).data.reason, /fell more than `buffer` records behind/);
  const seen = m.filter((x) => x.event === 'message');
  assert.ok(seen.length > 0 && seen.length < 3000, `${seen.length} read before the cut`);
  // Resuming from the last id it read: exactly the rest (from the log).
  const rest = messages((await readRaw(url, { headers: { 'Last-Event-ID': seen.at(-1).id }, until: (t) => t.includes('"i":2999,'), ms: 30000 })).text);
  assert.deepEqual([...seen, ...rest].map((x) => x.data.i), Array.from({ length: 3000 }, (_, k) => k));
});

test('aggregate updates are records, and a keep-alive comment comes within 15 s of silence', { timeout: 60_000 }, async () => {
  const r = await rig(
    `destinations:\n  totals: { type: stream, public: true, transforms: [{ aggregate: { window: daily, measures: { n: 'count()', revenue: 'sum(amount)' } } }] }\n`,
    'fork-streams-agg-',
  );
  cleanups.push(() => r.stop());
  const live = readRawOpen(`${r.base}/streams/totals`, { ms: 20000, until: (t) => t.includes(': keep-alive') });
  await live.opened;
  for (const amount of [10, 20, 12.5]) await r.client.routeData({ amount }, 'totals', { ack: 'delivered' });
  const { text } = await live.done;
  const m = messages(text);
  assert.deepEqual(m.at(-1).data.n, 3, text);
  assert.equal(m.at(-1).data.revenue, 42.5);
  assert.match(text, /\n: keep-alive\n\n$/);
});

test('access: public streams for anyone with CORS, token streams by Bearer or ?token=, others under the admin rules; never a destination of another type; bad ids and too many subscribers refused', { timeout: 60_000 }, async () => {
  const r = await rig(
    `destinations:
  pub: { type: stream, public: true }
  priv: { type: stream, token: s3cret, max_subscribers: 1 }
  inner: { type: stream }
  db: { type: sqlite, path: ./out.db, table: t }
`,
    'fork-streams-access-',
  );
  cleanups.push(() => r.stop());
  const pub = await statusWithHost(`${r.base}/streams/pub`, 'ticker.example.com');
  assert.equal(pub.status, 200);
  assert.equal(pub.headers['access-control-allow-origin'], '*');
  assert.match(pub.headers['content-type'], /^text\/event-stream/);
  let x;
  // Refusals: the body ends by itself; `ms` is only a deadline. Accepted
  // streams: read until the first message (`retry:`).
  const first = (t) => t !== '';
  x = await readRaw(`${r.base}/streams/priv`, { ms: 10000 });
  assert.equal(x.status, 401);
  assert.match(x.text, /needs its token/);
  x = await readRaw(`${r.base}/streams/priv`, { ms: 10000, headers: { Authorization: 'Bearer nope' } });
  assert.equal(x.status, 403);
  x = await readRaw(`${r.base}/streams/priv?token=s3cret`, { ms: 10000, until: first });
  assert.equal(x.status, 200);
  // Its one subscriber slot: a second one at once is refused.
  // The ?token= subscriber above keeps the slot until forkd notices it left (on
  // its next wakeup, within about a second): take the slot once it is free.
  const release = new AbortController();
  let holder;
  for (const deadline = Date.now() + 10000; ; await sleep(100)) {
    holder = readRawOpen(`${r.base}/streams/priv`, { ms: 30000, signal: release.signal, headers: { Authorization: 'Bearer s3cret' } });
    const status = await holder.opened;
    if (status === 200) break;
    assert.equal(status, 503, 'the slot is taken or free');
    await holder.done;
    assert.ok(Date.now() < deadline, 'the slot was freed within 10 s');
  }
  x = await readRaw(`${r.base}/streams/priv`, { ms: 10000, headers: { Authorization: 'Bearer s3cret' } });
  release.abort();
  assert.equal((await holder.done).status, 200, 'the holder had the slot');
  assert.equal(x.status, 503);
  assert.match(x.text, /max_subscribers \(1\)/);
  // No token configured, not public: the admin server's rules (a foreign Host is refused).
  x = await readRaw(`${r.base}/streams/inner`, { ms: 10000, until: first });
  assert.equal(x.status, 200);
  const evil = await statusWithHost(`${r.base}/streams/inner`, 'evil.example.com');
  assert.equal(evil.status, 403, evil.body);
  for (const name of ['db', 'nope']) {
    x = await readRaw(`${r.base}/streams/${name}`, { ms: 10000 });
    assert.equal(x.status, 404);
    assert.match(x.text, new RegExp(`no stream destination '${name}'`));
  }
  for (const bad of ['abc', '-1', '1-', '99999999999999999999999', 'x'.repeat(100)]) {
    x = await readRaw(`${r.base}/streams/pub`, { ms: 10000, headers: { 'Last-Event-ID': bad } });
    assert.equal(x.status, 400, bad);
    assert.match(x.text, /must be a position this stream sent/);
  }
  x = await readRaw(`${r.base}/streams/${'a'.repeat(5000)}`, { ms: 10000 });
  assert.equal(x.status, 404);
});

test('streamResponse proxies a stream with the browser\'s Last-Event-ID, and passes a refusal on', { timeout: 30_000 }, async () => {
  const r = await rig(`destinations:\n  ticker: { type: stream, buffer: 100, public: true }\n  priv: { type: stream, token: t0k }\n`, 'fork-streams-proxy-');
  cleanups.push(() => r.stop());
  const ids = [];
  for (let i = 0; i < 5; i++) ids.push((await r.client.routeData({ i }, 'ticker', { ack: 'delivered' })).id);
  const ac = new AbortController();
  const res = await streamResponse('ticker', new Request('http://app.local/api/ticker', { headers: { 'Last-Event-ID': '2' }, signal: ac.signal }), { url: r.base });
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type'), /^text\/event-stream/);
  let text = '';
  for await (const chunk of res.body) {
    text += Buffer.from(chunk).toString();
    // Whole messages only: a chunk may end inside the record of i 4.
    if (text.slice(0, text.lastIndexOf('\n\n') + 2).includes('"i":4')) break;
  }
  ac.abort();
  assert.deepEqual(messages(text).map((m) => m.data.i), [2, 3, 4]);
  const refused = await streamResponse('priv', new Request('http://app.local/api/priv'), { url: r.base });
  assert.equal(refused.status, 401);
  const gone = await streamResponse('ticker', new Request('http://app.local/x'), { url: 'http://127.0.0.1:9' });
  assert.equal(gone.status, 502);
});
