// The CommonJS view of the public API (see usage.mts).
import fork = require('fork-router');

export async function cjs(): Promise<string> {
  const receipt = await fork.routeData({ a: 1 }, 'logs', { ack: 'none' });
  const err = new fork.ForkError('FORK_TIMEOUT', 'late');
  const code: 'FORK_TIMEOUT' | string = err.code;
  // @ts-expect-error codes are a closed set
  new fork.ForkError('FORK_NOPE', 'x');
  return receipt.id + code + fork.codes.CLOSED;
}
