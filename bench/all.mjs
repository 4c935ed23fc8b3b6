// Every headline figure in one run: runs the benchmarks one after another,
// each with --json, prints one table (figure | Fork | peer | ratio | target |
// met?) and writes the run to bench/results/<date>.json (<date>-2.json, … for
// later runs the same day): the machine, the commit, the options and every
// bench's figures, so that two runs can be compared.
//
//   npm run bench                                 # everything, full sizes
//   npm run bench -- --quick --only route,ack_latency
//   node bench/all.mjs [--quick] [--only NAMES] [--compare OLD.json] [--out FILE]
//     NAMES: js_thread, encode, route, route_many, ack_latency, clickhouse, kafka, nextjs
//   node bench/all.mjs --results NEW.json --compare OLD.json   # no run: the table of NEW, and its deltas
//
// --quick runs small sizes (a few minutes in all); the figures are then
// rougher, and the results file says so. A bench whose server is not on this
// machine (ClickHouse, Java for Kafka) is skipped with the reason. Figures
// only: the exit status is 0 when every bench ran, whatever the figures, and
// 1 when one crashed.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { ROOT, FORKD } from '../scripts/lib/forkd.mjs';
import { clickhouseAvailable } from '../tests/e2e/servers/clickhouse.mjs';

const { values: args } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    only: { type: 'string' },
    compare: { type: 'string' },
    results: { type: 'string' },
    out: { type: 'string' },
    help: { type: 'boolean', default: false },
  },
});

const fmt = (n, d = 0) => n.toLocaleString('en-US', { maximumFractionDigits: d, minimumFractionDigits: d });
const ratioText = (x) => `${fmt(x, 2)}×`;

function javaAvailable() {
  const java = process.env.JAVA || (process.env.JAVA_HOME ? path.join(process.env.JAVA_HOME, 'bin', 'java') : 'java');
  return spawnSync(java, ['-version'], { stdio: 'ignore' }).status === 0;
}

