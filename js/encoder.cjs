'use strict';

// The event encoder of routeData's fast path, on the JS thread: the msgpack
// array [destinations, key, options, payload] (docs/protocol.md), written
// into one reused buffer that the addon reads in place. It produces exactly
// the bytes of the addon's C++ encoder (addon/encoder.cc), whose rules it
// follows; tests/js/encoder_parity.test.mjs holds the two to each other.
//
// It takes what payloads are made of: strings, numbers, booleans, null,
// arrays, and objects whose prototype is Object.prototype or null. For
// anything else (a Date, BigInt, Buffer or typed array, a class instance,
// a function or symbol, nesting past 64 levels, which is also how a cycle
// ends, a getter that throws, more than MAX_BYTES) it gives up and returns
// -1: the caller then hands the event to the C++ encoder, which encodes
// the rest and words every error. V8 runs this code faster than the C++
// encoder can read the same values through Node-API, a call per property.

const MAX_DEPTH = 64; // wire::kMaxDepth
// Past this the C++ encoder takes over (it knows forkd's max_event).
const MAX_BYTES = 1 << 20;
const TWO_32 = 4294967296;

let buf = Buffer.allocUnsafeSlow(64 * 1024);
let view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
let pos = 0;
let base = 0; // where the event being written starts
let busy = false; // an encode is under way (a payload's getter may route another event)
let metaEnd = 0;

function grow(need) {
  let size = buf.length * 2;
  while (size < need) size *= 2;
  const next = Buffer.allocUnsafeSlow(size);
  buf.copy(next, 0, 0, pos);
  buf = next;
  view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
}

function str(s) {
  const n = s.length;
  if (pos + n * 3 + 5 > buf.length) {
    if (pos - base + n * 3 + 5 > MAX_BYTES + 16) return false;
    grow(pos + n * 3 + 5);
  }
  if (n < 32) {
    // Short strings, ASCII written by hand; the rest by the engine.
    const start = pos;
    let p = pos + 1;
    for (let i = 0; i < n; i++) {
      const c = s.charCodeAt(i);
      if (c >= 0x80) {
        p = -1;
        break;
      }
      buf[p++] = c;
    }
    if (p !== -1) {
      buf[start] = 0xa0 | n;
      pos = p;
      return true;
    }
  }
  // The header sized for the most the string can take (3 bytes per UTF-16
  // unit), then moved back if the bytes took fewer.
  const most = n * 3;
  const room = most < 32 ? 1 : most <= 0xff ? 2 : most <= 0xffff ? 3 : 5;
  const written = buf.utf8Write(s, pos + room, most);
  const header = written < 32 ? 1 : written <= 0xff ? 2 : written <= 0xffff ? 3 : 5;
  if (header !== room) buf.copyWithin(pos + header, pos + room, pos + room + written);
  if (header === 1) {
    buf[pos] = 0xa0 | written;
  } else if (header === 2) {
    buf[pos] = 0xd9;
    buf[pos + 1] = written;
  } else if (header === 3) {
    buf[pos] = 0xda;
    view.setUint16(pos + 1, written);
  } else {
    buf[pos] = 0xdb;
    view.setUint32(pos + 1, written);
  }
  pos += header + written;
  return true;
}

// Integral numbers within int64 as the smallest int; the rest (fractions,
// -0, NaN, the infinities, beyond int64) as float64, as the C++ encoder.
function num(d) {
  if (Number.isInteger(d) && d >= -9223372036854775808 && d < 9223372036854775808 && !(d === 0 && 1 / d < 0)) {
    if (d >= 0) {
      if (d < 128) {
        buf[pos++] = d;
      } else if (d <= 0xff) {
        buf[pos] = 0xcc;
        buf[pos + 1] = d;
        pos += 2;
      } else if (d <= 0xffff) {
        buf[pos] = 0xcd;
        view.setUint16(pos + 1, d);
        pos += 3;
      } else if (d <= 0xffffffff) {
        buf[pos] = 0xce;
        view.setUint32(pos + 1, d);
        pos += 5;
      } else {
        buf[pos] = 0xcf;
        view.setUint32(pos + 1, Math.floor(d / TWO_32));
        view.setUint32(pos + 5, d % TWO_32);
        pos += 9;
      }
    } else if (d >= -32) {
      buf[pos++] = d & 0xff;
    } else if (d >= -128) {
      buf[pos] = 0xd0;
      view.setInt8(pos + 1, d);
      pos += 2;
    } else if (d >= -32768) {
      buf[pos] = 0xd1;
      view.setInt16(pos + 1, d);
      pos += 3;
    } else if (d >= -2147483648) {
      buf[pos] = 0xd2;
      view.setInt32(pos + 1, d);
      pos += 5;
    } else {
      buf[pos] = 0xd3;
      view.setBigInt64(pos + 1, BigInt(d));
      pos += 9;
    }
    return;
  }
  buf[pos] = 0xcb;
  view.setFloat64(pos + 1, d);
  pos += 9;
}

