// The purchase both API routes accept, and the check they share.

export interface Purchase {
  orderId: string;
  amount: number;
  currency: string;
  /** Event time (ISO-8601 text or epoch ms); the daily revenue is bucketed by it, in UTC days. */
  ts: string | number;
  /** Anything else the client sends is kept (the orders table puts unknown fields in `extra`). */
  [field: string]: unknown;
}

/** The purchase in `body` with `ts` defaulted to now, or what is wrong with it. */
export function parsePurchase(body: unknown): { purchase: Purchase; error?: undefined } | { error: string } {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    return { error: 'the body must be a JSON object (content-type: application/json)' };
  }
  const b = body as Record<string, unknown>;
  if (typeof b.orderId !== 'string' || b.orderId === '') return { error: 'orderId must be a non-empty string' };
  if (typeof b.amount !== 'number' || !Number.isFinite(b.amount)) return { error: 'amount must be a number' };
  if (typeof b.currency !== 'string' || b.currency === '') return { error: 'currency must be a non-empty string' };
  if (b.ts !== undefined && typeof b.ts !== 'string' && typeof b.ts !== 'number') {
    return { error: 'ts, when given, must be ISO-8601 text or epoch milliseconds' };
  }
  const ts = (b.ts as string | number | undefined) ?? new Date().toISOString();
  return { purchase: { ...b, orderId: b.orderId, amount: b.amount, currency: b.currency, ts } };
}

/** The ForkError codes that mean the request itself is bad: sending it again will not help. */
export const BAD_REQUEST_CODES: readonly string[] = ['FORK_INVALID_PAYLOAD', 'FORK_TOO_LARGE'];
