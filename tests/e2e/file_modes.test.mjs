// The permissions of what forkd writes, seen with fs.stat on a real forkd run
// under umask 0 (so every mode seen is forkd's choice, not the umask's): file
// sink output 0640 in 0750 directories by default, 0600 in 0700 ones with
// `file_mode: "0600"`, a new sqlite database 0640, and data_dir with its
// cursors and dead letters 0700/0600. A bad file_mode fails `forkd check`.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, readdirSync, rmSync, statSync } from 'node:fs';
import path from 'node:path';
import { createClient } from '../../js/index.mjs';
import { startForkd, tempConfig, endpointFor, FORKD } from './helpers.mjs';

const mode = (p) => (statSync(p).mode & 0o7777).toString(8).padStart(4, '0');

let dir, forkd;

before(async () => {
  ({ dir } = tempConfig(`destinations:
  logs: { type: file, path: ./out/a/events.jsonl }
  private: { type: file, path: ./private/, rotate: 1h, file_mode: "0600" }
  db: { type: sqlite, path: ./db/events.db, table: events }
  checked:
    type: file
    path: ./checked.jsonl
    transforms:
      - validate: { required: [total], on_fail: dead_letter }
`));
  // forkd inherits the umask: with none, it alone decides the modes.
  const umask = process.umask(0);
  try {
    forkd = await startForkd(`${dir}/fork.yaml`);
  } finally {
    process.umask(umask);
  }
  const c = createClient({ endpoint: endpointFor(dir) });
  // 'checked' dead-letters each (so that dead letters exist): 'delivered'
  // then rejects, naming it, once every destination is done.
  for (let i = 0; i < 3; i++) {
    await assert.rejects(c.routeData({ n: i }, ['logs', 'private', 'db', 'checked'], { ack: 'delivered' }), {
      code: 'FORK_REJECTED',
      destination: 'checked',
    });
  }
  await c.close();
});

after(async () => {
  assert.equal((await forkd.stop()).code, 0);
  rmSync(dir, { recursive: true, force: true });
});

test('file sink output is 0640 in 0750 directories by default', () => {
  assert.equal(mode(`${dir}/out`), '0750');
  assert.equal(mode(`${dir}/out/a`), '0750');
  assert.equal(mode(`${dir}/out/a/events.jsonl`), '0640');
});

test('file_mode "0600": owner-only files in a 0700 directory', () => {
  assert.equal(mode(`${dir}/private`), '0700');
  const files = readdirSync(`${dir}/private`);
  assert.equal(files.length, 1, files.join(' '));  // this hour's part file
  assert.equal(mode(path.join(`${dir}/private`, files[0])), '0600');
});

test('a new sqlite database is 0640 (its -wal too) in a 0750 directory', () => {
  assert.equal(mode(`${dir}/db`), '0750');
  assert.equal(mode(`${dir}/db/events.db`), '0640');
  assert.ok(existsSync(`${dir}/db/events.db-wal`));
  assert.equal(mode(`${dir}/db/events.db-wal`), '0640');
});

test('data_dir, its cursors and dead letters are for forkd only', () => {
  const data = `${dir}/.fork`;
  assert.equal(mode(data), '0700');
  for (const sub of ['cursors', 'dead_letters']) assert.equal(mode(`${data}/${sub}`), '0700', sub);
  for (const f of readdirSync(`${data}/cursors`)) assert.equal(mode(`${data}/cursors/${f}`), '0600', f);
  assert.equal(mode(`${data}/dead_letters/checked.jsonl`), '0600');
});

test('forkd check refuses a file_mode others could write, or that is not octal', async () => {
  for (const [bad, message] of [
    ['"0666"', /lets any user of the machine alter the output/],
    ['"rw-r-----"', /expected an octal mode of read and write bits/],
  ]) {
    const { dir: d, config } = tempConfig(`destinations:\n  logs: { type: file, path: ./o.jsonl, file_mode: ${bad} }\n`);
    const r = await new Promise((resolve) =>
      execFile(FORKD, ['check', '--config', config], (err, stdout, stderr) =>
        resolve({ code: err ? err.code : 0, stderr })));
    rmSync(d, { recursive: true, force: true });
    assert.equal(r.code, 2, bad);
    assert.match(r.stderr, new RegExp(`fork\\.yaml:2:\\d+: destinations\\.logs\\.file_mode: `));
    assert.match(r.stderr, message);
  }
});
