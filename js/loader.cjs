'use strict';

// Finds the native addon and the forkd binary for this platform: an override
// from the environment first, then the prebuilt file for this platform, then
// a local build. Nothing found: an error that names the platform, where it
// looked and what to do.
//
// Every prebuilt path below is written out in full, one per platform, and the
// addon is loaded with one literal require per platform: file tracers (Next.js
// standalone output, @vercel/nft) follow literal requires and literal
// path.join(__dirname, ...) expressions, not paths computed at run time, so
// they copy these files with no configuration.

const fs = require('node:fs');
const path = require('node:path');

const root = path.resolve(__dirname, '..');

// The platforms the package ships prebuilt files for: glibc Linux (linux-*)
// and musl Linux such as Alpine (linuxmusl-*).
const PREBUILT_PLATFORMS = ['linux-x64', 'linux-arm64', 'linuxmusl-x64', 'linuxmusl-arm64'];

const PREBUILT_ADDONS = {
  'linux-x64': path.join(__dirname, '..', 'prebuilds', 'linux-x64', 'fork_router.node'),
  'linux-arm64': path.join(__dirname, '..', 'prebuilds', 'linux-arm64', 'fork_router.node'),
  'linuxmusl-x64': path.join(__dirname, '..', 'prebuilds', 'linuxmusl-x64', 'fork_router.node'),
  'linuxmusl-arm64': path.join(__dirname, '..', 'prebuilds', 'linuxmusl-arm64', 'fork_router.node'),
};

// forkd is static (musl), so one binary per architecture serves glibc and
// musl alike; the package ships it once, in the linux-<arch> directory.
const PREBUILT_FORKD = {
  'linux-x64': path.join(__dirname, '..', 'prebuilds', 'linux-x64', 'forkd'),
  'linux-arm64': path.join(__dirname, '..', 'prebuilds', 'linux-arm64', 'forkd'),
  'linuxmusl-x64': path.join(__dirname, '..', 'prebuilds', 'linux-x64', 'forkd'),
  'linuxmusl-arm64': path.join(__dirname, '..', 'prebuilds', 'linux-arm64', 'forkd'),
};

const LOCAL_ADDON = path.join(__dirname, '..', 'build', 'Release', 'fork_router.node');
const LOCAL_FORKD = path.join(__dirname, '..', 'build', 'bin', 'forkd');

// Loads the prebuilt addon of `platform` (one of PREBUILT_PLATFORMS).
function requirePrebuilt(platform) {
  switch (platform) {
    case 'linux-x64':
      return require('../prebuilds/linux-x64/fork_router.node');
    case 'linux-arm64':
      return require('../prebuilds/linux-arm64/fork_router.node');
    case 'linuxmusl-x64':
      return require('../prebuilds/linuxmusl-x64/fork_router.node');
    case 'linuxmusl-arm64':
      return require('../prebuilds/linuxmusl-arm64/fork_router.node');
    default:
      throw new Error(`fork-router: no prebuilt addon for ${platform}`);
  }
}

let cachedReport;

// Node's diagnostic report header; on Linux it holds glibcVersionRuntime
// when the process runs on glibc. Network details are left out: collecting
// them can mean slow DNS lookups.
function reportHeader() {
  if (cachedReport === undefined) {
    cachedReport = {};
    if (process.report && typeof process.report.getReport === 'function') {
      const exclude = process.report.excludeNetwork;
      process.report.excludeNetwork = true;
      try {
        cachedReport = process.report.getReport() || {};
      } finally {
        process.report.excludeNetwork = exclude;
      }
    }
  }
  return cachedReport.header || {};
}

// This process's platform as the prebuilds directory names it: on Linux,
// `linux-<arch>` on glibc and `linuxmusl-<arch>` otherwise (as detect-libc and
// better-sqlite3 decide); elsewhere `<platform>-<arch>`, e.g. darwin-arm64.
// `given` replaces parts of the process (tests): { platform, arch, header }.
function detectPlatform(given = {}) {
  const platform = given.platform ?? process.platform;
  const arch = given.arch ?? process.arch;
  if (platform !== 'linux') return `${platform}-${arch}`;
  const header = given.header ?? reportHeader();
  return header.glibcVersionRuntime ? `linux-${arch}` : `linuxmusl-${arch}`;
}

