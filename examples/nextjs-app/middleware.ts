// Middleware runs before each matched request, in the edge runtime: no
// native addon there. fork-router's edge build (the `edge-light` export
// condition) sends routeData to forkd's HTTP ingest with fetch instead, with
// the same API, receipts and errors; it reads FORK_HTTP_ENDPOINT and
// FORK_INGEST_TOKEN from the server's environment (.env.local, or the
// process), and fork.yaml's `http_ingest` serves them.
//
// Here: a page view per visit of a page, to `logs`. It waits for the receipt
// (durable in forkd's log) within a short deadline; a failure never fails
// the page, it only goes unrecorded.
import { NextResponse, type NextRequest } from 'next/server';
import { routeData, ForkError } from 'fork-router';

export const config = { matcher: ['/'] };

export async function middleware(request: NextRequest): Promise<NextResponse> {
  const response = NextResponse.next();
  try {
    const receipt = await routeData(
      { event: 'page_view', path: request.nextUrl.pathname, ts: Date.now() },
      'logs',
      { timeoutMs: 1000 },
    );
    response.headers.set('x-fork-event-id', receipt.id);
  } catch (err) {
    response.headers.set('x-fork-error', err instanceof ForkError ? err.code : 'unknown');
  }
  return response;
}
