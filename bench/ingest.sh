#!/usr/bin/env bash
# Ingest benchmark: `tm record` against `tcpdump -r FILE -w OUT` on generated captures.
#
# Generates (once, reused while the parameters match) a heavy-tailed capture (default 1 GiB) and a
# small-packet capture (default 300 MiB) with gen_traffic, warms the page cache, then times each
# tool on each capture, the tools' runs interleaved, and prints a table: packets, input bytes,
# best and median wall seconds, CPU seconds, packets/s, MB/s, peak RSS, and tm's wall time
# relative to tcpdump's (best against best, median against median).
#
# Environment:
#   TM_BIN        tm binary (default: build/tm next to this repository's bench/)
#   GEN_BIN       gen_traffic binary (default: build/gen_traffic)
#   BENCH_DIR     captures, stores and logs (default: bench/data in this repository)
#   BENCH_TOOLS   tools to run, any of "tm tm-base tcpdump" (default: tm tcpdump, and tm-base
#                 when BASE_BIN is set)
#   BASE_BIN      a second tm binary (say, the previous commit's), run as "tm-base" in the same
#                 rounds, so a change is measured against its base in the same machine states
#   BENCH_BIG     size of the heavy-tailed capture (default 1g; >= 1g for real numbers)
#   BENCH_SMALL   size of the --small capture (default 300m)
#   BENCH_SEED    generator seed (default 1)
#   BENCH_CUTOFF  tm connection cutoff (default 15k)
#   BENCH_RUNS    rounds per capture, each running every tool once in turn; the fastest and the
#                 median run are reported (default 1)
#   BENCH_KEEP_STORE=1  keep the tm stores (default: each deleted after its run, once measured:
#                 kept, its page cache slows the runs after it on a VM like ours)
#
# The captures' generator output (packets, connections, and the "conn:"/"host:" lines the query
# benchmark uses) is saved next to them as CAPTURE.info.
set -euo pipefail

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"  # here, repo, TM_BIN, GEN_BIN, BENCH_DIR, die, log, helpers
BASE_BIN=${BASE_BIN:-}
BENCH_TOOLS=${BENCH_TOOLS:-tm ${BASE_BIN:+tm-base }tcpdump}
BENCH_BIG=${BENCH_BIG:-1g}
BENCH_SMALL=${BENCH_SMALL:-300m}
BENCH_SEED=${BENCH_SEED:-1}
BENCH_CUTOFF=${BENCH_CUTOFF:-15k}
BENCH_RUNS=${BENCH_RUNS:-1}
BENCH_KEEP_STORE=${BENCH_KEEP_STORE:-0}


want() { [[ " $BENCH_TOOLS " == *" $1 "* ]]; }
for t in $BENCH_TOOLS; do
  [[ $t == tm || $t == tm-base || $t == tcpdump ]] || die "BENCH_TOOLS: unknown tool '$t' (tm, tm-base, tcpdump)"
done

[[ -x $GEN_BIN ]] || die "GEN_BIN=$GEN_BIN is not an executable (build the gen_traffic target)"
if want tm; then
  [[ -x $TM_BIN ]] || die "TM_BIN=$TM_BIN is not an executable (build tm, or set BENCH_TOOLS=tcpdump)"
fi
if want tm-base; then
  [[ -x $BASE_BIN ]] || die "BASE_BIN=$BASE_BIN is not an executable (tm-base needs it)"
fi
if want tcpdump; then
  command -v tcpdump >/dev/null || die "tcpdump not found (scripts/setup.sh installs it)"
fi
[[ $BENCH_RUNS =~ ^[1-9][0-9]*$ ]] || die "BENCH_RUNS must be a positive integer"
mkdir -p "$BENCH_DIR"
BENCH_DIR=$(cd "$BENCH_DIR" && pwd)

TIME_BIN=""
if [[ -x /usr/bin/time ]] && /usr/bin/time -v true >/dev/null 2>&1; then TIME_BIN=/usr/bin/time; fi
if [[ ${BENCH_FORCE_POLL:-0} == 1 ]]; then TIME_BIN=""; fi  # test the fallback

# ---------------------------------------------------------------------------------------------
# Captures.


packet_count() {
  local n
  n=$(info_value "$1.info" packets 2>/dev/null)
  if [[ -z $n ]] && command -v capinfos >/dev/null; then
    n=$(capinfos -M -c "$1" | sed -n 's/^Number of packets: *//p')
  fi
  echo "${n:-0}"
}

# ---------------------------------------------------------------------------------------------
# Measurement. measure LOG CMD... runs CMD with output to LOG and sets RC, WALL (s), CPU (s,
# user+system) and RSS_KB (peak resident set).

now_ns() { date +%s%N; }

poll_hwm() {  # poll_hwm PID OUTFILE: last VmHWM (kB) of PID while it runs
  local pid=$1 out=$2 k v rest
  while [[ -r /proc/$pid/status ]]; do
    while read -r k v rest; do
      if [[ $k == VmHWM: ]]; then echo "$v" >"$out"; break; fi
    done <"/proc/$pid/status" 2>/dev/null || true
    sleep 0.02
  done
}

