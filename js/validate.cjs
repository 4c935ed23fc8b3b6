'use strict';

// Argument checks shared by the addon client (index.cjs) and the HTTP client
// (http.cjs): the JS layer validates and gives friendly errors, with the same
// codes and messages whichever way the event travels. Plain JavaScript with
// no Node.js built-ins, so the edge build can use it.

const { ForkError, codes } = require('./errors.cjs');

const DEFAULT_TIMEOUT_MS = 5000;
const MAX_TIMEOUT_MS = 2147483647; // what a timer can hold
const MAX_DESTINATION_LENGTH = 128;
const MAX_DESTINATIONS = 64;
const MAX_IDEMPOTENCY_KEY_BYTES = 256;
const ACK_LEVELS = { none: 0, accepted: 1, delivered: 2 };
const ACK_ACCEPTED = 1;
const OPTION_NAMES = ['timestamp', 'aggregate', 'key', 'idempotencyKey', 'ack', 'timeoutMs', 'transform'];
const TIMESTAMP_FORMATS = ['iso', 'epoch_ms'];

// Bytes of `s` as UTF-8 (lone surrogates count as U+FFFD, as when encoded).
function utf8Length(s) {
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) n += 1;
    else if (c < 0x800) n += 2;
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length && (s.charCodeAt(i + 1) & 0xfc00) === 0xdc00) {
      n += 4;
      i++;
    } else n += 3;
  }
  return n;
}

function describe(value) {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'string') return `the string ${JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value)}`;
  if (typeof value === 'object') return 'an object';
  if (typeof value === 'function') return 'a function';
  if (typeof value === 'bigint') return `the BigInt ${value}n`;
  if (typeof value === 'undefined') return 'undefined';
  return `${typeof value} ${String(value)}`;
}

function invalid(message, fields) {
  return new ForkError(codes.INVALID_PAYLOAD, message, fields);
}

