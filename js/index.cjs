'use strict';

// fork-router: route application data to forkd, which writes it to every
// store that needs it. This file validates arguments and gives friendly
// errors; the native addon encodes (on this thread) and ships events (on its
// own thread), and trusts what it is given.

const { ForkError, codes } = require('./errors.cjs');
const { load } = require('./loader.cjs');
const { createHttpClient, httpClientConfig, HOW_TO_USE_HTTP } = require('./http.cjs');
const { version } = require('../package.json');
const encoder = require('./encoder.cjs');

// Loading never throws: without an addon for this platform (macOS, a
// platform with no prebuild) the module still loads, so `next build` and
// imports work, and every call that needs the addon fails with
// FORK_UNAVAILABLE saying what to do.
let binding;
let unavailable;
try {
  binding = load();
  binding.init((code, message, fields) => new ForkError(code, message, fields));
} catch (err) {
  unavailable = err;
}

// The FORK_UNAVAILABLE error for a client made without an addon and without
// an HTTP ingest endpoint: it names both ways to fix it.
function unavailableError() {
  const message = unavailable.message.replace(/^fork-router: /, '');
  return new ForkError(codes.UNAVAILABLE, `fork-router: ${message} Or: ${HOW_TO_USE_HTTP}.`, { cause: unavailable });
}

const {
  DEFAULT_TIMEOUT_MS,
  MAX_TIMEOUT_MS,
  MAX_DESTINATION_LENGTH,
  ACK_ACCEPTED,
  describe,
  invalid,
  isPositiveInteger,
  checkPayload,
  checkDestination,
  checkTimeout,
  parseOptions,
  parseMany,
} = require('./validate.cjs');
const DEFAULT_MAX_IN_FLIGHT = 100000;
const DEFAULT_MAX_IN_FLIGHT_BYTES = 64 * 1024 * 1024;
const CLIENT_OPTION_NAMES = [
  'endpoint',
  'timeoutMs',
  'maxInFlight',
  'maxInFlightBytes',
  'curveServerKey',
  'curvePublicKey',
  'curveSecretKey',
  'httpEndpoint',
  'token',
];
// CURVE keys in Z85, as `forkd keygen` prints them: 40 characters, each
// group of 5 a base-85 number below 2^32.
const Z85 = '0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#';
const CURVE_KEY_LENGTH = 40;
const DEFAULT_CLIENT = Symbol.for('fork-router.client');
const WARNED = Symbol.for('fork-router.unavailable-warned');

function checkClientOptions(config) {
  if (config === undefined || config === null) config = {};
  if (typeof config !== 'object' || Array.isArray(config)) {
    throw invalid(`createClient: options must be an object (got ${describe(config)})`, { option: '' });
  }
  for (const name of Object.keys(config)) {
    if (!CLIENT_OPTION_NAMES.includes(name)) {
      throw invalid(`createClient: ${name}: unknown option (known: ${CLIENT_OPTION_NAMES.join(', ')})`, {
        option: name,
      });
    }
  }
  let endpoint = config.endpoint;
  if (endpoint === undefined) endpoint = defaultEndpoint();
  if (typeof endpoint !== 'string' || !/^[a-z][a-z0-9+.-]*:\/\/./.test(endpoint)) {
    throw invalid(
      `createClient: endpoint must be a ZeroMQ endpoint like ipc:///path/fork.sock or tcp://127.0.0.1:7600 (got ${describe(endpoint)})`,
      { option: 'endpoint' },
    );
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
    endpoint,
    timeoutMs: number('timeoutMs', DEFAULT_TIMEOUT_MS, MAX_TIMEOUT_MS),
    maxInFlight: number('maxInFlight', DEFAULT_MAX_IN_FLIGHT, 2 ** 32 - 1),
    maxInFlightBytes: number('maxInFlightBytes', DEFAULT_MAX_IN_FLIGHT_BYTES, Number.MAX_SAFE_INTEGER),
    curve: checkCurve(config),
  };
}

// Why `key` is not a CURVE key in Z85, or undefined.
function curveKeyProblem(key) {
  if (typeof key !== 'string') return `must be a string (got ${describe(key)})`;
  if (key.length !== CURVE_KEY_LENGTH) {
    return `must be a CURVE key: ${CURVE_KEY_LENGTH} Z85 characters as \`forkd keygen\` prints them (got ${key.length} characters)`;
  }
  for (let g = 0; g < key.length; g += 5) {
    let value = 0;
    for (let i = g; i < g + 5; i++) {
      const digit = Z85.indexOf(key[i]);
      if (digit < 0) return `holds ${JSON.stringify(key[i])} at position ${i + 1}, which is not a Z85 character`;
      value = value * 85 + digit;
    }
    if (value > 0xffffffff) return `is not valid Z85 (characters ${g + 1}-${g + 5} are out of range)`;
  }
  return undefined;
}

