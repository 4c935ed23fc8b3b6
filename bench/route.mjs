// routeData end to end, against its peers measured in the same run:
//   - msgpackr.pack() of the same objects: the JS-side floor for encoding;
//   - a pure-JS client (the zeromq package's Dealer + msgpackr) sending the
//     same events to the same forkd.
// Prints figures and ratios; never fails on timing.
//
//   node bench/route.mjs [--events 1000000] [--window 20000] [--paced-seconds 5] [--json FILE]
//
// --json FILE also writes the figures to FILE as one JSON object.
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { parseArgs } from 'node:util';
import { pack } from 'msgpackr';
import * as zmq from 'zeromq';
import { createClient } from '../js/index.mjs';
import { purchases, percentile } from './workload.mjs';
import { startForkd, tempConfig } from '../scripts/lib/forkd.mjs';

const { values } = parseArgs({
  options: {
    events: { type: 'string', default: '1000000' },
    window: { type: 'string', default: '20000' },
    'paced-seconds': { type: 'string', default: '5' },
    fsync: { type: 'string', default: 'batch' },
    json: { type: 'string' },
  },
});
const N = Number(values.events);
const WINDOW = Number(values.window);

const CONFIG = `
data_dir: ./.fork
wal: { fsync: ${values.fsync} }
destinations:
  logs: { type: file, format: jsonl, path: ./out/events.jsonl, rotate: 256MiB }
`;

function rssOf(pid) {
  const s = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (k) => Number((s.match(new RegExp(`${k}:\\s+(\\d+)`)) || [0, 0])[1]);
  return { rss: kb('VmRSS') / 1024, hwm: kb('VmHWM') / 1024 };
}

function fmt(n, d = 0) {
  return n.toLocaleString('en-US', { maximumFractionDigits: d, minimumFractionDigits: d });
}

// 1. The floor: msgpackr.pack() of the same objects, on the JS thread.
function benchPack(events) {
  let bytes = 0;
  for (let i = 0; i < 20000; i++) bytes += pack(events[i % events.length]).length; // warm up
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < events.length; i++) bytes += pack(events[i]).length;
  const ns = Number(process.hrtime.bigint() - t0) / events.length;
  return { nsPerOp: ns, bytes };
}

// 2. routeData, pipelined with a window; JS-thread time is the time spent in
//    the synchronous part of the calls.
async function benchRouteData(endpoint, events) {
  const client = createClient({ endpoint, maxInFlight: WINDOW * 2 });
  await client.routeData(events[0], 'logs');
  let syncNs = 0n;
  let acked = 0;
  const t0 = performance.now();
  for (let i = 0; i < events.length; i += WINDOW) {
    const end = Math.min(events.length, i + WINDOW);
    const batch = new Array(end - i);
    const s0 = process.hrtime.bigint();
    for (let j = i; j < end; j++) batch[j - i] = client.routeData(events[j], 'logs');
    syncNs += process.hrtime.bigint() - s0;
    const rs = await Promise.all(batch);
    acked += rs.length;
  }
  const accepted = performance.now() - t0;
  const last = await client.routeData(events[0], 'logs', { ack: 'delivered', timeoutMs: 60000 });
  const delivered = performance.now() - t0;
  await client.close();
  return {
    eventsPerSec: acked / (accepted / 1000),
    deliveredPerSec: acked / (delivered / 1000),
    jsNsPerCall: Number(syncNs) / events.length,
    acked,
    lastAck: last.ack,
  };
}

// 3. The peer: routeData written in plain JS with the zeromq package and
//    msgpackr, as an app would write it without the addon: each call packs
//    its event, sends it as its own frame and gets a promise that the ack
//    resolves. Same pipelining window as routeData.
async function connectRaw(endpoint, agent) {
  const id = randomBytes(16);
  const s = new zmq.Dealer({ routingId: id.toString('latin1'), linger: 0, sendHighWaterMark: 0 });
  s.routingId = id;
  s.connect(endpoint);
  await s.send(Buffer.concat([Buffer.from([1, 1]), pack({ client: id, protocol: 1, agent })]));
  await s.receive();
  return s;
}

