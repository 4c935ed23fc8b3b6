'use strict';

// What `fork-router` resolves to outside Node.js (the edge-light, worker and
// browser export conditions): Fork talks to forkd through a native addon and
// a local socket, which only the Node.js runtime has.
throw new Error(
  "fork-router needs the Node.js runtime: it is a native addon that talks to the forkd sidecar. " +
    "In Next.js, import it only from server code that runs on Node.js: add " +
    "`export const runtime = 'nodejs'` to the route (the default for API and app routes), never " +
    "use it from middleware, an edge route or a client component, and list it in " +
    "`serverExternalPackages` in next.config.",
);
