#!/usr/bin/env bash
# `make bench`: the ingest, query and restart benchmarks, one after the other, then all their
# tables together.
#
# Environment: passed through to the steps (see the header of each script), plus
#   TM_BIN, GEN_BIN  tm and gen_traffic binaries (default: build/tm, build/gen_traffic)
#   BENCH_DIR        captures, stores and results (default: bench/data; git-ignored, reused)
#   BENCH_STEPS      steps to run, in order (default "ingest query restart micro live";
#                    live needs root and skips itself without it)
#
# A failing step does not stop the others; run.sh then exits 1 and names it.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(dirname "$here")
export TM_BIN=${TM_BIN:-$repo/build/tm}
export GEN_BIN=${GEN_BIN:-$repo/build/gen_traffic}
export BENCH_DIR=${BENCH_DIR:-$here/data}
BENCH_STEPS=${BENCH_STEPS:-ingest query restart micro live}

die() { echo "run.sh: error: $*" >&2; exit 1; }

[[ -x $TM_BIN ]] || die "TM_BIN=$TM_BIN is not an executable (cmake --build build --target tm)"
[[ -x $GEN_BIN ]] || die "GEN_BIN=$GEN_BIN is not an executable (cmake --build build --target gen_traffic)"
read -r -a steps <<<"$BENCH_STEPS"
for step in "${steps[@]}"; do
  [[ -x $here/$step.sh ]] || die "unknown step '$step' in BENCH_STEPS (no executable bench/$step.sh)"
done
mkdir -p "$BENCH_DIR"
BENCH_DIR=$(cd "$BENCH_DIR" && pwd)

declare -A status=() secs=()
failed=()
for step in "${steps[@]}"; do
  echo "=== bench/$step.sh ===" >&2
  rm -f "$BENCH_DIR/$step-results.txt"  # never report an earlier run's figures
  start=$SECONDS
  rc=0
  "$here/$step.sh" || rc=$?
  secs[$step]=$((SECONDS - start))
  if ((rc == 0)); then
    status[$step]=ok
  else
    status[$step]="FAILED (exit $rc)"
    failed+=("$step")
    echo "run.sh: bench/$step.sh failed (exit $rc); continuing with the other steps" >&2
  fi
done

echo
echo "================ Summary: $("$TM_BIN" --version 2>&1 | head -1)," \
  "$(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo 'no git')," \
  "$(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) CPUs ================"
for step in "${steps[@]}"; do
  echo
  echo "--- $step: ${status[$step]}, ${secs[$step]} s ---"
  if [[ -s $BENCH_DIR/$step-results.txt ]]; then
    sed '/^$/d' "$BENCH_DIR/$step-results.txt"
  else
    echo "(no results: see the step's output above)"
  fi
done
echo
if ((${#failed[@]} > 0)); then
  die "failed step(s): ${failed[*]}"
fi
echo "all steps passed; cached data in $BENCH_DIR"
