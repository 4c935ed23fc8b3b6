// routeData's two encoders held to each other: js/encoder.cjs (the fast
// path, on the JS thread) must write exactly the bytes of the addon's C++
// encoder for every event it takes, and give up (-1) only for what it leaves
// to the C++ one. Random events from a seeded generator (FORK_FUZZ_SEED to
// replay, FORK_FUZZ_EVENTS for more), and the edges by hand; msgpackr, an
// independent decoder, reads each back to what JSON.stringify would keep,
// and what msgpackr writes is read back by the C++ decoder through the
// pre-encoded payload path.
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import test from 'node:test';
import { pack, Unpackr } from 'msgpackr';
import { rng } from '../../bench/workload.mjs';

const require = createRequire(import.meta.url);
const binding = require('../../js/loader.cjs').load();
require('../../js/index.cjs'); // installs the ForkError factory
const encoder = require('../../js/encoder.cjs');

const SEED = Number(process.env.FORK_FUZZ_SEED ?? (Date.now() & 0xffffffff));
const EVENTS = Number(process.env.FORK_FUZZ_EVENTS ?? 3000);
const numbers = new Unpackr({ int64AsType: 'number', mapsAsObjects: true, useRecords: false });

function jsBytes(payload, dests, key, options) {
  const n = encoder.encodeEvent(payload, dests, key, options);
  return n < 0 ? null : Buffer.from(encoder.buffer().subarray(0, n));
}
const cBytes = (payload, dests, key, options) => binding.encodeForTest(payload, dests, key, options);

// What JSON would keep, with msgpack's extras (-0, NaN, the infinities).
function normal(v, inArray) {
  if (v === undefined) return inArray ? null : undefined;
  if (typeof v === 'string') return v.toWellFormed(); // lone surrogates become U+FFFD, as in UTF-8
  if (Array.isArray(v)) return Array.from(v, (x) => normal(x, true)); // holes too
  if (v !== null && typeof v === 'object') {
    const out = {};
    for (const k of Object.keys(v)) {
      const x = normal(v[k], false);
      if (x !== undefined) out[k.toWellFormed()] = x;
    }
    return out;
  }
  return v;
}

function same(payload, dests = 'logs', key = undefined, options = undefined, label = '') {
  const js = jsBytes(payload, dests, key, options);
  assert.ok(js !== null, `the JS encoder takes ${label}`);
  const c = cBytes(payload, dests, key, options);
  assert.ok(js.equals(c), `${label}: JS and C++ bytes differ\n js ${js.toString('hex').slice(0, 400)}\n c  ${c.toString('hex').slice(0, 400)}`);
  const [, , , out] = numbers.unpack(js);
  assert.deepEqual(out, normal(payload, false), `${label}: msgpackr reads back what JSON would keep`);
}

const NUMBERS = [
  0, -0, 1, -1, 31, 32, -32, -33, 127, 128, 255, 256, -128, -129, 65535, 65536, -32768, -32769,
  2 ** 31 - 1, 2 ** 31, -(2 ** 31), -(2 ** 31) - 1, 2 ** 32 - 1, 2 ** 32, 2 ** 53 - 1, 2 ** 53, -(2 ** 53),
  2 ** 62, 2 ** 63, -(2 ** 63), 2 ** 64, -(2 ** 64), 1.5, -1.5, 0.1, 1e-300, 5e-324, 1.7976931348623157e308,
  NaN, Infinity, -Infinity, 9007199254740993, 123456789012345680000,
];
const STRINGS = [
  '', 'a', 'x'.repeat(31), 'x'.repeat(32), 'x'.repeat(255), 'x'.repeat(256), 'x'.repeat(65535), 'x'.repeat(65536),
  'é', 'é'.repeat(15), 'é'.repeat(16), 'é'.repeat(128), '€'.repeat(10), '€'.repeat(11), '€'.repeat(85), '€'.repeat(86),
  '😀', '😀'.repeat(8), '😀'.repeat(64), '\ud800', 'a\udc00b', '\udbff\udfff', 'x'.repeat(30) + '\ud83d',
  '\u0000', 'line\nbreak', 'tab\t"quote"', '日本語のテキスト', 'mixed ascii and ünïcödé and 😀 emoji',
];

test('numbers at every encoding boundary, and floats, -0, NaN and the infinities: the same bytes', () => {
  for (const n of NUMBERS) {
    same({ n }, 'logs', undefined, undefined, `number ${Object.is(n, -0) ? '-0' : n}`);
    same({ a: [n, -n] }, 'logs', undefined, undefined, `array of ${n}`);
  }
});

test('strings: ASCII and UTF-8 at every header boundary, surrogate pairs and lone surrogates: the same bytes', () => {
  for (const s of STRINGS) {
    same({ s }, 'logs', undefined, undefined, `string of ${s.length} units`);
    same({ [s]: 1 }, 'logs', undefined, undefined, `key of ${s.length} units`);
  }
  same({ s: 'x' }, 'é'.repeat(40), 'k'.repeat(40), undefined, 'long destination and key');
  same({ s: 'x' }, ['a', 'b', 'c'], '\ud800', undefined, 'a destination list, a lone-surrogate key');
});