// The CURVE settings for the addon, or undefined: options first, then the
// environment (FORK_CURVE_SERVER_KEY, FORK_CURVE_PUBLIC_KEY,
// FORK_CURVE_SECRET_KEY). Keys are never put in messages.
function checkCurve(config) {
  const pick = (name, env) => {
    if (config[name] !== undefined) return { value: config[name], where: `createClient: ${name}` };
    const fromEnv = process.env[env];
    if (fromEnv) return { value: fromEnv.trim(), where: `createClient: ${env} (from the environment)` };
    return undefined;
  };
  const server = pick('curveServerKey', 'FORK_CURVE_SERVER_KEY');
  const pub = pick('curvePublicKey', 'FORK_CURVE_PUBLIC_KEY');
  const sec = pick('curveSecretKey', 'FORK_CURVE_SECRET_KEY');
  const option = (where) => where.replace(/^createClient: /, '').replace(/ \(from the environment\)$/, '');
  for (const k of [server, pub, sec]) {
    if (k === undefined) continue;
    const problem = curveKeyProblem(k.value);
    if (problem !== undefined) throw invalid(`${k.where} ${problem}`, { option: option(k.where) });
  }
  if ((pub === undefined) !== (sec === undefined)) {
    const [given, missing] = pub === undefined ? ['curveSecretKey', 'curvePublicKey'] : ['curvePublicKey', 'curveSecretKey'];
    throw invalid(
      `createClient: ${given} is set but ${missing} is not: a client key pair needs both (from \`forkd keygen\`), or neither for a key made per client`,
      { option: missing },
    );
  }
  if (server === undefined) {
    if (pub !== undefined) {
      throw invalid(
        'createClient: a client CURVE key pair is set but curveServerKey is not: set it (or FORK_CURVE_SERVER_KEY) to forkd\'s public key',
        { option: 'curveServerKey' },
      );
    }
    return undefined;
  }
  return { serverKey: server.value, publicKey: pub?.value, secretKey: sec?.value };
}

function defaultEndpoint() {
  const fromEnv = process.env.FORK_ENDPOINT;
  if (fromEnv) return fromEnv;
  return `ipc://${process.cwd()}/.fork/fork.sock`;
}

// --- clients

// A receipt's keys and ack names (by ack level) for the addon, which sets
// them on every receipt: as JS literals they are internalized strings.
const RECEIPT_STRINGS = Object.freeze(['id', 'ack', 'destinations', 'none', 'accepted', 'delivered']);
// Ack names by level (the addon's AckLevel), and the most receipts the
// addon asks makeReceipts for in one call.
const ACK_NAMES = Object.freeze(['none', 'accepted', 'delivered']);
const RECEIPT_RUN = 1024;

