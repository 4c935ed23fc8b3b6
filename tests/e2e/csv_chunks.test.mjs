// CSV chunking: one file per window, named by the window's start, visible
// under that name only once complete (a reader polling the directory never
// sees a finished-looking file change), closed by time when events stop.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, rmSync, existsSync } from 'node:fs';
import path from 'node:path';
import { createClient } from '../../js/index.mjs';
import { startForkd, tempConfig, endpointFor } from './helpers.mjs';

test('2 s chunks: complete files appear by name, never change after, and hold every event once', async () => {
  const { dir, config } = tempConfig(`data_dir: ./.fork
destinations:
  chunks: { type: file, format: csv, path: ./out/, rotate: 2s, batch: { max_wait: 20ms } }
`, 'fork-chunks-');
  const out = path.join(dir, 'out');
  let forkd;
  try {
    forkd = await startForkd(config);
    const client = createClient({ endpoint: endpointFor(dir) });
    const seen = new Map();  // finished file -> content at first sight
    const changed = [];
    const poll = () => {
      if (!existsSync(out)) return;
      for (const f of readdirSync(out)) {
        if (f.startsWith('.')) continue;
        const text = readFileSync(path.join(out, f), 'utf8');
        if (!seen.has(f)) seen.set(f, text);
        else if (seen.get(f) !== text) changed.push(f);
      }
    };
    const ids = [];
    const t0 = Date.now();
    let i = 0;
    while (Date.now() - t0 < 5000) {
      for (let k = 0; k < 20; k++) ids.push((await client.routeData({ i: i++, note: 'a,b "c"' }, 'chunks')).id);
      poll();
      await new Promise((r) => setTimeout(r, 10));
    }
    await client.close();
    // No more events: the last window is closed by time.
    const t1 = Date.now();
    while (readdirSync(out).some((f) => f.endsWith('.part')) && Date.now() - t1 < 6000) {
      poll();
      await new Promise((r) => setTimeout(r, 50));
    }
    poll();
    const files = readdirSync(out).sort();
    assert.ok(!files.some((f) => f.endsWith('.part')), `the last window was closed by time: ${files}`);
    assert.ok(files.length >= 3, `at least 3 windows in 5 s: ${files}`);
    for (const f of files) assert.match(f, /^\d{4}-\d\d-\d\dT\d\d-\d\d-[0-9]{2}Z(_\d+)?\.csv$/);
    assert.deepEqual(changed, [], 'a file under its final name never changed');
    const got = [];
    for (const f of files) {
      const lines = readFileSync(path.join(out, f), 'utf8').split('\r\n').filter(Boolean);
      assert.equal(lines[0], '_fork_id,i,note', `${f} starts with its header`);
      for (const l of lines.slice(1)) got.push(l.slice(0, l.indexOf(',')));
    }
    assert.equal(got.length, ids.length);
    assert.deepEqual(new Set(got), new Set(ids));
    // Windows are named by their start: 2 s apart, even seconds.
    for (const f of files) assert.equal(Number(f.slice(17, 19)) % 2, 0, f);
    assert.equal((await forkd.stop()).code, 0);
  } finally {
    if (forkd) await forkd.stop('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
});