test('containers: undefined skipped in objects (headers rewritten at 16 and 65536), nil in arrays; sizes at every header', () => {
  same({ a: undefined, b: 1, c: undefined }, 'logs', undefined, undefined, 'undefined properties');
  const sixteen = {};
  for (let i = 0; i < 16; i++) sixteen[`k${i}`] = i;
  same({ ...sixteen, gone: undefined }, 'logs', undefined, undefined, '17 keys, one undefined: fixmap');
  const big = {};
  for (let i = 0; i < 65536; i++) big[`k${i}`] = i & 1;
  big.gone = undefined;
  same(big, 'logs', undefined, undefined, '65 537 keys, one undefined: map16');
  for (const n of [0, 15, 16, 65535, 65536]) same({ a: new Array(n).fill(7) }, 'logs', undefined, undefined, `array of ${n}`);
  same({ a: [1, undefined, null, , 3] }, 'logs', undefined, undefined, 'undefined and holes in arrays'); // eslint-disable-line no-sparse-arrays
  same({ 2: 'two', 1: 'one', b: 'b', a: 'a' }, 'logs', undefined, undefined, 'integer-like keys first, as Object.keys orders them');
  same(Object.assign(Object.create(null), { a: 1, nested: Object.assign(Object.create(null), { b: 2 }) }), 'logs', undefined, undefined, 'null-prototype objects');
  let deep = { leaf: true };
  for (let i = 0; i < 63; i++) deep = { d: deep };
  same(deep, 'logs', undefined, undefined, '64 levels');
  same({ x: 1 }, undefined, undefined, { timestamp: { field: 'at', format: 'epoch_ms' }, aggregate: 'daily', key: 'u1', transform: ['a', 'b'] }, 'wire options');
});

test('keys: getters that delete or add keys while the object is written, a Proxy listing more keys each time it is asked (each encoder asks once), an enumerable property on Object.prototype: the same bytes', () => {
  const same = (make) => {
    const js = jsBytes(make(), 'd');
    const c = cBytes(make(), 'd');
    if (js !== null) assert.deepEqual(js, c);
    return js;
  };
  same(() => ({ a: 1, get b() { delete this.c; return 2; }, c: 3, d: 4 }));
  same(() => ({ a: 1, get b() { this.z = 9; return 2; }, c: 3 }));
  same(() => ({ a: 1, get b() { delete this.c; this.c = 7; return 2; }, c: 3 }));
  // Each encoder lists an object's keys once and writes what that listing
  // said: one key here, from each.
  let calls = 0;
  const growing = () => {
    calls = 0;
    return new Proxy({ a: 1 }, {
      ownKeys: () => Array.from({ length: ++calls }, (_, i) => `k${i}`),
      getOwnPropertyDescriptor: () => ({ value: 1, enumerable: true, configurable: true }),
      get: () => 1,
    });
  };
  const once = same(growing);
  assert.ok(once !== null, 'the JS encoder takes a Proxy of a plain object');
  assert.ok(once.includes(Buffer.from([0x81, 0xa2, 0x6b, 0x30, 0x01])), 'one key, k0: the keys listed once');
  // eslint-disable-next-line no-extend-native
  Object.defineProperty(Object.prototype, 'polluted', { value: 1, enumerable: true, configurable: true });
  try {
    for (const make of [() => ({ a: 1, b: { c: 2 } }), () => Object.assign(Object.create(null), { x: 1 })]) {
      const js = same(make);
      assert.ok(js !== null, 'the JS encoder still takes it');
      assert.ok(!js.includes(Buffer.from('polluted')), 'an inherited key is not written');
    }
  } finally {
    delete Object.prototype.polluted;
  }
});

test('what the JS encoder leaves to the C++ one: it gives up, and the C++ encoder encodes it or words the error', () => {
  let deep = { leaf: true };
  for (let i = 0; i < 64; i++) deep = { d: deep };
  const cyclic = { a: {} };
  cyclic.a.self = cyclic;
  class Point {
    constructor() {
      this.x = 1;
    }
  }
  const cases = [
    ['a Date', { at: new Date(0) }],
    ['a BigInt', { n: 10n }],
    ['a Buffer', { b: Buffer.from('x') }],
    ['a Uint8Array payload (pre-encoded)', new Uint8Array([0x80])],
    ['a class instance', { p: new Point() }],
    ['a Map', { m: new Map() }],
    ['a function', { f() {} }],
    ['a symbol', { s: Symbol('s') }],
    ['65 levels', deep],
    ['a cycle', cyclic],
    ['a getter that throws', { get boom() { throw new Error('boom'); } }],
    ['more than 1 MiB', { s: 'x'.repeat(1 << 20) }],
  ];
  for (const [label, payload] of cases) {
    assert.equal(encoder.encodeEvent(payload, 'logs', undefined, undefined), -1, `${label}: given up`);
  }
  // A getter that encodes another event meanwhile (a payload getter calling
  // routeData): the inner call leaves it to the C++ encoder, the outer one's
  // bytes are whole.
  let inner;
  const reentrant = { a: 1, get b() { inner ??= encoder.encodeEvent({ x: 1 }, 'logs', undefined, undefined); return 2; }, c: 3 };
  same(reentrant, 'logs', undefined, undefined, 'a getter that encodes another event');
  assert.equal(inner, -1, 'the inner encode (during the JS pass, the first) is left to the C++ encoder');
  // And the JS encoder is fine again after giving up midway.
  same({ after: 'a bail-out', n: [1, 2, 3] }, 'logs', undefined, undefined, 'after giving up');
});