// The HTTP client (http.cjs) when createClient is given httpEndpoint, or
// when there is no addon and FORK_HTTP_ENDPOINT is set; else the addon's.
function createClient(options) {
  if (options?.httpEndpoint !== undefined || (binding === undefined && process.env.FORK_HTTP_ENDPOINT)) {
    return createHttpClient(httpClientConfig(options));
  }
  const config = checkClientOptions(options);
  if (binding === undefined) throw unavailableError();
  if (options?.token !== undefined) {
    throw invalid('createClient: token applies to the HTTP client only (with httpEndpoint)', { option: 'token' });
  }
  // The receipts of acknowledged events, made here a run at a time for the
  // addon, which resolves each promise with its own: object literals, the
  // shape queuedReceipt makes (receipts with outcomes the addon makes). The
  // addon writes each one's sequence number, ack level and destination list
  // (an index into `lists`) into these arrays before the call; `keys` holds
  // the idempotency keys of those that have one.
  const runSeqs = new Float64Array(RECEIPT_RUN);
  const runLevels = new Uint8Array(RECEIPT_RUN);
  const runLists = new Uint16Array(RECEIPT_RUN);
  let idPrefix = '';
  function makeReceipts(n, lists, keys) {
    const receipts = new Array(n);
    for (let i = 0; i < n; i++) {
      receipts[i] = {
        id: (keys === undefined ? undefined : keys[i]) ?? idPrefix + runSeqs[i],
        ack: ACK_NAMES[runLevels[i]],
        destinations: lists[runLists[i]].slice(),
      };
    }
    return receipts;
  }
  const native = new binding.Client(
    config.endpoint,
    `fork-router/${version} node/${process.version}`,
    config.maxInFlight,
    config.maxInFlightBytes,
    config.curve,
    RECEIPT_STRINGS,
    [makeReceipts, runSeqs, runLevels, runLists],
  );
  idPrefix = `${native.clientId}-`;
  const defaultTimeoutMs = config.timeoutMs;
  let closed = false;
  let closing;
  let kickQueued = false;
  const drainWaiters = new Set();

  // The native side queues events without waking its I/O thread; one kick
  // per turn of the event loop sends everything queued in that turn.
  const kick = () => {
    kickQueued = false;
    native.kick();
  };

  // Encoded here by js/encoder.cjs and queued by the addon as bytes; what
  // that encoder leaves (Dates, BigInts, binary, errors) the addon encodes.
  // For ack 'none' the addon answers with the event's sequence number once
  // it is queued, and the receipt is made here.
  function route(payload, dests, key, wire, ack, timeoutMs) {
    const n = encoder.encodeEvent(payload, dests, key, wire);
    let queued;
    if (n > 0) queued = native.routeEncoded(encoder.buffer(), n, encoder.metaEnd(), ack, timeoutMs);
    queued ??= native.route(payload, dests, key, wire, ack, timeoutMs);
    return typeof queued === 'number' ? Promise.resolve(queuedReceipt(queued, dests, key)) : queued;
  }

  // The receipt of an event sent with ack 'none', as the addon words the
  // others: its id (the idempotency key, else "<client id>-<sequence>"), the
  // ack level reached, and the destinations the caller named.
  function queuedReceipt(seq, dests, key) {
    return {
      id: key ?? idPrefix + seq,
      ack: 'none',
      destinations: dests === undefined ? [] : typeof dests === 'string' ? [dests] : dests.slice(),
    };
  }

  function routeData(payload, destination, options) {
    if (closed) return Promise.reject(new ForkError(codes.CLOSED, 'the client is closed'));
    let promise;
    if (
      options === undefined &&
      typeof destination === 'string' &&
      destination.length !== 0 &&
      destination.length <= MAX_DESTINATION_LENGTH &&
      typeof payload === 'object' &&
      payload !== null &&
      !Array.isArray(payload)
    ) {
      // The hot path: a payload and one destination name.
      promise = route(payload, destination, undefined, undefined, ACK_ACCEPTED, defaultTimeoutMs);
    } else {
      const bad = checkPayload(payload);
      if (bad !== undefined) return Promise.reject(bad);
      let dests, opts;
      try {
        dests = checkDestination(destination);
        opts = parseOptions(options, defaultTimeoutMs);
      } catch (err) {
        return Promise.reject(err);
      }
      promise = route(payload, dests, opts.key, opts.wire, opts.ack, opts.timeoutMs);
    }
    if (!kickQueued) {
      kickQueued = true;
      queueMicrotask(kick);
    }
    return promise;
  }

  // Many events at once, one promise: every payload is encoded before any
  // is queued (an invalid one rejects the call, nothing sent), and the
  // promise resolves with a receipt per payload once all are acknowledged.
  function routeMany(payloads, destination, options) {
    if (closed) return Promise.reject(new ForkError(codes.CLOSED, 'the client is closed'));
    let dests, opts;
    try {
      opts = parseMany(payloads, options, defaultTimeoutMs);
      dests = checkDestination(destination);
    } catch (err) {
      return Promise.reject(err);
    }
    if (payloads.length > config.maxInFlight) {
      // It could never fit: refused before anything is encoded.
      return Promise.reject(
        new ForkError(
          codes.BACKPRESSURE,
          `routeMany of ${payloads.length} events: more than maxInFlight (${config.maxInFlight}) at once; split the call or raise maxInFlight`,
        ),
      );
    }
    let promise;
    if (encoder.encodeMany(payloads, dests, opts.keys, opts.wire)) {
      promise = native.routeManyEncoded(encoder.buffer(), payloads.length, encoder.ends(), encoder.metas(), opts.ack, opts.timeoutMs);
      encoder.shrink();
    }
    // What the JS encoder leaves (Dates, BigInts, binary, errors) the addon encodes.
    promise ??= native.routeMany(payloads, dests, opts.keys, opts.wire, opts.ack, opts.timeoutMs);
    if (!kickQueued) {
      kickQueued = true;
      queueMicrotask(kick);
    }
    return promise;
  }

  function onDrain() {
    native.setDrainCallback(null);
    const waiters = [...drainWaiters];
    drainWaiters.clear();
    for (const w of waiters) {
      clearTimeout(w.timer);
      w.resolve();
    }
  }

  function flush(timeoutMs) {
    try {
      timeoutMs = timeoutMs === undefined ? defaultTimeoutMs : checkTimeout(timeoutMs, 'flush: timeoutMs');
    } catch (err) {
      return Promise.reject(err);
    }
    native.kick();
    if (native.pending() === 0) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const waiter = { resolve, timer: undefined };
      waiter.timer = setTimeout(() => {
        drainWaiters.delete(waiter);
        if (drainWaiters.size === 0) native.setDrainCallback(null);
        reject(
          new ForkError(codes.TIMEOUT, `flush: ${native.pending()} events still in flight after ${timeoutMs} ms`),
        );
      }, timeoutMs);
      drainWaiters.add(waiter);
      if (drainWaiters.size === 1) native.setDrainCallback(onDrain);
    });
  }

  function close(timeoutMs) {
    if (closing === undefined) {
      closed = true;
      // Let what is in flight settle (up to timeoutMs; 0: not at all), then
      // stop; whatever is still pending then rejects with FORK_CLOSED.
      const settled = timeoutMs === 0 ? Promise.resolve() : flush(timeoutMs);
      closing = settled
        .catch(() => {})
        .then(() => {
          native.close();
          for (const w of drainWaiters) {
            clearTimeout(w.timer);
            w.resolve();
          }
          drainWaiters.clear();
        });
    }
    return closing;
  }

  function stats() {
    return native.stats();
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
      return config.endpoint;
    },
    get clientId() {
      return native.clientId;
    },
  });
}