function routeFrame(seq, events) {
  const parts = [];
  const hdr = Buffer.alloc(14);
  hdr[0] = 1;
  hdr[1] = 3;
  hdr.writeBigUInt64LE(BigInt(seq), 2);
  hdr.writeUInt32LE(events.length, 10);
  parts.push(hdr);
  for (const ev of events) {
    const h = Buffer.alloc(5);
    h.writeUInt32LE(ev.length, 1);
    parts.push(h, ev);
  }
  return Buffer.concat(parts);
}

async function benchPureJs(endpoint, events) {
  const s = await connectRaw(endpoint, 'pure-js');
  const pending = new Map();
  let seq = 1;
  let closed = false;
  const receiver = (async () => {
    while (!closed) {
      let m;
      try {
        [m] = await s.receive();
      } catch {
        return;
      }
      if (m[1] !== 4) continue;
      const n = m.readUInt32LE(2);
      for (let k = 0; k < n; k++) {
        const first = Number(m.readBigUInt64LE(6 + 16 * k));
        const last = Number(m.readBigUInt64LE(14 + 16 * k));
        for (let q = first; q <= last; q++) {
          const p = pending.get(q);
          if (p) {
            pending.delete(q);
            p({ id: q, ack: 'accepted' });
          }
        }
      }
    }
  })();
  // zeromq allows one send at a time: calls queue their frames for a pump.
  const queue = [];
  let pumping = false;
  const pump = async () => {
    pumping = true;
    while (queue.length > 0) await s.send(queue.shift());
    pumping = false;
  };
  const dests = ['logs'];
  const routeData = (payload) =>
    new Promise((resolve) => {
      const my = seq++;
      pending.set(my, resolve);
      queue.push(routeFrame(my, [pack([dests, null, null, payload])]));
      if (!pumping) pump();
    });
  const t0 = performance.now();
  for (let i = 0; i < events.length; i += WINDOW) {
    const end = Math.min(events.length, i + WINDOW);
    const batch = new Array(end - i);
    for (let j = i; j < end; j++) batch[j - i] = routeData(events[j]);
    await Promise.all(batch);
  }
  const ms = performance.now() - t0;
  closed = true;
  s.close();
  await receiver;
  return { eventsPerSec: events.length / (ms / 1000) };
}

// 3b. forkd's ingest ceiling: pre-batched frames of 1000 events from JS,
//     acks counted by range. Not a client an app would use; it shows how much
//     headroom forkd has beyond what either client sends.
async function benchRawBatched(endpoint, events) {
  const s = await connectRaw(endpoint, 'raw-batched');
  let acked = 0;
  let seq = 1;
  const FRAME = 1000;
  const receiver = (async () => {
    while (acked < events.length) {
      const [m] = await s.receive();
      if (m[1] !== 4) throw new Error(`raw client: frame ${m[1]}`);
      const n = m.readUInt32LE(2);
      for (let k = 0; k < n; k++) {
        acked += Number(m.readBigUInt64LE(14 + 16 * k) - m.readBigUInt64LE(6 + 16 * k)) + 1;
      }
    }
  })();
  const dests = ['logs'];
  const t0 = performance.now();
  for (let i = 0; i < events.length; i += FRAME) {
    const end = Math.min(events.length, i + FRAME);
    const evs = [];
    for (let j = i; j < end; j++) evs.push(pack([dests, null, null, events[j]]));
    await s.send(routeFrame(seq, evs));
    seq += end - i;
    while (seq - 1 - acked > WINDOW) await new Promise((r) => setImmediate(r));
  }
  await receiver;
  const ms = performance.now() - t0;
  s.close();
  return { eventsPerSec: events.length / (ms / 1000) };
}

// 4. Paced load: ack latency at a steady rate.
async function benchPaced(endpoint, next, rate, seconds) {
  const client = createClient({ endpoint });
  await client.routeData(next(), 'logs');
  const lat = [];
  const total = rate * seconds;
  const tick = 10; // ms
  const perTick = Math.round((rate * tick) / 1000);
  const t0 = performance.now();
  const pending = [];
  for (let sent = 0; sent < total; ) {
    const due = Math.min(total, Math.floor(((performance.now() - t0) / 1000) * rate));
    for (; sent < due; sent++) {
      const s = performance.now();
      pending.push(client.routeData(next(), 'logs').then(() => lat.push(performance.now() - s)));
    }
    await new Promise((r) => setTimeout(r, tick / 2));
  }
  await Promise.all(pending);
  await client.close();
  lat.sort((a, b) => a - b);
  return { p50: percentile(lat, 50), p99: percentile(lat, 99), p999: percentile(lat, 99.9), n: lat.length, perTick };
}

