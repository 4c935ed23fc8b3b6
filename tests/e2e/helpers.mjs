// Shared by the end-to-end tests: temp configs, a forkd process, output readers,
// a producer child process, a free port, a process's memory.
import { fork } from 'node:child_process';
import net from 'node:net';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
export { startForkd, tempConfig, ROOT, FORKD } from '../../scripts/lib/forkd.mjs';
export { rng } from '../../bench/workload.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));

// The files that hold `p`'s JSON Lines: `p` itself and its rotated siblings, or a directory's files.
export function jsonlFiles(p) {
  const files = [];
  if (existsSync(p) && statSync(p).isDirectory()) {
    for (const f of readdirSync(p).sort()) files.push(path.join(p, f));
  } else {
    const dir = path.dirname(p);
    const ext = path.extname(p);
    const stem = path.basename(p, ext);
    if (existsSync(dir)) {
      for (const f of readdirSync(dir).sort()) {
        if (f === path.basename(p) || (f.startsWith(stem + '-') && f.endsWith(ext))) {
          files.push(path.join(dir, f));
        }
      }
    }
  }
  return files;
}

// Calls fn(record, file) for every JSON Lines record under `p`, one file at a time.
export function forEachJsonl(p, fn) {
  for (const f of jsonlFiles(p)) {
    const text = readFileSync(f, 'utf8');
    let start = 0;
    // The file sink ends every record with a newline, so an unterminated tail is a
    // write still in progress (a test polling while forkd delivers): it is not a
    // record yet. A count that must be exact still misses it.
    for (;;) {
      const end = text.indexOf('\n', start);
      if (end < 0) break;
      if (end > start) fn(JSON.parse(text.slice(start, end)), f);
      start = end + 1;
    }
  }
}

// Reads every JSON Lines record under `p` (a file, its rotated siblings, or a directory).
export function readJsonl(p) {
  const out = [];
  forEachJsonl(p, (r) => out.push(r));
  return out;
}

// Counts how often each id occurs.
export function idCounts(records, field = '_fork_id') {
  const m = new Map();
  for (const r of records) m.set(r[field], (m.get(r[field]) ?? 0) + 1);
  return m;
}

// A TCP port free on 127.0.0.1 at the time of asking.
export async function freePort() {
  return new Promise((resolve) => {
    const srv = net.createServer();
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

// The resident set size of process `pid` now, in bytes (VmRSS in /proc/<pid>/status).
export function rssBytes(pid) {
  const m = readFileSync(`/proc/${pid}/status`, 'utf8').match(/^VmRSS:\s+(\d+) kB/m);
  if (!m) throw new Error(`no VmRSS for process ${pid}`);
  return Number(m[1]) * 1024;
}

export function endpointFor(dir) {
  return `ipc://${dir}/.fork/fork.sock`;
}

// Reads a receipts file written by fixtures/producer.mjs: Map(id -> n). Only
// whole lines count (a child killed mid-write may leave a partial last one).
export function readReceipts(file) {
  const m = new Map();
  if (!existsSync(file)) return m;
  const text = readFileSync(file, 'utf8');
  const end = text.lastIndexOf('\n');
  for (const line of text.slice(0, end + 1).split('\n')) {
    if (!line) continue;
    const sp = line.indexOf(' ');
    const id = line.slice(sp + 1);
    if (m.has(id)) throw new Error(`receipts: id ${id} acknowledged twice`);
    m.set(id, Number(line.slice(0, sp)));
  }
  return m;
}

// Checks a destination against the receipts: every acknowledged id present,
// with the payload it was acknowledged for. Returns
// { lines, ids, missing: [id...], wrong: [id...], duplicates, counts: Map(id -> lines) } where
// duplicates is the number of lines beyond the first for any id.
export function verifyDestination(p, receipts) {
  const seen = new Map();
  const wrong = [];
  let lines = 0;
  forEachJsonl(p, (r) => {
    lines += 1;
    const id = r._fork_id;
    seen.set(id, (seen.get(id) ?? 0) + 1);
    const n = receipts.get(id);
    if (n !== undefined && r.n !== n && wrong.length < 20) wrong.push(id);
  });
  const missing = [];
  for (const id of receipts.keys()) if (!seen.has(id)) missing.push(id);
  return { lines, ids: seen.size, missing, wrong, duplicates: lines - seen.size, counts: seen };
}

// Starts fixtures/producer.mjs in a child process. Returns
// { child, last (the latest progress message), waitFor(pred, timeoutMs), stop() -> done message, exited }.
export function startProducer({
  endpoint,
  receipts,
  rate = 20000,
  timeoutMs = 5000,
  destinations = ['logs', 'audit'],
  maxInFlight,
  payload,
  pad,
} = {}) {
  const child = fork(path.join(HERE, 'fixtures', 'producer.mjs'), [], {
    env: {
      ...process.env,
      FORK_ENDPOINT: endpoint,
      PRODUCER_RECEIPTS: receipts,
      PRODUCER_RATE: String(rate),
      PRODUCER_TIMEOUT_MS: String(timeoutMs),
      PRODUCER_DESTINATIONS: destinations.join(','),
      ...(maxInFlight ? { PRODUCER_MAX_IN_FLIGHT: String(maxInFlight) } : {}),
      ...(payload ? { PRODUCER_PAYLOAD: payload } : {}),
      ...(pad ? { PRODUCER_PAD: String(pad) } : {}),
    },
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const state = { last: { acked: 0, issued: 0, failed: 0 }, done: null };
  const watchers = new Set();
  const exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
  child.on('message', (m) => {
    if (m.type === 'progress') state.last = m;
    if (m.type === 'done') state.done = m;
    for (const w of watchers) w();
  });
  exited.then(() => {
    for (const w of watchers) w();
  });
  const waitFor = (pred, ms = 30000) =>
    new Promise((resolve, reject) => {
      const check = () => {
        if (pred(state.last)) {
          cleanup();
          resolve(state.last);
        } else if (child.exitCode !== null || child.signalCode !== null) {
          cleanup();
          reject(new Error(`producer exited (${child.exitCode ?? child.signalCode}) while waited for`));
        }
      };
      const timer = setTimeout(() => {
        cleanup();
        reject(new Error(`producer: condition not met in ${ms} ms (last: ${JSON.stringify(state.last)})`));
      }, ms);
      const cleanup = () => {
        clearTimeout(timer);
        watchers.delete(check);
      };
      watchers.add(check);
      check();
    });
  return {
    child,
    exited,
    get last() {
      return state.last;
    },
    waitFor,
    // Stops issuing calls, waits for every call to settle; resolves with the producer's counts.
    async stop() {
      if (child.connected) child.send({ type: 'stop' });
      const r = await exited;
      if (r.code !== 0 || state.done === null) {
        throw new Error(`producer exited ${r.code ?? r.signal} without a summary`);
      }
      return state.done;
    },
    kill(signal = 'SIGKILL') {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return exited;
    },
  };
}
