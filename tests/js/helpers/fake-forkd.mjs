// A stand-in for forkd speaking the frame format of sidecar/wire/protocol.h
// over a ZeroMQ ROUTER socket: enough to drive the addon's I/O thread
// (hello/welcome, acks with routed trailers, nacks, delivered, silence,
// restarts) without the real sidecar.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pack, unpack } from 'msgpackr';
import { Router } from 'zeromq';

export const FrameType = { hello: 1, welcome: 2, route: 3, ack: 4, nack: 5, delivered: 6 };
export const FLAG_WANT_DELIVERED = 1;

let counter = 0;
const dir = mkdtempSync(join(tmpdir(), 'fork-router-test-'));
process.on('exit', () => rmSync(dir, { recursive: true, force: true }));

/** A fresh ipc endpoint nobody listens on. */
export function freshEndpoint() {
  return `ipc://${join(dir, `forkd-${process.pid}-${counter++}.sock`)}`;
}

function header(type) {
  return Buffer.from([1, type]);
}

function ranges(list) {
  const b = Buffer.alloc(4 + 16 * list.length);
  b.writeUInt32LE(list.length, 0);
  list.forEach(([first, last], i) => {
    b.writeBigUInt64LE(BigInt(first), 4 + 16 * i);
    b.writeBigUInt64LE(BigInt(last), 12 + 16 * i);
  });
  return b;
}

export function decodeRoute(frame) {
  const first = Number(frame.readBigUInt64LE(2));
  const count = frame.readUInt32LE(10);
  const events = [];
  let off = 14;
  for (let i = 0; i < count; i++) {
    const flags = frame[off];
    const len = frame.readUInt32LE(off + 1);
    const bytes = frame.subarray(off + 5, off + 5 + len);
    const [destinations, key, options, payload] = unpack(bytes);
    events.push({ seq: first + i, flags, destinations, key, options, payload, size: len });
    off += 5 + len;
  }
  if (off !== frame.length) throw new Error(`route frame: ${frame.length - off} trailing bytes`);
  return { first, count, events };
}

/**
 * @param {object} opts
 * @param {string} [opts.endpoint]
 * @param {'ack'|'silent'} [opts.mode] ack every route frame at once, or never
 * @param {object} [opts.welcome] fields merged into the welcome map
 * @param {(event, fake) => void} [opts.onEvent] called per event (before the ack)
 * @param {(event) => string[]|undefined} [opts.route] names for the Ack's routed trailer
 * @param {(event) => [string, string]|undefined} [opts.nack] reject an event with [code, message]
 * @param {boolean} [opts.deliver] send kDelivered right after the ack for events that want it
 * @param {(event) => [string, string, string][]|undefined} [opts.outcomes] the delivered frame's
 *   trailer entry for an event: [destination, outcome, reason] for those not plainly delivered
 */
export class FakeForkd {
  constructor(opts = {}) {
    this.endpoint = opts.endpoint ?? freshEndpoint();
    this.opts = opts;
    this.mode = opts.mode ?? 'ack';
    this.hellos = [];
    this.frames = [];
    this.events = [];
    this.seen = new Map(); // seq -> times received
    this.sock = undefined;
    this.done = undefined;
    this.identity = undefined;
  }

  async start() {
    this.sock = new Router({ linger: 0 });
    await this.sock.bind(this.endpoint);
    this.done = this.#loop();
    return this;
  }

  async #loop() {
    try {
      for await (const [identity, frame] of this.sock) {
        await this.#handle(identity, frame);
      }
    } catch (err) {
      if (!this.sock.closed) throw err;
    }
  }

  async #handle(identity, frame) {
    this.identity = identity;
    if (frame[0] !== 1) throw new Error(`protocol version ${frame[0]}`);
    const type = frame[1];
    if (type === FrameType.hello) {
      const hello = unpack(frame.subarray(2));
      this.hellos.push({ identity: Buffer.from(identity), ...hello });
      const welcome = {
        protocol: 1,
        server: 'fake-forkd/0',
        max_frame: 16 << 20,
        max_event: 1 << 20,
        destinations: ['production', 'analytics', 'logs'],
        ...this.opts.welcome,
      };
      await this.sock.send([identity, Buffer.concat([header(FrameType.welcome), pack(welcome)])]);
      return;
    }
    if (type !== FrameType.route) throw new Error(`unexpected frame type ${type}`);
    const route = decodeRoute(frame);
    this.frames.push(route);
    const acked = [];
    const routed = [];
    const nacks = [];
    const delivered = [];
    const outcomes = [];
    for (const ev of route.events) {
      this.events.push(ev);
      this.seen.set(ev.seq, (this.seen.get(ev.seq) ?? 0) + 1);
      this.opts.onEvent?.(ev, this);
      const nack = this.opts.nack?.(ev);
      if (nack) {
        nacks.push([ev.seq, nack]);
        continue;
      }
      acked.push(ev.seq);
      const names = this.opts.route?.(ev);
      if (names) routed.push([ev.seq, names]);
      if (this.opts.deliver && ev.flags & FLAG_WANT_DELIVERED) {
        delivered.push(ev.seq);
        const listed = this.opts.outcomes?.(ev);
        if (listed) outcomes.push([ev.seq, listed]);
      }
    }
    if (this.mode === 'silent') return;
    for (const [seq, [code, message]] of nacks) {
      const b = Buffer.alloc(16);
      b.writeBigUInt64LE(BigInt(seq), 0);
      b.writeBigUInt64LE(BigInt(seq), 8);
      await this.sock.send([identity, Buffer.concat([header(FrameType.nack), b, pack([code, message])])]);
    }
    if (acked.length) {
      const parts = [header(FrameType.ack), ranges(acked.map((s) => [s, s]))];
      if (routed.length) parts.push(pack(routed));
      await this.sock.send([identity, Buffer.concat(parts)]);
    }
    if (delivered.length) {
      const parts = [header(FrameType.delivered), ranges(delivered.map((s) => [s, s]))];
      if (outcomes.length) parts.push(pack(outcomes));
      await this.sock.send([identity, Buffer.concat(parts)]);
    }
  }

  /** Sends a raw frame to the last client seen. */
  async send(frame) {
    await this.sock.send([this.identity, frame]);
  }

  async stop() {
    this.sock.close();
    await this.done;
  }
}

export { ranges, header };
