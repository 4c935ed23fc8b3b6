// The native encoder against an independent decoder (msgpackr): what goes in
// comes out, byte-level details where they matter, and every rejection names
// the path of the bad value.
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import test from 'node:test';
import { pack, unpack, Unpackr } from 'msgpackr';

const require = createRequire(import.meta.url);
const binding = require('../../js/loader.cjs').load();
const { ForkError } = require('../../js/index.cjs'); // installs the ForkError factory

// 64-bit integers decoded as numbers (msgpackr's default makes them BigInts).
const numbers = new Unpackr({ int64AsType: 'number', mapsAsObjects: true });
const bigints = new Unpackr({ int64AsType: 'bigint', mapsAsObjects: true });

function encode(payload, dests, key, options) {
  return binding.encodeForTest(payload, dests, key, options);
}
function roundTrip(payload) {
  const [, , , out] = numbers.unpack(encode(payload, 'logs'));
  return out;
}
function rejects(payload, path, reason) {
  assert.throws(
    () => encode(payload, 'logs'),
    (err) => {
      assert.ok(err instanceof ForkError, `expected a ForkError, got ${err}`);
      assert.equal(err.code, 'FORK_INVALID_PAYLOAD');
      assert.equal(err.path, path);
      const where = path === '' ? 'payload' : path.startsWith('[') ? `payload${path}` : `payload.${path}`;
      assert.ok(err.message.startsWith(`${where}: `), `message "${err.message}" should start with "${where}: "`);
      assert.match(err.message, reason);
      return true;
    },
  );
}

test('the event is [destinations, key, options, payload]', () => {
  assert.deepEqual(unpack(encode({ a: 1 }, 'production')), [['production'], null, null, { a: 1 }]);
  assert.deepEqual(unpack(encode({ a: 1 }, ['a', 'b'], 'idem-1', { timestamp: true })), [
    ['a', 'b'],
    'idem-1',
    { timestamp: true },
    { a: 1 },
  ]);
  assert.deepEqual(unpack(encode({ a: 1 }, undefined, undefined, undefined)), [null, null, null, { a: 1 }]);
  assert.deepEqual(unpack(encode({ a: 1 }, null, null, null)), [null, null, null, { a: 1 }]);
});

test('the reference purchase event round-trips, no larger than msgpackr makes it', () => {
  const purchase = {
    event: 'purchase',
    orderId: 'ord_8f3a2c1b9d0e',
    userId: 'usr_4b2e9a1c',
    amount: 151.47,
    currency: 'EUR',
    items: [
      { sku: 'SKU-1a2b3c', qty: 2, price: 20.5 },
      { sku: 'SKU-4d5e6f', qty: 1, price: 110.47 },
    ],
    ts: 1700000000123,
    campaign: 'spring',
    ok: true,
  };
  const bytes = encode(purchase, 'analytics');
  assert.deepEqual(numbers.unpack(bytes)[3], purchase);
  // The payload part decodes on its own to the same value, and every value
  // takes its smallest form (msgpackr writes map16 headers for small maps).
  const payloadBytes = bytes.subarray(1 + 1 + 10 + 1 + 1);
  assert.deepEqual(numbers.unpack(payloadBytes), purchase);
  assert.ok(payloadBytes.length <= pack(purchase).length, `${payloadBytes.length} > ${pack(purchase).length}`);
  assert.equal(payloadBytes[0], 0x89, 'fixmap of 9');
});

test('strings: empty, ASCII, multi-byte, astral, lone surrogates, every length class', () => {
  for (const s of ['', 'a', 'héllo wörld', '日本語テキスト', '🎉🚀 emoji', 'x'.repeat(31), 'x'.repeat(32)]) {
    assert.equal(roundTrip({ s }).s, s);
  }
  for (const n of [255, 256, 65535, 65536, 100000]) {
    const s = 'é'.repeat(Math.ceil(n / 2)).slice(0, Math.ceil(n / 2));
    assert.equal(roundTrip({ s }).s, s, `length ${n}`);
    const a = 'a'.repeat(n);
    assert.equal(roundTrip({ a }).a, a, `ascii length ${n}`);
  }
  // A lone surrogate cannot be UTF-8: it becomes U+FFFD, like Buffer.from.
  assert.equal(roundTrip({ s: 'a\ud800b' }).s, 'a\ufffdb');
  // Header classes: fixstr, str8, str16, str32.
  // [0x94, 0x91, 0xa1 'd', nil, nil, 0x81, 0xa1 's', <header>]
  const header = (s) => encode({ s }, 'd')[9];
  assert.equal(header('x'.repeat(31)), 0xa0 | 31);
  assert.equal(header('x'.repeat(32)), 0xd9);
  assert.equal(header('x'.repeat(256)), 0xda);
  assert.equal(header('x'.repeat(65536)), 0xdb);
});

