#!/usr/bin/env bash
# Builds the libFuzzer targets of tests/fuzz (clang, AddressSanitizer and
# UBSan) in build/fuzz and runs each for a fixed time, starting from its seed
# corpus in tests/fuzz/corpus/<target>/. What a run discovers stays in
# build/fuzz/corpus/<target>/ for the next run; a crash is written to
# build/fuzz/crashes/<target>/ and fails the script. docs/testing.md has more.
#
#   scripts/fuzz.sh                          every target, 20 s each
#   scripts/fuzz.sh wire expr                only these
#   FORK_FUZZ_SECONDS=600 scripts/fuzz.sh log_reader    one target, longer
set -euo pipefail
cd "$(dirname "$0")/.."

all=(wire log_reader config expr dead_letters http_body)
targets=("$@")
((${#targets[@]})) || targets=("${all[@]}")
seconds=${FORK_FUZZ_SECONDS:-20}
build=build/fuzz

for t in "${targets[@]}"; do
  if [[ ! -d tests/fuzz/corpus/$t ]]; then
    echo "fuzz: unknown target '$t' (targets: ${all[*]})" >&2
    exit 2
  fi
done
if ! command -v clang++ >/dev/null; then
  echo "fuzz: clang++ not found; scripts/install-deps.sh installs it" >&2
  exit 1
fi

if [[ ! -f $build/build.ninja ]]; then
  CC=clang CXX=clang++ cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DFORK_FUZZ=ON -DFORK_BUILD_TESTS=OFF >/dev/null
fi
nice ninja -C "$build" -j2 "${targets[@]/%/_fuzz}"

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:allocator_may_return_null=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}
failed=()
printf '%-14s %10s %9s %8s %8s %8s\n' target runs exec/s cov ft corpus
for t in "${targets[@]}"; do
  work=$build/corpus/$t
  crashes=$build/crashes/$t
  mkdir -p "$work" "$crashes"
  log=$build/$t.log
  # The first directory collects new inputs; the seeds are only read.
  if ! nice "$build/bin/${t}_fuzz" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
      -print_final_stats=1 -artifact_prefix="$crashes/" "$work" "tests/fuzz/corpus/$t" \
      >"$log" 2>&1; then
    failed+=("$t")
  fi
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log")
  last=$(grep -E '^#[0-9]+' "$log" | tail -1)
  cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")
  ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")
  corp=$(sed -n 's/.* corp: \([0-9]*\)\/.*/\1/p' <<<"$last")
  printf '%-14s %10s %9s %8s %8s %8s\n' "$t" "${runs:--}" "${rate:--}" "${cov:--}" "${ft:--}" "${corp:--}"
done

if ((${#failed[@]})); then
  for t in "${failed[@]}"; do
    echo "== fuzz: $t failed; its log ($build/$t.log) ends:" >&2
    tail -40 "$build/$t.log" >&2
    echo "reproduce: $build/bin/${t}_fuzz $build/crashes/$t/<file>" >&2
  done
  exit 1
fi
