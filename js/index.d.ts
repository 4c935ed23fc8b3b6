// Types for fork-router (CommonJS and ESM; index.d.mts re-exports these).

/** How far an event must get before routeData resolves. */
export type AckLevel = 'none' | 'accepted' | 'delivered';

/** The codes a ForkError carries. */
export type ForkErrorCode =
  | 'FORK_INVALID_PAYLOAD'
  | 'FORK_UNKNOWN_DESTINATION'
  | 'FORK_TIMEOUT'
  | 'FORK_UNAVAILABLE'
  | 'FORK_BACKPRESSURE'
  | 'FORK_TOO_LARGE'
  | 'FORK_REJECTED'
  | 'FORK_CLOSED';

/** Every error fork-router produces. Switch on `code`. */
export declare class ForkError extends Error {
  constructor(code: ForkErrorCode, message: string, fields?: Record<string, unknown>);
  readonly name: 'ForkError';
  readonly code: ForkErrorCode;
  /** Payload errors: where in the payload, e.g. `items[3].price` ('' for the payload itself). */
  readonly path?: string;
  /** Option errors: which option, e.g. `timeoutMs` or `aggregate.window`. */
  readonly option?: string;
  /** Destination errors: the offending destination name. */
  readonly destination?: unknown;
  /** `ack: 'delivered'` calls a destination did not store: why (the dead letter's reason, or the shed). */
  readonly reason?: string;
  /** `ack: 'delivered'` calls a destination did not store: what became of the event at each destination. */
  readonly outcomes?: Record<string, Outcome>;
  /** The event id, once the event was queued. */
  readonly id?: string;
  /** routeMany: the index of the payload this error is about (the first that failed). */
  readonly index?: number;
  /** routeMany, when events failed: a Receipt or a ForkError per payload, in order. */
  readonly results?: Array<Receipt | ForkError>;
}

export declare const codes: Readonly<{
  INVALID_PAYLOAD: 'FORK_INVALID_PAYLOAD';
  UNKNOWN_DESTINATION: 'FORK_UNKNOWN_DESTINATION';
  TIMEOUT: 'FORK_TIMEOUT';
  UNAVAILABLE: 'FORK_UNAVAILABLE';
  BACKPRESSURE: 'FORK_BACKPRESSURE';
  TOO_LARGE: 'FORK_TOO_LARGE';
  REJECTED: 'FORK_REJECTED';
  CLOSED: 'FORK_CLOSED';
}>;

/**
 * The data to route: a plain object (own enumerable properties, encoded much
 * like JSON.stringify, with Dates, binary data and 64-bit BigInts kept), or a
 * Buffer / Uint8Array holding one msgpack map that is already encoded.
 */
export type Payload = object;

/** One destination name from the config, or several (fan-out happens in forkd). */
export type Destination = string | readonly string[];

export interface TimestampOptions {
  /** The field to write (forkd's default when omitted). */
  field?: string;
  /** ISO-8601 UTC (default) or milliseconds since the epoch. */
  format?: 'iso' | 'epoch_ms';
}

/** Windowed aggregation: a window name or a full aggregate step. */
export type AggregateOptions =
  | 'hourly'
  | 'daily'
  | (string & {})
  | {
      window?: string;
      time_field?: string;
      group_by?: readonly string[];
      measures?: Readonly<Record<string, string>>;
      [setting: string]: unknown;
    };

export interface RouteOptions {
  /** Stamp the event on arrival. */
  timestamp?: boolean | TimestampOptions;
  /** Aggregate into windows ('daily', 'hourly') instead of storing each event. */
  aggregate?: AggregateOptions;
  /** Partition / grouping key for the event (rollouts hash it). */
  key?: string;
  /** The event id, so retries are deduplicated, per destination (at most 256 bytes of UTF-8). */
  idempotencyKey?: string;
  /** Default 'accepted': durable in forkd's log. */
  ack?: AckLevel;
  /** Deadline for this call in milliseconds (default: the client's, 5000). */
  timeoutMs?: number;
  /** Named transform template(s) from the config to apply. */
  transform?: string | readonly string[];
}