// Each bench: its script, its arguments (full and --quick), why it cannot
// run here (or null), and the table rows made of its figures. A row:
// { id, figure, fork, peer, ratio, target, met, value, unit, better } where
// `value` is the number --compare follows, `unit` what it is, and `better`
// says which way is better ('higher' or 'lower').
const BENCHES = {
  js_thread: {
    script: 'bench/js_thread.mjs',
    full: ['50000'],
    quick: ['20000'],
    rows: (f) =>
      [
        ['reference', `reference event (${f.versusPack.reference.bytes} B)`],
        ['nested2k', `2 KB nested event (${f.versusPack.nested2k.bytes} B)`],
      ].map(([k, what]) => {
        const v = f.versusPack[k];
        return {
          id: `js_thread.${k}`,
          figure: `JS-thread time per routeData call, ${what}, vs msgpackr.pack()`,
          fork: `${fmt(v.routeDataNsPerCall)} ns`,
          peer: `${fmt(v.packNsPerOp)} ns`,
          ratio: ratioText(v.ratio),
          target: '≤ 1.0×',
          met: v.ratio <= 1.0,
          value: v.routeDataNsPerCall,
          unit: 'ns',
          better: 'lower',
        };
      }),
  },
  encode: {
    script: 'bench/encode.mjs',
    full: ['300000'],
    quick: ['100000'],
    rows: (f) => [
      {
        id: 'encode.js',
        figure: "routeData's JS encoder alone, reference event, vs msgpackr.pack()",
        fork: `${fmt(f.nsPerOp.js)} ns`,
        peer: `${fmt(f.nsPerOp.pack)} ns`,
        ratio: ratioText(f.nsPerOp.js / f.nsPerOp.pack),
        target: '—',
        met: null,
        value: f.nsPerOp.js,
        unit: 'ns',
        better: 'lower',
      },
      {
        id: 'encode.reference',
        figure: "the addon's C++ encoder alone (what the JS encoder hands over), reference event, vs msgpackr.pack()",
        fork: `${fmt(f.nsPerOp.encodedSize)} ns`,
        peer: `${fmt(f.nsPerOp.pack)} ns`,
        ratio: ratioText(f.nsPerOp.encodedSize / f.nsPerOp.pack),
        target: '—',
        met: null,
        value: f.nsPerOp.encodedSize,
        unit: 'ns',
        better: 'lower',
      },
    ],
  },
  route: {
    script: 'bench/route.mjs',
    full: [],
    quick: ['--events', '200000', '--paced-seconds', '2'],
    rows: (f) => [
      {
        id: 'route.throughput',
        figure: 'routeData end to end, ev/s durable (ack accepted, fsync batch, one file destination)',
        fork: `${fmt(f.routeData.eventsPerSec)} ev/s`,
        peer: '—',
        ratio: '—',
        target: '≥ 300,000 ev/s',
        met: f.routeData.eventsPerSec >= 300000,
        value: f.routeData.eventsPerSec,
        unit: 'ev/s',
        better: 'higher',
      },
      {
        id: 'route.vs_pure_js',
        figure: 'routeData vs a pure-JS client (zeromq + msgpackr, a frame per call)',
        fork: `${fmt(f.routeData.eventsPerSec)} ev/s`,
        peer: `${fmt(f.pureJs.eventsPerSec)} ev/s`,
        ratio: ratioText(f.routeData.eventsPerSec / f.pureJs.eventsPerSec),
        target: '≥ 3.0×',
        met: f.routeData.eventsPerSec / f.pureJs.eventsPerSec >= 3,
        value: f.routeData.eventsPerSec / f.pureJs.eventsPerSec,
        unit: 'ratio',
        better: 'higher',
      },
      {
        id: 'route.js_thread',
        figure: 'JS-thread time per routeData call under full load, vs msgpackr.pack()',
        fork: `${fmt(f.routeData.jsNsPerCall)} ns`,
        peer: `${fmt(f.packNsPerOp)} ns`,
        ratio: ratioText(f.routeData.jsNsPerCall / f.packNsPerOp),
        target: '≤ 1.0×',
        met: f.routeData.jsNsPerCall / f.packNsPerOp <= 1,
        value: f.routeData.jsNsPerCall,
        unit: 'ns',
        better: 'lower',
      },
      {
        id: 'route.rss',
        figure: 'forkd peak RSS over the route bench',
        fork: `${fmt(f.forkdPeakRssMiB, 1)} MiB`,
        peer: '—',
        ratio: '—',
        target: '≤ 64 MiB',
        met: f.forkdPeakRssMiB <= 64,
        value: f.forkdPeakRssMiB,
        unit: 'MiB',
        better: 'lower',
      },
    ],
  },
  route_many: {
    script: 'bench/route_many.mjs',
    full: [],
    quick: ['--events', '200000'],
    rows: (f) =>
      Object.entries(f.routeMany).map(([size, r]) => ({
        id: `route_many.${size}`,
        figure: `routeMany, ${fmt(Number(size))} events per call, ev/s durable, vs routeData in the same run`,
        fork: `${fmt(r.eventsPerSec)} ev/s`,
        peer: `${fmt(f.routeData.eventsPerSec)} ev/s`,
        ratio: ratioText(r.eventsPerSec / f.routeData.eventsPerSec),
        target: '≥ 300,000 ev/s',
        met: r.eventsPerSec >= 300000,
        value: r.eventsPerSec,
        unit: 'ev/s',
        better: 'higher',
      })),
  },
  ack_latency: {
    script: 'bench/ack_latency.mjs',
    full: [],
    quick: ['--seconds', '1', '--full-events', '100000'],
    rows: (f) => [
      ...f.rates.map(({ rate, adaptive: a, linger: l }) => {
        // The percentile the target names; p99 where there is none.
        const [key, limit] = rate === 100 ? ['p50', 1] : rate === 10000 ? ['p99', 5] : ['p99', null];
        const three = (x) => `${fmt(x.p50, 2)} / ${fmt(x.p99, 2)} / ${fmt(x.p999, 2)} ms`;
        return {
          id: `ack_latency.${rate}`,
          figure: `ack latency p50 / p99 / p99.9 at ${fmt(rate)} ev/s, vs a fixed ${f.lingerMs} ms linger`,
          fork: three(a),
          peer: three(l),
          ratio: `${ratioText(a[key] / l[key])} (${key})`,
          target: limit === null ? '—' : `${key} ≤ ${limit} ms`,
          met: limit === null ? null : a[key] <= limit,
          value: a[key],
          unit: `${key} ms`,
          better: 'lower',
        };
      }),
      {
        id: 'ack_latency.full_load',
        figure: `full-load throughput, adaptive group commit vs a fixed ${f.lingerMs} ms linger`,
        fork: `${fmt(f.fullLoad.adaptive)} ev/s`,
        peer: `${fmt(f.fullLoad.linger)} ev/s`,
        ratio: ratioText(f.fullLoad.ratio),
        target: '≥ 1.0×',
        met: f.fullLoad.ratio >= 1,
        value: f.fullLoad.ratio,
        unit: 'ratio',
        better: 'higher',
      },
    ],
  },
  clickhouse: {
    script: 'bench/clickhouse.mjs',
    full: [],
    quick: ['--events', '50000', '--rounds', '1'],
    unavailable: () => (clickhouseAvailable() ? null : 'clickhouse-server is not installed (scripts/install-deps.sh installs it)'),
    rows: (f) => {
      const peer = `${fmt(f.nodeInFlight.rowsPerSec)} rows/s`;
      return [
        {
          id: 'clickhouse.end_to_end',
          figure: `ClickHouse end to end (routeData → row, batches of ${fmt(f.batch)}) vs fetch, ${f.inFlight} POSTs in flight`,
          fork: `${fmt(f.forkEndToEnd.rowsPerSec)} rows/s`,
          peer,
          ratio: ratioText(f.ratio.endToEndOverInFlight),
          target: '≥ 1.0×',
          met: f.ratio.endToEndOverInFlight >= 1,
          value: f.ratio.endToEndOverInFlight,
          unit: 'ratio',
          better: 'higher',
        },
        {
          id: 'clickhouse.sink_alone',
          figure: `ClickHouse sink alone (log → table) vs fetch, ${f.inFlight} POSTs in flight`,
          fork: `${fmt(f.forkSinkAlone.rowsPerSec)} rows/s`,
          peer,
          ratio: ratioText(f.ratio.sinkAloneOverInFlight),
          target: '≥ 1.0× and ≥ 200,000 rows/s',
          met: f.ratio.sinkAloneOverInFlight >= 1 && f.forkSinkAlone.rowsPerSec >= 200000,
          value: f.ratio.sinkAloneOverInFlight,
          unit: 'ratio',
          better: 'higher',
        },
        {
          id: 'clickhouse.default_batch',
          figure: `ClickHouse end to end, default batch (${fmt(f.forkDefaultBatch.batch)}), vs the same peer`,
          fork: `${fmt(f.forkDefaultBatch.rowsPerSec)} rows/s`,
          peer,
          ratio: ratioText(f.ratio.defaultBatchOverInFlight),
          target: '—',
          met: null,
          value: f.ratio.defaultBatchOverInFlight,
          unit: 'ratio',
          better: 'higher',
        },
      ];
    },
  },
  kafka: {
    script: 'bench/kafka.mjs',
    full: [],
    quick: ['--events', '50000', '--rounds', '1', '--seconds', '5'],
    unavailable: () => (javaAvailable() ? null : 'no Java to run the Kafka broker (set JAVA or JAVA_HOME, or install Java 17)'),
    rows: (f) => [
      {
        id: 'kafka.vs_rdkafka',
        figure: "Kafka: routeData → broker ack (acks=all, idempotent) vs librdkafka's own producer",
        fork: `${fmt(f.fork.eventsPerSec)} ev/s`,
        peer: `${fmt(f.rdkafka.eventsPerSec)} ev/s`,
        ratio: ratioText(f.ratio.forkOverRdkafka),
        target: '≥ 0.8×',
        met: f.ratio.forkOverRdkafka >= 0.8,
        value: f.ratio.forkOverRdkafka,
        unit: 'ratio',
        better: 'higher',
      },
      {
        id: 'kafka.sink_alone',
        figure: 'Kafka destination alone (log → broker) vs librdkafka',
        fork: `${fmt(f.forkSinkAlone.eventsPerSec)} ev/s`,
        peer: `${fmt(f.rdkafka.eventsPerSec)} ev/s`,
        ratio: ratioText(f.ratio.forkSinkAloneOverRdkafka),
        target: '—',
        met: null,
        value: f.ratio.forkSinkAloneOverRdkafka,
        unit: 'ratio',
        better: 'higher',
      },
      ...(f.ratio.forkSinkMiddleOverRdkafkaMiddle ? [{
        id: 'kafka.sink_steady',
        figure: 'Kafka destination alone, steady state (1/4 → 3/4 delivered), vs librdkafka over the same part of its run',
        fork: `${fmt(f.forkSinkAlone.middle)} ev/s`,
        peer: `${fmt(f.rdkafka.middle)} ev/s`,
        ratio: ratioText(f.ratio.forkSinkMiddleOverRdkafkaMiddle),
        target: '—',
        met: null,
        value: f.ratio.forkSinkMiddleOverRdkafkaMiddle,
        unit: 'ratio',
        better: 'higher',
      }] : []),
      ...(f.forkSinkAlone.sinkCpuUsPerEvent && f.rdkafka.cpuUsPerEvent ? [{
        id: 'kafka.sink_cpu',
        figure: "Kafka destination's CPU per event (its thread and librdkafka's) vs librdkafka's producer process",
        fork: `${fmt(f.forkSinkAlone.sinkCpuUsPerEvent, 2)} µs`,
        peer: `${fmt(f.rdkafka.cpuUsPerEvent, 2)} µs`,
        ratio: ratioText(f.forkSinkAlone.sinkCpuUsPerEvent / f.rdkafka.cpuUsPerEvent),
        target: '—',
        met: null,
        value: f.forkSinkAlone.sinkCpuUsPerEvent / f.rdkafka.cpuUsPerEvent,
        unit: 'ratio',
        better: 'lower',
      }] : []),
      {
        id: 'kafka.vs_kafkajs',
        figure: `Kafka: routeData → broker ack vs kafkajs (idempotent, sendBatch of ${fmt(f.kafkajs.batch)})`,
        fork: `${fmt(f.fork.eventsPerSec)} ev/s`,
        peer: `${fmt(f.kafkajs.eventsPerSec)} ev/s`,
        ratio: ratioText(f.ratio.forkOverKafkajs),
        target: '—',
        met: null,
        value: f.ratio.forkOverKafkajs,
        unit: 'ratio',
        better: 'higher',
      },
      ...(Array.isArray(f.latency) ? f.latency : []).map((l) => ({
        id: `kafka.latency.${l.batchMaxWait.split(' ')[0]}`,
        figure: `edge → Kafka → hub → SQLite p50 / p99 at ${fmt(l.rate)} ev/s, batch.max_wait ${l.batchMaxWait}`,
        fork: `${fmt(l.p50, 1)} / ${fmt(l.p99, 1)} ms`,
        peer: '—',
        ratio: '—',
        target: '—',
        met: null,
        value: l.p99,
        unit: 'p99 ms',
        better: 'lower',
      })),
    ],
  },
  nextjs: {
    script: 'bench/nextjs.mjs',
    full: [],
    quick: ['--duration', '3', '--rounds', '4', '--until-width', '0'],
    unavailable: () => {
      if (process.env.FORK_PACK_BUILT !== '1') return null;
      const out = path.join(ROOT, 'build', 'prebuilds', 'out');
      const built = ['linux-x64', 'linux-arm64', 'linuxmusl-x64', 'linuxmusl-arm64'].some((t) => existsSync(path.join(out, t, 'fork_router.node')));
      return built ? null : 'FORK_PACK_BUILT=1, but build/prebuilds/out holds no prebuilt target (bash scripts/build-prebuilds.sh)';
    },
    rows: (f) => {
      // A route that answered errors was not measured: its latency is
      // the error's, not routeData's.
      const all = Object.values(f.runs).flat();
      const notOk = all.reduce((a, x) => a + x.notOk, 0);
      // Interleaved (both routes in one load run; results without `mode`
      // are the older separate runs): a figure of its own for --compare.
      const interleaved = f.mode === 'interleaved';
      const id = interleaved ? 'nextjs.added_mean_interleaved' : 'nextjs.added_mean';
      const figure = interleaved
        ? `Next.js route handler: mean latency routeData adds, 95% CI over ${f.stoppedBy ? `${fmt(f.rounds)} ` : ''}interleaved rounds` +
          `${f.stoppedBy === 'width' ? ` (run until narrower than ${f.untilWidth} ms)` : f.stoppedBy === 'cap' ? ' (the cap on rounds)' : ''}` +
          ` (POST at ${fmt(f.rate)}/s in all, both routes in one run)`
        : `Next.js route handler: mean latency routeData adds, 95% CI over paired rounds (POST at ${fmt(f.rate)}/s)`;
      const target = 'added mean, 95% CI width < 0.5 ms';
      if (notOk > 0) {
        const total = all.reduce((a, x) => a + x.requests, 0);
        return [{ id, figure, fork: `not measured: ${fmt(notOk)} of ${fmt(total)} answers not 2xx`,
          peer: '—', ratio: '—', target, met: null }];
      }
      return [{
        id,
        figure,
        fork: `${fmt(f.addedMean.ms, 2)} ms [${fmt(f.addedMean.ci95[0], 2)}, ${fmt(f.addedMean.ci95[1], 2)}] (width ${fmt(f.addedMean.ci95[1] - f.addedMean.ci95[0], 2)})`,
        peer: `${fmt(f.baseline.mean, 2)} ms mean without it`,
        ratio: ratioText(f.withRouteData.mean / f.baseline.mean),
        target,
        met: f.addedMean.ci95[1] - f.addedMean.ci95[0] < 0.5,
        value: f.addedMean.ms,
        unit: 'ms added',
        better: 'lower',
      }];
    },
  },
};

