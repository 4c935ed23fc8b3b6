// Hostile peers for the flood test and bench, run as a child process so
// their work does not share a thread with the client being measured:
//
//   node tests/e2e/flood_peers.mjs '{"endpoint":"ipc://…","clients":8,"maxFrame":1048576,"maxEvent":262144}'
//
// Floods until it receives 'stop' (IPC), then sends back its counts. Each of
// the raw ZeroMQ clients does one thing, round robin:
//   max       maximum-size frames of valid events (to destination 'flood')
//   entries   maximum-size frames of empty entries
//   empty     empty messages, bare headers, route frames of no entries
//   garbage   maximum-size random bytes; never reads its socket
//   prefixes  lying counts and lengths, and messages past max_frame (which
//             disconnect it; ZeroMQ reconnects)
//   churn     a new routing id each time: hello, one event, gone (no wait
//             for the welcome)
import { randomBytes } from 'node:crypto';
import * as zmq from 'zeromq';
import { pack } from 'msgpackr';
import { rawClient, routeFrame } from './wire.mjs';

const opts = JSON.parse(process.argv[2]);
const KINDS = ['max', 'entries', 'empty', 'garbage', 'prefixes', 'churn', 'max', 'entries'];
let stopping = false;
const counts = { sent: 0, bytes: 0, replies: 0, errors: 0, churned: 0, churnStarted: 0, maxLagMs: 0 };

function header(firstSeq, count) {
  const h = Buffer.alloc(14);
  h[0] = 1;
  h[1] = 3;
  h.writeBigUInt64LE(BigInt(firstSeq), 2);
  h.writeUInt32LE(count, 10);
  return h;
}

async function drain(s) {
  try {
    while (!stopping) {
      await s.receive();
      counts.replies++;
    }
  } catch {
    // closed, or a receive timeout: nothing more to count
  }
}

async function send(s, buf) {
  await s.send(buf);
  counts.sent++;
  counts.bytes += buf.length;
}

async function flood(kind) {
  const { endpoint, maxFrame, maxEvent } = opts;
  if (kind === 'churn') {
    // Hello and one event under a new id, without waiting for the welcome,
    // and without waiting for the previous id: while forkd's reading is
    // paused at max_pending a new connection's first send can wait seconds,
    // and the point is many ids, each read when reading resumes. At most
    // 200 ids are on their way at once.
    let open = 0;
    const one = async () => {
      const id = randomBytes(16);
      const s = new zmq.Dealer({ routingId: id.toString('latin1'), linger: 2000, sendTimeout: 5000 });
      s.routingId = id;
      try {
        s.connect(endpoint);
        await s.send(Buffer.concat([Buffer.from([1, 1]), pack({ client: id, protocol: 1, agent: 'raw' })]));
        await send(s, routeFrame(1, [pack([['flood'], null, null, { churn: counts.churned }])]));
        counts.churned++;
      } catch {
        counts.errors++;
      } finally {
        s.close();
        open--;
      }
    };
    while (!stopping) {
      if (open < 200) {
        open++;
        counts.churnStarted++;
        one();
      }
      const t0 = Date.now();
      await new Promise((r) => setTimeout(r, 10));
      counts.maxLagMs = Math.max(counts.maxLagMs, Date.now() - t0 - 10);
    }
    return;
  }
  const s = await rawClient(endpoint);
  s.receiveTimeout = -1;
  s.sendTimeout = 2000;
  if (kind !== 'garbage') drain(s);
  let seq = 1;
  // Prebuilt bodies: the loop only sends.
  const event = pack([['flood'], null, null, { pad: 'x'.repeat(Math.floor(maxEvent / 2)) }]);
  const perFrame = Math.max(1, Math.floor((maxFrame - 14) / (event.length + 5)));
  const maxBody = routeFrame(1, new Array(perFrame).fill(event)).subarray(14);
  const entries = Buffer.alloc(maxFrame - 14 - ((maxFrame - 14) % 5));
  const entriesCount = entries.length / 5;
  const garbage = randomBytes(maxFrame);
  const lies = [
    Buffer.concat([header(1, 0xffffffff), Buffer.alloc(64)]),
    Buffer.concat([header(1, 1), Buffer.from([0, 0xf0, 0xff, 0xff, 0xff]), Buffer.alloc(64)]),
    Buffer.concat([header(1, 2), Buffer.from([0, 3, 0, 0, 0, 0xc0, 0xc0, 0xc0, 0, 0xff, 0xff, 0xff, 0x7f])]),
  ];
  const empties = [Buffer.alloc(0), Buffer.from([1]), Buffer.from([1, 3]), header(1, 0), Buffer.from([1, 1])];
  let i = 0;
  while (!stopping) {
    try {
      switch (kind) {
        case 'max':
          await send(s, Buffer.concat([header(seq, perFrame), maxBody]));
          seq += perFrame;
          break;
        case 'entries':
          await send(s, Buffer.concat([header(seq, entriesCount), entries]));
          seq += entriesCount;
          break;
        case 'empty':
          await send(s, empties[i++ % empties.length]);
          break;
        case 'garbage':
          await send(s, garbage.subarray(0, 1 + Math.floor(Math.random() * maxFrame)));
          break;
        case 'prefixes':
          if (i++ % 50 === 49) {
            await send(s, Buffer.alloc(maxFrame + 1));  // past max_frame: disconnected
          } else {
            await send(s, lies[i % lies.length]);
          }
          break;
      }
    } catch {
      counts.errors++;  // a send timeout while forkd pushes back
    }
    // Back to the event loop after every send: zeromq resolves sends
    // synchronously while the socket is writable, and seven loops chaining
    // resolved promises would starve the churning peer's timer for seconds.
    await new Promise(setImmediate);
  }
  s.linger = 0;
  s.close();
}

const running = [];
for (let c = 0; c < opts.clients; c++) running.push(flood(KINDS[c % KINDS.length]));
process.on('message', async (m) => {
  if (m !== 'stop') return;
  stopping = true;
  await Promise.race([Promise.allSettled(running), new Promise((r) => setTimeout(r, 5000))]);
  process.send(counts, () => process.exit(0));
});
process.send('started');
