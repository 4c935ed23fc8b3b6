// The live dashboard at the admin server's / in headless Chromium, against a
// real forkd with an admin token set (the page only GETs, and GETs need no
// token): the numbers it shows are those of /api/status and /metrics, a
// destination whose HTTP server fails turns its row to a failing condition
// within 4 s, the alerts firing are listed, and the lookup box shows an
// event's per-destination states or the endpoint's error. Also
// GET /api/history and its refusals.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { appendFileSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { createClient } from '../../js/index.mjs';
import { startForkd, tempConfig, endpointFor, freePort } from './helpers.mjs';
import { startHttpTarget } from './fixtures/http_target.mjs';

const TOKEN = 'e2e-dashboard-token-0123456789abcdef';
let dir, forkd, target, client, browser, page, port, base;

// One HTTP request with exactly the headers given (fetch cannot set Host).
function request(path, { headers = {} } = {}) {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path, headers, timeout: 5000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body }));
    });
    req.on('timeout', () => req.destroy(new Error(`GET ${path}: no answer in 5 s`)));
    req.on('error', reject);
    req.end();
  });
}
const getJson = async (path) => {
  const r = await fetch(`${base}${path}`, { signal: AbortSignal.timeout(5000) });
  assert.equal(r.status, 200, path);
  return r.json();
};
const metric = (text, name, destination) => {
  const m = text.match(new RegExp(`^${name}\\{destination="${destination}"\\} (\\S+)$`, 'm'));
  assert.ok(m, `${name} of ${destination} in /metrics`);
  return Number(m[1]);
};
const row = (name) => page.locator(`[data-testid=dest-row][data-destination="${name}"]`);
const field = (name, testid) => row(name).getByTestId(testid).innerText();
// The page's number as shown ("1,234" -> 1234).
const shown = async (name, testid) => Number((await field(name, testid)).replace(/,/g, ''));

