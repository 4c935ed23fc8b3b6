#!/usr/bin/env node
'use strict';

// `npx forkd ...`: runs the forkd sidecar shipped with fork-router. It finds
// the binary as js/loader.cjs says (FORK_FORKD_PATH or FORKD_BIN, the
// prebuilt one for this platform, a local build), and when a shared library
// a dynamically linked forkd needs is missing it says which Debian packages
// to install instead of the dynamic loader's bare error (the prebuilt
// binaries are static: nothing to check). Signals are passed on, and its
// exit status is forkd's.

const { spawn, spawnSync } = require('node:child_process');

const { findForkd, forkdCandidates } = require('./loader.cjs');

// The shared libraries a local build of forkd (build/bin/forkd, linked
// against Debian's libraries) needs, and the Debian package of each: the
// runtime list of scripts/install-deps.sh. The prebuilt forkd in prebuilds/
// is fully static and needs none of them.
const LIBRARY_PACKAGES = {
  'libzmq.so.5': 'libzmq5',
  'libyaml-cpp.so.0.7': 'libyaml-cpp0.7',
  'libspdlog.so.1.10': 'libspdlog1.10',
  'libfmt.so.9': 'libfmt9',
  'libre2.so.9': 'libre2-9',
  'libssl.so.3': 'libssl3',
  'libcrypto.so.3': 'libssl3',
  'libcurl.so.4': 'libcurl4',
  'libz.so.1': 'zlib1g',
  'libsqlite3.so.0': 'libsqlite3-0',
  'libpq.so.5': 'libpq5',
  'libcpp-httplib.so.0.11': 'libcpp-httplib0.11',
  'libhiredis.so.0.14': 'libhiredis0.14',
};

// Where the binary is looked for, in order (for messages and tests).
function binaryCandidates() {
  const overrides = [process.env.FORK_FORKD_PATH, process.env.FORKD_BIN].filter(Boolean);
  return [...overrides, ...forkdCandidates()];
}

// The libraries `ldd` reports as missing: glibc's "NAME => not found" lines,
// musl's "Error loading shared library NAME: ...". A static binary ("not a
// dynamic executable", "statically linked") has none.
function missingLibraries(lddOutput) {
  const missing = [];
  for (const line of lddOutput.split('\n')) {
    const m =
      /^\s*(\S+)\s+=>\s+not found/.exec(line) || /^\s*Error loading shared library (\S+?):/.exec(line);
    if (m && !missing.includes(m[1])) missing.push(m[1]);
  }
  return missing;
}

// The missing libraries of `binary`, by `ldd`; none when ldd is absent or
// the binary is static.
function checkLibraries(binary) {
  const ldd = spawnSync('ldd', [binary], { encoding: 'utf8' });
  if (ldd.error) return [];
  return missingLibraries(`${ldd.stdout}\n${ldd.stderr}`);
}

// What to tell the user about them.
function missingMessage(binary, missing) {
  const packages = [...new Set(missing.map((l) => LIBRARY_PACKAGES[l]).filter(Boolean))];
  const unknown = missing.filter((l) => !LIBRARY_PACKAGES[l]);
  let msg = `forkd cannot start: ${binary} needs ${missing.join(', ')}, not installed on this machine.\n`;
  if (packages.length) msg += `Install: sudo apt-get install -y ${packages.join(' ')}\n`;
  if (unknown.length) msg += `(no known Debian package for ${unknown.join(', ')})\n`;
  return msg;
}

function main(argv) {
  let binary;
  try {
    binary = findForkd();
  } catch (err) {
    process.stderr.write(`${err.message.replace(/^fork-router: /, 'forkd: ')}\n`);
    return 127;
  }
  const missing = checkLibraries(binary);
  if (missing.length) {
    process.stderr.write(missingMessage(binary, missing));
    return 127;
  }
  const child = spawn(binary, argv, { stdio: 'inherit' });
  for (const sig of ['SIGTERM', 'SIGINT', 'SIGHUP']) {
    process.on(sig, () => child.kill(sig));
  }
  child.on('error', (err) => {
    process.stderr.write(`forkd: cannot run ${binary}: ${err.message}\n`);
    process.exit(127);
  });
  child.on('exit', (code, signal) => {
    process.exit(code ?? (signal ? 128 + (require('node:os').constants.signals[signal] ?? 0) : 1));
  });
  return null;
}

if (require.main === module) {
  const code = main(process.argv.slice(2));
  if (code !== null) process.exit(code);
}

module.exports = { main, missingLibraries, missingMessage, checkLibraries, binaryCandidates, LIBRARY_PACKAGES };
