// POST /api/purchase (Pages Router): one purchase, routed to three stores
// and to the live page's streams.
//
//   curl -X POST localhost:3000/api/purchase -H 'content-type: application/json' \
//     -d '{"orderId":"o-1","amount":12.5,"currency":"EUR"}'
//
// Each routeData call hands one event to forkd, the sidecar configured by
// fork.yaml, and resolves once forkd has it durably in its log (not once the
// store has written it: forkd delivers to each store on its own, and retries).
// The app never opens the stores to write.
import { routeData } from 'fork-router';
import { parsePurchase, BAD_REQUEST_CODES } from '../../lib/purchase';

export default async function handler(req, res) {
  if (req.method !== 'POST') {
    res.setHeader('Allow', 'POST');
    return res.status(405).json({ ok: false, error: 'POST only' });
  }

  // Next.js has parsed the JSON body already (content-type: application/json).
  // parsePurchase checks orderId, amount and currency, and sets `ts` (the
  // event time the daily revenue is bucketed by) to now when it is missing.
  const { purchase, error } = parsePurchase(req.body);
  if (error) return res.status(400).json({ ok: false, error });

  // An optional Idempotency-Key header makes a retry safe everywhere: forkd
  // dedupes a key per destination, so the one key serves all four events,
  // and a key a destination has had (within 24 h) is acknowledged without
  // being delivered to it again.
  const key = req.headers['idempotency-key'];
  const once = typeof key === 'string' && key ? { idempotencyKey: key } : {};

  // Four independent events, sent at once:
  //   production  the order row (stamped with `timestamp`: when forkd took it)
  //   analytics   folded into today's revenue per currency
  //   logs        one JSON line
  //   live        the live page's ticker and revenue streams (app/live)
  const destinations = ['production', 'analytics', 'logs', 'live'];
  const results = await Promise.allSettled([
    routeData(purchase, 'production', { timestamp: true, ...once }),
    routeData(purchase, 'analytics', { aggregate: 'daily', ...once }),
    routeData(purchase, 'logs', once),
    // The live page's two streams (fork.yaml): the ticker and the totals.
    routeData(purchase, ['ticker', 'revenue_live'], once),
  ]);

  const failed = results.find((r) => r.status === 'rejected');
  if (!failed) {
    // Each receipt: { id, ack: 'accepted', destinations: [name] }.
    const [production, analytics, logs, live] = results.map((r) => r.value);
    return res.status(200).json({ ok: true, receipts: { production, analytics, logs, live } });
  }

  // A ForkError: forkd did not take (all of) the purchase. Nothing is ever
  // half-written: each event is in forkd's log whole, or not at all, and an
  // event forkd took reaches its store at least once. `accepted` lists the
  // destinations that did take it. Whether to retry depends on the code:
  const err = failed.reason;
  const code = err?.code ?? 'FORK_UNAVAILABLE';
  const accepted = destinations.filter((_, i) => results[i].status === 'fulfilled');
  if (BAD_REQUEST_CODES.includes(code)) {
    // The purchase itself cannot be sent (say, a field forkd cannot encode):
    // sending it again will not help.
    return res.status(400).json({ ok: false, code, error: err.message, accepted });
  }
  // FORK_UNAVAILABLE / FORK_TIMEOUT (forkd is not running or did not answer
  // in time), FORK_BACKPRESSURE (too much in flight), ...: 503, and the
  // caller may retry. A retry sends all four again: the production row is
  // upserted on orderId and the log may hold the line twice; with an
  // Idempotency-Key header nothing is counted twice in analytics either.
  res.setHeader('Retry-After', '1');
  return res.status(503).json({ ok: false, code, error: err?.message ?? String(err), accepted });
}