// FORK_AUTOSTART=1 (for `next dev` only): when nothing listens on the
// default client's ipc endpoint, start forkd as a child process, with
// FORK_CONFIG or ./fork.yaml. Events sent meanwhile wait for it (within
// their deadline). The child is not waited for and dies with this process.
const AUTOSTART = Symbol.for('fork-router.autostart');

function autostart(endpoint) {
  if (process.env.FORK_AUTOSTART !== '1' || globalThis[AUTOSTART]) return;
  globalThis[AUTOSTART] = true;
  if (!endpoint.startsWith('ipc://')) {
    process.emitWarning(`FORK_AUTOSTART: only an ipc:// endpoint can be started here (endpoint ${endpoint})`);
    return;
  }
  const fs = require('node:fs');
  const net = require('node:net');
  const path = require('node:path');
  const socket = endpoint.slice('ipc://'.length);
  const start = () => {
    const config = path.resolve(process.env.FORK_CONFIG || 'fork.yaml');
    if (!fs.existsSync(config)) {
      process.emitWarning(`FORK_AUTOSTART: no forkd listens at ${socket} and there is no config at ${config}`);
      return;
    }
    const { spawn } = require('node:child_process');
    const child = spawn(process.execPath, [path.join(__dirname, 'forkd.cjs'), 'run', '--config', config], {
      stdio: ['ignore', 'inherit', 'inherit'],
    });
    child.on('error', (err) => process.emitWarning(`FORK_AUTOSTART: cannot start forkd: ${err.message}`));
    child.unref();
    process.once('exit', () => child.kill('SIGTERM'));
  };
  if (!fs.existsSync(socket)) return start();
  // A socket file left by a forkd that is gone: start one when nobody answers.
  const probe = net.connect(socket);
  probe.once('connect', () => probe.destroy());
  probe.once('error', () => start());
  probe.unref();
}

// The default client, created on first use. It lives on globalThis so that a
// dev server reloading this module reuses it instead of opening another. It
// connects in the background and holds nothing open while idle.
function getDefaultClient() {
  let client = globalThis[DEFAULT_CLIENT];
  if (client === undefined || client.closed) {
    client = createClient();
    globalThis[DEFAULT_CLIENT] = client;
    if (binding !== undefined) autostart(client.endpoint);
  }
  return client;
}

// For Next.js instrumentation: creates the default client so that the first
// request does not pay for it. Does nothing while `next build` runs.
// Without an addon it warns once and returns undefined: the app starts, and
// routeData rejects with FORK_UNAVAILABLE.
function warmup() {
  if (process.env.NEXT_PHASE === 'phase-production-build') return undefined;
  if (binding === undefined && !process.env.FORK_HTTP_ENDPOINT) {
    if (!globalThis[WARNED]) {
      globalThis[WARNED] = true;
      process.emitWarning(unavailableError().message, { code: codes.UNAVAILABLE });
    }
    return undefined;
  }
  return getDefaultClient();
}

function routeData(payload, destination, options) {
  const client = globalThis[DEFAULT_CLIENT];
  if (client !== undefined && !client.closed) return client.routeData(payload, destination, options);
  let fallback;
  try {
    fallback = getDefaultClient();
  } catch (err) {
    return Promise.reject(err);
  }
  return fallback.routeData(payload, destination, options);
}

function routeMany(payloads, destination, options) {
  let client;
  try {
    client = getDefaultClient();
  } catch (err) {
    return Promise.reject(err);
  }
  return client.routeMany(payloads, destination, options);
}

const { subscribe, streamResponse } = require('./streams.cjs');

module.exports = {
  subscribe,
  streamResponse,
  routeData,
  routeMany,
  createClient,
  getDefaultClient,
  warmup,
  ForkError,
  codes,
  version,
};
