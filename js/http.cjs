'use strict';

// The HTTP client: routeData over forkd's HTTP ingest (POST /v1/events, see
// docs/protocol.md, "HTTP ingest") with `fetch`, for runtimes that cannot
// load the native addon (edge runtimes, a platform with no prebuilt addon).
// The same API, checks, receipts, errors and deadlines as the addon's client:
// arguments are checked here exactly as index.cjs checks them; forkd answers
// with the addon's receipts and FORK_* codes. Plain JavaScript with no
// Node.js built-ins (it runs under the edge-light and worker conditions).
// The token must stay on servers: the browser condition never loads this.

const { ForkError, codes } = require('./errors.cjs');
const {
  DEFAULT_TIMEOUT_MS,
  MAX_TIMEOUT_MS,
  ACK_LEVELS,
  describe,
  invalid,
  isPositiveInteger,
  checkPayload,
  checkDestination,
  checkTimeout,
  parseOptions,
  parseMany,
} = require('./validate.cjs');

const HTTP_OPTION_NAMES = ['httpEndpoint', 'token', 'timeoutMs', 'maxInFlight'];
const DEFAULT_MAX_IN_FLIGHT = 10000;
const ACK_NAMES = ['none', 'accepted', 'delivered'];
// forkd answers a call that timed out itself, with what it knows; the
// client gives up this much later.
const ANSWER_GRACE_MS = 1000;
const KNOWN_CODES = new Set(Object.values(codes));

function env(name) {
  const e = typeof process !== 'undefined' && process.env ? process.env[name] : undefined;
  return typeof e === 'string' && e !== '' ? e : undefined;
}

// The URL events are posted to, from an endpoint given as the server
// (http://127.0.0.1:8788) or the full path.
function eventsUrl(endpoint, where) {
  let url;
  try {
    url = new URL(endpoint);
  } catch {
    url = undefined;
  }
  if (url === undefined || (url.protocol !== 'http:' && url.protocol !== 'https:')) {
    throw invalid(
      `${where} must be the http:// or https:// URL of forkd's HTTP ingest, e.g. http://127.0.0.1:8788 (got ${describe(endpoint)})`,
      { option: 'httpEndpoint' },
    );
  }
  if (!url.pathname.endsWith('/v1/events')) url.pathname = `${url.pathname.replace(/\/+$/, '')}/v1/events`;
  return url.toString();
}

// The HTTP client's settings, from createClient's options and the
// environment (FORK_HTTP_ENDPOINT, FORK_INGEST_TOKEN); undefined when no
// endpoint is given either way.
function httpClientConfig(config) {
  if (config === undefined || config === null) config = {};
  const given = config.httpEndpoint;
  const endpoint = given ?? env('FORK_HTTP_ENDPOINT');
  if (endpoint === undefined) return undefined;
  for (const name of Object.keys(config)) {
    if (!HTTP_OPTION_NAMES.includes(name) && config[name] !== undefined) {
      throw invalid(
        `createClient: ${name} does not apply to the HTTP client (its options: ${HTTP_OPTION_NAMES.join(', ')})`,
        { option: name },
      );
    }
  }
  const url = eventsUrl(endpoint, given !== undefined ? 'createClient: httpEndpoint' : 'FORK_HTTP_ENDPOINT');
  const token = config.token ?? env('FORK_INGEST_TOKEN');
  if (token !== undefined && (typeof token !== 'string' || token.length === 0 || /[^\x21-\x7e]/.test(token))) {
    throw invalid('createClient: token must be a non-empty string of printable ASCII (forkd\'s http_ingest token)', {
      option: 'token',
    });
  }
  const number = (name, fallback, max) => {
    const value = config[name];
    if (value === undefined) return fallback;
    if (!isPositiveInteger(value, max)) {
      throw invalid(`createClient: ${name} must be a positive integer (got ${describe(value)})`, { option: name });
    }
    return value;
  };
  return {
    url,
    token,
    timeoutMs: number('timeoutMs', DEFAULT_TIMEOUT_MS, MAX_TIMEOUT_MS),
    maxInFlight: number('maxInFlight', DEFAULT_MAX_IN_FLIGHT, 2 ** 32 - 1),
  };
}

