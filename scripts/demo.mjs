// The demo: starts forkd with examples/fork.yaml, routes 100 000 reference
// purchase events to production (SQLite), analytics (hourly CSV chunks),
// revenue (a daily aggregate upserted into SQLite) and logs through
// routeData, stops forkd with SIGTERM and prints what arrived where.
//
//   node scripts/demo.mjs [--events N] [--window N]
import { readdirSync, readFileSync, rmSync, existsSync, statSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { ROOT, startForkd } from './lib/forkd.mjs';
import { purchases, percentile } from '../bench/workload.mjs';
import { createClient } from '../js/index.mjs';
import Database from 'better-sqlite3';

const { values } = parseArgs({
  options: {
    events: { type: 'string', default: '100000' },
    window: { type: 'string', default: '5000' },
  },
});
const N = Number(values.events);
const WINDOW = Number(values.window);

const examples = path.join(ROOT, 'examples');
const config = path.join(examples, 'fork.yaml');
const dataDir = path.join(examples, '.fork');
const outDir = path.join(examples, 'data');
// Each run starts clean, so the counts below are this run's.
rmSync(dataDir, { recursive: true, force: true });
rmSync(outDir, { recursive: true, force: true });

console.log(`starting forkd with ${path.relative(process.cwd(), config) || config}`);
const forkd = await startForkd(config);
const client = createClient({ endpoint: `ipc://${dataDir}/fork.sock` });

const next = purchases(7);
const DESTINATIONS = ['production', 'analytics', 'revenue', 'logs'];
const sums = new Map();  // currency -> acknowledged revenue
const latencies = new Float64Array(N);
let acked = 0;
let failed = 0;
const failures = new Map();
const t0 = performance.now();
let inFlight = 0;
let resolveSlot = null;

for (let i = 0; i < N; i++) {
  if (inFlight >= WINDOW) {
    await new Promise((r) => (resolveSlot = r));
  }
  inFlight++;
  const start = performance.now();
  const p = next();
  client
    .routeData(p, DESTINATIONS)
    .then(
      () => {
        latencies[acked++] = performance.now() - start;
        sums.set(p.currency, (sums.get(p.currency) ?? 0) + p.amount);
      },
      (err) => {
        failed++;
        failures.set(err.code, (failures.get(err.code) ?? 0) + 1);
      },
    )
    .finally(() => {
      inFlight--;
      if (resolveSlot && inFlight < WINDOW / 2) {
        const r = resolveSlot;
        resolveSlot = null;
        r();
      }
    });
}
await client.flush(30000);
const elapsed = (performance.now() - t0) / 1000;
await client.close();

const exit = await forkd.stop('SIGTERM');

function countJsonl(file) {
  if (!existsSync(file)) return 0;
  const text = readFileSync(file, 'utf8');
  return text.length === 0 ? 0 : text.split('\n').length - 1;
}
function countDir(dir, ext, headerLines) {
  if (!existsSync(dir)) return 0;
  let n = 0;
  for (const f of readdirSync(dir)) {
    // A chunk still open is written as .<name>.part and renamed when complete.
    if (!f.endsWith(ext) && !f.endsWith(`${ext}.part`)) continue;
    const p = path.join(dir, f);
    if (!statSync(p).isFile()) continue;
    n += countJsonl(p) - headerLines;
  }
  return n;
}
function countRotated(file) {
  const dir = path.dirname(file);
  if (!existsSync(dir)) return 0;
  const ext = path.extname(file);
  const stem = path.basename(file, ext);
  return readdirSync(dir)
    .filter((f) => f === path.basename(file) || (f.startsWith(stem + '-') && f.endsWith(ext)))
    .reduce((n, f) => n + countJsonl(path.join(dir, f)), 0);
}

const sorted = Array.from(latencies.subarray(0, acked)).sort((a, b) => a - b);
function query(file, sql) {
  if (!existsSync(file)) return [];
  const db = new Database(file, { readonly: true });
  try {
    return db.prepare(sql).all();
  } finally {
    db.close();
  }
}
const revenueRows = query(path.join(outDir, 'analytics.db'), 'SELECT currency, revenue, orders FROM daily_revenue');
const delivered = {
  production: query(path.join(outDir, 'production.db'), 'SELECT count(*) n FROM orders')[0]?.n ?? 0,
  analytics: countDir(path.join(outDir, 'analytics'), '.csv', 1),
  revenue: revenueRows.reduce((n, r) => n + r.orders, 0),
  logs: countRotated(path.join(outDir, 'logs', 'events.jsonl')),
};
// The aggregate's totals against what was acknowledged, per currency.
const revenueOk = revenueRows.length === sums.size &&
  revenueRows.every((r) => Math.abs(r.revenue - (sums.get(r.currency) ?? NaN)) < 1e-6 * Math.max(1, r.revenue));

console.log('');
console.log('Fork demo summary');
console.log(`  sent              ${N}`);
console.log(`  acknowledged      ${acked}${failed ? `  (failed ${failed}: ${[...failures].map(([c, n]) => `${c} x${n}`).join(', ')})` : ''}`);
const where = {
  production: 'rows in data/production.db (orders, upsert on orderId)',
  analytics: 'CSV rows in data/analytics/ (hourly chunks; the open hour is a .part file)',
  revenue: `events summed in data/analytics.db (daily_revenue: ${revenueRows.length} rows, ${revenueOk ? 'totals equal the acknowledged amounts' : 'TOTALS DIFFER from the acknowledged amounts'})`,
  logs: 'lines in data/logs/',
};
for (const [name, n] of Object.entries(delivered)) {
  console.log(`  delivered ${name.padEnd(11)}${String(n).padEnd(8)}${where[name]}`);
}
console.log(`  throughput        ${Math.round(acked / elapsed)} events/s (${elapsed.toFixed(2)} s, ack 'accepted', fsync on)`);
console.log(`  ack latency       p50 ${percentile(sorted, 50).toFixed(2)} ms, p99 ${percentile(sorted, 99).toFixed(2)} ms (with up to ${WINDOW} calls in flight)`);
console.log(`  forkd exit        ${exit.code === 0 ? '0 (clean SIGTERM drain)' : JSON.stringify(exit)}`);
console.log(`  output            ${path.relative(process.cwd(), outDir) || outDir}/`);

const ok = acked === N && Object.values(delivered).every((n) => n === N) && revenueOk && exit.code === 0;
if (!ok) {
  console.error('\ndemo: something did not arrive; forkd said:\n' + forkd.stderr());
  process.exit(1);
}
