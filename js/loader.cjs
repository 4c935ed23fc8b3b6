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
    `fork-router: no native addon for ${process.platform}-${process.arch} ` +
      `(looked for ${files.join(' and ')}). The package ships a prebuilt one for linux-x64 only; ` +
      `elsewhere build it from source: \`cd ${root} && npx cmake-js build\` ` +
      `(it needs cmake, a C++20 compiler and libzmq with its headers: on Debian, ` +
      `apt-get install cmake g++ pkg-config libzmq3-dev).`,
  );
}

module.exports = { load, candidates };
