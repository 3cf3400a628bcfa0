#!/usr/bin/env bash
# Query benchmark: indexed `tm query` against a `tcpdump -r` scan of every segment file.
#
# Generates (once, reused while the parameters match) a >= 5 GiB heavy-tailed capture with
# gen_traffic, records it with `tm record --cutoff none --segment-size 256m` into a cached store
# (rebuilt when the capture, the tm version or the record options change, or when the store does
# not hold the capture's packets), then times three queries:
#   connection  one TCP connection's 5-tuple (the "conn:" line gen_traffic reports)
#   host        one host (the "host:" line)
#   dns         port 53 and udp
# For each: one cold run (the store's files evicted from the page cache with
# posix_fadvise(DONTNEED); dentries and inodes stay cached, so "cold-ish"), then the best of
# QUERY_RUNS warm runs (the latency figure), then `tcpdump -r SEG -w OUT FILTER` over every
# segment file with a warm page cache. tm's answer and tcpdump's must hold the same packets.
# Then the same queries through the daemon: `tm serve --store STORE` (read-only) and
# bench/api_latency.py, which sends each query QUERY_RUNS times over one kept-alive HTTP
# connection (as an IDS asking for a host's history would) and times each answer to its last
# byte: no process start-up in that figure. Last, `tm flows` of the connection and of the host
# (the flow records, best and median of QUERY_RUNS).
# Prints latency, candidates read, matches, tcpdump's time and the speedup, plus the index size
# relative to the pcap data (`tm stats --json`).
#
# Environment:
#   TM_BIN        tm binary (default: build/tm next to this repository's bench/)
#   GEN_BIN       gen_traffic binary (default: build/gen_traffic)
#   BENCH_DIR     captures, stores and results (default: bench/data in this repository)
#   QUERY_BYTES   capture size (default 5g; the issue asks for >= 5 GB)
#   QUERY_SEED    generator seed (default 7)
#   QUERY_SEGMENT tm segment size (default 256m)
#   QUERY_RUNS    warm runs per query; the fastest is reported (default 5)
#   QUERY_MIN_FREE_GB  free space required before generating or recording (default 15)
#
# Results are also written to $BENCH_DIR/query-results.txt.
set -euo pipefail
export LC_ALL=C  # '.' in EPOCHREALTIME and printf

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"  # here, repo, TM_BIN, GEN_BIN, BENCH_DIR, die, log, helpers
QUERY_BYTES=${QUERY_BYTES:-5g}
QUERY_SEED=${QUERY_SEED:-7}
QUERY_SEGMENT=${QUERY_SEGMENT:-256m}
QUERY_RUNS=${QUERY_RUNS:-5}
QUERY_MIN_FREE_GB=${QUERY_MIN_FREE_GB:-15}


[[ -x $TM_BIN ]] || die "TM_BIN=$TM_BIN is not an executable (build the tm target)"
[[ -x $GEN_BIN ]] || die "GEN_BIN=$GEN_BIN is not an executable (build the gen_traffic target)"
command -v tcpdump >/dev/null || die "tcpdump not found (scripts/setup.sh installs it)"
command -v python3 >/dev/null || die "python3 not found (scripts/setup.sh installs it)"
[[ $QUERY_RUNS =~ ^[1-9][0-9]*$ ]] || die "QUERY_RUNS must be a positive integer"
[[ $QUERY_MIN_FREE_GB =~ ^[0-9]+$ ]] || die "QUERY_MIN_FREE_GB must be a whole number of GB"
mkdir -p "$BENCH_DIR"
BENCH_DIR=$(cd "$BENCH_DIR" && pwd)

capture=$BENCH_DIR/query.pcap
info=$capture.info
store=$BENCH_DIR/store-query
stamp=$BENCH_DIR/store-query.stamp  # outside the store: tm would list it as a foreign file
results=$BENCH_DIR/query-results.txt

