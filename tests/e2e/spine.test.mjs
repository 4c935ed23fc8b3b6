// The spine end to end: routeData -> forkd -> log -> file destinations,
// across a SIGTERM and a restart; every acknowledged event exactly once.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import { createClient } from '../../js/index.mjs';
import { purchases } from '../../bench/workload.mjs';
import { startForkd, tempConfig, readJsonl, idCounts, endpointFor } from './helpers.mjs';

const CONFIG = `
data_dir: ./.fork
wal: { fsync: batch, batch_ms: 2, segment_bytes: 1MiB }
destinations:
  production: { type: file, format: jsonl, path: ./out/production.jsonl }
  analytics:  { type: file, format: csv, path: ./out/analytics/, rotate: 1h }
  logs:       { type: file, format: jsonl, path: ./out/logs/events.jsonl, rotate: 2MiB }
`;

async function routeMany(client, n, next, dests) {
  const ids = [];
  const window = 4000;
  let pending = [];
  for (let i = 0; i < n; i++) {
    pending.push(client.routeData(next(), dests).then((r) => ids.push(r.id)));
    if (pending.length >= window) {
      await Promise.all(pending);
      pending = [];
    }
  }
  await Promise.all(pending);
  return ids;
}

function csvIds(dir) {
  const ids = [];
  for (const f of fs.readdirSync(dir).sort()) {
    const lines = readFileSync(path.join(dir, f), 'utf8').split('\r\n').filter(Boolean);
    assert.ok(lines[0].startsWith('_fork_id,'), `${f} starts with a header`);
    for (const l of lines.slice(1)) ids.push(l.slice(0, l.indexOf(',')));
  }
  return ids;
}

test('100 000 events, SIGTERM, restart: every acknowledged event exactly once per destination', async () => {
  const { dir, config } = tempConfig(CONFIG);
  try {
    const next = purchases(11);
    let forkd = await startForkd(config);
    let client = createClient({ endpoint: endpointFor(dir) });
    const first = await routeMany(client, 100_000, next, ['production', 'analytics', 'logs']);
    await client.close();
    const stopped = await forkd.stop('SIGTERM');
    assert.equal(stopped.code, 0, `forkd exits 0 on SIGTERM:\n${forkd.stderr()}`);

    forkd = await startForkd(config);
    client = createClient({ endpoint: endpointFor(dir) });
    const second = await routeMany(client, 5_000, next, ['production', 'logs']);
    const delivered = await client.routeData(next(), ['production', 'analytics', 'logs'], {
      ack: 'delivered',
    });
    assert.equal(delivered.ack, 'delivered');
    // 'delivered' means committed by every destination: it is in the files now.
    assert.ok(readFileSync(path.join(dir, 'out/production.jsonl'), 'utf8').includes(delivered.id));
    await client.close();
    assert.equal((await forkd.stop('SIGTERM')).code, 0);

    const prod = idCounts(readJsonl(path.join(dir, 'out/production.jsonl')));
    const logs = idCounts(readJsonl(path.join(dir, 'out/logs/events.jsonl')));
    const analytics = idCounts(csvIds(path.join(dir, 'out/analytics')).map((id) => ({ _fork_id: id })));
    assert.equal(first.length, 100_000);
    assert.equal(new Set([...first, ...second]).size, 105_000, 'ids are unique');
    for (const id of [...first, ...second, delivered.id]) {
      assert.equal(prod.get(id), 1, `production has ${id} exactly once`);
      assert.equal(logs.get(id), 1, `logs has ${id} exactly once`);
    }
    for (const id of [...first, delivered.id]) assert.equal(analytics.get(id), 1, `analytics has ${id} once`);
    assert.equal(prod.size, 105_001);
    assert.equal(logs.size, 105_001);
    assert.equal(analytics.size, 100_001);
    // Size rotation kicked in for logs.
    assert.ok(fs.readdirSync(path.join(dir, 'out/logs')).length > 1, 'logs rotated by size');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('payload fields arrive as sent, with _fork_id first', async () => {
  const { dir, config } = tempConfig(CONFIG);
  try {
    const forkd = await startForkd(config);
    const client = createClient({ endpoint: endpointFor(dir) });
    const order = purchases(3)();
    const r = await client.routeData(order, 'production');
    assert.deepEqual(r.destinations, ['production']);
    assert.equal(r.ack, 'accepted');
    await client.close();
    assert.equal((await forkd.stop()).code, 0);
    const [rec] = readJsonl(path.join(dir, 'out/production.jsonl'));
    assert.equal(Object.keys(rec)[0], '_fork_id');
    assert.equal(rec._fork_id, r.id);
    const { _fork_id, ...rest } = rec;
    assert.deepEqual(rest, order);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
