#!/usr/bin/env bash
# Prints the directory of a pinned source of scripts/prebuilds/sources.txt,
# fetched, checked and unpacked once under build/deps/src/. A build from
# source compiles it as part of its own build (sidecar/CMakeLists.txt does
# so with mimalloc), as scripts/build-prebuilds.sh does for the prebuilds.
#
#   bash scripts/source.sh mimalloc
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
here="$root/scripts/prebuilds"
cache="$root/build/deps"
die() { echo "source: $*" >&2; exit 1; }
[[ $# -eq 1 ]] || die "usage: source.sh NAME (a name of scripts/prebuilds/sources.txt)"
source "$here/sources.sh"
mkdir -p "$cache/dl" "$cache/src"
unpack "$1"
