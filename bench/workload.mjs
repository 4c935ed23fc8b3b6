// The reference workload: purchase events as an app would route them.
// Deterministic: the same seed gives the same stream.

// mulberry32: a small, fast, seedable PRNG.
export function rng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const CURRENCIES = ['USD', 'EUR', 'GBP', 'JPY'];
const CAMPAIGNS = ['spring-sale', 'newsletter', 'organic', 'retargeting'];
const SKUS = ['sku-mug', 'sku-tee', 'sku-cap', 'sku-bag', 'sku-pen', 'sku-pin'];
const T0 = Date.UTC(2026, 10, 21, 12, 0, 0);

// Returns a generator of purchase events: about 200 bytes each as msgpack.
export function purchases(seed = 42) {
  const r = rng(seed);
  let i = 0;
  return function next() {
    i += 1;
    const qty1 = 1 + Math.floor(r() * 3);
    const qty2 = 1 + Math.floor(r() * 2);
    const p1 = Math.round(r() * 5000) / 100;
    const p2 = Math.round(r() * 3000) / 100;
    return {
      event: 'purchase',
      orderId: `ord-${seed}-${i}`,
      userId: `user-${Math.floor(r() * 50000)}`,
      amount: Math.round((qty1 * p1 + qty2 * p2) * 100) / 100,
      currency: CURRENCIES[Math.floor(r() * CURRENCIES.length)],
      items: [
        { sku: SKUS[Math.floor(r() * SKUS.length)], qty: qty1, price: p1 },
        { sku: SKUS[Math.floor(r() * SKUS.length)], qty: qty2, price: p2 },
      ],
      ts: T0 + i * 10,
      campaign: CAMPAIGNS[Math.floor(r() * CAMPAIGNS.length)],
      ok: true,
    };
  };
}

export function percentile(sorted, p) {
  if (sorted.length === 0) return 0;
  const k = Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length));
  return sorted[k];
}

// Routes `n` reference purchases (seed `seed`) to `destination` as fast as
// the client takes them, at most 20 000 in flight; resolves once all are
// acknowledged.
export async function sendPurchases(client, destination, n, seed) {
  const next = purchases(seed);
  const pending = [];
  for (let i = 0; i < n; i++) {
    pending.push(client.routeData(next(), destination));
    if (pending.length >= 20000) await Promise.all(pending.splice(0));
  }
  await Promise.all(pending);
}

// A 2 KB order (about 2 000 bytes as msgpack), nested four levels deep: a
// customer with addresses, fifteen line items with attributes and tags, and
// payment and shipping details. The larger event of bench/js_thread.mjs.
export function nestedOrder(seed = 42) {
  const r = rng(seed);
  const pick = (xs) => xs[Math.floor(r() * xs.length)];
  const address = (kind) => ({
    kind,
    street: `${1 + Math.floor(r() * 999)} ${pick(['Main', 'Oak', 'Elm', 'Market'])} Street`,
    city: pick(['Lisbon', 'Berlin', 'Leeds', 'Osaka']),
    zip: String(10000 + Math.floor(r() * 89999)),
    country: pick(['PT', 'DE', 'GB', 'JP']),
  });
  const items = Array.from({ length: 15 }, (_, i) => ({
    sku: pick(SKUS),
    line: i + 1,
    qty: 1 + Math.floor(r() * 3),
    price: Math.round(r() * 5000) / 100,
    attributes: { color: pick(['red', 'blue', 'black']), size: pick(['S', 'M', 'L', 'XL']), gift: r() < 0.2 },
    tags: [pick(CAMPAIGNS), pick(['new', 'sale', 'bundle'])],
  }));
  return {
    event: 'order_placed',
    orderId: `ord-${seed}-${Math.floor(r() * 1e9)}`,
    customer: {
      id: `user-${Math.floor(r() * 50000)}`,
      email: `customer${Math.floor(r() * 50000)}@example.com`,
      addresses: [address('billing'), address('shipping')],
      loyalty: { tier: pick(['bronze', 'silver', 'gold']), points: Math.floor(r() * 10000) },
    },
    items,
    amount: Math.round(items.reduce((s, it) => s + it.qty * it.price, 0) * 100) / 100,
    currency: pick(CURRENCIES),
    payment: { method: 'card', brand: pick(['visa', 'mastercard']), last4: String(1000 + Math.floor(r() * 8999)), captured: true },
    shipping: { carrier: pick(['dhl', 'ups', 'ctt']), service: 'standard', eta: { min: 2, max: 5 } },
    ts: T0,
    campaign: pick(CAMPAIGNS),
  };
}
