'use strict';

// What `fork-router` resolves to under the browser export condition: it
// must never run in a page, where forkd's ingest token would be exposed to
// anyone. (Edge runtimes get the HTTP client, edge.cjs.)
throw new Error(
  'fork-router cannot run in a browser: it sends events to forkd with credentials that must stay on the ' +
    'server. Call it from server code: an API route, route handler or server action (the Node.js runtime, ' +
    'through the native addon), or middleware and edge route handlers (through forkd\'s HTTP ingest, ' +
    'FORK_HTTP_ENDPOINT); never from a client component. In Next.js, list it in `serverExternalPackages` in ' +
    'next.config.',
);
