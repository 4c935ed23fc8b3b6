// Starts and stops a forkd process for the demo, the benchmarks and the
// end-to-end tests.
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
// FORKD_BIN runs another build of forkd (a copy, while build/ is rebuilt).
export const FORKD = process.env.FORKD_BIN || path.join(ROOT, 'build', 'bin', 'forkd');

export function forkdBinary() {
  if (!existsSync(FORKD)) {
    throw new Error(`${FORKD} is missing: run \`npm run build\` first`);
  }
  return FORKD;
}

// Writes `yaml` to a fresh temp directory; returns { dir, config }.
export function tempConfig(yaml, prefix = 'fork-') {
  const dir = mkdtempSync(path.join(tmpdir(), prefix));
  const config = path.join(dir, 'fork.yaml');
  writeFileSync(config, yaml);
  return { dir, config };
}

// Starts `forkd run --config <config>` and resolves once it listens (with
// `wait: false`, at once: `ready` then settles when it listens or fails to).
// Returns { proc, ready, stderr(), stop(signal) -> Promise<{code, signal}> }.
// `binary` runs another forkd build (a benchmark comparing two).
export async function startForkd(config, { env = {}, timeoutMs = 10000, quiet = true, wait = true, binary } = {}) {
  // --exit-with-parent: a test or benchmark that dies takes its forkd along.
  const proc = spawn(binary ?? forkdBinary(), ['run', '--config', config, '--exit-with-parent'], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let err = '';
  proc.stderr.on('data', (d) => {
    err += d;
    if (!quiet) process.stderr.write(d);
  });
  let out = '';
  proc.stdout.on('data', (d) => (out += d));
  const exited = new Promise((resolve) => proc.on('exit', (code, signal) => resolve({ code, signal })));
  const ready = new Promise((resolve, reject) => {
    const t0 = Date.now();
    const timer = setInterval(() => {
      if (err.includes('running with')) {
        clearInterval(timer);
        resolve();
      } else if (proc.exitCode !== null || Date.now() - t0 > timeoutMs) {
        clearInterval(timer);
        reject(new Error(`forkd did not start (exit ${proc.exitCode}):\n${err}`));
      }
    }, 10);
  });
  if (wait) await ready;
  else ready.catch(() => {});
  return {
    proc,
    pid: proc.pid,
    ready,
    stderr: () => err,
    stdout: () => out,
    exited,
    async stop(signal = 'SIGTERM') {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill(signal);
      return exited;
    },
  };
}
