#!/usr/bin/env bash
# Restart benchmark: how long tm takes to be ready for queries on a store of many segments.
#
# Builds (once, reused while the parameters match) stores with many small segments by recording
# generated captures with `--cutoff none --segment-size 64k`: by default a 350 MiB and a 700 MiB
# capture (~5,600 and ~11,200 segments), plus a one-segment store as the baseline. For each store
# it times, best of RESTART_RUNS with a warm page cache:
#   stats   `tm stats --store DIR` (reads the sidecar headers: the catalog a restart rebuilds)
#   query   `tm query --store DIR --count 'host X'` (a host from the capture)
#   record  `tm record --store DIR --read tiny.pcap` on a tiny capture: adopting the existing store
#           is most of its work. It runs on a hard-linked copy of the store (new files only; the
#           top-level STORE and LOCK files are real copies), removed afterwards.
# and each once cold (the store's files evicted from the page cache with posix_fadvise(DONTNEED);
# dentries and inodes stay cached). Prints a table with wall time, peak RSS and the time per
# segment, and how the times grow relative to the segment count.
#
# Environment:
#   TM_BIN          tm binary (default: build/tm next to this repository's bench/)
#   GEN_BIN         gen_traffic binary (default: build/gen_traffic)
#   BENCH_DIR       captures, stores and results (default: bench/data in this repository)
#   RESTART_SIZES   capture sizes, one store each (default "350m 700m"; the largest should give
#                   >= 10,000 segments)
#   RESTART_SEGMENT segment size (default 64k)
#   RESTART_SEED    generator seed (default 11)
#   RESTART_RUNS    warm runs per measurement; the fastest is reported (default 3)
#
# Results are also written to $BENCH_DIR/restart-results.txt.
set -euo pipefail
export LC_ALL=C  # '.' in EPOCHREALTIME and printf

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"  # here, repo, TM_BIN, GEN_BIN, BENCH_DIR, die, log, helpers
RESTART_SIZES=${RESTART_SIZES:-350m 700m}
RESTART_SEGMENT=${RESTART_SEGMENT:-64k}
RESTART_SEED=${RESTART_SEED:-11}
RESTART_RUNS=${RESTART_RUNS:-3}