// A ForkError from forkd's JSON error (docs/protocol.md), with the fields
// the addon's errors carry: path (in the payload), option, destination,
// reason, outcomes, id.
function errorFromAnswer(e, destinations) {
  const code = KNOWN_CODES.has(e.code) ? e.code : codes.REJECTED;
  const fields = {};
  if (typeof e.id === 'string') fields.id = e.id;
  if (typeof e.destination === 'string') fields.destination = e.destination;
  if (typeof e.reason === 'string') fields.reason = e.reason;
  if (e.outcomes && typeof e.outcomes === 'object') fields.outcomes = e.outcomes;
  const where = typeof e.path === 'string' ? e.path : '';
  if (where === 'payload' || where.startsWith('payload.') || where.startsWith('payload[')) {
    fields.path = where.slice('payload'.length).replace(/^\./, '');
  } else if (where.startsWith('options.')) {
    fields.option = where.slice('options.'.length);
  }
  if (code === codes.UNKNOWN_DESTINATION && fields.destination === undefined) {
    const quoted = /'([^']*)'/.exec(e.message || '');
    fields.destination = quoted ? quoted[1] : destinations?.[0];
  }
  return new ForkError(code, `${e.message || `forkd refused the event (${code})`}`, fields);
}

// routeMany's rejection when some of its events failed: the first failure's
// code and index, and a receipt or ForkError per payload (as the addon's).
function manyError(results) {
  const first = results.findIndex((r) => r instanceof ForkError);
  if (first === -1) return undefined;
  const failed = results.filter((r) => r instanceof ForkError).length;
  const cause = results[first];
  return new ForkError(
    cause.code,
    `routeMany: ${failed} of ${results.length} events failed; payloads[${first}]: ${cause.message}`,
    { index: first, results, cause },
  );
}

// forkd's answer refusing a routeMany body: per event when the events got
// as far as ingest (`results`), else for the whole body, `path` naming the
// event ("[3].payload.items[2]") when it is about one.
function manyErrorFromAnswer(answer, destinations, n) {
  const e = answer.error;
  if (Array.isArray(answer.results) && answer.results.length === n) {
    const results = answer.results.map((r) => (r && r.error ? errorFromAnswer(r.error, destinations) : r));
    const err = manyError(results);
    if (err !== undefined) return err;
  }
  const at = /^\[(\d+)\](?:\.(.*))?$/.exec(typeof e.path === 'string' ? e.path : '');
  const one = errorFromAnswer(at ? { ...e, path: at[2] ?? '' } : e, destinations);
  const fields = {};
  for (const k of ['path', 'option', 'destination', 'id', 'reason', 'outcomes']) {
    if (one[k] !== undefined) fields[k] = one[k];
  }
  if (at === null) return new ForkError(one.code, `routeMany: ${one.message}`, fields);
  return new ForkError(one.code, `routeMany: payloads[${at[1]}]: ${one.message}`, { ...fields, index: Number(at[1]) });
}