// ---------------------------------------------------------------------------

function printTable(rows) {
  const head = ['figure', 'Fork', 'peer', 'ratio', 'target', 'met?'];
  const cells = rows.map((r) => [r.figure, r.fork, r.peer, r.ratio, r.target, r.met === null ? '—' : r.met ? 'yes' : 'no']);
  const w = head.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i].length)));
  const line = (c) => `| ${c.map((x, i) => x.padEnd(w[i])).join(' | ')} |`;
  console.log(line(head));
  console.log(`|${w.map((n) => '-'.repeat(n + 2)).join('|')}|`);
  for (const c of cells) console.log(line(c));
}

function tableOf(results) {
  const rows = [];
  for (const [name, b] of Object.entries(results.benches)) {
    if (b.status === 'ok') {
      // The rows made anew from the figures, so that a file written by an
      // older version of this script reads as this one's; its own rows if not.
      let made = null;
      try {
        made = BENCHES[name]?.rows(b.figures) ?? null;
      } catch {}
      rows.push(...(made ?? b.rows));
    }
    else {
      rows.push({ id: `${name}.status`, figure: `${name}: ${b.status}`, fork: b.reason ?? `exit ${b.exit}`, peer: '', ratio: '', target: '', met: null });
    }
  }
  return rows;
}

