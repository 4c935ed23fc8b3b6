// The admin HTTP server: health, readiness, metrics, status, dashboard, and
// what it does with requests it does not serve.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { rmSync } from 'node:fs';
import { createClient } from '../../js/index.mjs';
import { startForkd, tempConfig, endpointFor } from './helpers.mjs';

let dir, forkd, base;

// Every request has a deadline, so a server that stops answering fails the
// test instead of hanging it.
const http = (path, init = {}) =>
  fetch(`${base}${path}`, { signal: AbortSignal.timeout(5000), ...init });

async function freePort() {
  return new Promise((resolve) => {
    const srv = net.createServer();
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

before(async () => {
  const port = await freePort();
  ({ dir } = tempConfig(`admin: 127.0.0.1:${port}\ndestinations:\n  logs: { type: file, path: ./out.jsonl }\n  audit: { type: file, path: ./audit.jsonl }\n`));
  forkd = await startForkd(`${dir}/fork.yaml`);
  base = `http://127.0.0.1:${port}`;
});
after(async () => {
  assert.equal((await forkd.stop()).code, 0);
  rmSync(dir, { recursive: true, force: true });
});

test('healthz and readyz answer 200', async () => {
  assert.equal((await http(`/healthz`)).status, 200);
  const r = await http(`/readyz`);
  assert.equal(r.status, 200);
  assert.equal(await r.text(), 'ready\n');
});

test('metrics and status count what was routed', async () => {
  const c = createClient({ endpoint: endpointFor(dir) });
  for (let i = 0; i < 10; i++) await c.routeData({ i }, 'logs', { ack: 'delivered' });
  await c.close();
  const text = await (await http(`/metrics`)).text();
  assert.match(text, /^fork_ingest_events_total 10$/m);
  assert.match(text, /^fork_destination_delivered_total\{destination="logs"\} 10$/m);
  assert.match(text, /^fork_destination_delivered_total\{destination="audit"\} 0$/m);
  assert.match(text, /^# TYPE fork_destination_lag_events gauge$/m);
  const s = await (await http(`/api/status`)).json();
  assert.equal(s.ingest.events, 10);
  const logs = s.destinations.find((d) => d.name === 'logs');
  assert.equal(logs.delivered, 10);
  assert.equal(logs.state, 'ok');
  assert.equal(logs.lag_events, 0);
});

test('the dashboard page is served', async () => {
  const r = await http(`/`);
  assert.equal(r.status, 200);
  assert.match(r.headers.get('content-type'), /text\/html/);
  assert.match(await r.text(), /\/api\/status/);
});

test('unknown paths, wrong methods and hostile requests are refused cleanly', async () => {
  assert.equal((await http(`/nope`)).status, 404);
  const post = await http(`/metrics`, { method: 'POST', body: 'x'.repeat(1000) });
  assert.equal(post.status, 405);
  assert.equal((await http(`/metrics`, { method: 'DELETE' })).status, 405);
  // An oversized body is refused, not buffered.
  assert.equal((await http(`/x`, { method: 'POST', body: 'y'.repeat(200_000) })).status, 413);
  assert.equal((await http(`/${'a'.repeat(20000)}`)).status >= 400, true);
  // Garbage bytes on the socket do not take the server down.
  await new Promise((resolve) => {
    const s = net.connect(Number(new URL(base).port), '127.0.0.1', () => {
      s.end(Buffer.from('\x00\xff GARBAGE\r\n\r\n'));
    });
    // The server may keep the connection for its keep-alive time: do not
    // wait on it longer than that.
    s.setTimeout(3000, () => s.destroy());
    s.on('close', resolve);
    s.on('error', resolve);
  });
  assert.equal((await http(`/healthz`)).status, 200);
});