// The override named by the first set variable of `names`, as
// { variable, file }, or undefined. An override naming a missing file is an
// error: never a silent fallback to another file.
function override(names, what) {
  for (const variable of names) {
    const value = process.env[variable];
    if (!value) continue;
    const file = path.resolve(value);
    if (!fs.existsSync(file)) {
      const err = new Error(
        `fork-router: ${variable} is set to ${value}, but there is no ${what} at ${file}: ` +
          `point it at one, or unset it to use the prebuilt ${what} or a local build`,
      );
      err.code = 'FORK_UNAVAILABLE';
      err.variable = variable;
      err.path = file;
      throw err;
    }
    return { variable, file };
  }
  return undefined;
}

// Where the addon is looked for on this platform, in order (overrides aside).
function candidates(platform = detectPlatform()) {
  const files = [];
  if (PREBUILT_ADDONS[platform]) files.push(PREBUILT_ADDONS[platform]);
  files.push(LOCAL_ADDON);
  return files;
}

// Where forkd is looked for on this platform, in order (overrides aside).
function forkdCandidates(platform = detectPlatform()) {
  const files = [];
  if (PREBUILT_FORKD[platform]) files.push(PREBUILT_FORKD[platform]);
  files.push(LOCAL_FORKD);
  return files;
}

// What to do when nothing fits: the same advice for the addon and forkd.
function advice(platform, thing) {
  const lines = [
    `Prebuilt ${thing === 'forkd' ? 'forkd binaries' : 'addons'} ship for ${PREBUILT_PLATFORMS.join(', ')} only.`,
    thing === 'forkd'
      ? 'Set FORK_FORKD_PATH to a forkd binary built elsewhere, or build one from source: ' +
        `\`npm run build\` in ${root} (it needs cmake, a C++20 compiler and the libraries ` +
        'scripts/install-deps.sh installs).'
      : 'Set FORK_ADDON_PATH to a fork_router.node built elsewhere, or build one from source: ' +
        `\`npx cmake-js build\` in ${root} (it needs cmake, a C++20 compiler, pkg-config and libzmq ` +
        'with its headers: on Debian, apt-get install cmake g++ pkg-config libzmq3-dev).',
  ];
  if (platform.startsWith('darwin-')) {
    lines.push(
      thing === 'forkd'
        ? 'On macOS, run forkd in Docker beside your dev server (docs/deployment.md, "macOS").'
        : 'On macOS, run forkd in Docker beside `next dev`, build the addon with Homebrew\'s zeromq ' +
            '(`brew install zeromq cmake pkg-config`) and set FORK_ADDON_PATH to it (docs/deployment.md, ' +
            '"macOS").',
    );
  }
  return lines.join(' ');
}

// The native addon: an object with Client and init. Throws an Error with
// `code` FORK_UNAVAILABLE, `platform` and `looked` when there is none.
function load() {
  const forced = override(['FORK_ADDON_PATH'], 'native addon');
  if (forced) return require(forced.file);
  const platform = detectPlatform();
  if (PREBUILT_ADDONS[platform] && fs.existsSync(PREBUILT_ADDONS[platform])) return requirePrebuilt(platform);
  if (fs.existsSync(LOCAL_ADDON)) return require(LOCAL_ADDON);
  const looked = candidates(platform);
  const err = new Error(
    `fork-router: no native addon for ${platform} (looked for ${looked.join(' and ')}). ` + advice(platform, 'addon'),
  );
  err.code = 'FORK_UNAVAILABLE';
  err.platform = platform;
  err.looked = looked;
  throw err;
}

// The forkd binary to run: FORK_FORKD_PATH (or its older name FORKD_BIN),
// else the prebuilt one for this platform, else a local build. Throws like
// load() when there is none.
function findForkd() {
  const forced = override(['FORK_FORKD_PATH', 'FORKD_BIN'], 'forkd binary');
  if (forced) return forced.file;
  const platform = detectPlatform();
  const looked = forkdCandidates(platform);
  const found = looked.find((f) => fs.existsSync(f));
  if (found) return found;
  const err = new Error(
    `forkd: no binary for ${platform} (looked for ${looked.join(' and ')}). ` + advice(platform, 'forkd'),
  );
  err.code = 'FORK_UNAVAILABLE';
  err.platform = platform;
  err.looked = looked;
  throw err;
}

module.exports = {
  load,
  findForkd,
  candidates,
  forkdCandidates,
  detectPlatform,
  PREBUILT_PLATFORMS,
};
