// The latency routeData adds to a Next.js route handler. The example app is
// set up as a user gets it (packed tarball, next build, next start beside
// `npx forkd run`) plus one extra route, /api/orders-baseline: the same
// handler with routeData replaced by an already-resolved receipt.
//
// Interleaved (the default): one load run per round sends POSTs at a fixed
// total rate (open loop: each request leaves at its time, whether or not the
// ones before it were answered) over keep-alive connections, half of them to
// each route, in a random order balanced in pairs (each pair of consecutive
// requests is one to each route, which one first a coin toss). Each
// request's latency, from the moment it is sent until its whole answer is
// in, is recorded with its route. Both routes then see the same machine at
// the same moments, so what drifts over time (the scheduler, another
// process, the garbage collector) weighs on both alike and falls out of the
// difference. Each round's difference of means is one sample, and the 95%
// confidence interval is Student's t over the rounds: requests queue behind
// one another, so they are not independent samples; rounds are. The older
// interval, every request pooled (Welch), is printed beside it, and
// p50/p99/p99.9 of each route over every request of every round.
//
// --mode separate: the older design, autocannon at the fixed rate on one
// route at a time, both routes in each round back to back (in the order
// baseline, with, then with, baseline, and so on), percentiles averaged over
// the rounds (autocannon records whole milliseconds).
//
// Where taskset exists (unless --no-pin) the Next.js server, the addon's I/O
// thread with it, runs on CPU 1 and forkd with the load generator on CPU 0,
// so the scheduler does not move them about: a one-CPU app container.
// --load-cpu 1 puts the load generator on CPU 1 with Next.js instead, so
// forkd has CPU 0 to itself.
//
//   node bench/nextjs.mjs [--mode interleaved|separate] [--rate R] [--duration 5] [--rounds N]
//                         [--until-width W] [--max-rounds M] [--connections 20] [--no-pin] [--load-cpu 0|1] [--json FILE]
//
// --rate is the total rate (both routes together) in interleaved mode, 400/s
// unless given, and each route's rate in separate mode, 1000/s unless given.
// Pinned to one CPU of a two-core machine, the server answered at most
// about 600-800 requests a second of the two routes mixed: at 1000/s an
// open loop only measures a queue that grows for as long as the round lasts
// (autocannon, which waits for an answer before it sends the next request
// on a connection, sends fewer than asked instead). --duration is the length
// of a round (interleaved) or of each route's run in a round (separate).
// --rounds: 24 interleaved (2 min of load, both routes in each), 16
// separate (2 min 40 s). The interleaved warm-up is 20 s: from a cold start
// the difference falls for the first 10-15 s (the first rounds 2-5x the
// later ones) before it settles.
// --until-width W (interleaved; 0.5 unless given, 0 for none): after
// --rounds, more rounds are run, one at a time, until the 95% interval is
// narrower than W ms or --max-rounds (72: 6 min of load) have run. A
// fixed-precision rule (Chow and Robbins): the interval's coverage is the
// nominal one as rounds grow, a little under it for few rounds, which is why
// it starts only after 24. The output says how many rounds it took, and
// whether it stopped at the width or at the cap.
// --json FILE also writes the figures to FILE as one JSON object.
// Figures only: it never fails on timing.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import autocannon from 'autocannon';
import { spawnSync } from 'node:child_process';
import { EXAMPLE, prepareApp, startForkd, freePort, startNext, stopTree, processTree } from '../scripts/lib/nextjs-app.mjs';