function createHttpClient(config) {
  const { url, token, timeoutMs: defaultTimeoutMs, maxInFlight } = config;
  const headers = { 'content-type': 'application/json' };
  if (token !== undefined) headers.authorization = `Bearer ${token}`;
  const inFlight = new Set();
  const counts = { sent: 0, acked: 0, delivered: 0, nacked: 0, timedOut: 0 };
  let connected = false;
  let closed = false;
  let closing;
  let abortAll = new AbortController();

  // Posts `body`; resolves with the receipt (with `many` events: the array
  // of receipts) or rejects with the ForkError the answer says.
  async function send(body, ack, timeoutMs, dests, many) {
    const timer = new AbortController();
    const t = setTimeout(() => timer.abort(), timeoutMs + ANSWER_GRACE_MS);
    const onClose = () => timer.abort();
    abortAll.signal.addEventListener('abort', onClose);
    let res;
    try {
      try {
        res = await fetch(url, { method: 'POST', headers, body, signal: timer.signal });
      } catch (err) {
        if (abortAll.signal.aborted) throw new ForkError(codes.CLOSED, 'the client was closed before forkd answered');
        if (timer.signal.aborted) {
          counts.timedOut++;
          throw new ForkError(codes.TIMEOUT, `forkd's HTTP ingest at ${url} did not answer within ${timeoutMs} ms`);
        }
        connected = false;
        throw new ForkError(codes.UNAVAILABLE, `forkd is not reachable at ${url} (HTTP ingest): ${err?.cause?.message || err?.message || err}`, {
          cause: err,
        });
      }
      connected = true;
      let answer;
      try {
        answer = await res.json();
      } catch (err) {
        if (timer.signal.aborted) {
          counts.timedOut++;
          throw new ForkError(codes.TIMEOUT, `forkd's HTTP ingest at ${url} did not answer within ${timeoutMs} ms`);
        }
        throw new ForkError(codes.UNAVAILABLE, `${url} answered HTTP ${res.status} without forkd's JSON: is it forkd's HTTP ingest?`, {
          cause: err,
        });
      }
      if (res.ok && (many === undefined ? answer && typeof answer.id === 'string' : Array.isArray(answer))) {
        for (const r of many === undefined ? [answer] : answer) {
          if (r?.ack === 'delivered') counts.delivered++;
          else if (r?.ack === 'accepted') counts.acked++;
        }
        return answer;
      }
      if (answer && answer.error && typeof answer.error === 'object') {
        const err = many === undefined ? errorFromAnswer(answer.error, dests) : manyErrorFromAnswer(answer, dests, many);
        if (err.code === codes.TIMEOUT) counts.timedOut++;
        else counts.nacked++;
        throw err;
      }
      throw new ForkError(codes.UNAVAILABLE, `${url} answered HTTP ${res.status} without forkd's JSON: is it forkd's HTTP ingest?`);
    } finally {
      clearTimeout(t);
      abortAll.signal.removeEventListener('abort', onClose);
    }
  }

  function routeData(payload, destination, options) {
    if (closed) return Promise.reject(new ForkError(codes.CLOSED, 'the client is closed'));
    const bad = checkPayload(payload);
    if (bad !== undefined) return Promise.reject(bad);
    let dests, opts;
    try {
      dests = checkDestination(destination);
      opts = parseOptions(options, defaultTimeoutMs);
    } catch (err) {
      return Promise.reject(err);
    }
    if (ArrayBuffer.isView(payload)) {
      return Promise.reject(
        invalid('payload: pre-encoded msgpack (a Buffer / Uint8Array) needs the native addon; over HTTP send a plain object', {
          path: '',
        }),
      );
    }
    if (inFlight.size >= maxInFlight) {
      return Promise.reject(
        new ForkError(codes.BACKPRESSURE, `too many calls in flight (maxInFlight ${maxInFlight}): forkd is slow or not reachable at ${url}`),
      );
    }
    const wireOptions = { ...(opts.wire ?? {}) };
    if (opts.key !== undefined) wireOptions.idempotencyKey = opts.key;
    wireOptions.ack = ACK_NAMES[opts.ack];
    wireOptions.timeoutMs = opts.timeoutMs;
    let body;
    try {
      body = JSON.stringify({
        payload,
        destination: dests === undefined ? undefined : typeof dests === 'string' ? [dests] : dests,
        options: wireOptions,
      });
    } catch (err) {
      return Promise.reject(invalid(`payload cannot be sent as JSON: ${err.message}`, { path: '', cause: err }));
    }
    counts.sent++;
    const destinations = dests === undefined ? undefined : typeof dests === 'string' ? [dests] : dests;
    const p = send(body, opts.ack, opts.timeoutMs, destinations);
    inFlight.add(p);
    const done = () => inFlight.delete(p);
    p.then(done, done);
    if (opts.ack === ACK_LEVELS.none) {
      // Queued is all 'none' asks for: here, handed to fetch.
      p.catch(() => {});
      return Promise.resolve({
        id: opts.key ?? '',
        ack: 'none',
        destinations: destinations ? [...destinations] : [],
      });
    }
    return p;
  }

  function routeMany(payloads, destination, options) {
    if (closed) return Promise.reject(new ForkError(codes.CLOSED, 'the client is closed'));
    let opts, dests;
    try {
      opts = parseMany(payloads, options, defaultTimeoutMs);
      dests = checkDestination(destination);
    } catch (err) {
      return Promise.reject(err);
    }
    if (inFlight.size >= maxInFlight) {
      return Promise.reject(
        new ForkError(
          codes.BACKPRESSURE,
          `routeMany: too many calls in flight (maxInFlight ${maxInFlight}): forkd is slow or not reachable at ${url}`,
        ),
      );
    }
    if (payloads.length === 0) return Promise.resolve([]);
    // One request, a JSON array of events, answered with a receipt each.
    const destinations = dests === undefined ? undefined : typeof dests === 'string' ? [dests] : dests;
    const base = { ...(opts.wire ?? {}), ack: ACK_NAMES[opts.ack], timeoutMs: opts.timeoutMs };
    const events = payloads.map((payload, i) => ({
      payload,
      destination: destinations,
      options: opts.keys === undefined ? base : { ...base, idempotencyKey: opts.keys[i] },
    }));
    let body;
    try {
      body = JSON.stringify(events);
    } catch (err) {
      const index = payloads.findIndex((p) => {
        try {
          JSON.stringify(p);
          return false;
        } catch {
          return true;
        }
      });
      return Promise.reject(
        invalid(`routeMany: payloads[${index}] cannot be sent as JSON: ${err.message}`, { index, path: '', cause: err }),
      );
    }
    counts.sent += payloads.length;
    const p = send(body, opts.ack, opts.timeoutMs, destinations, payloads.length);
    inFlight.add(p);
    const done = () => inFlight.delete(p);
    p.then(done, done);
    if (opts.ack === ACK_LEVELS.none) {
      p.catch(() => {});
      return Promise.resolve(
        payloads.map((_, i) => ({ id: opts.keys?.[i] ?? '', ack: 'none', destinations: destinations ? [...destinations] : [] })),
      );
    }
    return p;
  }

  async function flush(timeoutMs) {
    timeoutMs = timeoutMs === undefined ? defaultTimeoutMs : checkTimeout(timeoutMs, 'flush: timeoutMs');
    if (inFlight.size === 0) return;
    let timer;
    const expired = new Promise((_, reject) => {
      timer = setTimeout(
        () => reject(new ForkError(codes.TIMEOUT, `flush: ${inFlight.size} events still in flight after ${timeoutMs} ms`)),
        timeoutMs,
      );
    });
    try {
      await Promise.race([Promise.allSettled([...inFlight]), expired]);
    } finally {
      clearTimeout(timer);
    }
  }

  function close(timeoutMs) {
    if (closing === undefined) {
      closed = true;
      const settled = timeoutMs === 0 ? Promise.resolve() : flush(timeoutMs);
      closing = settled.catch(() => {}).then(() => {
        abortAll.abort();
      });
    }
    return closing;
  }

  function stats() {
    return {
      ...counts,
      inFlight: inFlight.size,
      inFlightBytes: 0,
      connected,
      reconnects: 0,
      resent: 0,
    };
  }

  return Object.freeze({
    routeData,
    routeMany,
    flush,
    close,
    stats,
    get closed() {
      return closed;
    },
    get endpoint() {
      return url;
    },
    get clientId() {
      return '';
    },
  });
}

// What FORK_UNAVAILABLE says when neither way to reach forkd is there.
const HOW_TO_USE_HTTP =
  "or use forkd's HTTP ingest, which needs no addon: set FORK_HTTP_ENDPOINT (e.g. http://127.0.0.1:8788, " +
  'forkd\'s `http_ingest: { listen, token }`) and FORK_INGEST_TOKEN in the environment, or call ' +
  'createClient({ httpEndpoint, token })';

module.exports = { createHttpClient, httpClientConfig, HOW_TO_USE_HTTP };
