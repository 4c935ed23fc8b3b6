// GET /api/live/revenue: the `revenue_live` stream (today's revenue per
// currency, one update per change), proxied from forkd's admin server.
import { streamResponse } from 'fork-router';

export const runtime = 'nodejs';
export const dynamic = 'force-dynamic';

export function GET(request: Request): Promise<Response> {
  return streamResponse('revenue_live', request);
}
