// `forkd replay`: a destination's retained events delivered again, from a
// time (--since) or an event id (--from-id), through the running forkd's
// admin API or on the cursor file of a stopped one. A file destination gets
// exactly the tail again; a keyed sqlite table absorbs the copies.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { rmSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import Database from 'better-sqlite3';
import { createClient } from '../../js/index.mjs';
import { FORKD, startForkd, tempConfig, endpointFor, freePort, readJsonl } from './helpers.mjs';

function replay(config, ...args) {
  const r = spawnSync(FORKD, ['replay', '--config', config, ...args], { encoding: 'utf8' });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

async function until(fn, ms, what) {
  const t0 = Date.now();
  while (Date.now() - t0 < ms) {
    if (await fn()) return;
    await sleep(100);
  }
  throw new Error(`timed out waiting for ${what}`);
}

test('replay re-delivers the tail to a file and leaves a keyed sqlite table as it was, running and stopped', { timeout: 90_000 }, async () => {
  const port = await freePort();
  const { dir, config } = tempConfig(
    `data_dir: ./.fork
admin: 127.0.0.1:${port}
destinations:
  logs: { type: file, format: jsonl, path: ./out/logs.jsonl }
  db: { type: sqlite, path: ./out.db, table: events }
`,
    'fork-replay-',
  );
  const logsPath = path.join(dir, 'out', 'logs.jsonl');
  const rows = () => {
    const db = new Database(path.join(dir, 'out.db'), { readonly: true, fileMustExist: true });
    try {
      return db.prepare('SELECT COUNT(*) AS n, COUNT(DISTINCT _fork_id) AS d FROM events').get();
    } finally {
      db.close();
    }
  };
  const status = async () => (await fetch(`http://127.0.0.1:${port}/api/status`)).json();
  const dest = async (name) => (await status()).destinations.find((d) => d.name === name);
  let forkd = await startForkd(config);
  let client = createClient({ endpoint: endpointFor(dir) });
  try {
    const send = async (from, n) => {
      const ids = [];
      for (let i = from; i < from + n; i++) {
        const r = await client.routeData({ i, pad: 'x'.repeat(40) }, ['logs', 'db'], { ack: 'delivered' });
        ids.push(r.id);
      }
      return ids;
    };
    const a = await send(0, 30);
    await sleep(3000);
    const tB = Date.now();
    // A window that takes in all of b and none of a (sent 3 s before b).
    const sinceB = () => `${Date.now() - tB + 1000}ms`;
    const b = await send(30, 20);
    const all = [...a, ...b];
    assert.deepEqual(readJsonl(logsPath).map((r) => r._fork_id), all);
    assert.deepEqual(rows(), { n: 50, d: 50 });

    // Running: through the admin API.
    let r = replay(config, '--destination', 'logs', '--since', sinceB());
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, /^logs: 20 events will be delivered again, from lsn 31 \(received [0-9T:-]+Z\)\n/);
    assert.match(r.out, /the log goes back to .* \(lsn 1\)/);
    await until(() => readJsonl(logsPath).length >= 70, 10000, 'the 20 events again');
    let lines = readJsonl(logsPath).map((x) => x._fork_id);
    assert.deepEqual(lines.slice(50), b, 'exactly the last 20, in order');

    r = replay(config, '--destination', 'logs', '--from-id', a[25]);
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, /^logs: 25 events will be delivered again, from lsn 26 /);
    await until(() => readJsonl(logsPath).length >= 95, 10000, 'the 25 events again');
    lines = readJsonl(logsPath).map((x) => x._fork_id);
    assert.equal(lines.length, 95);
    assert.deepEqual(lines.slice(70), all.slice(25));

    r = replay(config, '--destination', 'db', '--since', sinceB());
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, /^db: 20 events will be delivered again/);
    await until(async () => (await dest('db')).delivered >= 20, 10000, 'db to deliver the 20 again');
    r = replay(config, '--destination', 'db', '--from-id', a[0]);
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, /^db: 50 events will be delivered again, from lsn 1 /);
    await until(async () => (await dest('db')).delivered >= 50, 10000, 'db to deliver the 50 again');
    assert.deepEqual(rows(), { n: 50, d: 50 }, 'the upserts on _fork_id absorb the copies');

    // Errors, with forkd running.
    r = replay(config, '--destination', 'nope', '--since', '1m');
    assert.equal(r.code, 2);
    assert.match(r.err, /unknown destination 'nope'/);
    r = replay(config, '--destination', 'logs', '--from-id', 'not-an-id');
    assert.equal(r.code, 1);
    assert.match(r.err, /no event with id not-an-id is in the log: the log goes back to .* \(lsn 1\)/);
    r = replay(config, '--destination', 'logs', '--since', 'yesterday');
    assert.equal(r.code, 2);
    assert.match(r.err, /--since 'yesterday' is not a duration/);
    r = replay(config, '--destination', 'logs');
    assert.equal(r.code, 2);
    assert.equal(readJsonl(logsPath).length, 95, 'no error moved anything');

    // Stopped: on the cursor files; delivered when forkd runs again.
    await client.close();
    assert.equal((await forkd.stop('SIGTERM')).code, 0, forkd.stderr());
    r = replay(config, '--destination', 'logs', '--from-id', b[10]);
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, /^logs: 10 events will be delivered again, from lsn 41 \(received [^)]*\) when forkd next runs\n/);
    r = replay(config, '--destination', 'db', '--since', '1h');
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, /^db: 50 events will be delivered again, from lsn 1 /);
    r = replay(config, '--destination', 'logs', '--from-id', 'not-an-id');
    assert.equal(r.code, 1);
    assert.match(r.err, /the log goes back to/);
    r = replay(config, '--destination', 'nope', '--since', '1m');
    assert.equal(r.code, 2);
    r = replay(config, '--destination', 'db', '--since', '-');
    assert.equal(r.code, 2);

    forkd = await startForkd(config);
    client = createClient({ endpoint: endpointFor(dir) });
    await until(() => readJsonl(logsPath).length >= 105, 10000, 'the 10 events after the restart');
    await until(async () => (await dest('db')).delivered >= 50, 10000, 'db to deliver the 50 after the restart');
    lines = readJsonl(logsPath).map((x) => x._fork_id);
    assert.equal(lines.length, 105);
    assert.deepEqual(lines.slice(95), b.slice(10));
    assert.deepEqual(rows(), { n: 50, d: 50 });
  } finally {
    await client.close(0);
    await forkd.stop('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
});
