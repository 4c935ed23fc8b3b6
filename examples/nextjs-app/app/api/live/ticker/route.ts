// GET /api/live/ticker: the `ticker` stream (every purchase), proxied from
// forkd's admin server as Server-Sent Events. The browser's Last-Event-ID
// goes along, so its EventSource resumes exactly where it was after forkd
// restarts or the network drops.
import { streamResponse } from 'fork-router';

export const runtime = 'nodejs';
export const dynamic = 'force-dynamic';

export function GET(request: Request): Promise<Response> {
  return streamResponse('ticker', request);
}
