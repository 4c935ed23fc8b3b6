// POST /api/edge/orders: /api/orders in the edge runtime. fork-router's edge
// build reaches forkd through its HTTP ingest (FORK_HTTP_ENDPOINT,
// FORK_INGEST_TOKEN; fork.yaml's `http_ingest`) with fetch: the same
// routeData, receipts and ForkError codes as on Node.js, where the native
// addon carries them.
//
//   curl -X POST localhost:3000/api/edge/orders -H 'content-type: application/json' \
//     -d '{"orderId":"o-3","amount":12,"currency":"EUR"}'
import { NextResponse } from 'next/server';
import { routeData, ForkError, type Receipt } from 'fork-router';
import { parsePurchase, BAD_REQUEST_CODES } from '../../../../lib/purchase';

export const runtime = 'edge';
export const dynamic = 'force-dynamic';

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
  const key = request.headers.get('idempotency-key');
  const once = key ? { idempotencyKey: key } : {};
  try {
    // One call, fanned out by forkd; answered once the event is in its log.
    const receipt: Receipt = await routeData(purchase, ['production', 'analytics', 'logs'], once);
    return NextResponse.json({ ok: true, receipt });
  } catch (err) {
    const code = err instanceof ForkError ? err.code : 'FORK_UNAVAILABLE';
    const message = err instanceof Error ? err.message : String(err);
    const status = BAD_REQUEST_CODES.includes(code) ? 400 : 503;
    return NextResponse.json(
      { ok: false, code, error: message },
      { status, headers: status === 503 ? { 'Retry-After': '1' } : undefined },
    );
  }
}