tmp=$(mktemp -d "$BENCH_DIR/.query-tmp.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

# ---------------------------------------------------------------------------------------------
# Helpers.


warm() { cat "$@" >/dev/null; }

# pcap_count FILE...: packets in pcap files (summed)
pcap_count() {
  local f n=0 c
  for f in "$@"; do
    c=$(tcpdump -r "$f" -nn -q 2>/dev/null | wc -l)
    n=$((n + c))
  done
  echo "$n"
}

# pcap_digest FILE...: digest of the packets' text (timestamps and headers), order-insensitive.
# Microsecond timestamps (`tcpdump -w` writes microsecond pcap files), absolute TCP sequence numbers.
pcap_digest() {
  local f
  for f in "$@"; do tcpdump -r "$f" -nn -tt -S 2>/dev/null; done |
    sort | md5sum | cut -d' ' -f1
}

need_space() {
  local avail_kb
  avail_kb=$(df -Pk "$BENCH_DIR" | awk 'NR == 2 {print $4}')
  if ((avail_kb < QUERY_MIN_FREE_GB * 1000000000 / 1024)); then
    die "only $((avail_kb * 1024 / 1000000000)) GB free in $BENCH_DIR; the query benchmark needs" \
      ">= $QUERY_MIN_FREE_GB GB to $1 (a $QUERY_BYTES capture plus a store of the same size):" \
      "free some space or point BENCH_DIR elsewhere"
  fi
}


# ---------------------------------------------------------------------------------------------
# The capture (cached).

gen_version=$("$GEN_BIN" --out /dev/null --bytes 1 --small 2>/dev/null | sed -n 's/^generator: //p')
params="--bytes $QUERY_BYTES --seed $QUERY_SEED (${gen_version:-gen_traffic ?})"
reuse=0
if [[ -f $capture && -f $info ]] &&
  [[ $(info_value "$info" params) == "$params" && $(info_value "$info" bytes) == "$(stat -c %s "$capture")" ]]; then
  reuse=1
fi
if ((reuse)); then
  log "reusing $capture ($params)"
else
  need_space "generate the capture"
  log "generating $capture ($params)"
  rm -f "$capture" "$info" "$stamp"
  "$GEN_BIN" --out "$capture.tmp" --bytes "$QUERY_BYTES" --seed "$QUERY_SEED" >"$info.tmp" ||
    die "gen_traffic failed for $capture"
  echo "params: $params" >>"$info.tmp"
  mv "$info.tmp" "$info"
  mv "$capture.tmp" "$capture"
fi
cap_bytes=$(stat -c %s "$capture")
cap_packets=$(info_value "$info" packets)
conn=$(info_value "$info" conn)
host=$(info_value "$info" host)
[[ -n $conn && -n $host && -n $cap_packets ]] || die "$info has no packets:/conn:/host: lines (regenerate: rm $capture)"
read -r proto src sport dst dport <<<"$conn"
[[ $proto == tcp ]] || die "unexpected conn: line in $info: $conn"

# ---------------------------------------------------------------------------------------------
# The store (cached).

tm_version=$("$TM_BIN" --version 2>&1 | head -1)
want_stamp="capture: $params, $cap_bytes bytes; tm: $tm_version; record: --cutoff none --segment-size $QUERY_SEGMENT"
store_ok() {
  [[ -f $stamp && $(cat "$stamp") == "$want_stamp" && -d $store ]] || return 1
  "$TM_BIN" stats --store "$store" --json >"$tmp/stats.json" 2>/dev/null || return 1
  [[ $(json "$tmp/stats.json" total.packets) == "$cap_packets" &&
    $(json "$tmp/stats.json" total.bad_sidecar) == 0 &&
    $(json "$tmp/stats.json" total.open) == 0 ]]
}
record_note="reused"
if store_ok; then
  log "reusing store $store"
else
  need_space "record the store"
  log "recording $capture into $store (--cutoff none --segment-size $QUERY_SEGMENT)"
  rm -rf "$store" "$stamp"
  t0=$(now_us)
  "$TM_BIN" record --store "$store" --read "$capture" --cutoff none --segment-size "$QUERY_SEGMENT" --json \
    >"$tmp/record.json" 2>"$tmp/record.log" || {
    tail -n 20 "$tmp/record.log" >&2
    die "tm record --store $store --read $capture --cutoff none --segment-size $QUERY_SEGMENT failed"
  }
  t1=$(now_us)
  record_note=$(awk -v us=$((t1 - t0)) -v b="$cap_bytes" 'BEGIN {printf "recorded now in %.1f s (%.0f MB/s)", us / 1e6, b / us}')
  echo "$want_stamp" >"$stamp"
  store_ok || die "the new store does not hold the capture's $cap_packets packets (see tm stats --store $store)"
fi
"$TM_BIN" stats --store "$store" --json >"$tmp/stats.json"
pcap_total=$(json "$tmp/stats.json" total.pcap_bytes)
index_total=$(json "$tmp/stats.json" total.index_bytes)
nseg=$(json "$tmp/stats.json" total.segments)
mapfile -t segs < <(find "$store" -mindepth 2 -maxdepth 2 -name '*.pcap' | sort)
mapfile -t store_files < <(find "$store" -mindepth 2 -maxdepth 2 -type f \( -name '*.pcap' -o -name '*.idx' \) | sort)
((${#segs[@]} > 0)) || die "no segment files in $store"

# ---------------------------------------------------------------------------------------------
# Queries.

names=(connection host dns)
declare -A FILTER=(
  [connection]="host $src and host $dst and port $sport and port $dport and tcp"
  [host]="host $host"
  [dns]="port 53 and udp"
)

# The daemon, read-only on the store, for the API figures.
api_port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$TM_BIN" serve --store "$store" --listen "127.0.0.1:$api_port" 2>"$tmp/serve.log" &
serve_pid=$!
trap 'kill $serve_pid 2>/dev/null; rm -rf "$tmp"' EXIT
for ((i = 0; i < 100; i++)); do
  python3 -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$api_port/health')" 2>/dev/null && break
  kill -0 $serve_pid 2>/dev/null || die "tm serve --store $store exited: $(cat "$tmp/serve.log")"
  sleep 0.1
done

# tm_query NAME OUT: one run; sets WALL_US, CAND, MATCH, SELF_MS
tm_query() {
  local name=$1 out=$2 t0 t1 line
  rm -f "$out"
  t0=$(now_us)
  "$TM_BIN" query --store "$store" -w "$out" "${FILTER[$name]}" 2>"$tmp/tm.log" || {
    cat "$tmp/tm.log" >&2
    die "tm query --store $store -w $out '${FILTER[$name]}' failed"
  }
  t1=$(now_us)
  WALL_US=$((t1 - t0))
  line=$(grep -E '[0-9]+ candidates, [0-9]+ matched, [0-9.]+ ms' "$tmp/tm.log" | tail -1) ||
    die "no summary line in tm query's stderr: $(cat "$tmp/tm.log")"
  read -r CAND MATCH SELF_MS < <(sed -E 's/.* ([0-9]+) candidates, ([0-9]+) matched, ([0-9.]+) ms.*/\1 \2 \3/' <<<"$line")
}

ROWS=()
FAILS=()
log "warming the page cache with the store ($((pcap_total / 1000000)) MB)"
warm "${store_files[@]}"
for name in "${names[@]}"; do
  filter=${FILTER[$name]}
  out=$tmp/tm-$name.pcap

  log "$name: tm query cold ('$filter')"
  evict "${store_files[@]}"
  tm_query "$name" "$out"
  cold_us=$WALL_US

  log "$name: tm query warm, best of $QUERY_RUNS"
  walls=()
  best_us="" best_self=""
  for ((r = 1; r <= QUERY_RUNS; r++)); do
    tm_query "$name" "$out"
    walls+=("$WALL_US")
    if [[ -z $best_us ]] || ((WALL_US < best_us)); then best_us=$WALL_US best_self=$SELF_MS; fi
  done
  median_us=$(printf '%s\n' "${walls[@]}" | sort -n | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}')
  cand=$CAND match=$MATCH

  log "$name: through tm serve's API, best of $QUERY_RUNS"
  read -r api_us api_median_us < <(python3 "$here/api_latency.py" "http://127.0.0.1:$api_port" "$filter" "$QUERY_RUNS" "$tmp/api-$name.pcap") ||
    die "api_latency.py failed for '$filter' (tm serve: $(tail -n 5 "$tmp/serve.log"))"

  log "$name: tcpdump -r over ${#segs[@]} segment files (warm)"
  warm "${segs[@]}"
  i=0
  tdouts=()
  t0=$(now_us)
  for f in "${segs[@]}"; do
    tdouts+=("$tmp/td-$name-$i.pcap")
    tcpdump -r "$f" -w "$tmp/td-$name-$i.pcap" "$filter" 2>>"$tmp/tcpdump.log" ||
      die "tcpdump -r $f -w ... '$filter' failed: $(tail -n 5 "$tmp/tcpdump.log")"
    i=$((i + 1))
  done
  t1=$(now_us)
  td_us=$((t1 - t0))

  log "$name: checking that tm and tcpdump found the same packets"
  td_count=$(pcap_count "${tdouts[@]}")
  tm_count=$(pcap_count "$out")
  check=ok
  if [[ $(pcap_digest "$tmp/api-$name.pcap") != "$(pcap_digest "$out")" ]]; then
    check="API MISMATCH"
    FAILS+=("$name: the API's answer differs from tm query's")
  elif [[ $td_count != "$match" || $tm_count != "$match" ]]; then
    check="COUNT MISMATCH"
    FAILS+=("$name: tm reported $match matched and wrote $tm_count packets; tcpdump found $td_count")
  elif [[ $(pcap_digest "$out") != "$(pcap_digest "${tdouts[@]}")" ]]; then
    check="CONTENT MISMATCH"
    FAILS+=("$name: same count ($match) but tm's packets differ from tcpdump's")
  fi
  rm -f "${tdouts[@]}" "$out" "$tmp/api-$name.pcap"
  ROWS+=("$name	$best_us	$median_us	$best_self	$cold_us	$cand	$match	$td_us	$td_count	$check	$api_us	$api_median_us")
done

# Flow records of the same connection and host: `tm flows` reads a flow file's index piece by
# piece and only the blocks holding a candidate record. Best and median of QUERY_RUNS, warm.
FLOW_ROWS=()
for name in connection host; do
  log "$name: tm flows, best of $QUERY_RUNS"
  walls=()
  for ((r = 1; r <= QUERY_RUNS; r++)); do
    t0=$(now_us)
    "$TM_BIN" flows --store "$store" --format json "${FILTER[$name]}" >"$tmp/flows.json" 2>"$tmp/flows.log" ||
      die "tm flows --store $store '${FILTER[$name]}' failed: $(tail -n 5 "$tmp/flows.log")"
    t1=$(now_us)
    walls+=($((t1 - t0)))
  done
  sorted=$(printf '%s\n' "${walls[@]}" | sort -n)
  FLOW_ROWS+=("$name	$(head -1 <<<"$sorted")	$(awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}' <<<"$sorted")	$(wc -l <"$tmp/flows.json")	$(tail -1 "$tmp/flows.log")")
done

# ---------------------------------------------------------------------------------------------
# Report.

{
  echo
  echo "Query benchmark ($(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) CPUs, $tm_version)"
  awk -v b="$cap_bytes" -v p="$cap_packets" -v n="$nseg" -v s="$QUERY_SEGMENT" -v pb="$pcap_total" -v note="$record_note" \
    -v seed="$QUERY_SEED" 'BEGIN {
      printf "store: %.2f GB capture (%d packets, seed %s), cutoff none, %d segments of %s, %.2f GB pcap; %s\n",
             b / 1e9, p, seed, n, s, pb / 1e9, note }'
  echo "tm: wall time of the whole process incl. start-up (warm = page cache holds the store, best" \
    "and median of $QUERY_RUNS; cold = store files evicted with fadvise first)."
  echo "api: the same query through tm serve (read-only on the store), over one kept-alive HTTP connection, best and median of $QUERY_RUNS (bench/api_latency.py)."
  echo "tcpdump: 'tcpdump -r SEG -w OUT FILTER' for each of the ${#segs[@]} segment files, warm page cache, one run."
  printf '%-11s %10s %10s %9s %9s %11s %10s %10s %10s %9s %9s %9s %9s  %s\n' \
    query "warm ms" "median ms" "self ms" "cold ms" candidates matched "tcpdump s" "td pkts" speedup \
    "api ms" "api med" "api x" check
  for row in "${ROWS[@]}"; do
    IFS=$'\t' read -r name best med self cold cand match td tdc check api apimed <<<"$row"
    awk -v n="$name" -v b="$best" -v m="$med" -v s="$self" -v c="$cold" -v ca="$cand" -v ma="$match" \
      -v t="$td" -v tc="$tdc" -v ch="$check" -v a="$api" -v am="$apimed" 'BEGIN {
        printf "%-11s %10.1f %10.1f %9.1f %9.1f %11d %10d %10.2f %10d %8.0fx %9.2f %9.2f %8.0fx  %s\n",
               n, b / 1e3, m / 1e3, s, c / 1e3, ca, ma, t / 1e6, tc, t / b, a / 1e3, am / 1e3, t / a, ch }'
  done
  for name in "${names[@]}"; do printf '  %-11s %s\n' "$name" "${FILTER[$name]}"; done
  awk -v i="$index_total" -v p="$pcap_total" 'BEGIN {
    r = 100 * i / p
    printf "index: %.1f MB for %.2f GB of pcap = %.2f%% (target <= 5%%: %s)\n", i / 1e6, p / 1e9, r, (r <= 5 ? "met" : "MISSED") }'
  IFS=$'\t' read -r _ best _ _ _ _ _ td _ _ api _ <<<"${ROWS[0]}"
  awk -v b="$best" -v t="$td" -v a="$api" 'BEGIN {
    printf "one connection: %.1f ms warm (target < 50 ms: %s), %.0fx faster than the tcpdump scan (target >= 1000x: %s)\n",
           b / 1e3, (b < 50000 ? "met" : "MISSED"), t / b, (t / b >= 1000 ? "met" : "MISSED")
    printf "one connection through the API: %.2f ms, %.0fx faster than the tcpdump scan (target >= 1000x: %s)\n",
           a / 1e3, t / a, (t / a >= 1000 ? "met" : "MISSED") }'
  echo "tm flows (flow records), warm, best and median of $QUERY_RUNS:"
  for row in "${FLOW_ROWS[@]}"; do
    IFS=$'\t' read -r name best med n summary <<<"$row"
    awk -v n="$name" -v b="$best" -v m="$med" -v r="$n" -v s="$summary" 'BEGIN {
      printf "  %-11s %8.1f ms %8.1f ms  %d flows  (%s)\n", n, b / 1e3, m / 1e3, r, s }'
  done
  for f in "${FAILS[@]}"; do echo "MISMATCH: $f"; done
} | tee "$results"

((${#FAILS[@]} == 0)) || die "tm's answers differ from tcpdump's (see above)"
