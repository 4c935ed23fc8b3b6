// A throwaway PostgreSQL server for the tests and benchmarks: initdb in a
// temp directory, listening on 127.0.0.1 and a free port (its unix socket in
// that directory), trust authentication, removed by stop().
//
// initdb and postgres refuse to run as root: as root, the server runs as the
// `postgres` OS user (through runuser) in a directory it owns; otherwise as
// the current user.
//
//   const pg = await startPostgres();   // { url, port, dir, restart(), stopServer(), startServer(), stop() }
//   ... postgres://postgres@127.0.0.1:<port>/postgres ...
//   await pg.stop();
//
// PG_BIN overrides the directory of initdb and pg_ctl (default: the newest
// /usr/lib/postgresql/<version>/bin).
import { execFile, execFileSync } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

export function pgBin() {
  if (process.env.PG_BIN) return process.env.PG_BIN;
  const root = '/usr/lib/postgresql';
  const versions = existsSync(root)
    ? readdirSync(root)
        .filter((v) => existsSync(path.join(root, v, 'bin', 'initdb')))
        .sort((a, b) => Number(b) - Number(a))
    : [];
  if (versions.length === 0) {
    throw new Error('PostgreSQL server binaries not found (apt-get install postgresql, or set PG_BIN)');
  }
  return path.join(root, versions[0], 'bin');
}

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

// `settings`: extra postgres -c settings, e.g. { fsync: 'off' } for tests that
// do not measure durability.
export async function startPostgres({ settings = {} } = {}) {
  const bin = pgBin();
  const asRoot = process.getuid?.() === 0;
  const dir = mkdtempSync(path.join(tmpdir(), 'fork-pg-'));
  const data = path.join(dir, 'data');
  const logFile = path.join(dir, 'server.log');
  if (asRoot) {
    const uid = Number(execFileSync('id', ['-u', 'postgres']).toString());
    const gid = Number(execFileSync('id', ['-g', 'postgres']).toString());
    chownSync(dir, uid, gid);
  }
  const cmd = (file, args) => (asRoot ? ['runuser', ['-u', 'postgres', '--', file, ...args]] : [file, args]);
  const exec = (file, args) => run(...cmd(path.join(bin, file), args), { cwd: dir });
  const execSync = (file, args) => execFileSync(...cmd(path.join(bin, file), args), { cwd: dir, stdio: 'ignore' });

  await exec('initdb', ['-D', data, '-U', 'postgres', '--auth=trust', '--encoding=UTF8', '--locale=C', '--no-sync']);
  const port = await freePort();
  const options = [
    `-c listen_addresses=127.0.0.1`,
    `-c port=${port}`,
    `-c unix_socket_directories=${dir}`,
    `-c max_connections=50`,
    ...Object.entries(settings).map(([k, v]) => `-c ${k}=${v}`),
  ].join(' ');
  const pgCtl = (args) => exec('pg_ctl', ['-D', data, '-l', logFile, '-o', options, '-w', '-t', '60', ...args]);
  let running = false;
  const server = {
    url: `postgres://postgres@127.0.0.1:${port}/postgres`,
    port,
    dir,
    log: () => (existsSync(logFile) ? readFileSync(logFile, 'utf8') : ''),
    async startServer() {
      await pgCtl(['start']);
      running = true;
    },
    // mode: fast (clients disconnected, clean shutdown) or immediate (a crash).
    async stopServer(mode = 'fast') {
      await pgCtl(['stop', '-m', mode]);
      running = false;
    },
    async restart(mode = 'fast') {
      await pgCtl(['restart', '-m', mode]);
      running = true;
    },
    stopSync() {
      live.delete(server);
      try {
        if (running) execSync('pg_ctl', ['-D', data, '-m', 'immediate', '-w', 'stop']);
      } catch {}
      running = false;
      rmSync(dir, { recursive: true, force: true });
    },
    async stop() {
      live.delete(server);
      try {
        if (running) await server.stopServer('immediate');
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
  };
  live.add(server);
  try {
    await server.startServer();
  } catch (e) {
    const log = server.log();
    server.stopSync();
    throw new Error(`postgres did not start: ${e.message}\n${log}`);
  }
  return server;
}