const { values: args } = parseArgs({
  options: {
    mode: { type: 'string', default: 'interleaved' },
    rate: { type: 'string' },
    duration: { type: 'string', default: '5' },
    rounds: { type: 'string' },
    'until-width': { type: 'string' },
    'max-rounds': { type: 'string' },
    'load-cpu': { type: 'string', default: '0' },
    'no-pin': { type: 'boolean', default: false },
    connections: { type: 'string', default: '20' },
    keep: { type: 'boolean', default: false },
    json: { type: 'string' },
  },
});
const MODE = args.mode;
if (MODE !== 'interleaved' && MODE !== 'separate') throw new Error(`--mode ${MODE}: interleaved or separate`);
const RATE = Number(args.rate ?? (MODE === 'interleaved' ? 400 : 1000));
const DURATION = Number(args.duration);
const ROUNDS = Number(args.rounds ?? (MODE === 'interleaved' ? 24 : 16));
const UNTIL_WIDTH = MODE === 'interleaved' ? Number(args['until-width'] ?? 0.5) : 0;
const MAX_ROUNDS = Math.max(ROUNDS, Number(args['max-rounds'] ?? 72));
for (const [flag, v] of [['--rounds', ROUNDS], ['--until-width', UNTIL_WIDTH], ['--max-rounds', MAX_ROUNDS]]) {
  if (!Number.isFinite(v) || v < 0) throw new Error(`${flag}: a number ≥ 0, got ${JSON.stringify(args[flag.slice(2)])}`);
}
if (ROUNDS < 2) throw new Error('--rounds: at least 2 (an interval needs two rounds)');
const CONNECTIONS = Number(args.connections);
const PIN = !args['no-pin'] && spawnSync('taskset', ['-c', '0', 'true']).status === 0;
const LOAD_CPU = args['load-cpu'];
if (LOAD_CPU !== '0' && LOAD_CPU !== '1') throw new Error(`--load-cpu: 0 (with forkd) or 1 (with Next.js), got ${JSON.stringify(LOAD_CPU)}`);
const PINNED = `Next.js on CPU 1, forkd on CPU 0, the load on CPU ${LOAD_CPU}`;

// Every thread of pid and its descendants onto `cpus` (taskset -a).
function pin(pid, cpus) {
  for (const p of processTree(pid)) spawnSync('taskset', ['-a', '-cp', cpus, String(p)], { stdio: 'ignore' });
}

// Student's t at 97.5 % for df degrees of freedom (a 95 % two-sided interval).
function t975(df) {
  const table = [12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.16, 2.145,
    2.131, 2.12, 2.11, 2.101, 2.093, 2.086, 2.08, 2.074, 2.069, 2.064, 2.06, 2.056, 2.052, 2.048, 2.045, 2.042];
  if (df <= 0) return Infinity;
  if (df <= table.length) return table[df - 1];
  // Past the table: the Cornish-Fisher expansion around z (2.042 at 30,
  // 2.021 at 40, 2.000 at 60).
  const z = 1.959964;
  return z + (z ** 3 + z) / (4 * df) + (5 * z ** 5 + 16 * z ** 3 + 3 * z) / (96 * df ** 2);
}

// The mean of `ds` and the half-width of its 95% interval (Student's t).
function interval(ds) {
  const diff = ds.reduce((a, x) => a + x, 0) / ds.length;
  const sd = ds.length > 1 ? Math.sqrt(ds.reduce((a, x) => a + (x - diff) ** 2, 0) / (ds.length - 1)) : Infinity;
  return { diff, half: t975(ds.length - 1) * (sd / Math.sqrt(ds.length)) };
}

// The baseline route: the example's handler, with routeData answering at once.
const handler = readFileSync(path.join(EXAMPLE, 'app', 'api', 'orders', 'route.ts'), 'utf8');
const importLine = /^import \{ routeData, (.*) \} from 'fork-router';$/m;
if (!importLine.test(handler)) throw new Error("app/api/orders/route.ts: no `import { routeData, ... } from 'fork-router'` line to swap");
const baseline = handler.replace(
  importLine,
  (_, rest) =>
    `import { ${rest} } from 'fork-router';\n` +
    '// Baseline: routeData answers at once with a receipt, without forkd.\n' +
    'const routeData = async (_payload: unknown, destination: string | string[], _options?: unknown): Promise<Receipt> =>\n' +
    "  ({ id: 'baseline', ack: 'accepted', destinations: ([] as string[]).concat(destination) }) as unknown as Receipt;",
);

const work = mkdtempSync(path.join(tmpdir(), 'fork-bench-nextjs-'));
const log = (m) => console.error(`[setup] ${m}`);
const ctx = prepareApp(work, { extraFiles: { 'app/api/orders-baseline/route.ts': baseline }, log });
const forkd = startForkd(ctx);
await forkd.up;
const port = await freePort();
const server = startNext(ctx, port);
await server.up;
if (PIN) {
  pin(server.proc.pid, '1');
  pin(forkd.proc.pid, '0');
  pin(process.pid, LOAD_CPU);
}

