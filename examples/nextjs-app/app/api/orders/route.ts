// POST /api/orders (App Router): the same as pages/api/purchase.js, typed.
//
//   curl -X POST localhost:3000/api/orders -H 'content-type: application/json' \
//     -d '{"orderId":"o-2","amount":30,"currency":"USD"}'
import { after, NextResponse } from 'next/server';
import { routeData, ForkError, type Receipt } from 'fork-router';
import { parsePurchase, BAD_REQUEST_CODES } from '../../../lib/purchase';

// fork-router is a native addon talking to forkd over a local socket: this
// route must run on Node.js (never the edge runtime), and on every request
// (never prerendered or cached at build time).
export const runtime = 'nodejs';
export const dynamic = 'force-dynamic';

type Destination = 'production' | 'analytics' | 'logs' | 'live';

export async function POST(request: Request): Promise<NextResponse> {
  let body: unknown;
  try {
    body = await request.json();
  } catch {
    return NextResponse.json({ ok: false, error: 'the body must be JSON' }, { status: 400 });
  }
  const parsed = parsePurchase(body);
  if (parsed.error !== undefined) return NextResponse.json({ ok: false, error: parsed.error }, { status: 400 });
  const { purchase } = parsed;

  // An optional Idempotency-Key header makes a retry safe: forkd dedupes a
  // key per destination, so the one key serves all four events, and a key a
  // destination has had (within 24 h) is not delivered to it again.
  const key = request.headers.get('idempotency-key');
  const once = key ? { idempotencyKey: key } : {};

  // Four independent events; each resolves once forkd has it in its log.
  const destinations: Destination[] = ['production', 'analytics', 'logs', 'live'];
  const results = await Promise.allSettled([
    routeData(purchase, 'production', { timestamp: true, ...once }),
    routeData(purchase, 'analytics', { aggregate: 'daily', ...once }),
    routeData(purchase, 'logs', once),
    // The live page's two streams (fork.yaml): the ticker and the totals.
    routeData(purchase, ['ticker', 'revenue_live'], once),
  ]);

  const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) {
    // forkd did not take (all of) the purchase. Each event is in its log
    // whole or not at all, so nothing is half-written; `accepted` lists the
    // destinations that took theirs. 503: the caller may retry (see
    // pages/api/purchase.js for what a retry does).
    const err: unknown = failed.reason;
    const code = err instanceof ForkError ? err.code : 'FORK_UNAVAILABLE';
    const message = err instanceof Error ? err.message : String(err);
    const accepted = destinations.filter((_, i) => results[i].status === 'fulfilled');
    const status = BAD_REQUEST_CODES.includes(code) ? 400 : 503;
    return NextResponse.json(
      { ok: false, code, error: message, accepted },
      { status, headers: status === 503 ? { 'Retry-After': '1' } : undefined },
    );
  }

  const [production, analytics, logs, live] = results.map((r) => (r as PromiseFulfilledResult<Receipt>).value);

  // after() runs once the response has been sent: a fire-and-forget event
  // that adds no latency to the request. Its failure is nobody's to answer,
  // so it is swallowed (a real app would count or log it).
  const { orderId, ts } = purchase;
  after(() => routeData({ event: 'order_seen', orderId, ts }, 'logs').catch(() => {}));

  return NextResponse.json({ ok: true, receipts: { production, analytics, logs, live } });
}
