#!/usr/bin/env bash
# Thread benchmark: `tm record --json` of an ingest capture by one or more tm binaries, their
# runs alternated (the order rotated each round) and back to back, and per binary the wall
# time's best, quartiles and worst with the medians of the CPU time of the capture and writer
# threads (`capture_cpu_seconds`, `writer_cpu_seconds`): which thread bounds a run, and whether
# a change moves it. A change is measured against its base in the same spells of the machine,
# which on a shared VM differ more than most changes do (docs/DESIGN.md, "Open problem:
# minimum-size frames"). Not a `make bench` step: a tool for comparing builds. Run
# bench/ingest.sh first (it generates the captures).
#
# Environment (besides lib.sh's TM_BIN and BENCH_DIR):
#   BENCH_BINS     tm binaries to compare, space-separated (default: TM_BIN, and BASE_BIN when set)
#   BASE_BIN       a second binary (say, the previous commit's build)
#   BENCH_CAPTURE  capture in BENCH_DIR (default ingest-small)
#   BENCH_CUTOFF   connection cutoff (default none)
#   BENCH_RUNS     rounds (default 10)
set -euo pipefail

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
BENCH_BINS=${BENCH_BINS:-$TM_BIN${BASE_BIN:+ $BASE_BIN}}
BENCH_CAPTURE=${BENCH_CAPTURE:-ingest-small}
BENCH_CUTOFF=${BENCH_CUTOFF:-none}
BENCH_RUNS=${BENCH_RUNS:-10}
[[ $BENCH_RUNS =~ ^[1-9][0-9]*$ ]] || die "BENCH_RUNS must be a positive integer"
read -r -a bins <<<"$BENCH_BINS"
for b in "${bins[@]}"; do [[ -x $b ]] || die "'$b' is not an executable"; done
file=$BENCH_DIR/$BENCH_CAPTURE.pcap
[[ -r $file ]] || die "$file not found (run bench/ingest.sh first)"
store=$BENCH_DIR/store-threads raw=$BENCH_DIR/threads-runs.txt
trap 'rm -rf "$store"' EXIT
cat "$file" >/dev/null  # (in the page cache)

: >"$raw"
for ((r = 0; r < BENCH_RUNS; r++)); do
  for ((i = 0; i < ${#bins[@]}; i++)); do
    b=${bins[(i + r) % ${#bins[@]}]}
    rm -rf "$store"
    sync
    log "$b (run $((r + 1))/$BENCH_RUNS)"
    "$b" record --store "$store" --read "$file" --cutoff "$BENCH_CUTOFF" --json >"$BENCH_DIR/threads-out.json" \
      2>"$BENCH_DIR/threads-err.txt" || { cat "$BENCH_DIR/threads-err.txt" >&2; die "'$b record' failed"; }
    echo "$b $(json "$BENCH_DIR/threads-out.json" seconds) $(json "$BENCH_DIR/threads-out.json" capture_cpu_seconds)" \
      "$(json "$BENCH_DIR/threads-out.json" writer_cpu_seconds)" >>"$raw"
  done
done

python3 - "$raw" "$BENCH_CAPTURE" "$BENCH_CUTOFF" "$BENCH_RUNS" <<'PY'
import collections, statistics, sys
runs = collections.OrderedDict()
for line in open(sys.argv[1]):
    b, wall, cap, wr = line.split()
    runs.setdefault(b, []).append((float(wall), float(cap), float(wr)))
print(f"tm record --json of {sys.argv[2]} (cutoff {sys.argv[3]}), {sys.argv[4]} alternated rounds")
print(f"{'binary':40s} {'best':>6s} {'q1':>6s} {'median':>6s} {'q3':>6s} {'worst':>6s} {'capture':>8s} {'writer':>8s}")
for b, v in runs.items():
    w = sorted(x[0] for x in v)
    n = len(w)
    print(f"{b[-40:]:40s} {w[0]:6.3f} {w[n // 4]:6.3f} {statistics.median(w):6.3f} {w[(3 * n) // 4]:6.3f} {w[-1]:6.3f}"
          f" {statistics.median(x[1] for x in v):8.3f} {statistics.median(x[2] for x in v):8.3f}")
print("(seconds; capture and writer: the medians of those threads' CPU time)")
PY