const WITH = '/api/orders';
const BASE = '/api/orders-baseline';
const ROUTES = [BASE, WITH];
let n = 0;
const failures = new Map(); // route -> its first answer that was not 2xx
const CURRENCIES = ['EUR', 'USD', 'GBP'];
const orderBody = () => {
  const i = n++;
  return JSON.stringify({ orderId: `b-${i}`, amount: (i % 5000) / 100 + 1, currency: CURRENCIES[i % 3] });
};
const noteFailure = (route, what) => {
  if (!failures.has(route)) failures.set(route, what);
};

// Separate mode: autocannon at `rate` on one route.
function runAutocannon(route, { duration = DURATION, rate = RATE } = {}) {
  return new Promise((resolve, reject) => {
    autocannon(
      {
        url: `http://127.0.0.1:${port}${route}`,
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        connections: CONNECTIONS,
        overallRate: rate,
        duration,
        requests: [
          {
            setupRequest: (req) => {
              req.body = orderBody();
              return req;
            },
            // The first answer that is not 2xx, to say why: the figures of
            // a route that fails are not its latency.
            onResponse: (status, body) => {
              if (status < 200 || status > 299) noteFailure(route, `${status} ${String(body).slice(0, 300)}`);
            },
          },
        ],
      },
      (err, result) => (err ? reject(err) : resolve(result)),
    );
  });
}

// Interleaved mode: an open-loop load generator over keep-alive connections
// (at most --connections; a request finding them all busy waits for one, and
// that wait is part of its latency). Sends `rate` POSTs a second for
// `duration` seconds, alternating between the routes in a random order
// balanced in pairs, and resolves with each route's latencies (ms) and its
// count of answers that were not 2xx (errors and timeouts included).
//
// A request on a reused keep-alive connection that the server closed just
// then fails with ECONNRESET before the server saw it; as Node's docs advise
// (request.reusedSocket), it is sent once more, its latency counted from the
// first try.
const agent = new http.Agent({ keepAlive: true, maxSockets: CONNECTIONS });
let resets = 0; // requests sent again after a keep-alive reset
function post(route, body, t0 = performance.now(), retried = false) {
  return new Promise((resolve) => {
    const req = http.request(
      { host: '127.0.0.1', port, path: route, method: 'POST', agent,
        headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } },
      (res) => {
        const ok = res.statusCode >= 200 && res.statusCode <= 299;
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (d) => {
          if (!ok && text.length < 300) text += d;
        });
        res.on('end', () => {
          const ms = performance.now() - t0;
          if (!ok) noteFailure(route, `${res.statusCode} ${text.slice(0, 300)}`);
          resolve({ ms, ok });
        });
        res.on('error', (err) => {
          noteFailure(route, `error ${err.message}`);
          resolve({ ms: performance.now() - t0, ok: false });
        });
      },
    );
    req.setTimeout(10000, () => req.destroy(new Error('timed out after 10 s')));
    req.on('error', (err) => {
      if (!retried && req.reusedSocket && err.code === 'ECONNRESET') {
        resets++;
        resolve(post(route, body, t0, true));
        return;
      }
      noteFailure(route, `error ${err.message}`);
      resolve({ ms: performance.now() - t0, ok: false });
    });
    req.end(body);
  });
}

async function runInterleaved({ duration = DURATION, rate = RATE } = {}) {
  const total = Math.round(rate * duration);
  const interval = 1000 / rate;
  const lat = Object.fromEntries(ROUTES.map((r) => [r, []]));
  const notOk = Object.fromEntries(ROUTES.map((r) => [r, 0]));
  const pending = [];
  let pair = ROUTES;
  const t0 = performance.now();
  let i = 0;
  await new Promise((done) => {
    const tick = () => {
      const now = performance.now();
      // Every request whose time has come (a late timer sends the ones it
      // held up at once: the rate stays the one asked for).
      while (i < total && t0 + i * interval <= now) {
        if (i % 2 === 0) pair = Math.random() < 0.5 ? ROUTES : [WITH, BASE];
        const route = pair[i % 2];
        pending.push(post(route, orderBody()).then(({ ms, ok }) => (ok ? lat[route].push(ms) : notOk[route]++)));
        i++;
      }
      if (i < total) setTimeout(tick, Math.max(0, t0 + i * interval - performance.now()));
      else done();
    };
    tick();
  });
  const sent = (performance.now() - t0) / 1000;
  await Promise.all(pending);
  return { lat, notOk, seconds: sent };
}