function compare(older, newer) {
  const before = new Map(tableOf(older).filter((r) => typeof r.value === 'number').map((r) => [r.id, r]));
  console.log(`\nagainst ${older.date} (commit ${older.commit.sha.slice(0, 12)}${older.quick ? ', --quick' : ''}, ` +
    `${older.machine.cores} × ${older.machine.cpu}, node ${older.machine.node}):`);
  if (older.quick !== newer.quick) console.log('note: one run is --quick and the other is not; sizes differ.');
  if (older.machine.cpu !== newer.machine.cpu || older.machine.cores !== newer.machine.cores) console.log('note: the machines differ.');
  const rows = [];
  for (const r of tableOf(newer)) {
    const o = before.get(r.id);
    if (typeof r.value !== 'number' || !o) continue;
    const change = o.value === 0 ? 0 : (r.value - o.value) / Math.abs(o.value);
    const better = r.better === 'higher' ? change > 0 : change < 0;
    rows.push([r.figure, r.unit ?? '', fmt(o.value, 2), fmt(r.value, 2), `${change >= 0 ? '+' : ''}${fmt(change * 100, 1)}%`,
      Math.abs(change) < 0.005 ? 'same' : better ? 'better' : 'worse']);
  }
  const head = ['figure', 'of', 'then', 'now', 'change', ''];
  const w = head.map((h, i) => Math.max(h.length, ...rows.map((c) => c[i].length)));
  const line = (c) => `| ${c.map((x, i) => x.padEnd(w[i])).join(' | ')} |`;
  console.log(line(head));
  console.log(`|${w.map((n) => '-'.repeat(n + 2)).join('|')}|`);
  for (const c of rows) console.log(line(c));
  const now = new Set(tableOf(newer).map((r) => r.id));
  const gone = [...before.keys()].filter((id) => !now.has(id));
  if (gone.length) console.log(`not in this run: ${gone.join(', ')}`);
}

