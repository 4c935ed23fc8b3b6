#!/usr/bin/env bash
# Installs the Debian packages Fork needs to build and test. Idempotent: it
# installs only what is missing, so running it again costs a few seconds.
#
#   scripts/install-deps.sh           build + test dependencies (what CI installs)
#   scripts/install-deps.sh --build   only what building the addon and forkd needs
#   scripts/install-deps.sh --runtime only what a built forkd needs to run
set -euo pipefail

runtime_pkgs=(libzmq5 libyaml-cpp0.7 libspdlog1.10 libfmt9 libcpp-httplib0.11 libre2-9 libssl3 libcurl4 zlib1g libsqlite3-0 libpq5 libhiredis0.14)
build_pkgs=(
  build-essential cmake ninja-build pkg-config
  libzmq3-dev cppzmq-dev libmsgpack-cxx-dev
  libyaml-cpp-dev libcli11-dev libspdlog-dev libfmt-dev
  catch2 libcpp-httplib-dev libre2-dev libssl-dev libcurl4-openssl-dev zlib1g-dev libsqlite3-dev
  libpq-dev libhiredis-dev python3 curl dpkg-dev
)
# librdkafka is not Debian's (2.0.2 cannot log in with SASL/SCRAM to Kafka
# ≥ 3.8.1): scripts/librdkafka.sh builds 2.12.1 from a pinned source (curl
# fetches it), statically, so a built forkd needs nothing more to run.
# mimalloc, forkd's allocator, is compiled into it from Debian's pinned
# source package, which scripts/source.sh fetches (curl) and unpacks
# (dpkg-source, from dpkg-dev).
# The servers and the browser the tests start; clang and its runtimes (not a
# dependency of clang in Debian 12) for the fuzz targets
# (its libFuzzer, scripts/fuzz.sh); qemu-user-static runs the arm64
# prebuilds (scripts/arm64-sysroot.sh, tests/e2e/prebuilds.test.mjs).
# Java 17 and Maven for the Kafka broker (scripts/fetch-kafka.sh fetches its
# jars from Maven Central; tests/e2e/servers/kafka.mjs runs it), openssl for
# the test CA and certificate of its SASL_SSL listener.
test_pkgs=(postgresql clickhouse-server clickhouse-client redis-server redis-tools chromium clang libclang-rt-dev qemu-user-static
  openjdk-17-jre-headless maven openssl)
# scripts/build-prebuilds.sh: Debian's source tooling, autotools for the
# dependencies whose Debian sources carry no configure script, tclsh for
# SQLite's amalgamation, the Unicode tables re2 generates (zig itself comes
# from PyPI).
prebuild_pkgs=(dpkg-dev curl autoconf automake libtool tcl unicode-data)

case "${1:-}" in
  "") pkgs=("${build_pkgs[@]}" "${test_pkgs[@]}" "${prebuild_pkgs[@]}") ;;
  --build) pkgs=("${build_pkgs[@]}") ;;
  --runtime) pkgs=("${runtime_pkgs[@]}") ;;
  *) echo "install-deps: unknown argument '$1' (use --build, --runtime or nothing)" >&2; exit 2 ;;
esac

missing=()
for p in "${pkgs[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if ((${#missing[@]} == 0)); then
  echo "install-deps: all ${#pkgs[@]} Debian packages present"
  exit 0
fi

echo "install-deps: installing ${missing[*]}"
sudo_cmd=()
if [[ $(id -u) -ne 0 ]]; then sudo_cmd=(sudo); fi
export DEBIAN_FRONTEND=noninteractive
"${sudo_cmd[@]}" apt-get update -qq
"${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
