// forkd's cold start: from spawning the binary to the first acknowledged
// routeData (ack: 'accepted' and ack: 'delivered' to a file), for the static
// prebuilt forkd against its peer in the same run, the local dynamic build
// (build/bin/forkd). Also prints each prebuild's size. Never fails on timing.
//
//   node bench/cold_start.mjs [--runs 10] [--prebuilds build/prebuilds/out]
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';

const ROOT = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..');
const { values } = parseArgs({
  options: {
    runs: { type: 'string', default: '10' },
    prebuilds: { type: 'string', default: path.join(ROOT, 'build', 'prebuilds', 'out') },
  },
});
const RUNS = Number(values.runs);
const platform = `${process.platform}-${process.arch}`;
// The client side is the prebuilt addon too, when there is one.
const prebuiltAddon = path.join(values.prebuilds, platform, 'fork_router.node');
if (!process.env.FORK_ADDON_PATH && existsSync(prebuiltAddon)) process.env.FORK_ADDON_PATH = prebuiltAddon;
const require = createRequire(import.meta.url);
const { createClient } = require(path.join(ROOT, 'js', 'index.cjs'));

async function once(binary, ack) {
  const dir = mkdtempSync(path.join(tmpdir(), 'fork-cold-'));
  writeFileSync(path.join(dir, 'fork.yaml'), 'destinations:\n  logs: { type: file, path: ./out/logs.jsonl, batch: { max_wait: 1ms } }\n');
  const t0 = process.hrtime.bigint();
  const child = spawn(binary, ['run', '--config', path.join(dir, 'fork.yaml')], { cwd: dir, stdio: 'ignore' });
  const client = createClient({ endpoint: `ipc://${dir}/.fork/fork.sock`, timeoutMs: 10000 });
  try {
    // Until forkd binds its socket, a call may reject FORK_UNAVAILABLE: call
    // again at once, as an app's retry would.
    for (;;) {
      try {
        await client.routeData({ n: 1 }, 'logs', { ack });
        return Number(process.hrtime.bigint() - t0) / 1e6;
      } catch (err) {
        if (err.code !== 'FORK_UNAVAILABLE') throw err;
        await new Promise((r) => setTimeout(r, 1));
      }
    }
  } finally {
    await client.close();
    child.kill('SIGTERM');
    await new Promise((r) => child.once('exit', r));
    rmSync(dir, { recursive: true, force: true });
  }
}

function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

const contenders = [
  ['prebuilt static forkd', path.join(values.prebuilds, platform, 'forkd')],
  ['local dynamic build (peer)', path.join(ROOT, 'build', 'bin', 'forkd')],
].filter(([, f]) => existsSync(f));

const row = (label, value) => console.log(`${label.padEnd(52)}${value}`);
const results = {};
for (const ack of ['accepted', 'delivered']) {
  for (const [name, binary] of contenders) {
    const times = [];
    for (let i = 0; i < RUNS; i++) times.push(await once(binary, ack));
    results[`${name}/${ack}`] = median(times);
    row(`${name}, first ack '${ack}'`, `median ${median(times).toFixed(1)} ms, min ${Math.min(...times).toFixed(1)} ms (${RUNS} runs)`);
  }
}
if (contenders.length === 2) {
  for (const ack of ['accepted', 'delivered']) {
    const r = results[`${contenders[0][0]}/${ack}`] / results[`${contenders[1][0]}/${ack}`];
    row(`ratio static / dynamic, '${ack}'`, `${r.toFixed(2)}×`);
  }
}

if (existsSync(values.prebuilds)) {
  for (const t of readdirSync(values.prebuilds).sort()) {
    const size = (f) => (statSync(path.join(values.prebuilds, t, f)).size / 2 ** 20).toFixed(1);
    row(`prebuilds/${t}`, `fork_router.node ${size('fork_router.node')} MiB, forkd ${size('forkd')} MiB`);
  }
}
