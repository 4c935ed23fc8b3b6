// One flood run, shared by tests/e2e/flood.test.mjs and bench/flood.mjs: a
// normal client (the addon, through createClient) routes events with a few
// calls in flight for `seconds`, optionally while flood_peers.mjs's hostile
// raw ZeroMQ clients flood the same forkd; forkd's VmRSS is sampled all along.
import { fork } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createClient } from '../../js/index.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));

export function rssMiB(pid) {
  const s = readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(s.match(/VmRSS:\s+(\d+)/)[1]) / 1024;
}

function percentile(sorted, p) {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

// Starts the hostile peers; resolves once they run. stop() resolves to their counts.
export async function startPeers(options) {
  const child = fork(path.join(HERE, 'flood_peers.mjs'), [JSON.stringify(options)], { stdio: 'inherit' });
  const messages = [];
  let wake = null;
  child.on('message', (m) => {
    messages.push(m);
    wake?.();
  });
  const next = () =>
    new Promise((resolve, reject) => {
      if (messages.length) return resolve(messages.shift());
      wake = () => {
        wake = null;
        resolve(messages.shift());
      };
      child.once('exit', (code) => reject(new Error(`flood peers exited with ${code}`)));
    });
  if ((await next()) !== 'started') throw new Error('flood peers did not start');
  return {
    async stop() {
      child.send('stop');
      const counts = await next();
      await new Promise((r) => (child.exitCode !== null ? r() : child.once('exit', r)));
      return counts;
    },
  };
}

// Routes events to `destination` with `inFlight` calls outstanding for
// `seconds`, sampling forkd's RSS every 100 ms. Each event carries `tag` and
// its number `n`. Returns acks, failures, latencies (ms) and RSS samples.
export async function normalClient({ endpoint, pid, seconds, destination = 'logs', tag, inFlight = 8 }) {
  const client = createClient({ endpoint, timeoutMs: 30000 });
  const latencies = [];
  const failures = [];
  const rss = [];
  let n = 0;
  const sampler = setInterval(() => rss.push(rssMiB(pid)), 100);
  const until = Date.now() + seconds * 1000;
  async function worker() {
    while (Date.now() < until) {
      const t0 = performance.now();
      try {
        await client.routeData({ tag, n: n++ }, destination);
        latencies.push(performance.now() - t0);
      } catch (e) {
        failures.push(e);
      }
    }
  }
  await Promise.all(Array.from({ length: inFlight }, worker));
  clearInterval(sampler);
  await client.close();
  latencies.sort((a, b) => a - b);
  return {
    acks: latencies.length,
    failures,
    rate: latencies.length / seconds,
    p50: percentile(latencies, 50),
    p99: percentile(latencies, 99),
    max: latencies[latencies.length - 1] ?? NaN,
    rss,
  };
}