measure() {
  local logf=$1
  shift
  local t0 t1 tv=$BENCH_DIR/.time.$$
  rm -f "$tv"
  RC=0
  if [[ -n $TIME_BIN ]]; then
    t0=$(now_ns)
    "$TIME_BIN" -v -o "$tv" "$@" >"$logf" 2>&1 || RC=$?
    t1=$(now_ns)
    RSS_KB=$(sed -n 's/^[[:space:]]*Maximum resident set size (kbytes): //p' "$tv")
    CPU=$(awk -F': ' '/User time \(seconds\)|System time \(seconds\)/ {s += $2} END {printf "%.2f", s}' "$tv")
    # /usr/bin/time reports a killed or failing command in its own output
    if grep -q "^Command terminated by signal\|^Command exited with non-zero status" "$tv" && ((RC == 0)); then RC=1; fi
  else
    local hwm=$BENCH_DIR/.hwm.$$ tf=$BENCH_DIR/.btime.$$ poller pid
    rm -f "$hwm" "$tf"
    t0=$(now_ns)
    "$@" >"$logf" 2>&1 &
    pid=$!
    poll_hwm "$pid" "$hwm" &
    poller=$!
    # bash `time` around wait: the child's CPU time is counted when it is reaped
    local TIMEFORMAT='%3U %3S'
    { time wait "$pid"; } 2>"$tf" || RC=$?
    t1=$(now_ns)
    wait "$poller" 2>/dev/null || true
    RSS_KB=$(cat "$hwm" 2>/dev/null || echo 0)
    CPU=$(awk 'NF >= 2 {u = $1; s = $2} END {printf "%.2f", u + s}' "$tf")
    rm -f "$tf"
    rm -f "$hwm"
  fi
  rm -f "$tv"
  WALL=$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.3f", (b - a) / 1e9}')
  : "${RSS_KB:=0}"
}

warm() { cat "$1" >/dev/null; }

# ---------------------------------------------------------------------------------------------
# Runs.

# run_once CAPTURE_NAME TOOL RUN: one run of TOOL on the capture; keeps its wall time in
# WALLS[name.tool] and the best run's CPU time and the highest peak RSS.
declare -A WALLS BEST_WALL BEST_CPU MAX_RSS STORE_BYTES
run_once() {
  local name=$1 tool=$2 r=$3
  local file=$BENCH_DIR/$name.pcap
  local store=$BENCH_DIR/store-$name out=$BENCH_DIR/tcpdump-out-$name.pcap
  local logf=$BENCH_DIR/$tool-$name.log key=$name.$tool
  warm "$file"
  case $tool in
    tm | tm-base)
      local bin=$TM_BIN
      [[ $tool == tm ]] || bin=$BASE_BIN store=$store-base
      rm -rf "$store"
      log "$tool record: $name (run $r/$BENCH_RUNS)"
      measure "$logf" "$bin" record --store "$store" --read "$file" --cutoff "$BENCH_CUTOFF"
      if ((RC != 0)); then
        echo "ingest.sh: error: '$bin record --store $store --read $file --cutoff $BENCH_CUTOFF' failed (exit $RC); last lines of $logf:" >&2
        tail -n 20 "$logf" >&2
        exit 1
      fi
      # tm's store is measured now and deleted, as the others' are: kept through the round, its
      # 1.1 GB of page cache made the runs after it meet this VM's slow writes (a plain dd of
      # 1.1 GB took 4-9 s of system time then), and tm-base measured 5 s where alone it took 1.
      # (BENCH_KEEP_STORE=1 keeps it, at that cost.)
      if [[ $tool == tm ]]; then STORE_BYTES[$name]=$(du -sb "$store" 2>/dev/null | cut -f1); fi
      if [[ $tool != tm || $BENCH_KEEP_STORE != 1 ]]; then rm -rf "$store"; fi
      ;;
    tcpdump)
      rm -f "$out"
      log "tcpdump -r -w: $name (run $r/$BENCH_RUNS)"
      measure "$logf" tcpdump -r "$file" -w "$out"
      rm -f "$out"
      if ((RC != 0)); then
        echo "ingest.sh: error: 'tcpdump -r $file -w $out' failed (exit $RC); last lines of $logf:" >&2
        tail -n 20 "$logf" >&2
        exit 1
      fi
      ;;
  esac
  WALLS[$key]="${WALLS[$key]:-} $WALL"
  if [[ -z ${BEST_WALL[$key]:-} ]] || awk -v a="$WALL" -v b="${BEST_WALL[$key]}" 'BEGIN {exit !(a < b)}'; then
    BEST_WALL[$key]=$WALL
    BEST_CPU[$key]=$CPU
  fi
  if ((RSS_KB > ${MAX_RSS[$key]:-0})); then MAX_RSS[$key]=$RSS_KB; fi
}

