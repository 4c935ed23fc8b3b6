// The latency routeData adds to a Next.js route handler. The example app is
// set up as a user gets it (packed tarball, next build, next start beside
// `npx forkd run`) plus one extra route, /api/orders-baseline: the same
// handler with routeData replaced by an already-resolved receipt. autocannon
// sends POSTs at a fixed rate to each in turn, several rounds, and prints
// p50/p99/p99.9 of each and the difference. The difference of the means
// comes with a 95% confidence interval (Welch: each route's requests of
// every round pooled, mean ± 1.96 standard errors; it treats the requests
// as independent, which queueing behind one another they are not quite, and
// it does not see the machine drifting from one round to the next: compare
// the rounds).
//
//   node bench/nextjs.mjs [--rate 1000] [--duration 15] [--rounds 2] [--connections 20] [--json FILE]
//
// --json FILE also writes the figures to FILE as one JSON object.
// Figures only: it never fails on timing.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import autocannon from 'autocannon';
import { EXAMPLE, prepareApp, startForkd, freePort, startNext, stopTree } from '../scripts/lib/nextjs-app.mjs';

const { values: args } = parseArgs({
  options: {
    rate: { type: 'string', default: '1000' },
    duration: { type: 'string', default: '15' },
    rounds: { type: 'string', default: '2' },
    connections: { type: 'string', default: '20' },
    keep: { type: 'boolean', default: false },
    json: { type: 'string' },
  },
});
const RATE = Number(args.rate);
const DURATION = Number(args.duration);
const ROUNDS = Number(args.rounds);

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
  for (let r = 0; r < ROUNDS; r++) {
    for (const route of Object.keys(rows)) {
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
  console.log(`\nPOST at ${RATE}/s, ${DURATION} s x ${ROUNDS} rounds each, autocannon, ${args.connections} connections`);
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
  const diff = w.mean - b.mean;
  const half = 1.96 * Math.sqrt(w.stddev ** 2 / w.n + b.stddev ** 2 / b.n);
  console.log(
    `added by routeData, mean ${diff.toFixed(2)} ms, 95% CI [${(diff - half).toFixed(2)}, ${(diff + half).toFixed(2)}] ms ` +
      `(width ${(2 * half).toFixed(2)} ms; target narrower than 0.5 ms)`,
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
      addedMean: { ms: diff, ci95: [diff - half, diff + half], width: 2 * half },
      runs: Object.fromEntries(Object.entries(rows).map(([route, rs]) => [route, rs.map(lat)])),
    }, null, 2) + '\n');
  }
} finally {
  await stopTree(server);
  await stopTree(forkd);
  if (!args.keep) rmSync(work, { recursive: true, force: true });
  else console.error(`[setup] kept ${work}`);
}