// Mean, standard deviation and percentiles of latencies in ms.
const quantile = (sorted, q) => (sorted.length ? sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))] : NaN);
function stats(xs) {
  const n = xs.length;
  const mean = xs.reduce((a, x) => a + x, 0) / n;
  const stddev = n > 1 ? Math.sqrt(xs.reduce((a, x) => a + (x - mean) ** 2, 0) / (n - 1)) : 0;
  const sorted = Float64Array.from(xs).sort();
  return { n, mean, stddev, p50: quantile(sorted, 0.5), p99: quantile(sorted, 0.99), p999: quantile(sorted, 0.999) };
}

const fmt = (x) => x.toFixed(2).padStart(7);
try {
  // runs[route][round]: { requests, perSec, samples, mean, stddev, p50, p99, p999, notOk }
  const runs = Object.fromEntries(ROUTES.map((r) => [r, []]));
  let pooledStats; // route -> { n, mean, stddev, p50, p99, p999 }
  const line = (r, route, x) =>
    console.log(
      `round ${r + 1} ${route.padEnd(22)} ${String(x.requests).padStart(6)} requests (${Math.round(x.perSec)}/s), ` +
        `mean ${fmt(x.mean)} ms  p50 ${fmt(x.p50)} ms  p99 ${fmt(x.p99)} ms  p99.9 ${fmt(x.p999)} ms` +
        (x.notOk ? `  (${x.notOk} not 2xx)` : '') +
        (x.notOk && failures.has(route) ? `\n  first answer not 2xx: ${failures.get(route)}` : ''),
    );

  if (MODE === 'interleaved') {
    log(`warm-up: 20 s at ${RATE}/s, both routes interleaved`);
    await runInterleaved({ duration: 20 });
    const all = Object.fromEntries(ROUTES.map((r) => [r, []]));
    const width = () => 2 * interval(runs[WITH].map((x, i) => x.mean - runs[BASE][i].mean)).half;
    for (let r = 0; r < ROUNDS || (UNTIL_WIDTH > 0 && r < MAX_ROUNDS && !(width() < UNTIL_WIDTH)); r++) {
      const res = await runInterleaved();
      for (const route of ROUTES) {
        const s = stats(res.lat[route]);
        const x = { requests: s.n + res.notOk[route], perSec: (s.n + res.notOk[route]) / res.seconds, samples: s.n,
          mean: s.mean, stddev: s.stddev, p50: s.p50, p99: s.p99, p999: s.p999, notOk: res.notOk[route] };
        runs[route].push(x);
        for (const v of res.lat[route]) all[route].push(v);
        line(r, route, x);
      }
    }
    pooledStats = Object.fromEntries(ROUTES.map((r) => [r, stats(all[r])]));
  } else {
    log('warm-up: 5 s on each route');
    await runAutocannon(BASE, { duration: 5 });
    await runAutocannon(WITH, { duration: 5 });
    for (let r = 0; r < ROUNDS; r++) {
      for (const route of r % 2 === 0 ? ROUTES : [...ROUTES].reverse()) {
        const res = await runAutocannon(route);
        const x = { requests: res.requests.total, perSec: res.requests.average, samples: res.latency.totalCount,
          mean: res.latency.mean, stddev: res.latency.stddev, p50: res.latency.p50, p99: res.latency.p99, p999: res.latency.p99_9,
          notOk: res.non2xx + res.errors + res.timeouts };
        runs[route].push(x);
        line(r, route, x);
      }
    }
    // Each route's requests over all rounds: count, mean and variance; the
    // percentiles averaged over the rounds. n: the responses. autocannon's
    // histogram holds more samples than that (at a fixed rate it adds the
    // ones a late response hid: coordinated omission), which would narrow
    // the interval for requests never sent.
    const avg = (route, k) => runs[route].reduce((s, x) => s + x[k], 0) / runs[route].length;
    pooledStats = Object.fromEntries(ROUTES.map((route) => {
      const rs = runs[route].map((x) => ({ n: x.requests, m: x.mean, s: x.stddev }));
      const n = rs.reduce((a, x) => a + x.n, 0);
      const m = rs.reduce((a, x) => a + x.n * x.m, 0) / n;
      const v = rs.reduce((a, x) => a + (x.n - 1) * x.s ** 2 + x.n * (x.m - m) ** 2, 0) / (n - 1);
      return [route, { n, mean: m, stddev: Math.sqrt(v), p50: avg(route, 'p50'), p99: avg(route, 'p99'), p999: avg(route, 'p999') }];
    }));
  }

  const w = pooledStats[WITH];
  const b = pooledStats[BASE];
  console.log(
    MODE === 'interleaved'
      ? `\nPOST at ${RATE}/s in all, half to each route in a random order balanced in pairs, ${DURATION} s x ${runs[WITH].length} rounds, ` +
          `open loop over ${CONNECTIONS} keep-alive connections${PIN ? `, ${PINNED}` : ''}`
      : `\nPOST at ${RATE}/s, ${DURATION} s x ${ROUNDS} rounds each, autocannon, ${CONNECTIONS} connections${PIN ? `, ${PINNED}` : ''}`,
  );
  console.log(
    '                     mean ms   p50 ms   p99 ms  p99.9 ms   ' +
      (MODE === 'interleaved' ? '(every request of every round)' : '(autocannon: percentiles in whole ms, averaged over the rounds)'),
  );
  for (const route of ROUTES) {
    const s = pooledStats[route];
    console.log(`${route.padEnd(22)}${fmt(s.mean)}  ${fmt(s.p50)}  ${fmt(s.p99)}  ${fmt(s.p999)}`);
  }
  const d = (k) => w[k] - b[k];
  console.log(`${'added by routeData'.padEnd(22)}${fmt(d('mean'))}  ${fmt(d('p50'))}  ${fmt(d('p99'))}  ${fmt(d('p999'))}`);
  console.log(`ratio (with / without)   ${(w.p50 / b.p50).toFixed(2)}x    ${(w.p99 / b.p99).toFixed(2)}x`);

  // One difference of means per round; Student's t over the rounds.
  const ds = runs[WITH].map((x, r) => x.mean - runs[BASE][r].mean);
  const { diff, half } = interval(ds);
  const stoppedBy = UNTIL_WIDTH <= 0 || ds.length <= ROUNDS ? 'rounds' : 2 * half < UNTIL_WIDTH ? 'width' : 'cap';
  const welchDiff = w.mean - b.mean;
  const welchHalf = 1.96 * Math.sqrt(w.stddev ** 2 / w.n + b.stddev ** 2 / b.n);
  const rounds = MODE === 'interleaved' ? 'interleaved rounds' : 'paired rounds';
  console.log(`per round, added mean ms: ${ds.map((x) => x.toFixed(2)).join(', ')}`);
  if (stoppedBy === 'width') console.log(`${ds.length} rounds: ${ROUNDS}, then one at a time until the interval was narrower than ${UNTIL_WIDTH} ms`);
  if (stoppedBy === 'cap') console.log(`${ds.length} rounds: the cap (--max-rounds), the interval still ${(2 * half).toFixed(2)} ms wide`);
  if (resets > 0) console.log(`${resets} requests sent again after a keep-alive connection reset (latency counted from the first try)`);
  console.log(
    `added by routeData, mean ${diff.toFixed(2)} ms, 95% CI over ${ds.length} ${rounds} [${(diff - half).toFixed(2)}, ${(diff + half).toFixed(2)}] ms ` +
      `(width ${(2 * half).toFixed(2)} ms; target narrower than 0.5 ms)`,
  );
  console.log(
    `  every request pooled (Welch): ${welchDiff.toFixed(2)} ms [${(welchDiff - welchHalf).toFixed(2)}, ${(welchDiff + welchHalf).toFixed(2)}] ms`,
  );
  if (args.json) {
    writeFileSync(args.json, JSON.stringify({
      bench: 'nextjs',
      mode: MODE,
      rate: RATE,
      duration: DURATION,
      rounds: ds.length,
      minRounds: ROUNDS,
      untilWidth: UNTIL_WIDTH,
      maxRounds: MAX_ROUNDS,
      stoppedBy,
      connections: CONNECTIONS,
      withRouteData: w,
      baseline: b,
      pinned: PIN,
      loadCpu: PIN ? Number(LOAD_CPU) : null,
      addedMean: { ms: diff, ci95: [diff - half, diff + half], width: 2 * half, method: `${rounds}, Student t`, perRound: ds },
      addedMeanPooled: { ms: welchDiff, ci95: [welchDiff - welchHalf, welchDiff + welchHalf], width: 2 * welchHalf, method: 'every request pooled, Welch' },
      runs,
    }, null, 2) + '\n');
  }
} finally {
  agent.destroy();
  await stopTree(server);
  await stopTree(forkd);
  if (!args.keep) rmSync(work, { recursive: true, force: true });
  else console.error(`[setup] kept ${work}`);
}
