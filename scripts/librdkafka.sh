#!/usr/bin/env bash
# Builds the librdkafka a forkd built from source links, once, and prints
# its prefix (build/deps/librdkafka-<version>, with lib/pkgconfig/rdkafka.pc).
# sidecar/CMakeLists.txt runs it when it configures, so every build
# directory (npm run build, the sanitizer and fuzz builds) shares one copy.
#
# It is the source and recipe the prebuilt forkd uses
# (scripts/prebuilds/sources.txt, build_librdkafka in
# scripts/prebuilds/sources.sh), built for this machine against its
# OpenSSL and zlib: a librdkafka ≥ 2.6.1, which Debian 12 does not have
# (2.0.2 cannot log in with SASL/SCRAM to Kafka ≥ 3.8.1).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
here="$root/scripts/prebuilds"
cache="$root/build/deps"
jobs="${FORK_JOBS:-$(nproc)}"
die() { echo "librdkafka: $*" >&2; exit 1; }
source "$here/sources.sh"

version="$(source_field librdkafka 2)"
prefix="$cache/librdkafka-$version"
if [[ ! -f "$prefix/.built" ]]; then
  mkdir -p "$cache/dl" "$cache/src"
  echo "librdkafka: building $version into $prefix (once)" >&2
  rm -rf "$prefix"
  build_librdkafka "$(unpack librdkafka)" "$cache/librdkafka-$version-work" "$prefix"
  rm -rf "$cache/librdkafka-$version-work"
  touch "$prefix/.built"
fi
echo "$prefix"
