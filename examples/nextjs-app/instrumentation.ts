// Next.js calls register() once when a server starts. It creates fork-router's
// default client up front, so the first request does not pay for it: the
// connection to forkd is made in the background (lazy, non-blocking), and
// during `next build` warmup() does nothing.
//
// Only in the Node.js runtime: fork-router is a native addon that talks to
// forkd over a local socket, which the edge runtime does not have. The check
// on NEXT_RUNTIME also keeps the import out of the edge bundle.
export async function register() {
  if (process.env.NEXT_RUNTIME === 'nodejs') {
    const { warmup } = await import('fork-router');
    warmup();
  }
}