median() { tr ' ' '\n' | awk 'NF' | LC_ALL=C sort -g | awk '{v[NR] = $1} END {printf "%.3f", NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }

# run_capture CAPTURE_NAME: BENCH_RUNS rounds, each running every tool once in turn (so a slow
# spell of the machine, which on a shared VM lasts minutes, weighs on both tools alike rather
# than on whichever ran during it), the order rotated each round and the disk synced before
# each run (a store deleted just before does not weigh on one tool); appends a row per tool.
ROWS=()     # table rows (tab-separated)
NOTES=()    # lines printed after the table
run_capture() {
  local name=$1 r tool
  local file=$BENCH_DIR/$name.pcap store=$BENCH_DIR/store-$name
  local tools=() i
  for tool in tm tm-base tcpdump; do
    if want "$tool"; then tools+=("$tool"); fi
  done
  for ((r = 1; r <= BENCH_RUNS; r++)); do
    for ((i = 0; i < ${#tools[@]}; i++)); do
      sync
      run_once "$name" "${tools[(i + r - 1) % ${#tools[@]}]}" "$r"
    done
  done
  if want tm; then
    local sz=${STORE_BYTES[$name]:-0}
    NOTES+=("tm store for $name: $(awk -v s="${sz:-0}" -v i="$(stat -c %s "$file")" \
      'BEGIN {printf "%.1f MB (%.1f%% of the input)", s / 1e6, 100 * s / i}') at cutoff $BENCH_CUTOFF")
    [[ $BENCH_KEEP_STORE == 1 ]] || rm -rf "$store"
  fi
  for tool in tm tm-base tcpdump; do
    if want "$tool"; then
      local key=$name.$tool
      ROWS+=("$name	$(packet_count "$file")	$(stat -c %s "$file")	$tool	${BEST_WALL[$key]}	$(median <<<"${WALLS[$key]}")	${BEST_CPU[$key]}	${MAX_RSS[$key]}")
    fi
  done
}

avail_kb=$(df -Pk "$BENCH_DIR" | awk 'NR == 2 {print $4}')
if ((avail_kb < 4 * 1024 * 1024)); then
  log "warning: only $((avail_kb / 1024)) MiB free in $BENCH_DIR (captures + outputs need ~3-4 GiB)"
fi

gen_capture ingest-heavy "$BENCH_BIG"
gen_capture ingest-small "$BENCH_SMALL" --small

for name in ingest-heavy ingest-small; do
  run_capture "$name"
done

# ---------------------------------------------------------------------------------------------
# Report.

{
  echo
  echo "Ingest benchmark ($(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) CPUs, cutoff $BENCH_CUTOFF," \
    "best and median of $BENCH_RUNS interleaved rounds, RSS via ${TIME_BIN:-/proc VmHWM polling})"
  printf '%-13s %10s %9s %-8s %8s %8s %8s %10s %9s %9s %12s %12s\n' \
    capture packets "input MB" tool "best s" "median s" "cpu s" "Mpkt/s" "MB/s" "RSS MiB" "tm/tcpdump" "(median)"
  for row in "${ROWS[@]}"; do
    IFS=$'\t' read -r name pk by tool wall med cpu rss <<<"$row"
    ratio="-" mratio="-"
    if [[ $tool == tm* && -n ${BEST_WALL[$name.tcpdump]:-} ]]; then
      ratio=$(awk -v a="$wall" -v b="${BEST_WALL[$name.tcpdump]}" 'BEGIN {printf "%.2f", a / b}')
      mratio=$(awk -v a="$med" -v b="$(median <<<"${WALLS[$name.tcpdump]}")" 'BEGIN {printf "%.2f", a / b}')
    fi
    awk -v n="$name" -v pk="$pk" -v by="$by" -v t="$tool" -v w="$wall" -v m="$med" -v c="$cpu" -v r="$rss" \
      -v ra="$ratio" -v mr="$mratio" 'BEGIN {
        if (w <= 0) w = 0.001
        printf "%-13s %10d %9.1f %-8s %8.2f %8.2f %8.2f %10.3f %9.1f %9.1f %12s %12s\n",
               n, pk, by / 1e6, t, w, m, c, pk / w / 1e6, by / w / 1e6, r / 1024, ra, mr }'
  done
  for name in ingest-heavy ingest-small; do
    if [[ -n ${BEST_WALL[$name.tm]:-} && -n ${BEST_WALL[$name.tm-base]:-} ]]; then
      awk -v n="$name" -v a="${BEST_WALL[$name.tm]}" -v b="${BEST_WALL[$name.tm-base]}" \
        -v c="$(median <<<"${WALLS[$name.tm]}")" -v d="$(median <<<"${WALLS[$name.tm-base]}")" \
        'BEGIN {printf "tm/tm-base for %s: %.2f (best), %.2f (median)\n", n, a / b, c / d}'
    fi
  done
  for note in "${NOTES[@]}"; do echo "$note"; done
} | tee "$BENCH_DIR/ingest-results.txt"
