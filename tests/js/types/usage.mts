// Compiles with `tsc -p tests/js/types` (tests/js/types.test.mjs): the ESM
// view of the public API. Lines marked @ts-expect-error must stay errors.
import fork, {
  type Client,
  type ClientStats,
  type Outcome,
  type Receipt,
  type RouteOptions,
  ForkError,
  createClient,
  routeData,
  routeMany,
  type RouteManyOptions,
  streamResponse,
  subscribe,
} from 'fork-router';

interface Purchase {
  event: 'purchase';
  orderId: string;
  amount: number;
  items: { sku: string; qty: number; price: number }[];
}

const purchase: Purchase = { event: 'purchase', orderId: 'o1', amount: 12.5, items: [] };

export async function examples(): Promise<void> {
  const r: Receipt = await routeData(purchase, 'production', { timestamp: true });
  const id: string = r.id;
  const dests: string[] = r.destinations;
  await routeData(purchase, 'analytics', { aggregate: 'daily' });
  await routeData(purchase, ['production', 'analytics', 'logs'] as const);
  await routeData(purchase);
  const d = await routeData(purchase, null, { ack: 'delivered', timeoutMs: 2000, idempotencyKey: 'o1' });
  const outcome: Outcome | undefined = d.outcomes?.['production'];
  if (outcome === 'filtered') void outcome;
  // @ts-expect-error outcomes are a closed set
  const lost: Outcome = 'lost';
  await routeData(purchase, 'logs', { timestamp: { field: 'received_at', format: 'epoch_ms' } });
  await routeData(purchase, 'logs', { transform: ['clean_purchase'], key: 'user-1' });
  await routeData(new Uint8Array([0x80]), 'logs');

  const opts: RouteOptions = { aggregate: { window: '1d', group_by: ['currency'] } };
  const client: Client = createClient({ endpoint: 'tcp://127.0.0.1:7600', timeoutMs: 1000, maxInFlight: 10 });
  const overHttp: Client = createClient({ httpEndpoint: 'http://127.0.0.1:8788', token: 'x'.repeat(32), timeoutMs: 1000 });
  void overHttp;
  await client.routeData(purchase, 'logs', opts);
  await client.flush(1000);
  const s: ClientStats = client.stats();
  const n: number = s.inFlight + s.acked;
  await client.close();
  await fork.routeData(purchase, 'logs');

  try {
    await routeData(purchase, 'nowhere');
  } catch (err) {
    if (err instanceof ForkError && err.code === 'FORK_UNKNOWN_DESTINATION') {
      const where: string | undefined = err.path;
      void where;
    }
    if (err instanceof ForkError && err.code === 'FORK_REJECTED') {
      const why: string | undefined = err.reason;
      const at: Record<string, Outcome> | undefined = err.outcomes;
      void [why, at];
    }
  }
  void [id, dests, n, lost];

  // Many at once: a receipt each, or a rejection carrying each result.
  const many: Receipt[] = await routeMany([purchase, purchase], 'analytics', { idempotencyKeys: ['o1', 'o2'] });
  const manyOpts: RouteManyOptions = { ack: 'delivered', timeoutMs: 2000 };
  await client.routeMany([purchase], ['production', 'logs'], manyOpts);
  try {
    await routeMany([purchase], 'logs');
  } catch (err) {
    if (err instanceof ForkError && err.results !== undefined) {
      const first: number | undefined = err.index;
      const each: Array<Receipt | ForkError> = err.results;
      void [first, each];
    }
  }
  void many;
  // @ts-expect-error routeMany gives each event its own key: idempotencyKeys
  await routeMany([purchase], 'logs', { idempotencyKey: 'o1' });
  // @ts-expect-error routeMany takes an array of payloads
  await routeMany(purchase, 'logs');

  // @ts-expect-error ack levels are a closed set
  await routeData(purchase, 'logs', { ack: 'durable' });
  // @ts-expect-error destinations are names
  await routeData(purchase, 42);
  // @ts-expect-error options are known by name
  await routeData(purchase, 'logs', { idempotency_key: 'x' });
  // @ts-expect-error a payload is an object
  await routeData('text', 'logs');
  // @ts-expect-error timestamp formats are a closed set
  await routeData(purchase, 'logs', { timestamp: { format: 'unix' } });
  // @ts-expect-error client options are known by name
  createClient({ endpoints: 'x' });

  // Streams: records or explicit resets, and a Response for a route handler.
  const ac = new AbortController();
  for await (const m of subscribe('ticker', { after: '42', signal: ac.signal, url: 'http://127.0.0.1:8787' })) {
    if (m.reset) {
      const reason: string = m.reason;
      void reason;
    } else {
      const pos: string = m.id;
      const rec: Record<string, unknown> = m.record;
      void [pos, rec];
    }
  }
  const res: Response = await streamResponse('ticker', new Request('http://app/api/ticker'), { token: 't' });
  void res;
  // @ts-expect-error a stream is named by a string
  subscribe(7);
  // @ts-expect-error after is a position string
  subscribe('ticker', { after: 42 });
  // @ts-expect-error streamResponse needs the request
  await streamResponse('ticker');
}
