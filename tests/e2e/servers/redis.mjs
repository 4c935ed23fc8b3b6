// A throwaway Redis server for the tests: redis-server on 127.0.0.1 and a
// free port, no persistence (--save '' --appendonly no), its files in a temp
// directory, removed by stop(). Read it back with cli(...args), which runs
// redis-cli against it.
//
//   const redis = await startRedis();   // { url, port, dir, cli(), stopServer(), startServer(), stop() }
//   ... redis://127.0.0.1:<port> ...
//   await redis.stop();
import { execFile, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, existsSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';

const run = promisify(execFile);

async function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

const live = new Set();
// A test that dies without stop(): no server left behind.
process.on('exit', () => {
  for (const s of live) s.stopSync();
});

export async function startRedis({ bin = 'redis-server', cliBin = 'redis-cli' } = {}) {
  const dir = mkdtempSync(path.join(tmpdir(), 'fork-redis-'));
  const port = await freePort();
  const logFile = path.join(dir, 'server.log');
  let child = null;
  const cli = async (...args) =>
    (await run(cliBin, ['-h', '127.0.0.1', '-p', String(port), ...args], { maxBuffer: 256 << 20 })).stdout;
  const server = {
    url: `redis://127.0.0.1:${port}`,
    port,
    dir,
    cli,
    log: () => (existsSync(logFile) ? readFileSync(logFile, 'utf8') : ''),
    async startServer() {
      child = spawn(
        bin,
        ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir,
         '--logfile', logFile, '--daemonize', 'no'],
        { stdio: 'ignore' },
      );
      const proc = child;
      const exited = new Promise((resolve) => proc.once('exit', resolve));
      proc.exited = exited;
      const deadline = Date.now() + 10_000;
      for (;;) {
        try {
          if ((await cli('PING')).trim() === 'PONG') return;
        } catch {}
        if (proc.exitCode !== null || Date.now() > deadline) {
          throw new Error(`redis-server did not start\n${server.log()}`);
        }
        await sleep(50);
      }
    },
    // Kills the server (SIGKILL: a crash; nothing is kept, no persistence).
    async stopServer() {
      if (!child) return;
      const proc = child;
      child = null;
      proc.kill('SIGKILL');
      await proc.exited;
    },
    stopSync() {
      live.delete(server);
      if (child) child.kill('SIGKILL');
      child = null;
      rmSync(dir, { recursive: true, force: true });
    },
    async stop() {
      live.delete(server);
      try {
        await server.stopServer();
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
  };
  live.add(server);
  try {
    await server.startServer();
  } catch (e) {
    server.stopSync();
    throw e;
  }
  return server;
}
