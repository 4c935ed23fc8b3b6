// The latency routeData adds to a Next.js route handler. The example app is
// set up as a user gets it (packed tarball, next build, next start beside
// `npx forkd run`) plus one extra route, /api/orders-baseline: the same
// handler with routeData replaced by an already-resolved receipt. autocannon
// sends POSTs at a fixed rate to each in turn and prints p50/p99/p99.9 of
// each and the difference.
//
// The added mean comes with a 95% confidence interval over paired rounds:
// each round runs both routes back to back (in the order baseline, with,
// then with, baseline, and so on, so a machine drifting over time weighs on
// both alike), its difference of means is one sample, and the interval is
// Student's t over those differences. Requests queue behind one another,
// so they are not independent samples; rounds are. Where taskset exists
// (unless --no-pin) the Next.js server, the addon's I/O thread with it, runs
// on CPU 1 and forkd with the load generator on CPU 0, so the scheduler does
// not move them about: a one-CPU app container. The older interval, every
// request pooled (Welch), is printed beside it.
//
//   node bench/nextjs.mjs [--rate 1000] [--duration 5] [--rounds 16] [--connections 20] [--no-pin] [--json FILE]
//
// --json FILE also writes the figures to FILE as one JSON object.
// Figures only: it never fails on timing.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import autocannon from 'autocannon';
import { spawnSync } from 'node:child_process';
import { EXAMPLE, prepareApp, startForkd, freePort, startNext, stopTree, processTree } from '../scripts/lib/nextjs-app.mjs';

const { values: args } = parseArgs({
  options: {
    rate: { type: 'string', default: '1000' },
    duration: { type: 'string', default: '5' },
    rounds: { type: 'string', default: '16' },
    'no-pin': { type: 'boolean', default: false },
    connections: { type: 'string', default: '20' },
    keep: { type: 'boolean', default: false },
    json: { type: 'string' },
  },
});
const RATE = Number(args.rate);
const DURATION = Number(args.duration);
const ROUNDS = Number(args.rounds);
const PIN = !args['no-pin'] && spawnSync('taskset', ['-c', '0', 'true']).status === 0;

// Every thread of pid and its descendants onto `cpus` (taskset -a).
function pin(pid, cpus) {
  for (const p of processTree(pid)) spawnSync('taskset', ['-a', '-cp', cpus, String(p)], { stdio: 'ignore' });
}

// Student's t at 97.5 % for df degrees of freedom (a 95 % two-sided interval).
function t975(df) {
  const table = [12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.16, 2.145,
    2.131, 2.12, 2.11, 2.101, 2.093, 2.086, 2.08, 2.074, 2.069, 2.064, 2.06, 2.056, 2.052, 2.048, 2.045, 2.042];
  return df <= 0 ? Infinity : df <= table.length ? table[df - 1] : 1.96;
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
  pin(process.pid, '0');
}

let n = 0;
const failures = new Map(); // route -> its first answer that was not 2xx
const CURRENCIES = ['EUR', 'USD', 'GBP'];
function run(route, { duration = DURATION, rate = RATE } = {}) {
  return new Promise((resolve, reject) => {
    autocannon(
      {
        url: `http://127.0.0.1:${port}${route}`,
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        connections: Number(args.connections),
        overallRate: rate,
        duration,
        requests: [
          {
            setupRequest: (req) => {
              const i = n++;
              req.body = JSON.stringify({ orderId: `b-${i}`, amount: (i % 5000) / 100 + 1, currency: CURRENCIES[i % 3] });
              return req;
            },
            // The first answer that is not 2xx, to say why: the figures of
            // a route that fails are not its latency.
            onResponse: (status, body) => {
              if ((status < 200 || status > 299) && !failures.has(route)) failures.set(route, `${status} ${String(body).slice(0, 300)}`);
            },
          },
        ],
      },
      (err, result) => (err ? reject(err) : resolve(result)),
    );
  });
}

