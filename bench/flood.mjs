// forkd under a flood from hostile raw ZeroMQ clients (tests/e2e/flood_peers.mjs:
// maximum-size frames, frames of empty entries, empty frames, garbage, lying
// counts and lengths, a new client id per hello) over a slow disk, against
// its peer in the same run: the same normal client without the flood.
// Prints forkd's RSS growth and the normal client's ack rate and latency;
// never fails on timing.
//
//   node bench/flood.mjs [--seconds 60] [--clients 8] [--max-frame 1048576] [--fsync-delay-ms 100]
import { rmSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { startForkd, tempConfig } from '../scripts/lib/forkd.mjs';
import { normalClient, rssMiB, startPeers } from '../tests/e2e/flood.mjs';

const { values } = parseArgs({
  options: {
    seconds: { type: 'string', default: '60' },
    clients: { type: 'string', default: '8' },
    'max-frame': { type: 'string', default: String(1 << 20) },
    'fsync-delay-ms': { type: 'string', default: '100' },
  },
});
const SECONDS = Number(values.seconds);
const MAX_FRAME = Number(values['max-frame']);
const MAX_EVENT = Math.min(1 << 20, MAX_FRAME / 4);

const { dir } = tempConfig(`
wal: { fsync: batch }
limits: { max_frame: ${MAX_FRAME}, max_event: ${MAX_EVENT}, max_pending: 4MiB, max_clients: 64 }
destinations:
  logs: { type: file, path: ./out/logs.jsonl }
  flood:
    type: file
    path: ./out/flood.jsonl
    transforms:
      - filter: 'pad == "none"'
`);
const forkd = await startForkd(`${dir}/fork.yaml`, { env: { FORKD_FSYNC_DELAY_MS: values['fsync-delay-ms'] } });
const endpoint = `ipc://${dir}/.fork/fork.sock`;

const row = (label, value) => console.log(`${label.padEnd(56)}${value}`);
const ms = (x) => `${x.toFixed(1)} ms`;
console.log(`fork bench: flood of ${values.clients} hostile clients for ${SECONDS} s, max_frame ${MAX_FRAME} B, ` +
  `max_pending 4 MiB, every fsync ${values['fsync-delay-ms']} ms slower`);

const calm = await normalClient({ endpoint, pid: forkd.pid, seconds: SECONDS, tag: 'calm' });
const before = rssMiB(forkd.pid);
const peers = await startPeers({ endpoint, clients: Number(values.clients), maxFrame: MAX_FRAME, maxEvent: MAX_EVENT });
const flood = await normalClient({ endpoint, pid: forkd.pid, seconds: SECONDS, tag: 'flood' });
const counts = await peers.stop();
const after = rssMiB(forkd.pid);

row('normal client alone: acks/s', `${calm.rate.toFixed(0)}  (p50 ${ms(calm.p50)}, p99 ${ms(calm.p99)}, max ${ms(calm.max)})`);
row('normal client under the flood: acks/s', `${flood.rate.toFixed(0)}  (p50 ${ms(flood.p50)}, p99 ${ms(flood.p99)}, max ${ms(flood.max)})`);
row('  failed calls (alone / flood)', `${calm.failures.length} / ${flood.failures.length}`);
row('hostile messages sent', `${counts.sent} (${(counts.bytes / 2 ** 20).toFixed(0)} MiB), ${counts.churned} client ids`);
row('forkd RSS before the flood', `${before.toFixed(1)} MiB`);
row('forkd RSS peak during the flood (growth)', `${Math.max(...flood.rss).toFixed(1)} MiB (+${(Math.max(...flood.rss) - before).toFixed(1)} MiB)`);
row('forkd RSS after the flood', `${after.toFixed(1)} MiB`);
const r = await forkd.stop();
row('forkd exit on SIGTERM', String(r.code));
rmSync(dir, { recursive: true, force: true });
