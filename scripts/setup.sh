#!/usr/bin/env bash
# Sets up a checkout: Debian packages, npm packages, then builds the addon,
# forkd and the C++ tests. Safe to run again; it redoes only what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-deps.sh
if [[ ! -d node_modules/node-addon-api || package.json -nt node_modules/.package-lock.json ]]; then
  npm install --no-audit --no-fund
fi
npm run build