function isPlainObject(value) {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false;
  const proto = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

function isPositiveInteger(value, max) {
  return Number.isInteger(value) && value > 0 && value <= max;
}

// --- argument validation (the slow path: anything but a payload and one destination name)

function checkPayload(payload) {
  if (typeof payload !== 'object' || payload === null || Array.isArray(payload)) {
    return invalid(`payload must be a plain object (got ${describe(payload)})`, { path: '' });
  }
  return undefined;
}

function checkDestinationName(name, where) {
  if (typeof name !== 'string') {
    throw invalid(`${where} must be a string (got ${describe(name)})`, { destination: name });
  }
  if (name.length === 0) throw invalid(`${where} must not be empty`, { destination: name });
  if (name.length > MAX_DESTINATION_LENGTH) {
    throw invalid(`${where} is longer than ${MAX_DESTINATION_LENGTH} characters`, { destination: name });
  }
}

function checkDestination(destination) {
  if (destination === undefined || destination === null) return undefined;
  if (typeof destination === 'string') {
    checkDestinationName(destination, 'destination');
    return destination;
  }
  if (Array.isArray(destination)) {
    if (destination.length === 0) {
      throw invalid('destination must not be an empty array (omit it to let the configured routes decide)', {
        destination,
      });
    }
    if (destination.length > MAX_DESTINATIONS) {
      throw invalid(`destination lists ${destination.length} names; at most ${MAX_DESTINATIONS} are allowed`, {
        destination,
      });
    }
    for (let i = 0; i < destination.length; i++) checkDestinationName(destination[i], `destination[${i}]`);
    return destination;
  }
  throw invalid(`destination must be a string, an array of strings, or omitted (got ${describe(destination)})`, {
    destination,
  });
}

function checkTimeout(value, where) {
  if (!isPositiveInteger(value, MAX_TIMEOUT_MS)) {
    throw invalid(`${where} must be a positive integer number of milliseconds (got ${describe(value)})`, {
      option: where.replace(/^options\./, ''),
    });
  }
  return value;
}

function optionError(name, message, value) {
  return invalid(`options.${name} ${message} (got ${describe(value)})`, { option: name });
}

function checkTimestamp(value) {
  if (value === true) return true;
  if (!isPlainObject(value)) {
    throw optionError('timestamp', "must be true or { field?: string, format?: 'iso' | 'epoch_ms' }", value);
  }
  const out = {};
  for (const k of Object.keys(value)) {
    const v = value[k];
    if (v === undefined) continue;
    if (k === 'field') {
      if (typeof v !== 'string' || v.length === 0) throw optionError('timestamp.field', 'must be a non-empty string', v);
      out.field = v;
    } else if (k === 'format') {
      if (!TIMESTAMP_FORMATS.includes(v)) throw optionError('timestamp.format', "must be 'iso' or 'epoch_ms'", v);
      out.format = v;
    } else {
      throw invalid(`options.timestamp.${k}: unknown setting (known: field, format)`, { option: `timestamp.${k}` });
    }
  }
  return out;
}

function checkTransform(value) {
  if (typeof value === 'string') {
    if (value.length === 0) throw optionError('transform', 'must not be empty', value);
    return value;
  }
  if (Array.isArray(value) && value.length > 0) {
    for (let i = 0; i < value.length; i++) {
      if (typeof value[i] !== 'string' || value[i].length === 0) {
        throw optionError(`transform[${i}]`, 'must be a non-empty template name', value[i]);
      }
    }
    return value;
  }
  throw optionError('transform', 'must be a template name or a non-empty array of names', value);
}

// Returns the parts route() needs: the per-call options map forkd receives
// (or undefined), the idempotency key, the ack level and the timeout.
function parseOptions(options, defaultTimeoutMs) {
  const out = { wire: undefined, key: undefined, ack: ACK_ACCEPTED, timeoutMs: defaultTimeoutMs };
  if (options === undefined || options === null) return out;
  if (typeof options !== 'object' || Array.isArray(options)) {
    throw invalid(`options must be an object (got ${describe(options)})`, { option: '' });
  }
  let wire;
  for (const name of Object.keys(options)) {
    const value = options[name];
    if (!OPTION_NAMES.includes(name)) {
      throw invalid(`options.${name}: unknown option (known: ${OPTION_NAMES.join(', ')})`, { option: name });
    }
    if (value === undefined) continue;
    switch (name) {
      case 'timestamp':
        if (value === false) break;
        (wire ??= {}).timestamp = checkTimestamp(value);
        break;
      case 'aggregate':
        if (typeof value === 'string' ? value.length === 0 : !isPlainObject(value)) {
          throw optionError('aggregate', "must be a window name like 'daily' or 'hourly', or an object", value);
        }
        (wire ??= {}).aggregate = value;
        break;
      case 'key':
        if (typeof value !== 'string' || value.length === 0) throw optionError('key', 'must be a non-empty string', value);
        (wire ??= {}).key = value;
        break;
      case 'transform':
        (wire ??= {}).transform = checkTransform(value);
        break;
      case 'idempotencyKey':
        if (typeof value !== 'string' || value.length === 0) {
          throw optionError('idempotencyKey', 'must be a non-empty string', value);
        }
        if (utf8Length(value) > MAX_IDEMPOTENCY_KEY_BYTES) {
          throw invalid(`options.idempotencyKey is longer than ${MAX_IDEMPOTENCY_KEY_BYTES} bytes`, {
            option: 'idempotencyKey',
          });
        }
        out.key = value;
        break;
      case 'ack':
        if (!Object.hasOwn(ACK_LEVELS, value)) {
          throw optionError('ack', "must be 'none', 'accepted' or 'delivered'", value);
        }
        out.ack = ACK_LEVELS[value];
        break;
      case 'timeoutMs':
        out.timeoutMs = checkTimeout(value, 'options.timeoutMs');
        break;
    }
  }
  out.wire = wire;
  return out;
}

// routeMany's arguments: `payloads`, an array of plain objects, and options
// as routeData's, except that idempotencyKeys (one per payload, all
// different) replaces idempotencyKey, which would give every event one key.
// Returns parseOptions' parts and the keys (or undefined); throws the first
// thing wrong, naming its index.
function parseMany(payloads, options, defaultTimeoutMs) {
  if (!Array.isArray(payloads)) {
    throw invalid(`routeMany: payloads must be an array of plain objects (got ${describe(payloads)})`, { path: '' });
  }
  for (let i = 0; i < payloads.length; i++) {
    const p = payloads[i];
    if (typeof p !== 'object' || p === null || Array.isArray(p) || ArrayBuffer.isView(p)) {
      throw invalid(`routeMany: payloads[${i}] must be a plain object (got ${describe(p)})`, { index: i, path: '' });
    }
  }
  let keys;
  let rest = options;
  if (isPlainObject(options)) {
    if (options.idempotencyKey !== undefined) {
      throw invalid(
        'routeMany: options.idempotencyKey would give every event the same key: use options.idempotencyKeys, one per payload',
        { option: 'idempotencyKey' },
      );
    }
    if (Object.hasOwn(options, 'idempotencyKeys')) {
      ({ idempotencyKeys: keys, ...rest } = options);
    }
  }
  if (keys !== undefined) {
    if (!Array.isArray(keys) || keys.length !== payloads.length) {
      throw invalid(
        `options.idempotencyKeys must be an array of ${payloads.length} keys, one per payload (got ${describe(keys)}${
          Array.isArray(keys) ? ` of ${keys.length}` : ''
        })`,
        { option: 'idempotencyKeys' },
      );
    }
    const seen = new Map();
    for (let i = 0; i < keys.length; i++) {
      const k = keys[i];
      const option = `idempotencyKeys[${i}]`;
      if (typeof k !== 'string' || k.length === 0) {
        throw invalid(`options.${option} must be a non-empty string (got ${describe(k)})`, { option, index: i });
      }
      if (utf8Length(k) > MAX_IDEMPOTENCY_KEY_BYTES) {
        throw invalid(`options.${option} is longer than ${MAX_IDEMPOTENCY_KEY_BYTES} bytes`, { option, index: i });
      }
      const earlier = seen.get(k);
      if (earlier !== undefined) {
        throw invalid(`options.${option} repeats options.idempotencyKeys[${earlier}]: each event needs its own key`, {
          option,
          index: i,
        });
      }
      seen.set(k, i);
    }
  }
  return { ...parseOptions(rest, defaultTimeoutMs), keys };
}

module.exports = {
  DEFAULT_TIMEOUT_MS,
  MAX_TIMEOUT_MS,
  MAX_DESTINATION_LENGTH,
  ACK_LEVELS,
  ACK_ACCEPTED,
  describe,
  invalid,
  isPlainObject,
  isPositiveInteger,
  checkPayload,
  checkDestination,
  checkTimeout,
  parseOptions,
  parseMany,
};
