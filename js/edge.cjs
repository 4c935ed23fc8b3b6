'use strict';

// fork-router under the edge-light and worker export conditions (Next.js
// middleware and edge route handlers, other edge runtimes): no native addon
// can load there, so routeData goes to forkd's HTTP ingest with fetch
// (http.cjs), with the same API, receipts, errors and deadlines. The default
// client reads FORK_HTTP_ENDPOINT and FORK_INGEST_TOKEN; createClient takes
// { httpEndpoint, token }.

const { ForkError, codes } = require('./errors.cjs');
const { createHttpClient, httpClientConfig } = require('./http.cjs');
const { subscribe, streamResponse } = require('./streams.cjs');
const { version } = require('../package.json');

const DEFAULT_CLIENT = Symbol.for('fork-router.edge-client');

function unavailableError() {
  return new ForkError(
    codes.UNAVAILABLE,
    'fork-router: this runtime (edge) cannot load the native addon, and no HTTP ingest is configured. ' +
      "Set FORK_HTTP_ENDPOINT (e.g. http://127.0.0.1:8788, forkd's `http_ingest: { listen, token }`) and " +
      'FORK_INGEST_TOKEN in the environment, or call createClient({ httpEndpoint, token }); ' +
      "or run this code on the Node.js runtime (`export const runtime = 'nodejs'`), where the addon reaches " +
      'forkd directly.',
  );
}

function createClient(options) {
  const config = httpClientConfig(options);
  if (config === undefined) throw unavailableError();
  return createHttpClient(config);
}

function getDefaultClient() {
  let client = globalThis[DEFAULT_CLIENT];
  if (client === undefined || client.closed) {
    client = createClient();
    globalThis[DEFAULT_CLIENT] = client;
  }
  return client;
}

// Nothing to warm up: fetch opens connections as needed.
function warmup() {
  return undefined;
}

function routeData(payload, destination, options) {
  let client;
  try {
    client = getDefaultClient();
  } catch (err) {
    return Promise.reject(err);
  }
  return client.routeData(payload, destination, options);
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

module.exports = {
  routeData,
  routeMany,
  createClient,
  getDefaultClient,
  warmup,
  ForkError,
  codes,
  version,
  subscribe,
  streamResponse,
};