function run(script, argv) {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [script, ...argv], { cwd: ROOT, stdio: 'inherit' });
    child.on('exit', (code, signal) => resolve({ code, signal }));
  });
}

function gitCommit() {
  const git = (...a) => spawnSync('git', a, { cwd: ROOT, encoding: 'utf8' });
  const sha = git('rev-parse', 'HEAD').stdout.trim();
  const changed = git('status', '--porcelain', '--untracked-files=no').stdout.split('\n').filter(Boolean).length;
  return { sha: sha || 'unknown', changedFiles: changed };
}

function resultsPath(date) {
  if (args.out) return path.resolve(args.out);
  const dir = path.join(ROOT, 'bench', 'results');
  mkdirSync(dir, { recursive: true });
  for (let i = 1; ; i++) {
    const p = path.join(dir, i === 1 ? `${date}.json` : `${date}-${i}.json`);
    if (!existsSync(p)) return p;
  }
}

if (args.help) {
  const lines = readFileSync(new URL(import.meta.url), 'utf8').split('\n');
  console.log(lines.slice(0, lines.findIndex((l) => !l.startsWith('//'))).map((l) => l.slice(3)).join('\n'));
  process.exit(0);
}

if (args.results) {
  // No run: the table of an earlier results file, and its deltas.
  const newer = JSON.parse(readFileSync(args.results, 'utf8'));
  console.log(`${args.results}: ${newer.date}, commit ${newer.commit.sha.slice(0, 12)}${newer.quick ? ', --quick' : ''}\n`);
  printTable(tableOf(newer));
  if (args.compare) compare(JSON.parse(readFileSync(args.compare, 'utf8')), newer);
  process.exit(0);
}

