import { fileURLToPath } from 'node:url';

// This directory: the app is its own project, even inside the fork-router
// repository (whose package-lock.json Next.js would otherwise take for a
// workspace root).
const here = fileURLToPath(new URL('.', import.meta.url));

// The prebuilt native files fork-router loads: the addon, the libraries it
// bundles, and the forkd binary that `npx forkd` runs.
const forkPrebuilds = ['./node_modules/fork-router/prebuilds/**/*'];

/** @type {import('next').NextConfig} */
const nextConfig = {
  // Load these packages with Node's require at run time instead of bundling
  // them: both are native addons (a .node file found at run time, which a
  // bundler cannot follow). better-sqlite3 is on Next's built-in list
  // already; naming it here says so. Every package listed here is for
  // server code only.
  serverExternalPackages: ['fork-router', 'better-sqlite3'],

  // `next build` also writes .next/standalone/: a server.js plus only the
  // files each route needs, copied from node_modules, for a small image.
  // `next start` (which start.sh and the README use) serves the app from
  // .next as always, with a warning that it does not use that copy. To run
  // the copy instead, `node .next/standalone/server.js` changes directory to
  // .next/standalone: set FORK_ENDPOINT=ipc://<app dir>/.fork/fork.sock and
  // give it the data/ directory forkd writes.
  output: 'standalone',

  // That copy follows static import/require/fs calls. fork-router picks its
  // addon by platform at run time, so name its prebuilt files for every
  // route that loads it. Keys are route globs (matched against the route
  // path); values are file globs from this directory.
  outputFileTracingIncludes: {
    '/api/**/*': forkPrebuilds,
    '/': forkPrebuilds,
  },
  outputFileTracingRoot: here,
  turbopack: { root: here },
};

export default nextConfig;
