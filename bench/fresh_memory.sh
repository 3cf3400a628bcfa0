#!/usr/bin/env bash
# Fresh-memory benchmark: `tm record` of an ingest capture with transparent huge pages on and
# off, warm (right after the previous run freed its memory) and cold (after BENCH_IDLE seconds
# idle), interleaved with `tcpdump -r -w`, and each configuration's best and median wall time.
#
# On a virtual machine whose kernel reports free memory to the host (a virtio balloon with free
# page reporting, as Firecracker's), memory tm touches for the first time is faulted in by the
# host as well, huge pages above all (docs/DESIGN.md, "Open problem: minimum-size frames").
# Needs root: it switches /sys/kernel/mm/transparent_hugepage/enabled between "madvise" and
# "never" and puts back what it found. Run bench/ingest.sh first (it generates the captures).
#
# Environment (besides lib.sh's TM_BIN and BENCH_DIR):
#   BENCH_CAPTURE  capture in BENCH_DIR (default ingest-small; ingest-heavy also exists)
#   BENCH_RUNS     rounds (default 4)
#   BENCH_IDLE     seconds of idleness before a cold run (default 4; free page reporting waits ~2 s)
set -euo pipefail

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
BENCH_CAPTURE=${BENCH_CAPTURE:-ingest-small}
BENCH_RUNS=${BENCH_RUNS:-4}
BENCH_IDLE=${BENCH_IDLE:-4}
THP=/sys/kernel/mm/transparent_hugepage/enabled
file=$BENCH_DIR/$BENCH_CAPTURE.pcap
[[ -r $file ]] || die "$file not found (run bench/ingest.sh first)"
[[ -x $TM_BIN ]] || die "TM_BIN=$TM_BIN is not an executable"
[[ -w $THP ]] || die "$THP is not writable (run as root)"
was=$(sed -n 's/.*\[\(.*\)\].*/\1/p' "$THP")
store=$BENCH_DIR/store-fresh out=$BENCH_DIR/tcpdump-out-fresh.pcap
trap 'echo "$was" >"$THP"; rm -rf "$store" "$out"' EXIT

balloon=no
for f in /sys/bus/virtio/drivers/virtio_balloon/virtio*/features; do
  [[ -r $f ]] && [[ $(cut -c6 "$f") == 1 ]] && balloon=yes
done

declare -A times
run() {  # run LABEL THP_MODE IDLE_SECONDS COMMAND...
  local label=$1 mode=$2 idle=$3 t0 t1
  shift 3
  echo "$mode" >"$THP"
  rm -rf "$store" "$out"
  cat "$file" >/dev/null
  sleep "$idle"
  t0=$(now_us)
  "$@" >/dev/null 2>&1 || die "'$*' failed"
  t1=$(now_us)
  times[$label]+="$(((t1 - t0) / 1000)) "
}

for ((r = 1; r <= BENCH_RUNS; r++)); do
  log "round $r/$BENCH_RUNS"
  tm=("$TM_BIN" record --store "$store" --read "$file" --cutoff none)
  run "tcpdump cold" madvise "$BENCH_IDLE" tcpdump -r "$file" -w "$out"
  run "tm huge cold" madvise "$BENCH_IDLE" "${tm[@]}"
  run "tm huge warm" madvise 0 "${tm[@]}"
  run "tm 4k cold" never "$BENCH_IDLE" "${tm[@]}"
  run "tm 4k warm" never 0 "${tm[@]}"
  run "tcpdump warm" madvise 0 tcpdump -r "$file" -w "$out"
done

echo
echo "Fresh memory ($(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) CPUs, $BENCH_CAPTURE, cutoff none," \
  "$BENCH_RUNS rounds, free page reporting: $balloon)"
printf '%-14s %8s %8s   %s\n' run "best ms" "med ms" "all ms"
for label in "tcpdump cold" "tcpdump warm" "tm huge cold" "tm huge warm" "tm 4k cold" "tm 4k warm"; do
  read -r -a v <<<"$(tr ' ' '\n' <<<"${times[$label]}" | sed '/^$/d' | sort -n | tr '\n' ' ')"
  printf '%-14s %8s %8s   %s\n' "$label" "${v[0]}" "${v[$(((${#v[@]} - 1) / 2))]}" "${v[*]}"
done