/**
 * What became of an event at one destination: in its store, dropped by a
 * filter, in its dead letters, or skipped past its backlog quota.
 */
export type Outcome = 'delivered' | 'filtered' | 'dead_letter' | 'shed';

export interface Receipt {
  /** The idempotencyKey if given, else `<32 hex digits of client id>-<sequence>`. */
  id: string;
  /** The ack level reached. */
  ack: AckLevel;
  /** The destinations named by the caller, or those the config's routes chose. */
  destinations: string[];
  /**
   * With `ack: 'delivered'`: per destination, what became of the event
   * ('delivered' or 'filtered'; a call some destination did not store rejects
   * with FORK_REJECTED, whose `outcomes` says the same).
   */
  outcomes?: Record<string, Outcome>;
}

export interface ClientOptions {
  /** ZeroMQ endpoint of forkd (default: $FORK_ENDPOINT, else ipc://<cwd>/.fork/fork.sock). */
  endpoint?: string;
  /** Default deadline for each call, in milliseconds (default 5000). */
  timeoutMs?: number;
  /** Unacknowledged events allowed before calls reject with FORK_BACKPRESSURE (default 100000). */
  maxInFlight?: number;
  /** Unacknowledged encoded bytes allowed before FORK_BACKPRESSURE (default 64 MiB). */
  maxInFlightBytes?: number;
  /**
   * forkd's CURVE public key (Z85, 40 characters, from `forkd keygen`): encrypts the
   * connection and authenticates forkd. Needed for a forkd whose config has `curve`
   * (a tcp:// listen). Default: $FORK_CURVE_SERVER_KEY.
   */
  curveServerKey?: string;
  /**
   * This client's CURVE key pair (Z85; both or neither), for a forkd that lists allowed
   * client keys in `curve.clients`. Default: $FORK_CURVE_PUBLIC_KEY and
   * $FORK_CURVE_SECRET_KEY; without them, each client makes its own pair.
   */
  curvePublicKey?: string;
  /** The secret half of curvePublicKey's pair. Default: $FORK_CURVE_SECRET_KEY. */
  curveSecretKey?: string;
  /**
   * forkd's HTTP ingest (`http_ingest:` in fork.yaml), e.g. `http://127.0.0.1:8788`: the
   * client then sends each call with `fetch` (POST /v1/events) instead of through the
   * native addon. The edge build (edge-light and worker conditions) always does, and so
   * does a platform without an addon when $FORK_HTTP_ENDPOINT is set. Only `token`,
   * `timeoutMs` and `maxInFlight` apply then. Over HTTP a payload travels as JSON (a Date
   * becomes its ISO string; pre-encoded msgpack is refused), and an `ack: 'none'` receipt's
   * id is the idempotencyKey, or '' (forkd assigns it later).
   */
  httpEndpoint?: string;
  /** The Bearer token of forkd's HTTP ingest (default: $FORK_INGEST_TOKEN). Server code only. */
  token?: string;
}

export interface ClientStats {
  sent: number;
  acked: number;
  delivered: number;
  nacked: number;
  timedOut: number;
  inFlight: number;
  inFlightBytes: number;
  connected: boolean;
  reconnects: number;
  resent: number;
}

/**
 * routeMany's options: routeData's, applied to every event, except that each
 * event's idempotency key comes from idempotencyKeys (one per payload, all
 * different); idempotencyKey is refused, as it would give every event one key.
 */
export interface RouteManyOptions extends Omit<RouteOptions, 'idempotencyKey'> {
  idempotencyKeys?: string[];
}

export interface Client {
  routeData(payload: Payload, destination?: Destination | null, options?: RouteOptions): Promise<Receipt>;
  /**
   * Many events to one destination (or list) with one call and one promise:
   * every payload is checked and encoded before any is sent (an invalid one
   * rejects the call, naming its index, with nothing sent). Resolves with a
   * receipt per payload, in order, once all reached the ack level; if any
   * failed, rejects with the first failure's code, its `index`, and
   * `results` (a Receipt or ForkError per payload).
   */
  routeMany(payloads: Payload[], destination?: Destination | null, options?: RouteManyOptions): Promise<Receipt[]>;
  /** Resolves once every event in flight has settled; rejects FORK_TIMEOUT after timeoutMs. */
  flush(timeoutMs?: number): Promise<void>;
  /**
   * Flushes (up to timeoutMs, default the client's timeout; 0 closes at once), then stops:
   * events still pending reject FORK_CLOSED, as do later calls. Idempotent.
   */
  close(timeoutMs?: number): Promise<void>;
  stats(): ClientStats;
  readonly closed: boolean;
  readonly endpoint: string;
  /** 32 hex digits; the prefix of generated event ids ('' for an HTTP client: forkd's HTTP ingest assigns them). */
  readonly clientId: string;
}