function header(n, fix, b16, b32) {
  if (n < 16) {
    buf[pos++] = fix | n;
  } else if (n <= 0xffff) {
    buf[pos] = b16;
    view.setUint16(pos + 1, n);
    pos += 3;
  } else {
    buf[pos] = b32;
    view.setUint32(pos + 1, n);
    pos += 5;
  }
}

function value(v, depth) {
  if (!room()) return false;
  switch (typeof v) {
    case 'string':
      return str(v);
    case 'number':
      num(v);
      return true;
    case 'boolean':
      buf[pos++] = v ? 0xc3 : 0xc2;
      return true;
    case 'undefined':
      buf[pos++] = 0xc0;
      return true;
    case 'object':
      if (v === null) {
        buf[pos++] = 0xc0;
        return true;
      }
      if (depth >= MAX_DEPTH) return false;
      if (Array.isArray(v)) return array(v, depth);
      return object(v, depth);
    default:
      return false; // bigint, function, symbol: the C++ encoder's to handle
  }
}

// Room for a header or a number (at most 9 bytes) before writing one
// unchecked; false past MAX_BYTES.
function room() {
  if (pos + 16 <= buf.length) return true;
  if (pos - base > MAX_BYTES) return false;
  grow(pos + 16);
  return true;
}

function array(a, depth) {
  if (!room()) return false;
  const n = a.length;
  header(n, 0x90, 0xdc, 0xdd);
  for (let i = 0; i < n; i++) {
    if (!value(a[i], depth + 1)) return false;
  }
  return true;
}

// Whether Object.prototype has an enumerable property (someone added one):
// for...in would then visit it in every plain object. Checked once per event.
let protoClean = true;
function checkProto() {
  for (const k in Object.prototype) return false; // eslint-disable-line no-unused-vars
  return true;
}

function object(o, depth) {
  const proto = Object.getPrototypeOf(o);
  if ((proto !== Object.prototype && proto !== null) || !room()) return false;
  if (!protoClean && proto !== null) return objectByKeys(o, depth);
  // for...in rather than Object.keys: no array made per object, and V8 reads
  // o[k] through the map's enum cache instead of a megamorphic lookup. With
  // no enumerable property up the chain it visits the same keys in the
  // same order: its snapshot at the start of the loop, less those deleted
  // since.
  // One pass: a one-byte header is reserved and the entries written after
  // it; a map of 16 entries or more then has its entries moved to make room
  // for the longer header.
  const at = pos++;
  let written = 0;
  for (const k in o) {
    const v = o[k];
    if (v === undefined) continue; // skipped, like JSON.stringify
    if (!str(k) || !value(v, depth + 1)) return false;
    written++;
  }
  if (written < 16) {
    buf[at] = 0x80 | written;
    return true;
  }
  if (pos + 4 > buf.length) grow(pos + 4);
  return rewriteHeader(at, 0, written);
}

function objectByKeys(o, depth) {
  const keys = Object.keys(o);
  const n = keys.length;
  const at = pos;
  header(n, 0x80, 0xde, 0xdf);
  let written = 0;
  for (let i = 0; i < n; i++) {
    const k = keys[i];
    const v = o[k];
    if (v === undefined) continue; // skipped, like JSON.stringify
    if (!str(k) || !value(v, depth + 1)) return false;
    written++;
  }
  return written === n || rewriteHeader(at, n, written);
}