test('strings near the encoder buffer boundary keep every multi-byte character', () => {
  // Grow the payload one character at a time so strings land on every offset
  // of the reusable buffer, where an in-place write can be cut short.
  for (let n = 0; n < 300; n++) {
    const payload = { pad: 'p'.repeat(n), s: '€'.repeat(40) + '🎉'.repeat(20) + 'é' };
    assert.deepEqual(roundTrip(payload), payload);
  }
});

test('numbers: integers in every width, floats, -0, NaN, infinities', () => {
  const values = [
    0, 1, 127, 128, 255, 256, 65535, 65536, 2 ** 32 - 1, 2 ** 32, 2 ** 53 - 1,
    -1, -32, -33, -128, -129, -32768, -32769, -(2 ** 31), -(2 ** 31) - 1, -(2 ** 53) + 1,
    0.5, -1.25, 3.141592653589793, 1e300, -1e-300, Number.MIN_VALUE, Number.MAX_VALUE,
    Infinity, -Infinity,
  ];
  for (const n of values) assert.equal(roundTrip({ n }).n, n, String(n));
  assert.ok(Number.isNaN(roundTrip({ n: NaN }).n));
  assert.ok(Object.is(roundTrip({ n: -0 }).n, -0), '-0 stays -0 (a float)');
  // Integral values are ints (smallest form), fractions float64.
  const typeByte = (n) => encode({ n }, 'd')[9];
  assert.equal(typeByte(5), 5);
  assert.equal(typeByte(-5), 0xfb);
  assert.equal(typeByte(300), 0xcd);
  assert.equal(typeByte(1700000000123), 0xcf);
  assert.equal(typeByte(-(2 ** 40)), 0xd3);
  assert.equal(typeByte(0.5), 0xcb);
  assert.equal(typeByte(-0), 0xcb);
  assert.equal(typeByte(2 ** 63), 0xcb, 'beyond int64: float');
});

test('booleans, null, undefined', () => {
  assert.deepEqual(roundTrip({ t: true, f: false, n: null }), { t: true, f: false, n: null });
  // Undefined properties are skipped like JSON.stringify; in arrays they are nil.
  assert.deepEqual(roundTrip({ u: undefined, a: 1 }), { a: 1 });
  assert.deepEqual(roundTrip({ a: [undefined, 1, null] }), { a: [null, 1, null] });
  // eslint-disable-next-line no-sparse-arrays
  assert.deepEqual(roundTrip({ a: [1, , 3] }), { a: [1, null, 3] });
  // Skipping changes the map count, including across header sizes.
  const wide = {};
  for (let i = 0; i < 20; i++) wide[`k${i}`] = i < 6 ? i : undefined;
  assert.deepEqual(roundTrip(wide), { k0: 0, k1: 1, k2: 2, k3: 3, k4: 4, k5: 5 });
  const huge = {};
  for (let i = 0; i < 70000; i++) huge[`k${i}`] = i % 5 === 0 ? i : undefined;
  const back = roundTrip(huge);
  assert.equal(Object.keys(back).length, 14000);
  assert.equal(back.k69995, 69995);
});

test('arrays and nested objects, large containers', () => {
  const payload = { a: [1, 'two', [3, [4, { five: 5 }]], {}], o: { p: { q: { r: [] } } } };
  assert.deepEqual(roundTrip(payload), payload);
  const big = Array.from({ length: 100000 }, (_, i) => (i % 2 ? `s${i}` : i));
  assert.deepEqual(roundTrip({ big }).big, big);
  const many = {};
  for (let i = 0; i < 1000; i++) many[`key ${i}`] = { i };
  assert.deepEqual(roundTrip(many), many);
});

test('object keys: own enumerable string keys only, in property order', () => {
  class Thing {
    constructor() {
      this.own = 1;
    }
    get inherited() {
      return 2;
    }
  }
  const t = new Thing();
  Object.defineProperty(t, 'hidden', { value: 3, enumerable: false });
  t[Symbol('s')] = 4;
  assert.deepEqual(roundTrip({ t }).t, { own: 1 });
  const proto = Object.create({ fromProto: 1 });
  proto.mine = 2;
  assert.deepEqual(roundTrip({ x: proto }).x, { mine: 2 });
  assert.deepEqual(roundTrip({ x: { 2: 'b', 1: 'a', z: 'z' } }).x, { 1: 'a', 2: 'b', z: 'z' });
  const nullProto = Object.create(null);
  nullProto.a = 1;
  assert.deepEqual(roundTrip(nullProto), { a: 1 });
  // Getters run, like JSON.stringify.
  assert.deepEqual(roundTrip({ get g() { return 'got'; } }), { g: 'got' });
});