[[ -x $TM_BIN ]] || die "TM_BIN=$TM_BIN is not an executable (build the tm target)"
[[ -x $GEN_BIN ]] || die "GEN_BIN=$GEN_BIN is not an executable (build the gen_traffic target)"
command -v python3 >/dev/null || die "python3 not found (scripts/setup.sh installs it)"
[[ $RESTART_RUNS =~ ^[1-9][0-9]*$ ]] || die "RESTART_RUNS must be a positive integer"
read -r -a sizes <<<"$RESTART_SIZES"
((${#sizes[@]} > 0)) || die "RESTART_SIZES is empty"
mkdir -p "$BENCH_DIR"
BENCH_DIR=$(cd "$BENCH_DIR" && pwd)
results=$BENCH_DIR/restart-results.txt

TIME_BIN=""
if [[ -x /usr/bin/time ]] && /usr/bin/time -f %M -o /dev/null true 2>/dev/null; then TIME_BIN=/usr/bin/time; fi

tmp=$(mktemp -d "$BENCH_DIR/.restart-tmp.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

# ---------------------------------------------------------------------------------------------
# Helpers.

GEN_SEED=$RESTART_SEED

# warm DIR: read every file under DIR
warm() { find "$1" -type f -exec cat {} + >/dev/null; }

# measure LOG CMD...: runs CMD (stdout and stderr to LOG); sets WALL_US and RSS_KB; dies on failure
measure() {
  local logf=$1 t0 t1 rc=0
  shift
  t0=$(now_us)
  if [[ -n $TIME_BIN ]]; then
    "$TIME_BIN" -f %M -o "$tmp/rss" "$@" >"$logf" 2>&1 || rc=$?
  else
    "$@" >"$logf" 2>&1 || rc=$?
  fi
  t1=$(now_us)
  if ((rc != 0)); then
    tail -n 20 "$logf" >&2
    die "'$*' failed (exit $rc)"
  fi
  WALL_US=$((t1 - t0))
  RSS_KB=0
  if [[ -n $TIME_BIN ]]; then RSS_KB=$(tail -n 1 "$tmp/rss"); fi
}

gen_version=$("$GEN_BIN" --out /dev/null --bytes 1 --small 2>/dev/null | sed -n 's/^generator: //p')
tm_version=$("$TM_BIN" --version 2>&1 | head -1)


# build_store NAME: $BENCH_DIR/store-NAME from $BENCH_DIR/NAME.pcap, cached (stamp + packet count)
build_store() {
  local name=$1
  local file=$BENCH_DIR/$name.pcap store=$BENCH_DIR/store-$name stamp=$BENCH_DIR/store-$name.stamp
  local want packets
  want="capture: $(info_value "$file.info" params), $(stat -c %s "$file") bytes; tm: $tm_version;"
  want+=" record: --cutoff none --segment-size $RESTART_SEGMENT"
  packets=$(info_value "$file.info" packets)
  if [[ -f $stamp && $(cat "$stamp") == "$want" && -d $store ]] &&
    "$TM_BIN" stats --store "$store" --json >"$tmp/stats.json" 2>/dev/null &&
    [[ $(json "$tmp/stats.json" total.packets) == "$packets" && $(json "$tmp/stats.json" total.open) == 0 &&
      $(json "$tmp/stats.json" total.bad_sidecar) == 0 ]]; then
    log "reusing store $store"
    return
  fi
  log "recording $file into $store (--cutoff none --segment-size $RESTART_SEGMENT)"
  rm -rf "$store" "$stamp"
  measure "$tmp/record.log" "$TM_BIN" record --store "$store" --read "$file" --cutoff none \
    --segment-size "$RESTART_SEGMENT"
  log "recorded in $(awk -v us="$WALL_US" 'BEGIN {printf "%.1f s", us / 1e6}')"
  "$TM_BIN" stats --store "$store" --json >"$tmp/stats.json"
  [[ $(json "$tmp/stats.json" total.packets) == "$packets" ]] ||
    die "store $store holds $(json "$tmp/stats.json" total.packets) packets, the capture $packets"
  echo "$want" >"$stamp"
}

# clone STORE DEST: hard-linked copy; the top-level files (STORE, LOCK) are real copies
clone() {
  local f
  rm -rf "$2"
  cp -al "$1" "$2"
  for f in "$2"/*; do
    if [[ -f $f ]]; then cp --remove-destination "$1/${f##*/}" "$f"; fi
  done
}

# ---------------------------------------------------------------------------------------------
# Stores.

avail_kb=$(df -Pk "$BENCH_DIR" | awk 'NR == 2 {print $4}')
if ((avail_kb < 4 * 1024 * 1024)); then
  log "warning: only $((avail_kb / 1024)) MiB free in $BENCH_DIR (captures + stores need ~2.5 GiB)"
fi

# The tiny capture is the record test's input and, recorded alone, the one-segment baseline store.
# It starts a day after the others so its packets come after everything in the stores.
gen_capture restart-tiny 32k --start 1700086400
names=(restart-tiny)
for s in "${sizes[@]}"; do
  gen_capture "restart-$s" "$s"
  names+=("restart-$s")
done
for name in "${names[@]}"; do build_store "$name"; done

# ---------------------------------------------------------------------------------------------
# Measurements.

ROWS=()
NOTES=()
tiny=$BENCH_DIR/restart-tiny.pcap
for name in "${names[@]}"; do
  store=$BENCH_DIR/store-$name
  host=$(info_value "$BENCH_DIR/$name.pcap.info" host)
  [[ -n $host ]] || die "no host: line in $BENCH_DIR/$name.pcap.info"
  "$TM_BIN" stats --store "$store" --json >"$tmp/stats.json"
  nseg=$(json "$tmp/stats.json" total.segments)
  nbytes=$(du -sb "$store" | cut -f1)
  log "$name: $nseg segments"

  for what in stats query record; do
    case $what in
      stats) cmd=("$TM_BIN" stats --store "$store") ;;
      query) cmd=("$TM_BIN" query --store "$store" --count "host $host") ;;
      record) cmd=("$TM_BIN" record --store "$tmp/clone" --read "$tiny" --cutoff none --segment-size "$RESTART_SEGMENT") ;;
    esac
    # cold: once, after evicting the store's files
    if [[ $what == record ]]; then clone "$store" "$tmp/clone"; fi
    evict "$store"
    log "$name: $what cold"
    measure "$tmp/$what.log" "${cmd[@]}"
    cold_us=$WALL_US
    if [[ $what == query ]]; then count=$(grep -E '^[0-9]+$' "$tmp/query.log" | tail -n 1); fi
    # warm: best of RESTART_RUNS (plus one unmeasured run to fill the cache)
    warm "$store"
    log "$name: $what warm, best of $RESTART_RUNS"
    best_us="" best_rss=0
    for ((r = 0; r <= RESTART_RUNS; r++)); do
      if [[ $what == record ]]; then clone "$store" "$tmp/clone"; fi
      measure "$tmp/$what.log" "${cmd[@]}"
      ((r > 0)) || continue
      if [[ -z $best_us ]] || ((WALL_US < best_us)); then best_us=$WALL_US; fi
      if ((RSS_KB > best_rss)); then best_rss=$RSS_KB; fi
    done
    rm -rf "$tmp/clone"
    ROWS+=("$name	$nseg	$nbytes	$what	$best_us	$cold_us	$best_rss")
  done
  NOTES+=("$name: query 'host $host' counted: $count")
