// Encoder fidelity: every supported JS type travels through the addon, the
// wire, the log and the file sink, and reads back as JSON would render it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import path from 'node:path';
import { createClient } from '../../js/index.mjs';
import { startForkd, tempConfig, readJsonl, endpointFor } from './helpers.mjs';

test('every supported type round-trips into the JSONL file', async () => {
  const { dir, config } = tempConfig('destinations:\n  logs: { type: file, path: ./out.jsonl }\n');
  try {
    const forkd = await startForkd(config);
    const client = createClient({ endpoint: endpointFor(dir) });
    const when = new Date(Date.UTC(2026, 10, 21, 17, 50, 1, 234));
    const payload = {
      str: 'plain',
      unicode: 'Grüße, 世界 🍕',
      control: 'tab\there "quoted" back\\slash\nnewline \u0001',
      empty: '',
      int: 42,
      negative: -7,
      zero: 0,
      big: 2 ** 53 - 1,
      float: 3.14159,
      tiny: 1e-300,
      negativeZero: -0,
      yes: true,
      no: false,
      nothing: null,
      skipped: undefined,
      date: when,
      buffer: Buffer.from([0, 1, 2, 250, 255]),
      bytes: new Uint8Array([104, 105]),
      bigint: 9007199254740993n,
      maxInt64: 9223372036854775807n,
      minInt64: -9223372036854775808n,
      maxUint64: 18446744073709551615n,
      array: [1, 'two', { three: 3 }, [4], null, undefined],
      nested: { a: { b: { c: { d: 'deep' } } } },
      emptyObject: {},
      emptyArray: [],
      'weird key "\n': 1,
    };
    const r = await client.routeData(payload, 'logs', { ack: 'delivered' });
    await client.close();
    assert.equal((await forkd.stop()).code, 0);
    const [rec] = readJsonl(path.join(dir, 'out.jsonl'));
    assert.equal(rec._fork_id, r.id);
    const expected = {
      _fork_id: r.id,
      ...JSON.parse(JSON.stringify({ ...payload, buffer: 0, bytes: 0, bigint: 0, maxInt64: 0, minInt64: 0, maxUint64: 0 })),
      date: '2026-11-21T17:50:01.234Z',
      buffer: Buffer.from([0, 1, 2, 250, 255]).toString('base64'),
      bytes: 'aGk=',
      negativeZero: -0, // a float -0 stays -0 (JSON.stringify would write 0)
    };
    delete expected.skipped;
    // Integers beyond 2^53 are written exactly in the JSON text.
    const { readFileSync } = await import('node:fs');
    const text = readFileSync(path.join(dir, 'out.jsonl'), 'utf8');
    assert.match(text, /"bigint":9007199254740993[,}]/);
    assert.match(text, /"maxInt64":9223372036854775807[,}]/);
    assert.match(text, /"minInt64":-9223372036854775808[,}]/);
    assert.match(text, /"maxUint64":18446744073709551615[,}]/);
    for (const k of ['bigint', 'maxInt64', 'minInt64', 'maxUint64']) {
      delete rec[k];
      delete expected[k];
    }
    assert.deepEqual(rec, expected);
    assert.equal('skipped' in rec, false, 'undefined properties are skipped');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
