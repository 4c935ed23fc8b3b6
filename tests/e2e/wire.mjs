// Speaking the wire protocol by hand (docs/protocol.md), for tests that send
// what the addon never would.
import { randomBytes } from 'node:crypto';
import * as zmq from 'zeromq';
import { pack } from 'msgpackr';

// A kRoute frame: header, then (flags, length, event) per event. `count`
// overrides the header's count, to lie about it.
export function routeFrame(firstSeq, events, { count } = {}) {
  const hdr = Buffer.alloc(14);
  hdr[0] = 1;
  hdr[1] = 3;
  hdr.writeBigUInt64LE(BigInt(firstSeq), 2);
  hdr.writeUInt32LE(count ?? events.length, 10);
  const parts = [hdr];
  for (const e of events) {
    const h = Buffer.alloc(5);
    h.writeUInt32LE(e.length, 1);
    parts.push(h, e);
  }
  return Buffer.concat(parts);
}

// A DEALER with the client id `id` that has said hello and got its welcome.
export async function rawClient(endpoint, id = randomBytes(16)) {
  const s = new zmq.Dealer({ routingId: id.toString('latin1'), receiveTimeout: 5000, linger: 0 });
  s.routingId = id;
  s.connect(endpoint);
  await s.send(Buffer.concat([Buffer.from([1, 1]), pack({ client: id, protocol: 1, agent: 'raw' })]));
  const [welcome] = await s.receive();
  if (welcome[1] !== 2) throw new Error(`expected a welcome, got frame type ${welcome[1]}`);
  return s;
}
