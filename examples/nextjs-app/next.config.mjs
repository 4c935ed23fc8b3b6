import { fileURLToPath } from 'node:url';

// This directory: the app is its own project, even inside the fork-router
// repository (whose package-lock.json Next.js would otherwise take for a
// workspace root).
const here = fileURLToPath(new URL('.', import.meta.url));

/** @type {import('next').NextConfig} */
const nextConfig = {
  // Load these packages with Node's require at run time instead of bundling
  // them: both are native addons (a .node file found at run time, which a
  // bundler cannot follow). better-sqlite3 is on Next's built-in list
  // already; naming it here says so. Every package listed here is for
  // server code only.
  serverExternalPackages: ['fork-router', 'better-sqlite3'],

  // `next build` also writes .next/standalone/: a server.js plus only the
  // files the routes need, copied from node_modules, for a small image (see
  // Dockerfile). fork-router's loader names its prebuilt addon and forkd for
  // every platform literally, so that copy carries them with no
  // outputFileTracingIncludes. `next start` (which start.sh and the README
  // use) serves the app from .next as always, with a warning that it does
  // not use that copy. `node .next/standalone/server.js` runs the copy: it
  // changes directory to .next/standalone, so set
  // FORK_ENDPOINT=ipc://<app dir>/.fork/fork.sock there, or run forkd beside
  // it as the Dockerfile's start.mjs does.
  output: 'standalone',

  outputFileTracingRoot: here,
  turbopack: { root: here },
};

export default nextConfig;