// The map header at `at` counted n entries, of which `written` were (the
// undefined ones were skipped): rewrite it, moving the entries when its
// length changes (room for a longer one is the caller's to make).
function rewriteHeader(at, n, written) {
  const old = n < 16 ? 1 : n <= 0xffff ? 3 : 5;
  const now = written < 16 ? 1 : written <= 0xffff ? 3 : 5;
  if (now !== old) {
    buf.copyWithin(at + now, at + old, pos);
    pos -= old - now;
  }
  if (now === 1) {
    buf[at] = 0x80 | written;
  } else if (now === 3) {
    buf[at] = 0xde;
    view.setUint16(at + 1, written);
  } else {
    buf[at] = 0xdf;
    view.setUint32(at + 1, written);
  }
  return true;
}

// Writes the event at pos; false when the C++ encoder must do it. `dests`: a
// string, an array of strings (checked by the caller) or undefined; `key`: a
// string or undefined; `options`: the wire options object or undefined.
function writeEvent(payload, dests, key, options) {
  base = pos;
  protoClean = checkProto();
  if (pos + 16 > buf.length) grow(pos + 16);
  try {
    buf[pos++] = 0x94;
    if (typeof dests === 'string') {
      buf[pos++] = 0x91;
      if (!str(dests)) return false;
    } else if (dests === undefined) {
      buf[pos++] = 0xc0;
    } else {
      header(dests.length, 0x90, 0xdc, 0xdd);
      for (let i = 0; i < dests.length; i++) if (!str(dests[i])) return false;
    }
    if (!room()) return false;
    if (key === undefined) {
      buf[pos++] = 0xc0;
    } else if (!str(key)) {
      return false;
    }
    metaEnd = pos - base;
    if (!room()) return false;
    if (options === undefined) {
      buf[pos++] = 0xc0;
    } else if (!object(options, 0)) {
      return false;
    }
    if (!object(payload, 0)) return false;
  } catch {
    return false; // a getter threw, or a proxy: the C++ encoder says so, with the path
  }
  return pos - base <= MAX_BYTES;
}

// Encodes one event; returns its length in bytes (the bytes are
// buffer()[0, length), its destinations and key end at metaEnd()) or -1
// when the C++ encoder must do it.
function encodeEvent(payload, dests, key, options) {
  if (busy) return -1; // called again from a getter: the C++ encoder has its own buffer
  busy = true;
  try {
    pos = 0;
    return writeEvent(payload, dests, key, options) ? pos : -1;
  } finally {
    busy = false;
  }
}

let ends = new Uint32Array(1024);
let metas = new Uint32Array(1024);

// routeMany's events back to back: true, with each event's end in ends()
// and where its destinations and key end in metas() (from the event's
// start); false when the C++ encoder must do the call.
function encodeMany(payloads, dests, keys, options) {
  if (busy) return false;
  busy = true;
  try {
    return writeMany(payloads, dests, keys, options);
  } finally {
    busy = false;
  }
}

function writeMany(payloads, dests, keys, options) {
  const n = payloads.length;
  if (ends.length < n) {
    ends = new Uint32Array(n);
    metas = new Uint32Array(n);
  }
  pos = 0;
  for (let i = 0; i < n; i++) {
    if (!writeEvent(payloads[i], dests, keys === undefined ? undefined : keys[i], options)) return false;
    ends[i] = pos;
    metas[i] = metaEnd;
  }
  return true;
}

// After a large routeMany: back to the working size (the addon has copied
// the bytes), so that one huge call keeps no huge buffer.
function shrink() {
  if (buf.length > 4 << 20) {
    buf = Buffer.allocUnsafeSlow(64 * 1024);
    view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
    pos = 0;
  }
  if (ends.length > 1 << 16) {
    ends = new Uint32Array(1024);
    metas = new Uint32Array(1024);
  }
}

module.exports = {
  encodeEvent,
  shrink,
  encodeMany,
  ends: () => ends,
  metas: () => metas,
  buffer: () => buf,
  metaEnd: () => metaEnd,
  MAX_BYTES,
};
