'use strict';

// Finds the native addon: a prebuilt binary for this platform first, then a
// local build, else an error that says what to run.

const fs = require('node:fs');
const path = require('node:path');

const root = path.resolve(__dirname, '..');

function candidates() {
  return [
    path.join(root, 'prebuilds', `${process.platform}-${process.arch}`, 'fork_router.node'),
    path.join(root, 'build', 'Release', 'fork_router.node'),
  ];
}

function load() {
  const files = candidates();
  for (const file of files) {
    if (fs.existsSync(file)) return require(file);
  }
  throw new Error(
    `fork-router: the native addon is not built (looked for ${files.join(' and ')}). ` +
      `Run \`npm run build\` in ${root} (it needs cmake, ninja, a C++20 compiler and libzmq).`,
  );
}

module.exports = { load, candidates };