done

# ---------------------------------------------------------------------------------------------
# Report.

{
  echo
  echo "Restart benchmark ($(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) CPUs, $tm_version)"
  echo "Stores recorded with --cutoff none --segment-size $RESTART_SEGMENT. Wall time of the whole process;" \
    "warm = best of $RESTART_RUNS with the store in the page cache, cold = store files evicted first (fadvise)."
  echo "stats = tm stats; query = tm query --count 'host X'; record = tm record of a 32 KiB capture into the store."
  printf '%-16s %9s %9s %-7s %10s %10s %9s %12s\n' store segments "store MB" step "warm ms" "cold ms" "RSS MiB" "warm us/seg"
  declare -A base_us=()
  for row in "${ROWS[@]}"; do
    IFS=$'\t' read -r name nseg nbytes what best cold rss <<<"$row"
    if [[ $name == restart-tiny ]]; then base_us[$what]=$best; fi
    awk -v n="$name" -v s="$nseg" -v b="$nbytes" -v w="$what" -v t="$best" -v c="$cold" -v r="$rss" \
      -v z="${base_us[$what]:-0}" 'BEGIN {
        per = s > 1 ? sprintf("%.1f", (t - z) / (s - 1)) : "-"
        printf "%-16s %9d %9.1f %-7s %10.1f %10.1f %9.1f %12s\n", n, s, b / 1e6, w, t / 1e3, c / 1e3, r / 1024, per }'
  done
  echo "us/seg = (warm time - the one-segment store's) / (segments - 1): constant if the cost is linear."
  # growth between the two largest stores
  if ((${#ROWS[@]} >= 9)); then
    n=${#ROWS[@]}
    for k in 3 2 1; do
      IFS=$'\t' read -r name1 s1 _ what t1 _ _ <<<"${ROWS[n - k - 3]}"
      IFS=$'\t' read -r name2 s2 _ _ t2 _ _ <<<"${ROWS[n - k]}"
      awk -v w="$what" -v a="$name1" -v b="$name2" -v s1="$s1" -v s2="$s2" -v t1="$t1" -v t2="$t2" 'BEGIN {
        printf "growth %-6s %s -> %s: segments x%.2f, warm time x%.2f (%s)\n", w, a, b, s2 / s1, t2 / t1,
               (t2 / t1 <= 1.1 * s2 / s1 ? "linear or better" : "FASTER THAN LINEAR") }'
    done
  fi
  IFS=$'\t' read -r name nseg _ _ _ _ _ <<<"${ROWS[${#ROWS[@]} - 1]}"
  worst=0
  for row in "${ROWS[@]}"; do
    IFS=$'\t' read -r rname _ _ _ best cold _ <<<"$row"
    if [[ $rname == "$name" ]]; then
      if ((best > worst)); then worst=$best; fi
      if ((cold > worst)); then worst=$cold; fi
    fi
  done
  awk -v n="$nseg" -v w="$worst" 'BEGIN {
    printf "largest store: %d segments (target >= 10,000: %s); slowest step %.0f ms warm or cold (target < 1 s: %s)\n",
           n, (n >= 10000 ? "met" : "NOT REACHED"), w / 1e3, (w < 1e6 ? "met" : "MISSED") }'
  for note in "${NOTES[@]}"; do echo "$note"; done
} | tee "$results"
