#!/usr/bin/env node
'use strict';

// `npx forkd ...`: runs the forkd sidecar shipped with fork-router. It finds
// the binary (the prebuilt one for this platform, else a local build), and
// when a shared library forkd needs is missing it says which Debian packages
// to install instead of the dynamic loader's bare error. Signals are passed
// on, and its exit status is forkd's.

const fs = require('node:fs');
const path = require('node:path');
const { spawn, spawnSync } = require('node:child_process');

const root = path.resolve(__dirname, '..');

// The shared libraries forkd links, and the Debian package of each: the
// runtime list of scripts/install-deps.sh.
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
};

function binaryCandidates() {
  return [
    process.env.FORKD_BIN,
    path.join(root, 'prebuilds', `${process.platform}-${process.arch}`, 'forkd'),
    path.join(root, 'build', 'bin', 'forkd'),
  ].filter(Boolean);
}

// The libraries `ldd` reports as "not found".
function missingLibraries(lddOutput) {
  const missing = [];
  for (const line of lddOutput.split('\n')) {
    const m = /^\s*(\S+)\s+=>\s+not found/.exec(line);
    if (m && !missing.includes(m[1])) missing.push(m[1]);
  }
  return missing;
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
  const binary = binaryCandidates().find((f) => fs.existsSync(f));
  if (!binary) {
    process.stderr.write(
      `forkd: no binary for ${process.platform}-${process.arch} (looked for ${binaryCandidates().join(', ')}). ` +
        `Build it with \`npm run build\` in ${root}.\n`,
    );
    return 127;
  }
  const ldd = spawnSync('ldd', [binary], { encoding: 'utf8' });
  if (ldd.status === 0) {
    const missing = missingLibraries(ldd.stdout);
    if (missing.length) {
      process.stderr.write(missingMessage(binary, missing));
      return 127;
    }
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

module.exports = { main, missingLibraries, missingMessage, binaryCandidates, LIBRARY_PACKAGES };
