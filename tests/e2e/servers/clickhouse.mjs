// A throwaway ClickHouse server for the tests and benchmarks: Debian's
// clickhouse-server with its stock config, everything it writes kept in a
// temp directory (data, tmp, user files, format schemas, logs), listening on
// 127.0.0.1 only, on free HTTP, native and interserver ports; removed by
// stop().
//
//   const ch = await startClickHouse();   // { url, httpPort, dir, query(), restart(), stopServer(), startServer(), stop() }
//   await ch.query('SELECT 1');            // the answer's text; throws on an error answer
//   await ch.stop();
//
// `users: { name: password }` adds users (with the default profile) beside
// `default` (no password), written to a users.xml in the temp directory.
//
// Root: Debian's 18.16 runs as root without complaint (newer releases refuse
// only when the data directory belongs to another user, which this one never
// does: it is created by whoever runs the tests). So it runs as the current
// user, root or not; the `clickhouse` OS user is not needed.
//
// CLICKHOUSE_SERVER overrides the binary (default /usr/sbin/clickhouse-server),
// CLICKHOUSE_CONFIG the config file (default /etc/clickhouse-server/config.xml).
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync, readFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

const SERVER = process.env.CLICKHOUSE_SERVER || '/usr/sbin/clickhouse-server';
const CONFIG = process.env.CLICKHOUSE_CONFIG || '/etc/clickhouse-server/config.xml';

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
  for (const s of live) s.killSync();
});

function xmlEscape(s) {
  return String(s).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

function usersXml(users) {
  const user = (name, password) => `
    <${name}>
      <password>${xmlEscape(password)}</password>
      <networks><ip>127.0.0.1</ip><ip>::1</ip></networks>
      <profile>default</profile>
      <quota>default</quota>
    </${name}>`;
  return `<?xml version="1.0"?>
<yandex>
  <profiles><default><max_memory_usage>4000000000</max_memory_usage></default></profiles>
  <users>${user('default', '')}${Object.entries(users).map(([n, p]) => user(n, p)).join('')}
  </users>
  <quotas><default><interval><duration>3600</duration><queries>0</queries><errors>0</errors>
    <result_rows>0</result_rows><read_rows>0</read_rows><execution_time>0</execution_time>
  </interval></default></quotas>
</yandex>
`;
}

export function clickhouseAvailable() {
  return existsSync(SERVER) && existsSync(CONFIG);
}

export async function startClickHouse({ users = {}, startTimeoutMs = 30000 } = {}) {
  if (!clickhouseAvailable()) {
    throw new Error(`${SERVER} or ${CONFIG} missing (scripts/install-deps.sh installs clickhouse-server)`);
  }
  const dir = mkdtempSync(path.join(tmpdir(), 'fork-ch-'));
  const data = path.join(dir, 'data') + '/';
  mkdirSync(data);
  const usersFile = path.join(dir, 'users.xml');
  writeFileSync(usersFile, usersXml(users));
  const httpPort = await freePort();
  const tcpPort = await freePort();
  const interserverPort = await freePort();
  const url = `http://127.0.0.1:${httpPort}`;
  const args = [
    `--config-file=${CONFIG}`,
    '--',
    `--path=${data}`,
    `--tmp_path=${data}tmp/`,
    `--user_files_path=${data}user_files/`,
    `--format_schema_path=${data}format_schemas/`,
    `--users_config=${usersFile}`,
    `--http_port=${httpPort}`,
    `--tcp_port=${tcpPort}`,
    `--interserver_http_port=${interserverPort}`,
    '--listen_host=127.0.0.1',
    `--logger.log=${path.join(dir, 'server.log')}`,
    `--logger.errorlog=${path.join(dir, 'server.err.log')}`,
    '--logger.level=warning',
    // A test machine: no mlock, no big caches.
    '--mark_cache_size=268435456',
    '--uncompressed_cache_size=0',
  ];

  let proc = null;
  let output = '';
  const server = {
    url,
    httpPort,
    dir,
    get pid() {
      return proc?.pid;
    },
    // Runs `sql` over HTTP; resolves with the answer's text, throws on an error answer.
    async query(sql, { body, params = {}, user, password, timeoutMs = 30000 } = {}) {
      const u = new URL(url);
      if (body !== undefined) u.searchParams.set('query', sql);
      for (const [k, v] of Object.entries(params)) u.searchParams.set(k, String(v));
      const headers = {};
      if (user !== undefined) headers.authorization = 'Basic ' + Buffer.from(`${user}:${password ?? ''}`).toString('base64');
      const r = await fetch(u, { method: 'POST', body: body ?? sql, headers, signal: AbortSignal.timeout(timeoutMs) });
      const text = await r.text();
      if (!r.ok) throw new Error(`clickhouse ${r.status}: ${text.trim()}\n(query: ${sql.slice(0, 300)})`);
      return text;
    },
    // Rows of a SELECT as objects (FORMAT JSONEachRow is added).
    async rows(sql) {
      const text = await server.query(`${sql} FORMAT JSONEachRow`);
      return text.split('\n').filter(Boolean).map((l) => JSON.parse(l));
    },
    async startServer() {
      if (proc) return;
      output = '';
      proc = spawn(SERVER, args, { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
      proc.stdout.on('data', (d) => (output += d));
      proc.stderr.on('data', (d) => (output += d));
      const exited = new Promise((resolve) => proc.once('exit', (code, signal) => resolve({ code, signal })));
      proc.exited = exited;
      const deadline = Date.now() + startTimeoutMs;
      for (;;) {
        if (proc.exitCode !== null || proc.signalCode !== null) {
          const log = existsSync(path.join(dir, 'server.err.log')) ? readFileSync(path.join(dir, 'server.err.log'), 'utf8').slice(-3000) : '';
          proc = null;
          throw new Error(`clickhouse-server exited while starting:\n${output.slice(-2000)}\n${log}`);
        }
        try {
          const r = await fetch(`${url}/?query=SELECT%201`, { signal: AbortSignal.timeout(1000) });
          if (r.ok && (await r.text()).trim() === '1') return;
        } catch {
          // not listening yet
        }
        if (Date.now() > deadline) {
          await server.stopServer('SIGKILL');
          throw new Error(`clickhouse-server did not answer SELECT 1 within ${startTimeoutMs} ms:\n${output.slice(-2000)}`);
        }
        await sleep(100);
      }
    },
    // Stops the server (SIGTERM: a clean shutdown; SIGKILL: a crash). The data stays.
    async stopServer(signal = 'SIGTERM') {
      if (!proc) return;
      const p = proc;
      proc = null;
      if (p.exitCode === null && p.signalCode === null) p.kill(signal);
      const t = setTimeout(() => p.kill('SIGKILL'), 20000);
      await p.exited;
      clearTimeout(t);
    },
    async restart(signal = 'SIGTERM') {
      await server.stopServer(signal);
      await server.startServer();
    },
    killSync() {
      if (proc && proc.exitCode === null) proc.kill('SIGKILL');
      proc = null;
      rmSync(dir, { recursive: true, force: true });
    },
    async stop() {
      live.delete(server);
      await server.stopServer();
      rmSync(dir, { recursive: true, force: true });
    },
  };
  live.add(server);
  try {
    await server.startServer();
  } catch (e) {
    live.delete(server);
    rmSync(dir, { recursive: true, force: true });
    throw e;
  }
  return server;
}
