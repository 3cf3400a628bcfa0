#!/usr/bin/env bash
# Micro benchmarks (Google Benchmark): every build/micro_* next to TM_BIN, e.g. micro_seal (a
# segment seal's grouping of the index log and its bitmap writing). Results go to
# $BENCH_DIR/micro-results.txt.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
TM_BIN=${TM_BIN:-$(dirname "$here")/build/tm}
BENCH_DIR=${BENCH_DIR:-$here/data}
bins=("$(dirname "$TM_BIN")"/micro_*)
[[ -x ${bins[0]} ]] || { echo "micro.sh: no micro_* binaries next to $TM_BIN (Google Benchmark missing?)" >&2; exit 1; }
out="$BENCH_DIR/micro-results.txt"
: >"$out"
for b in "${bins[@]}"; do
  echo "== $(basename "$b")" | tee -a "$out"
  "$b" --benchmark_repetitions=3 --benchmark_report_aggregates_only=true 2>/dev/null | tee -a "$out"
done
