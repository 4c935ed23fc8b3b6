#!/usr/bin/env bash
# npm test: builds everything, then runs the C++ unit tests (Catch2 through
# ctest, also under AddressSanitizer + UBSan with warnings as errors), the
# fuzz targets for a fixed time each (scripts/fuzz.sh), builds the prebuilt
# binaries for every target (scripts/build-prebuilds.sh, cached under
# build/prebuilds/), then runs the JS tests and the end-to-end tests
# (node:test), which check and run those binaries too.
#   FORK_SKIP_SANITIZE=1 npm test   skips the sanitizer build (faster locally)
#   FORK_SKIP_FUZZ=1 npm test       skips the fuzzers
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh

echo "== C++ unit tests"
ctest --test-dir build --output-on-failure -j2

if [[ "${FORK_SKIP_SANITIZE:-}" != 1 ]]; then
  echo "== C++ unit tests under AddressSanitizer and UBSan"
  cmake -S . -B build/sanitize -G Ninja -DCMAKE_BUILD_TYPE=Debug -DFORK_SANITIZE=ON \
    -DFORK_WERROR=ON >/dev/null
  ninja -C build/sanitize -j2 fork_tests
  ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
    ctest --test-dir build/sanitize --output-on-failure -j2
fi

if [[ "${FORK_SKIP_FUZZ:-}" != 1 ]]; then
  echo "== fuzz targets (libFuzzer, AddressSanitizer and UBSan)"
  bash scripts/fuzz.sh
fi

echo "== prebuilt binaries: linux-x64, linux-arm64, linuxmusl-x64, linuxmusl-arm64"
bash scripts/build-prebuilds.sh

echo "== Kafka broker for the end-to-end tests (jars cached in build/kafka/)"
bash scripts/fetch-kafka.sh

echo "== JS and end-to-end tests"
node --test --test-concurrency=1 --test-timeout=300000 tests/js/ tests/e2e/
