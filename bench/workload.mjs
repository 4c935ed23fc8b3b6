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