test('Date becomes the msgpack timestamp extension', () => {
  for (const ms of [0, 1700000000123, -1, -86400000 * 365 * 100 - 7, 8.64e15, -8.64e15]) {
    const d = new Date(ms);
    const back = roundTrip({ d }).d;
    assert.ok(back instanceof Date);
    assert.equal(back.getTime(), ms, `ms ${ms}`);
  }
  const bytes = encode({ d: new Date(0) }, 'd');
  assert.deepEqual([...bytes.subarray(9, 12)], [0xc7, 12, 0xff], 'ext8, 12 bytes, type -1');
});

test('binary: Buffer, Uint8Array, typed arrays, DataView, ArrayBuffer', () => {
  const bytes = Uint8Array.from([0, 1, 2, 254, 255]);
  const out = roundTrip({
    buf: Buffer.from(bytes),
    u8: bytes,
    sub: bytes.subarray(1, 3),
    ab: bytes.buffer,
    dv: new DataView(bytes.buffer, 2, 2),
    f64: new Float64Array([1.5]),
    empty: new Uint8Array(0),
  });
  assert.deepEqual([...out.buf], [0, 1, 2, 254, 255]);
  assert.deepEqual([...out.u8], [0, 1, 2, 254, 255]);
  assert.deepEqual([...out.sub], [1, 2]);
  assert.deepEqual([...out.ab], [0, 1, 2, 254, 255]);
  assert.deepEqual([...out.dv], [2, 254]);
  assert.deepEqual(Buffer.from(out.f64), Buffer.from(new Float64Array([1.5]).buffer));
  assert.equal(out.empty.length, 0);
  const big = Buffer.alloc(70000, 7);
  assert.deepEqual(Buffer.from(roundTrip({ big }).big), big);
});

test('BigInt within 64 bits becomes an integer; beyond is rejected', () => {
  const values = [0n, 1n, -1n, 2n ** 63n - 1n, -(2n ** 63n), 2n ** 63n, 2n ** 64n - 1n];
  for (const b of values) {
    const [, , , out] = bigints.unpack(encode({ b }, 'd'));
    assert.equal(BigInt(out.b), b, String(b));
  }
  rejects({ n: { b: 2n ** 64n } }, 'n.b', /BigInt outside the 64-bit range/);
  rejects({ b: -(2n ** 63n) - 1n }, 'b', /BigInt outside the 64-bit range/);
});

test('functions and symbols are rejected with the path of the field', () => {
  rejects({ items: [{}, {}, {}, { sku: 'a', price: () => 1 }] }, 'items[3].price', /functions cannot be encoded/);
  rejects({ s: Symbol('x') }, 's', /symbols cannot be encoded/);
  rejects({ a: [1, [2, Symbol.iterator]] }, 'a[1][1]', /symbols cannot be encoded/);
  rejects({ 'odd key': { 'x.y': class {} } }, '["odd key"]["x.y"]', /functions cannot be encoded/);
  rejects({ d: new Date(NaN) }, 'd', /invalid Date/);
});

test('the error message names the full path', () => {
  assert.throws(() => encode({ items: [0, 1, 2, { price: () => 0 }] }, 'logs'), {
    code: 'FORK_INVALID_PAYLOAD',
    message: 'payload.items[3].price: functions cannot be encoded',
    path: 'items[3].price',
  });
});

test('cycles are found and named, however they are reached', () => {
  const self = { a: 1 };
  self.self = self;
  rejects(self, 'self', /cycle: refers back to payload$/);
  const deep = { x: { y: [{}] } };
  deep.x.y[0].back = deep.x;
  rejects(deep, 'x.y[0].back', /cycle: refers back to payload\.x$/);
  const arr = [];
  arr.push(arr);
  rejects({ arr }, 'arr[0]', /cycle: refers back to payload\.arr$/);
  // The same object twice is not a cycle.
  const shared = { v: 1 };
  assert.deepEqual(roundTrip({ a: shared, b: shared, c: [shared, shared] }), {
    a: { v: 1 },
    b: { v: 1 },
    c: [{ v: 1 }, { v: 1 }],
  });
});

