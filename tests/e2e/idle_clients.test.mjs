// Clients forkd forgets: an idle client with nothing in flight is forgotten
// after limits.client_idle; when it sends again forkd asks for a hello, the
// addon says it and resends, and the call succeeds.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { createClient } from '../../js/index.mjs';
import { startForkd, tempConfig, endpointFor, readJsonl, freePort } from './helpers.mjs';

test('a client forgotten while idle says hello again and its calls succeed, each stored once', async () => {
  const adminPort = await freePort();
  const { dir } = tempConfig(`
admin: 127.0.0.1:${adminPort}
limits: { client_idle: 1s }
destinations:
  logs: { type: file, path: ./out/logs.jsonl }
`);
  const forkd = await startForkd(`${dir}/fork.yaml`);
  try {
    const client = createClient({ endpoint: endpointFor(dir) });
    assert.equal((await client.routeData({ i: 1 }, 'logs')).ack, 'accepted');
    // Idle past client_idle, and past the once-a-second sweep: wait until forkd
    // counts its one client forgotten.
    const forgotten = async () =>
      Number((await (await fetch(`http://127.0.0.1:${adminPort}/metrics`)).text()).match(/^fork_ingest_forgotten_clients_total (\S+)$/m)?.[1]);
    for (const deadline = Date.now() + 15000; !((await forgotten()) >= 1); ) {
      assert.ok(Date.now() < deadline, 'the idle client forgotten within 15 s');
      await new Promise((r) => setTimeout(r, 100));
    }
    const again = await Promise.all([2, 3, 4].map((i) => client.routeData({ i }, 'logs')));
    assert.deepEqual(again.map((r) => r.ack), ['accepted', 'accepted', 'accepted']);
    await client.close();
    let seen = [];
    for (let t = 0; t < 100 && seen.length < 4; t++) {
      await new Promise((r) => setTimeout(r, 50));
      seen = readJsonl(`${dir}/out/logs.jsonl`).map((r) => r.i);
    }
    await new Promise((r) => setTimeout(r, 200));
    seen = readJsonl(`${dir}/out/logs.jsonl`).map((r) => r.i);
    assert.deepEqual(seen.sort(), [1, 2, 3, 4]);
  } finally {
    const r = await forkd.stop();
    rmSync(dir, { recursive: true, force: true });
    assert.equal(r.code, 0, forkd.stderr());
  }
  // Two hellos: at the start, and after forkd forgot it.
  assert.equal(forkd.stderr().match(/client [0-9a-f]{32} connected/g)?.length, 2, forkd.stderr());
});