// A random JSON-like value: what payloads are made of.
function generator(r) {
  const pick = (xs) => xs[Math.floor(r() * xs.length)];
  const str = () => {
    switch (Math.floor(r() * 4)) {
      case 0: return pick(STRINGS.filter((s) => s.length < 300));
      case 1: return `k${Math.floor(r() * 1000)}`;
      case 2: return String.fromCharCode(...Array.from({ length: Math.floor(r() * 40) }, () => Math.floor(r() * 0x10000)));
      default: return 'x'.repeat(Math.floor(r() * 300));
    }
  };
  const num = () => (r() < 0.5 ? pick(NUMBERS) : r() < 0.5 ? Math.floor((r() - 0.5) * 2 ** (r() * 70)) : (r() - 0.5) * 10 ** (r() * 40 - 20));
  const value = (depth) => {
    const k = r();
    if (depth > 5 || k < 0.3 + depth * 0.15) {
      return pick([str, num, () => r() < 0.5, () => null, () => undefined])();
    }
    if (k < 0.65) return Array.from({ length: Math.floor(r() * 12) }, () => value(depth + 1));
    const o = r() < 0.05 ? Object.create(null) : {};
    const n = Math.floor(r() * 12);
    for (let i = 0; i < n; i++) o[str()] = value(depth + 1);
    return o;
  };
  return () => {
    const p = {};
    const n = 1 + Math.floor(r() * 12);
    for (let i = 0; i < n; i++) p[str()] = value(0);
    return p;
  };
}

test(`${EVENTS} random events (seed ${SEED}): the JS encoder takes each and writes the C++ encoder's bytes; msgpackr reads back what JSON keeps`, () => {
  const r = rng(SEED);
  const next = generator(r);
  const dests = [undefined, 'logs', ['a', 'b'], 'é'.repeat(20)];
  for (let i = 0; i < EVENTS; i++) {
    const payload = next();
    same(payload, dests[i % dests.length], i % 3 === 0 ? `key-${i}` : undefined, undefined, `event ${i} (seed ${SEED})`);
  }
});

test(`the other way round: ${EVENTS} msgpackr-encoded random payloads pass the C++ decoder as pre-encoded payloads, byte for byte`, () => {
  const r = rng(SEED ^ 0x5eed);
  const next = generator(r);
  for (let i = 0; i < EVENTS; i++) {
    const payload = normal(next(), false);
    const bytes = pack(payload);
    const out = cBytes(bytes, 'logs', undefined, undefined);
    assert.ok(out.subarray(out.length - bytes.length).equals(bytes), `event ${i} (seed ${SEED}) copied as is`);
    assert.deepEqual(numbers.unpack(out)[3], numbers.unpack(bytes), `event ${i}: the same value`);
  }
});

test('encodeMany (routeMany\'s path): each event back to back, ends and metaEnds right, each the C++ encoder\'s bytes', () => {
  const r = rng(SEED ^ 0xa11);
  const next = generator(r);
  for (const n of [1, 2, 17, 500]) {
    const payloads = Array.from({ length: n }, next);
    const keys = payloads.map((_, i) => `k${i}-${'é'.repeat(i % 5)}`);
    for (const [dests, ks] of [['logs', undefined], [['a', 'b'], keys], [undefined, keys]]) {
      assert.equal(encoder.encodeMany(payloads, dests, ks, undefined), true);
      const buf = Buffer.from(encoder.buffer());
      const ends = encoder.ends();
      const metas = encoder.metas();
      let begin = 0;
      for (let i = 0; i < n; i++) {
        const c = cBytes(payloads[i], dests, ks?.[i], undefined);
        assert.ok(buf.subarray(begin, ends[i]).equals(c), `event ${i} of ${n}`);
        // The meta is the destinations then the key: the C++ bytes up to the options.
        const meta = buf.subarray(begin + 1, begin + metas[i]);
        const reread = numbers.unpack(c);
        assert.ok(meta.equals(Buffer.concat([pack(reread[0] ?? null), pack(reread[1] ?? null)])), `event ${i}: meta`);
        begin = ends[i];
      }
    }
  }
  // One event the JS encoder leaves: the whole call goes to the C++ path.
  assert.equal(encoder.encodeMany([{ a: 1 }, { at: new Date(0) }], 'logs', undefined, undefined), false);
});