test('nesting: 64 levels encode, 65 are rejected', () => {
  const nest = (levels) => {
    const root = {};
    let at = root;
    for (let i = 1; i < levels; i++) at = at.n = {};
    return root;
  };
  const ok = roundTrip(nest(64));
  let depth = 0;
  for (let at = ok; at !== undefined; at = at.n) depth++;
  assert.equal(depth, 64);
  rejects(nest(65), Array(64).fill('n').join('.'), /nesting deeper than 64 levels/);
  // Arrays count too.
  const arrays = { a: [] };
  let at = arrays.a;
  for (let i = 2; i < 65; i++) at = at[0] = [];
  at[0] = [];
  assert.throws(() => encode(arrays, 'd'), /nesting deeper than 64/);
});

test('getters that throw are reported with the path and the cause', () => {
  const boom = new Error('boom');
  assert.throws(
    () =>
      encode(
        {
          a: {
            get b() {
              throw boom;
            },
          },
        },
        'd',
      ),
    (err) => err.code === 'FORK_INVALID_PAYLOAD' && err.path === 'a.b' && /boom/.test(err.message) && err.cause === boom,
  );
  const proxy = new Proxy(
    {},
    {
      ownKeys() {
        throw new Error('no keys');
      },
    },
  );
  assert.throws(() => encode({ p: proxy }, 'd'), (err) => err.path === 'p' && /no keys/.test(err.message));
});

test('the payload itself must be a plain object or pre-encoded msgpack', () => {
  for (const bad of [[1, 2], new Date(0), new ArrayBuffer(2)]) {
    assert.throws(() => encode(bad, 'd'), { code: 'FORK_INVALID_PAYLOAD', path: '' });
  }
  assert.throws(() => encode('str', 'd'), /payload: must be a plain object/);
});

test('a Buffer of pre-encoded msgpack is validated and used as the payload', () => {
  const pre = pack({ pre: 'encoded', n: [1, 2, 3] });
  assert.deepEqual(unpack(encode(pre, 'logs'))[3], { pre: 'encoded', n: [1, 2, 3] });
  assert.deepEqual(unpack(encode(new Uint8Array(pre), 'logs'))[3], { pre: 'encoded', n: [1, 2, 3] });
  assert.throws(() => encode(pack([1, 2]), 'logs'), /must be a map/);
  assert.throws(() => encode(pre.subarray(0, pre.length - 1), 'logs'), /not valid: truncated/);
  assert.throws(() => encode(Buffer.concat([pre, Buffer.from([1])]), 'logs'), /1 trailing bytes/);
  assert.throws(() => encode(Buffer.from([0xc1]), 'logs'), /not valid/);
  assert.throws(() => encode(Buffer.alloc(0), 'logs'), /empty/);
  assert.throws(() => encode(new Uint16Array(2), 'logs'), { code: 'FORK_INVALID_PAYLOAD' });
  let deep = {};
  for (let i = 0; i < 65; i++) deep = { d: deep };
  assert.throws(() => encode(pack(deep), 'logs'), /nesting deeper than the limit/);
});

test('events past 1 MiB are FORK_TOO_LARGE, even when the excess is one string', () => {
  assert.throws(() => encode({ s: 'x'.repeat(2 << 20) }, 'd'), { code: 'FORK_TOO_LARGE' });
  assert.throws(() => encode({ b: Buffer.alloc(1 << 20) }, 'd'), { code: 'FORK_TOO_LARGE' });
  assert.throws(() => encode({ a: Array(70000).fill('0123456789abcdef') }, 'd'), { code: 'FORK_TOO_LARGE' });
  assert.throws(() => encode(pack({ s: 'x'.repeat(1 << 20) }), 'd'), { code: 'FORK_TOO_LARGE' });
  // Just under the limit is fine.
  const s = 'y'.repeat((1 << 20) - 64);
  assert.equal(roundTrip({ s }).s, s);
});

test('errors in options name the option', () => {
  assert.throws(() => encode({ a: 1 }, 'd', undefined, { aggregate: { f: () => 1 } }), {
    code: 'FORK_INVALID_PAYLOAD',
    message: 'options.aggregate.f: functions cannot be encoded',
    option: 'aggregate.f',
  });
});

test('the encoder is reusable after every kind of failure', () => {
  const self = {};
  self.self = self;
  for (const bad of [{ f() {} }, self, { b: 2n ** 70n }, { s: 'x'.repeat(2 << 20) }]) {
    assert.throws(() => encode(bad, 'd'));
    assert.deepEqual(roundTrip({ after: 'failure', n: [1] }), { after: 'failure', n: [1] });
  }
});