async function until(what, fn, timeoutMs = 10000) {
  const t0 = Date.now();
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() - t0 > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

before(async () => {
  target = await startHttpTarget();
  port = await freePort();
  base = `http://127.0.0.1:${port}`;
  const destinations = {
    logs: { type: 'file', format: 'jsonl', path: './out/logs.jsonl', batch: { max_wait: '10ms' } },
    // Quick retries: recovery shows within one backoff.
    hook: { type: 'http', url: target.url, retry: { initial: '50ms', max: '200ms' } },
    ops: { type: 'file', format: 'jsonl', path: './out/ops.jsonl', batch: { max_wait: '10ms' } },
  };
  ({ dir } = tempConfig(
    [
      `admin: 127.0.0.1:${port}`,
      `destinations: ${JSON.stringify(destinations)}`,
      'alerts:',
      '  notify: [ops]',
      '  rules:',
      '    - { name: hook_failing, signal: destination_failing, destination: hook, for: 0s }',
      '',
    ].join('\n'),
    'fork-dashboard-',
  ));
  forkd = await startForkd(`${dir}/fork.yaml`, { env: { FORK_ADMIN_TOKEN: TOKEN } });
  client = createClient({ endpoint: endpointFor(dir) });
  const { chromium } = await import('playwright-core');
  browser = await chromium.launch({ executablePath: process.env.CHROMIUM_PATH || '/usr/bin/chromium', args: ['--no-sandbox'] });
  page = await browser.newPage({ viewport: { width: 1280, height: 1000 } });
  const res = await page.goto(`${base}/`);
  assert.equal(res.status(), 200);
});

after(async () => {
  await browser?.close();
  await client?.close();
  if (forkd) assert.equal((await forkd.stop()).code, 0);
  await target?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

test('the page is built into forkd and asks no other origin (CSP, no external URL)', async () => {
  const r = await request('/', { headers: { host: `127.0.0.1:${port}` } });
  assert.equal(r.status, 200);
  assert.match(r.headers['content-type'], /^text\/html/);
  assert.match(r.headers['content-security-policy'], /default-src 'none'/);
  assert.match(r.headers['content-security-policy'], /connect-src 'self'/);
  assert.doesNotMatch(r.body, /(src|href)=["']?(https?:)?\/\//i, 'no external script, style or link');
  const requested = [];
  page.on('request', (q) => requested.push(q.url()));
  await page.reload();
  await page.waitForTimeout(1500);
  assert.ok(requested.length > 0);
  for (const u of requested) assert.ok(u.startsWith(`${base}/`), `only forkd is asked: ${u}`);
});

test('the page shows the numbers of /api/status and /metrics for a running forkd, with a token set', async () => {
  for (let i = 0; i < 40; i++) await client.routeData({ order: i }, ['logs', 'hook'], { ack: 'delivered' });
  // The page refreshes every second: wait for it to see the 40th.
  await until('the page to show 40 delivered', async () => (await shown('logs', 'delivered')) === 40);
  await until('hook too', async () => (await shown('hook', 'delivered')) === 40);
  const status = await getJson('/api/status');
  const metrics = await (await fetch(`${base}/metrics`)).text();
  for (const name of ['logs', 'hook']) {
    const s = status.destinations.find((d) => d.name === name);
    assert.equal(await shown(name, 'received'), s.received, `${name} received`);
    assert.equal(await shown(name, 'delivered'), s.delivered, `${name} delivered`);
    assert.equal(await shown(name, 'delivered'), metric(metrics, 'fork_destination_delivered_total', name));
    assert.equal(await shown(name, 'lag_events'), metric(metrics, 'fork_destination_lag_events', name));
    assert.equal(await shown(name, 'dead_lettered'), metric(metrics, 'fork_destination_dead_lettered_total', name));
    assert.equal(await shown(name, 'retries'), s.retries);
    assert.equal(await field(name, 'breaker'), s.breaker);
    assert.equal(s.condition, 'running');
    assert.equal(await row(name).getByTestId('condition').innerText(), 'running');
  }
  assert.match(await page.getByTestId('summary').innerText(), new RegExp(`\\b${status.ingest.events} events accepted`));
  assert.equal(await page.getByTestId('verify').innerText(), 'no verify run');
  assert.equal(await page.getByTestId('alerts').innerText(), 'none');
  // The charts draw the history forkd keeps: its throughput adds up to what
  // was delivered, and the chart's current value is the last sample's.
  // (The last deliveries may still wait for the next second's sample.)
  const sampled = async () => {
    const h = await getJson('/api/history');
    const d = h.destinations.find((x) => x.name === 'logs');
    return Math.round(d.throughput.reduce((sum, v, i) => sum + v * d.span[i], 0)) === 40 && d;
  };
  const logs = await until('the history to hold the 40 deliveries', sampled, 5000);
  const chart = row('logs').getByTestId('chart-throughput');
  await until('the throughput chart to have points', async () =>
    ((await chart.locator('polyline').getAttribute('points')) ?? '').split(' ').length > 1);
  assert.match(await chart.locator('svg').getAttribute('aria-label'), /^Throughput over the last hour: now [\d.,]+ events\/s, peak [\d.,]+ events\/s$/);
  const peak = Math.max(...logs.throughput);
  assert.ok(peak > 0);
  assert.match(await chart.innerText(), /peak [\d.,]+/);
});

// From the moment the destination can notice (an event routed to it while
// its server fails) to the row's condition on the page.
async function timeToFailing(name, send) {
  const t0 = performance.now();
  await send();
  await page.waitForFunction(
    (n) => {
      const r = document.querySelector(`[data-testid=dest-row][data-destination="${n}"]`);
      return r && r.dataset.condition !== 'running';
    },
    name,
    { timeout: 10000, polling: 20 },
  );
  return performance.now() - t0;
}

test('an http destination whose server answers 500, then is stopped, turns its row to a failing condition within 4 s each time', async (t) => {
  await until('hook running', async () => (await row('hook').getAttribute('data-condition')) === 'running');
  target.status(500);
  const ms500 = await timeToFailing('hook', () => client.routeData({ order: 'fails' }, 'hook'));
  t.diagnostic(`500s: row failing after ${ms500.toFixed(0)} ms`);
  // The page refreshes once a second: 4 s is a couple of refreshes after the
  // destination noticed, with room for headless Chromium on a loaded host.
  assert.ok(ms500 < 4000, `${ms500} ms`);
  assert.match(await row('hook').getByTestId('condition').innerText(), /^(retrying|breaker open)$/);
  assert.match(await row('hook').getByTestId('last-error').innerText(), /500/);
  // The alert about it is listed while it fires.
  const alert = page.getByTestId('alert-row');
  await until('the firing alert on the page', async () => (await alert.count()) === 1);
  assert.match(await alert.innerText(), /hook_failing\s+destination_failing\s+hook/);
  const s = await getJson('/api/status');
  assert.deepEqual(s.alerts_firing.map((a) => [a.alert, a.destination, a.above]), [['hook_failing', 'hook', 0]]);
  // The logs destination is untouched.
  assert.equal(await row('logs').getAttribute('data-condition'), 'running');

  target.ok();
  await until('hook back to running', async () => (await row('hook').getAttribute('data-condition')) === 'running', 15000);
  await until('the alert gone from the page', async () => (await page.getByTestId('alerts').innerText()) === 'none');

  await target.down();
  const msDown = await timeToFailing('hook', () => client.routeData({ order: 'refused' }, 'hook'));
  t.diagnostic(`server stopped: row failing after ${msDown.toFixed(0)} ms`);
  assert.ok(msDown < 4000, `${msDown} ms`);  // as above: a couple of refreshes
  await target.up();
  await until('hook back to running', async () => (await row('hook').getAttribute('data-condition')) === 'running', 15000);
});

test('the lookup box finds an event by receipt id and by idempotency key, and shows each destination\'s state', async () => {
  const keyed = await client.routeData({ order: 'find-me' }, ['logs', 'hook'], { ack: 'delivered', idempotencyKey: 'order-find-me' });
  assert.equal(keyed.id, 'order-find-me');
  const plain = await client.routeData({ order: 'find-me-too' }, ['logs', 'hook'], { ack: 'delivered' });
  for (const id of [plain.id, 'order-find-me']) {
    await page.getByLabel('Receipt id or idempotency key').fill(id);
    await page.getByTestId('lookup-button').click();
    // One row per configured destination: ops was not named by the caller.
    const rows = page.getByTestId('lookup-row');
    await until(`the lookup rows for ${id}`, async () => (await rows.count()) === 3);
    assert.equal(await page.getByTestId('lookup-error').innerText(), '');
    const state = (name) => page.locator(`[data-testid=lookup-row][data-destination="${name}"]`).getByTestId('lookup-state').innerText();
    assert.equal(await state('logs'), 'delivered', `${id} at logs`);
    assert.equal(await state('hook'), 'delivered', `${id} at hook`);
    assert.equal(await state('ops'), 'filtered', `${id} at ops`);
    assert.match(await page.getByTestId('lookup-result').innerText(), new RegExp(`id ${id}`));
  }
});

test('the lookup box shows the endpoint\'s error for an unknown id', async () => {
  await page.getByLabel('Receipt id or idempotency key').fill('no-such-event-42');
  await page.getByTestId('lookup-button').click();
  const err = page.getByTestId('lookup-error');
  await until('the error', async () => (await err.innerText()) !== '');
  assert.match(await err.innerText(), /^HTTP 404: \S/);
  assert.equal(await err.getAttribute('role'), 'alert');
  assert.equal(await page.getByTestId('lookup-row').count(), 0);
});

test('GET /api/history?since= returns only the samples after it', async () => {
  const all = await getJson('/api/history');
  assert.equal(all.capacity, 3600);
  assert.deepEqual(all.destinations.map((d) => d.name), ['logs', 'hook', 'ops']);
  const logs = all.destinations.find((d) => d.name === 'logs');
  assert.ok(logs.at.length >= 2);
  for (const k of ['span', 'throughput', 'routed', 'errors', 'lag_events', 'lag_seconds', 'dead_letters']) {
    assert.equal(logs[k].length, logs.at.length, k);
  }
  const cut = logs.at[logs.at.length - 2];
  const newer = await getJson(`/api/history?since=${cut}`);
  for (const d of newer.destinations) assert.ok(d.at.every((s) => s > cut), `${d.name}: ${d.at}`);
  assert.ok(newer.destinations.find((d) => d.name === 'logs').at.includes(logs.at[logs.at.length - 1]));
  const none = await getJson(`/api/history?since=${all.now + 3600}`);
  for (const d of none.destinations) assert.deepEqual(d.at, []);
});

test('GET /api/history refuses a bad since, other parameters and huge query strings with a clear error', async () => {
  const host = { host: `127.0.0.1:${port}` };
  const refused = async (path, status, pattern) => {
    const r = await request(path, { headers: host });
    assert.equal(r.status, status, `${path.slice(0, 60)}: ${r.body}`);
    assert.match(r.headers['content-type'], /application\/json/);
    assert.match(JSON.parse(r.body).error, pattern);
  };
  for (const bad of ['abc', '-1', '1.5', '1e9', '0x10', '%20', '99999999999999999999']) {
    await refused(`/api/history?since=${bad}`, 400, /^since: expected unix seconds/);
  }
  await refused('/api/history?since=1&since=2', 400, /since: given more than once/);
  await refused('/api/history?destination=logs', 400, /unknown parameter 'destination'/);
  await refused(`/api/history?since=${'1'.repeat(1000)}`, 400, /query too long/);
  await refused(`/api/history?${'a'.repeat(5000)}=1`, 400, /query too long/);
  // Past httplib's request-line limit it answers itself, with a JSON reason.
  await refused(`/api/history?since=${'9'.repeat(20000)}`, 414, /too long/);
  // The admin access rules apply: a foreign Host is refused (DNS rebinding).
  const r = await request('/api/history', { headers: { host: 'evil.example:80' } });
  assert.equal(r.status, 403);
  // And forkd still answers.
  assert.equal((await getJson('/api/history?since=0')).capacity, 3600);
});

test('a SIGHUP that removes a destination and adds one: its history and row go, the new one gets both', async () => {
  const file = `${dir}/fork.yaml`;
  const yaml = readFileSync(file, 'utf8');
  const destinations = JSON.parse(yaml.match(/^destinations: (.*)$/m)[1]);
  delete destinations.logs;
  destinations.extra = { type: 'file', format: 'jsonl', path: './out/extra.jsonl' };
  writeFileSync(file, yaml.replace(/^destinations: .*$/m, `destinations: ${JSON.stringify(destinations)}`));
  forkd.proc.kill('SIGHUP');
  await until('the history to follow the reload', async () => {
    const h = await getJson('/api/history');
    const names = h.destinations.map((d) => d.name).join(',');
    return names === 'hook,ops,extra' && h.destinations.find((d) => d.name === 'extra').at.length >= 1;
  });
  await client.routeData({ order: 'extra' }, 'extra', { ack: 'delivered' });
  await until('the page to show the new row', async () => (await row('extra').count()) === 1 && (await shown('extra', 'delivered')) === 1);
  assert.equal(await row('logs').count(), 0);
  assert.equal(await row('extra').getAttribute('data-condition'), 'running');
  // The others kept their hour.
  const hook = (await getJson('/api/history')).destinations.find((d) => d.name === 'hook');
  assert.ok(hook.at.length > 10, `${hook.at.length} samples`);
});

test('the last scheduled verify: the page shows what /api/status says, agreeing and then with a row added behind forkd\'s back', { timeout: 60000 }, async () => {
  const vport = await freePort();
  const { dir: vdir, config } = tempConfig(
    [`admin: 127.0.0.1:${vport}`, 'destinations:', '  logs: { type: file, format: jsonl, path: ./out/logs.jsonl }', 'verify: { every: 1s, destinations: [logs] }', ''].join('\n'),
    'fork-dashboard-verify-',
  );
  const vforkd = await startForkd(config);
  const vclient = createClient({ endpoint: endpointFor(vdir) });
  const vpage = await browser.newPage();
  try {
    for (let i = 0; i < 10; i++) await vclient.routeData({ order: i }, 'logs', { ack: 'delivered' });
    await vpage.goto(`http://127.0.0.1:${vport}/`);
    const result = vpage.getByTestId('verify-result');
    const cell = (k) => vpage.locator('[data-testid=verify-row][data-destination="logs"] [data-field=' + k + ']').innerText();
    await until('a verify of the 10 on the page', async () => (await result.count()) === 1 && (await cell('expected')) === '10', 15000);
    assert.equal(await result.innerText(), 'every destination agrees');
    // A run a second: the page and /api/status agree once both show the same one.
    await until('the page showing the run /api/status shows', async () => {
      const v = (await (await fetch(`http://127.0.0.1:${vport}/api/status`)).json()).verify;
      assert.equal(v.ok, true);
      return (await vpage.getByTestId('verify').locator('p').innerText()) === `every destination agrees · at ${v.at} · took ${v.took_ms.toLocaleString('en-US')} ms`;
    }, 15000);

    appendFileSync(`${vdir}/out/logs.jsonl`, '{"_fork_id":"not-from-forkd","order":99}\n');
    await until('the difference on the page', async () => (await result.innerText()) === 'differences found', 15000);
    assert.equal(await cell('unexpected'), '1');
    assert.equal(await cell('missing'), '0');
    const row = vpage.locator('[data-testid=verify-row][data-destination="logs"]');
    assert.match(await row.innerText(), /differs/);
    assert.match(await row.innerText(), /unexpected: not-from-forkd/);
  } finally {
    await vpage.close();
    await vclient.close();
    assert.equal((await vforkd.stop()).code, 0);
    rmSync(vdir, { recursive: true, force: true });
  }
});