/*
 * The native addon is found when the module loads: $FORK_ADDON_PATH (a
 * fork_router.node) when set, else the prebuilt one for this platform
 * (linux-x64, linux-arm64, linuxmusl-x64, linuxmusl-arm64), else a local build
 * (build/Release). `npx forkd` finds its binary the same way, with
 * $FORK_FORKD_PATH (or $FORKD_BIN) first, then build/bin/forkd. An override
 * naming a missing file is an error, never a fallback. Without an addon (macOS,
 * a platform with no prebuild) the module still loads; createClient and
 * getDefaultClient throw, and routeData rejects, a ForkError FORK_UNAVAILABLE
 * that names the platform and both ways to fix it — unless $FORK_HTTP_ENDPOINT
 * is set: then the default client sends to forkd's HTTP ingest with fetch
 * (with $FORK_INGEST_TOKEN), as the edge build (edge-light and worker export
 * conditions: Next.js middleware and edge route handlers) always does. The
 * browser condition throws at import: the token must never reach a page.
 */

/** Routes one event through the default client (created on first use). */
export declare function routeData(
  payload: Payload,
  destination?: Destination | null,
  options?: RouteOptions,
): Promise<Receipt>;

/** routeMany through the default client. */
export declare function routeMany(
  payloads: Payload[],
  destination?: Destination | null,
  options?: RouteManyOptions,
): Promise<Receipt[]>;

export declare function createClient(options?: ClientOptions): Client;

/** The client routeData uses; created on first use and shared through globalThis. */
export declare function getDefaultClient(): Client;

/**
 * Creates the default client ahead of the first call (for Next.js
 * `instrumentation.ts`, on the Node.js runtime). It connects in the
 * background; during `next build` it does nothing and returns undefined, as it
 * does (with a warning) when there is no native addon for this platform.
 */
export declare function warmup(): Client | undefined;

export declare const version: string;

/** Where forkd's admin server serves the streams, and a stream's token. */
export interface StreamOptions {
  /** Base URL of forkd's admin server (default: $FORK_STREAM_URL, $FORK_ADMIN_URL, else http://127.0.0.1:8787). */
  url?: string;
  /** The stream's token, for a stream configured with `token:` (default: $FORK_STREAM_TOKEN). */
  token?: string;
}

/** One message of a stream: a record, or an explicit reset. */
export type StreamMessage =
  | {
      /** Its position: pass it as `after` to resume after it. */
      id: string;
      /** The record as the destination's transforms made it, with its `_fork_id`. */
      record: Record<string, unknown>;
      reset?: undefined;
    }
  | {
      id: string | null;
      /** forkd no longer has what followed the position asked for (older than its log's retention, or an aggregate's older updates). */
      reset: true;
      reason: string;
    };

export interface SubscribeOptions extends StreamOptions {
  /** Resume after this position (a message's `id`); default: from now on. */
  after?: string;
  /** Stops the iteration when aborted. */
  signal?: AbortSignal;
}

/**
 * The records of a `stream` destination as they are delivered. Reconnects by
 * itself and resumes exactly after the last message it gave.
 */
export declare function subscribe(destination: string, options?: SubscribeOptions): AsyncGenerator<StreamMessage, void, void>;

/**
 * A Response that proxies a `stream` destination to the browser from a route
 * handler, passing the browser's Last-Event-ID on:
 * `export const GET = (req: Request) => streamResponse('ticker', req)`.
 */
export declare function streamResponse(destination: string, request: Request, options?: StreamOptions): Promise<Response>;