const next = purchases(99);
const events = Array.from({ length: N }, next);
const { dir, config } = tempConfig(CONFIG, 'fork-bench-');
console.log(`fork bench: ${fmt(N)} reference purchase events (~${pack(events[0]).length} B msgpack), window ${fmt(WINDOW)}, wal.fsync ${values.fsync}, file sink`);
console.log(`machine: ${(await import('node:os')).cpus().length} cores, node ${process.version}\n`);

const floor = benchPack(events);
let forkd = await startForkd(config);
let peak = 0;
const sampler = setInterval(() => (peak = Math.max(peak, rssOf(forkd.pid).rss)), 100);
const endpoint = `ipc://${dir}/.fork/fork.sock`;

const rd = await benchRouteData(endpoint, events);
const pure = await benchPureJs(endpoint, events);
const raw = await benchRawBatched(endpoint, events);
const paced = await benchPaced(endpoint, next, 10000, Number(values['paced-seconds']));
clearInterval(sampler);
const { hwm } = rssOf(forkd.pid);
const stop = await forkd.stop();
rmSync(dir, { recursive: true, force: true });

const rows = [
  ['routeData end to end (ack accepted, durable)', `${fmt(rd.eventsPerSec)} events/s`, 'target ≥ 300,000'],
  ['  … until delivered to the file sink', `${fmt(rd.deliveredPerSec)} events/s`, ''],
  ['pure-JS client (zeromq + msgpackr, a frame per call)', `${fmt(pure.eventsPerSec)} events/s`, ''],
  ['  ratio routeData / pure-JS', `${fmt(rd.eventsPerSec / pure.eventsPerSec, 2)}x`, 'target ≥ 3x'],
  ['forkd ingest ceiling (JS, pre-batched 1000/frame)', `${fmt(raw.eventsPerSec)} events/s`, ''],
  ['JS-thread time per routeData call', `${fmt(rd.jsNsPerCall)} ns`, ''],
  ['msgpackr.pack() of the same object', `${fmt(floor.nsPerOp)} ns`, ''],
  ['  ratio routeData / pack()', `${fmt(rd.jsNsPerCall / floor.nsPerOp, 2)}x`, 'target ≤ 1.0x'],
  [`ack latency at a paced 10,000 events/s (${fmt(paced.n)} events)`, `p50 ${fmt(paced.p50, 2)} ms, p99 ${fmt(paced.p99, 2)} ms, p99.9 ${fmt(paced.p999, 2)} ms`, 'target p99 ≤ 5 ms'],
  ['forkd peak RSS (VmHWM)', `${fmt(Math.max(hwm, peak), 1)} MiB`, 'target ≤ 64 MiB'],
  ['forkd exit on SIGTERM', `${stop.code}`, ''],
];
const w = Math.max(...rows.map((r) => r[0].length));
for (const [a, b, c] of rows) console.log(`${a.padEnd(w)}  ${b.padEnd(34)} ${c}`);

if (values.json) {
  const figures = {
    bench: 'route',
    events: N,
    window: WINDOW,
    fsync: values.fsync,
    eventBytes: pack(events[0]).length,
    routeData: { eventsPerSec: rd.eventsPerSec, deliveredPerSec: rd.deliveredPerSec, jsNsPerCall: rd.jsNsPerCall },
    pureJs: { eventsPerSec: pure.eventsPerSec },
    ingestCeiling: { eventsPerSec: raw.eventsPerSec, eventsPerFrame: 1000 },
    packNsPerOp: floor.nsPerOp,
    paced: { rate: 10000, ...paced },
    forkdPeakRssMiB: Math.max(hwm, peak),
    sigtermExit: stop.code,
  };
  writeFileSync(values.json, JSON.stringify(figures, null, 2) + '\n');
}
