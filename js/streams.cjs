'use strict';

// Live streams: a `stream` destination's records, served by forkd's admin
// server as Server-Sent Events at GET /streams/<name>.
//
//   subscribe(name, { after, signal })   an async iterator of records, for
//                                        Node code; it reconnects by itself
//                                        and resumes exactly after the last
//                                        record it gave
//   streamResponse(name, request)        a Web Response that proxies the
//                                        stream from a route handler, with
//                                        the browser's Last-Event-ID, so
//                                        browsers connect to the app's own
//                                        origin and forkd's port stays private
//
// Both only need fetch, so they also run in edge runtimes. Where forkd's
// admin server is: `url`, else $FORK_STREAM_URL, else $FORK_ADMIN_URL, else
// http://127.0.0.1:8787 (the `admin:` of `forkd init`'s config). The token
// of a stream that has one: `token`, else $FORK_STREAM_TOKEN.

const { ForkError, codes } = require('./errors.cjs');

const DEFAULT_URL = 'http://127.0.0.1:8787';
const MAX_LINE = 16 << 20;

function env(name) {
  return typeof process !== 'undefined' && process.env ? process.env[name] : undefined;
}

function streamUrl(destination, options) {
  if (typeof destination !== 'string' || destination.length === 0 || destination.length > 128) {
    throw new ForkError(codes.UNKNOWN_DESTINATION, 'stream: the destination must be a name of 1-128 characters', {
      destination,
    });
  }
  const base = (options.url || env('FORK_STREAM_URL') || env('FORK_ADMIN_URL') || DEFAULT_URL).replace(/\/+$/, '');
  return `${base}/streams/${encodeURIComponent(destination)}`;
}

function authHeaders(options) {
  const token = options.token || env('FORK_STREAM_TOKEN');
  return token ? { Authorization: `Bearer ${token}` } : {};
}

// Parses an SSE byte stream into messages { id, event, data }.
async function* parseEvents(body) {
  const decoder = new TextDecoder();
  let buf = '';
  let id = null;
  let event = 'message';
  let data = [];
  for await (const chunk of body) {
    buf += decoder.decode(chunk, { stream: true });
    if (buf.length > MAX_LINE && buf.indexOf('\n') < 0) throw new Error('stream: a line longer than 16 MiB');
    let nl;
    while ((nl = buf.indexOf('\n')) >= 0) {
      let line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      if (line.endsWith('\r')) line = line.slice(0, -1);
      if (line === '') {
        if (data.length > 0 || event !== 'message') yield { id, event, data: data.join('\n') };
        event = 'message';
        data = [];
        continue;
      }
      if (line.startsWith(':')) continue; // a comment: keep-alive
      const colon = line.indexOf(':');
      const field = colon < 0 ? line : line.slice(0, colon);
      let value = colon < 0 ? '' : line.slice(colon + 1);
      if (value.startsWith(' ')) value = value.slice(1);
      if (field === 'id') id = value;
      else if (field === 'event') event = value;
      else if (field === 'data') data.push(value);
    }
  }
}

function sleep(ms, signal) {
  return new Promise((resolve) => {
    const t = setTimeout(resolve, ms);
    if (signal) signal.addEventListener('abort', () => { clearTimeout(t); resolve(); }, { once: true });
  });
}

/**
 * The records of a `stream` destination as they are delivered, as an async
 * iterator of `{ id, record }`. `after` resumes after a position an earlier
 * message carried (its `id`); without it, from now on. An explicit
 * `{ id, reset: true, reason }` comes when forkd no longer has what follows
 * `after` (older than its log's retention, or an aggregate's older updates).
 * It reconnects by itself (forkd restarting, a network blip, being cut off
 * for reading too slowly) and resumes exactly after the last message it gave.
 * Stops when `signal` aborts.
 */
async function* subscribe(destination, options = {}) {
  const url = streamUrl(destination, options);
  const signal = options.signal;
  let last = options.after === undefined || options.after === null ? null : String(options.after);
  let retryMs = 1000;
  while (!signal || !signal.aborted) {
    let res;
    try {
      const headers = { Accept: 'text/event-stream', ...authHeaders(options) };
      if (last !== null) headers['Last-Event-ID'] = last;
      res = await fetch(url, { headers, signal });
    } catch (err) {
      if (signal && signal.aborted) return;
      await sleep(retryMs, signal);
      continue;
    }
    if (res.status === 503) {
      await res.body?.cancel();
      await sleep(Number(res.headers.get('retry-after') || 1) * 1000, signal);
      continue;
    }
    if (!res.ok) {
      const text = await res.text().catch(() => '');
      let message = text;
      try {
        message = JSON.parse(text).error || text;
      } catch {}
      const code = res.status === 404 ? codes.UNKNOWN_DESTINATION : codes.REJECTED;
      throw new ForkError(code, `stream ${destination}: HTTP ${res.status}: ${message}`, {
        destination,
        status: res.status,
      });
    }
    try {
      for await (const m of parseEvents(res.body)) {
        if (m.event === 'message') {
          last = m.id;
          yield { id: m.id, record: JSON.parse(m.data) };
        } else if (m.event === 'reset') {
          if (m.id !== null) last = m.id;
          let reason = '';
          try {
            reason = JSON.parse(m.data).reason;
          } catch {}
          yield { id: m.id, reset: true, reason };
        }
        // overflow: the server closes; we reconnect from `last` below.
      }
    } catch (err) {
      if (signal && signal.aborted) return;
      if (err instanceof SyntaxError) throw err;
    }
    if (signal && signal.aborted) return;
    await sleep(retryMs, signal);
    retryMs = 1000;
  }
}

/**
 * A Response for a route handler that proxies a `stream` destination to the
 * browser: `export const GET = (req) => streamResponse('ticker', req)`. The
 * browser's Last-Event-ID (or ?after=) is passed on, so its EventSource
 * resumes exactly where it was. forkd's answer to a refused request (401,
 * 404, 503) is passed on as it is.
 */
async function streamResponse(destination, request, options = {}) {
  const url = new URL(streamUrl(destination, options));
  const headers = { Accept: 'text/event-stream', ...authHeaders(options) };
  const last = request && request.headers && request.headers.get('last-event-id');
  if (last) headers['Last-Event-ID'] = last;
  if (request && request.url) {
    const after = new URL(request.url, 'http://x').searchParams.get('after');
    if (after !== null && !last) url.searchParams.set('after', after);
  }
  let upstream;
  try {
    upstream = await fetch(url, { headers, signal: request && request.signal });
  } catch (err) {
    return new Response(JSON.stringify({ error: `forkd's stream is not reachable at ${url.origin}: ${err.message}` }), {
      status: 502,
      headers: { 'Content-Type': 'application/json' },
    });
  }
  if (!upstream.ok) {
    return new Response(upstream.body, {
      status: upstream.status,
      headers: { 'Content-Type': upstream.headers.get('content-type') || 'application/json' },
    });
  }
  return new Response(upstream.body, {
    status: 200,
    headers: {
      'Content-Type': 'text/event-stream; charset=utf-8',
      'Cache-Control': 'no-cache, no-transform',
      'X-Accel-Buffering': 'no',
    },
  });
}

module.exports = { subscribe, streamResponse };