const fmt = (x) => x.toFixed(2).padStart(7);
try {
  log('warm-up: 5 s on each route');
  await run('/api/orders-baseline', { duration: 5 });
  await run('/api/orders', { duration: 5 });
  const rows = { '/api/orders-baseline': [], '/api/orders': [] };
  const order = Object.keys(rows);
  for (let r = 0; r < ROUNDS; r++) {
    for (const route of r % 2 === 0 ? order : [...order].reverse()) {
      const res = await run(route);
      const non2xx = res.non2xx + res.errors + res.timeouts;
      rows[route].push(res);
      console.log(
        `round ${r + 1} ${route.padEnd(22)} ${String(res.requests.total).padStart(6)} requests (${Math.round(res.requests.average)}/s), ` +
          `mean ${fmt(res.latency.mean)} ms  p50 ${fmt(res.latency.p50)} ms  p99 ${fmt(res.latency.p99)} ms  p99.9 ${fmt(res.latency.p99_9)} ms` +
          (non2xx ? `  (${non2xx} not 2xx)` : ''),
      );
      if (non2xx && failures.has(route)) console.log(`  first answer not 2xx: ${failures.get(route)}`);
    }
  }
  const avg = (route, k) => rows[route].reduce((s, x) => s + x.latency[k], 0) / rows[route].length;
  console.log(`\nPOST at ${RATE}/s, ${DURATION} s x ${ROUNDS} rounds each, autocannon, ${args.connections} connections${PIN ? ', Next.js on CPU 1, forkd and the load on CPU 0' : ''}`);
  console.log('                     mean ms   p50 ms   p99 ms  p99.9 ms   (autocannon: percentiles in whole ms)');
  for (const route of Object.keys(rows)) {
    console.log(`${route.padEnd(22)}${fmt(avg(route, 'mean'))}  ${fmt(avg(route, 'p50'))}  ${fmt(avg(route, 'p99'))}  ${fmt(avg(route, 'p99_9'))}`);
  }
  const d = (k) => avg('/api/orders', k) - avg('/api/orders-baseline', k);
  console.log(`${'added by routeData'.padEnd(22)}${fmt(d('mean'))}  ${fmt(d('p50'))}  ${fmt(d('p99'))}  ${fmt(d('p99_9'))}`);
  console.log(
    `ratio (with / without)   ${(avg('/api/orders', 'p50') / avg('/api/orders-baseline', 'p50')).toFixed(2)}x    ` +
      `${(avg('/api/orders', 'p99') / avg('/api/orders-baseline', 'p99')).toFixed(2)}x`,
  );
  // Each route's requests over all rounds: count, mean and variance.
  const pooled = (route) => {
    // n: the responses. autocannon's histogram holds more samples than that
    // (at a fixed rate it adds the ones a late response hid: coordinated
    // omission), which would narrow the interval for requests never sent.
    const rs = rows[route].map((x) => ({ n: x.requests.total, m: x.latency.mean, s: x.latency.stddev }));
    const n = rs.reduce((a, x) => a + x.n, 0);
    const m = rs.reduce((a, x) => a + x.n * x.m, 0) / n;
    const v = rs.reduce((a, x) => a + (x.n - 1) * x.s ** 2 + x.n * (x.m - m) ** 2, 0) / (n - 1);
    return { n, mean: m, stddev: Math.sqrt(v) };
  };
  const w = pooled('/api/orders');
  const b = pooled('/api/orders-baseline');
  // The paired rounds: one difference of means per round.
  const ds = rows['/api/orders'].map((x, r) => x.latency.mean - rows['/api/orders-baseline'][r].latency.mean);
  const diff = ds.reduce((a, x) => a + x, 0) / ds.length;
  const sd = ds.length > 1 ? Math.sqrt(ds.reduce((a, x) => a + (x - diff) ** 2, 0) / (ds.length - 1)) : Infinity;
  const half = t975(ds.length - 1) * (sd / Math.sqrt(ds.length));
  const welchDiff = w.mean - b.mean;
  const welchHalf = 1.96 * Math.sqrt(w.stddev ** 2 / w.n + b.stddev ** 2 / b.n);
  console.log(`per round, added mean ms: ${ds.map((x) => x.toFixed(2)).join(', ')}`);
  console.log(
    `added by routeData, mean ${diff.toFixed(2)} ms, 95% CI over ${ds.length} paired rounds [${(diff - half).toFixed(2)}, ${(diff + half).toFixed(2)}] ms ` +
      `(width ${(2 * half).toFixed(2)} ms; target narrower than 0.5 ms)`,
  );
  console.log(
    `  every request pooled (Welch): ${welchDiff.toFixed(2)} ms [${(welchDiff - welchHalf).toFixed(2)}, ${(welchDiff + welchHalf).toFixed(2)}] ms`,
  );
  if (args.json) {
    const lat = (x) => ({ requests: x.requests.total, perSec: x.requests.average, samples: x.latency.totalCount, mean: x.latency.mean,
      stddev: x.latency.stddev, p50: x.latency.p50, p99: x.latency.p99, p999: x.latency.p99_9, notOk: x.non2xx + x.errors + x.timeouts });
    writeFileSync(args.json, JSON.stringify({
      bench: 'nextjs',
      rate: RATE,
      duration: DURATION,
      rounds: ROUNDS,
      connections: Number(args.connections),
      withRouteData: { ...w, p50: avg('/api/orders', 'p50'), p99: avg('/api/orders', 'p99'), p999: avg('/api/orders', 'p99_9') },
      baseline: { ...b, p50: avg('/api/orders-baseline', 'p50'), p99: avg('/api/orders-baseline', 'p99'), p999: avg('/api/orders-baseline', 'p99_9') },
      pinned: PIN,
      addedMean: { ms: diff, ci95: [diff - half, diff + half], width: 2 * half, method: 'paired rounds, Student t', perRound: ds },
      addedMeanPooled: { ms: welchDiff, ci95: [welchDiff - welchHalf, welchDiff + welchHalf], width: 2 * welchHalf, method: 'every request pooled, Welch' },
      runs: Object.fromEntries(Object.entries(rows).map(([route, rs]) => [route, rs.map(lat)])),
    }, null, 2) + '\n');
  }
} finally {
  await stopTree(server);
  await stopTree(forkd);
  if (!args.keep) rmSync(work, { recursive: true, force: true });
  else console.error(`[setup] kept ${work}`);
}