const names = args.only ? args.only.split(',').map((s) => s.trim()).filter(Boolean) : Object.keys(BENCHES);
const unknown = names.filter((n) => !BENCHES[n]);
if (unknown.length) {
  console.error(`unknown bench: ${unknown.join(', ')} (one of ${Object.keys(BENCHES).join(', ')})`);
  process.exit(2);
}
if (!existsSync(FORKD)) {
  console.error(`${FORKD} is missing: run \`npm run build\` first`);
  process.exit(2);
}
const older = args.compare ? JSON.parse(readFileSync(args.compare, 'utf8')) : null;

const started = new Date();
const results = {
  date: started.toISOString(),
  quick: args.quick,
  machine: {
    cpu: os.cpus()[0]?.model ?? 'unknown',
    cores: os.cpus().length,
    memoryGiB: Math.round((os.totalmem() / 2 ** 30) * 10) / 10,
    os: `${os.type()} ${os.release()} ${os.arch()}`,
    node: process.version,
    loadavgStart: os.loadavg(),
  },
  commit: gitCommit(),
  benches: {},
};
const tmp = mkdtempSync(path.join(os.tmpdir(), 'fork-bench-all-'));
try {
  for (const name of names) {
    const b = BENCHES[name];
    const argv = [...(args.quick ? b.quick : b.full)];
    const command = `node ${b.script}${argv.length ? ` ${argv.join(' ')}` : ''}`;
    const why = b.unavailable?.() ?? null;
    if (why) {
      console.log(`\n== ${name}: skipped: ${why}`);
      results.benches[name] = { status: 'skipped', reason: why, command };
      continue;
    }
    console.log(`\n== ${name}: ${command}`);
    const json = path.join(tmp, `${name}.json`);
    const t0 = performance.now();
    const { code, signal } = await run(b.script, [...argv, '--json', json]);
    const seconds = Math.round((performance.now() - t0) / 100) / 10;
    if (code !== 0 || !existsSync(json)) {
      const why = signal ? `killed by ${signal}` : code !== 0 ? `exit ${code}` : 'wrote no figures';
      console.log(`== ${name}: crashed (${why}) after ${seconds} s`);
      results.benches[name] = { status: 'crashed', reason: why, exit: code, command, seconds };
      continue;
    }
    const figures = JSON.parse(readFileSync(json, 'utf8'));
    results.benches[name] = { status: 'ok', command, seconds, figures, rows: b.rows(figures) };
  }
} finally {
  rmSync(tmp, { recursive: true, force: true });
}
results.machine.loadavgEnd = os.loadavg();
results.seconds = Math.round((Date.now() - started.getTime()) / 1000);

console.log(`\nFork benchmarks, ${results.date.slice(0, 16).replace('T', ' ')} UTC${args.quick ? ' (--quick: small sizes)' : ''}; ` +
  `${results.machine.cores} × ${results.machine.cpu}, node ${results.machine.node}, commit ${results.commit.sha.slice(0, 12)}` +
  `${results.commit.changedFiles ? ` + ${results.commit.changedFiles} changed files` : ''}\n`);
printTable(tableOf(results));
const out = resultsPath(results.date.slice(0, 10));
writeFileSync(out, JSON.stringify(results, null, 2) + '\n');
const shown = out.startsWith(ROOT + path.sep) ? path.relative(ROOT, out) : out;
console.log(`\nwrote ${shown} (${results.seconds} s)`);
if (older) compare(older, results);
process.exitCode = Object.values(results.benches).some((b) => b.status === 'crashed') ? 1 : 0;
