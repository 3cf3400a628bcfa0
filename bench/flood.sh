#!/usr/bin/env bash
# Connection-flood benchmark: `tm record` with a bounded connection table on a normal small-packet
# capture and on the same traffic under a SYN flood (every SYN a new connection), side by side
# with `tcpdump -r FILE -w OUT` on the same files.
#
# The flood capture is gen_traffic --small --flood F: F spoofed SYNs after each packet of the
# normal traffic (default F = 2, 400 MiB: ~3.3 M new connections among ~5 M packets). tm runs
# with [connections] max = BENCH_FLOOD_MAX (default 100000), so the table is full from the first
# fraction of a second of the flood on; the issue's bar is tm's packets/s on the flood at least
# half its packets/s on the normal capture. The table pressure (connections evicted because the
# table was full, untracked packets) comes from tm's --json summary.
#
# Environment:
#   TM_BIN, GEN_BIN     binaries (default: build/tm, build/gen_traffic)
#   BENCH_DIR           captures, stores and logs (default: bench/data)
#   BENCH_TOOLS         any of "tm tcpdump" (default: both)
#   BENCH_FLOOD_BYTES   size of both captures (default 400m)
#   BENCH_FLOOD         SYNs per normal packet in the flood capture (default 2)
#   BENCH_FLOOD_MAX     tm's [connections] max (default 100000)
#   BENCH_SEED          generator seed (default 1)
#   BENCH_CUTOFF        tm connection cutoff (default 15k)
#   BENCH_RUNS          runs per tool and capture, interleaved; the median is reported (default 3)
#   BENCH_TIMEOUT       seconds after which a tm run is stopped and reported as such (default 600)
set -euo pipefail

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"  # here, repo, TM_BIN, GEN_BIN, BENCH_DIR, die, log, helpers
BENCH_TOOLS=${BENCH_TOOLS:-tm tcpdump}
BENCH_FLOOD_BYTES=${BENCH_FLOOD_BYTES:-400m}
BENCH_FLOOD=${BENCH_FLOOD:-2}
BENCH_FLOOD_MAX=${BENCH_FLOOD_MAX:-100000}
BENCH_SEED=${BENCH_SEED:-1}
BENCH_CUTOFF=${BENCH_CUTOFF:-15k}
BENCH_RUNS=${BENCH_RUNS:-3}
BENCH_TIMEOUT=${BENCH_TIMEOUT:-600}

want() { [[ " $BENCH_TOOLS " == *" $1 "* ]]; }

[[ -x $GEN_BIN ]] || die "GEN_BIN=$GEN_BIN is not an executable (build the gen_traffic target)"
if want tm; then [[ -x $TM_BIN ]] || die "TM_BIN=$TM_BIN is not an executable"; fi
if want tcpdump; then command -v tcpdump >/dev/null || die "tcpdump not found (scripts/setup.sh installs it)"; fi
[[ $BENCH_RUNS =~ ^[1-9][0-9]*$ ]] || die "BENCH_RUNS must be a positive integer"
mkdir -p "$BENCH_DIR"
BENCH_DIR=$(cd "$BENCH_DIR" && pwd)


gen_capture flood-normal "$BENCH_FLOOD_BYTES" --small
gen_capture flood-syn "$BENCH_FLOOD_BYTES" --small --flood "$BENCH_FLOOD"
flood_conns=$(info_value "$BENCH_DIR/flood-syn.pcap.info" flood-connections)

conf=$BENCH_DIR/flood.conf
printf '[connections]\nmax = %s\n' "$BENCH_FLOOD_MAX" >"$conf"

# run_once NAME TOOL: sets SECS (wall seconds; empty when stopped by the timeout) and, for tm,
# the JSON summary in $BENCH_DIR/tm-NAME.json.
run_once() {
  local name=$1 tool=$2 file=$BENCH_DIR/$1.pcap t0 t1 rc=0
  cat "$file" >/dev/null  # page cache
  t0=$(now_us)
  case $tool in
    tm)
      rm -rf "$BENCH_DIR/store-$name"
      timeout "$BENCH_TIMEOUT" "$TM_BIN" record --config "$conf" --store "$BENCH_DIR/store-$name" \
        --read "$file" --cutoff "$BENCH_CUTOFF" --json >"$BENCH_DIR/tm-$name.json" 2>"$BENCH_DIR/tm-$name.log" ||
        rc=$?
      rm -rf "$BENCH_DIR/store-$name"
      ;;
    tcpdump)
      tcpdump -r "$file" -w "$BENCH_DIR/tcpdump-out.pcap" 2>/dev/null || rc=$?
      rm -f "$BENCH_DIR/tcpdump-out.pcap"
      ;;
  esac
  t1=$(now_us)
  SECS=$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.3f", (b - a) / 1e6}')
  if ((rc == 124)); then
    SECS=""
  elif ((rc != 0)); then
    die "$tool on $name failed (exit $rc); see $BENCH_DIR/tm-$name.log"
  fi
}

median() { sort -g | awk '{v[NR] = $1} END {if (NR == 0) print ""; else if (NR % 2) print v[(NR + 1) / 2]; else printf "%.3f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }

declare -A times=()
for ((r = 1; r <= BENCH_RUNS; r++)); do
  for name in flood-normal flood-syn; do
    for tool in tm tcpdump; do
      want "$tool" || continue
      log "$tool: $name (run $r/$BENCH_RUNS)"
      run_once "$name" "$tool"
      if [[ -z $SECS ]]; then
        log "$tool on $name stopped after $BENCH_TIMEOUT s"
        times[$name.$tool]+="timeout "
      else
        times[$name.$tool]+="$SECS "
      fi
    done
  done
done

{
  echo
  echo "Flood benchmark ($(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) CPUs, [connections] max = $BENCH_FLOOD_MAX," \
    "cutoff $BENCH_CUTOFF, median of $BENCH_RUNS interleaved runs)"
  printf '%-13s %10s %10s %-8s %8s %10s %s\n' capture packets "new conns" tool "wall s" "Mpkt/s" "runs (s)"
  declare -A rate=()
  for name in flood-normal flood-syn; do
    pk=$(info_value "$BENCH_DIR/$name.pcap.info" packets)
    fc=$(info_value "$BENCH_DIR/$name.pcap.info" flood-connections)
    nc=$(($(info_value "$BENCH_DIR/$name.pcap.info" connections) + ${fc:-0}))
    for tool in tm tcpdump; do
      want "$tool" || continue
      runs=${times[$name.$tool]}
      if [[ $runs == *timeout* ]]; then
        med="timeout"
        mp="-"
      else
        med=$(tr ' ' '\n' <<<"$runs" | sed '/^$/d' | median)
        mp=$(awk -v p="$pk" -v s="$med" 'BEGIN {printf "%.3f", p / s / 1e6}')
        rate[$name.$tool]=$mp
      fi
      printf '%-13s %10d %10d %-8s %8s %10s %s\n' "$name" "$pk" "$nc" "$tool" "$med" "$mp" "$runs"
    done
  done
  if want tm && [[ -n ${rate[flood-syn.tm]:-} && -n ${rate[flood-normal.tm]:-} ]]; then
    echo "tm packets/s, flood / normal: $(awk -v a="${rate[flood-syn.tm]}" -v b="${rate[flood-normal.tm]}" \
      'BEGIN {printf "%.2f", a / b}') (the issue's bar: >= 0.5)"
  fi
  if want tm && [[ -s $BENCH_DIR/tm-flood-syn.json ]]; then
    python3 - "$BENCH_DIR/tm-flood-syn.json" "$flood_conns" <<'PY'
import json, sys
j = json.load(open(sys.argv[1]))
seen = sum(c["seen_packets"] for c in j["classes"].values())
stored = sum(c["stored_packets"] for c in j["classes"].values())
cut = sum(c["cut_packets"] for c in j["classes"].values())
dropped = sum(c["dropped_ring_full"] for c in j["classes"].values())
t = j.get("connection_table", {})
print(f"tm on flood-syn (last run): {j['packets']} packets, {j['connections']} connections created "
      f"({sys.argv[2]} flood SYNs), evicted because full {t.get('evicted', '?')}, "
      f"untracked packets {j['untracked_packets']}, peak {t.get('peak', '?')}; "
      f"seen {seen} = stored {stored} + cut {cut} + dropped {dropped}: "
      f"{'exact' if seen == stored + cut + dropped == j['packets'] else 'MISMATCH'}")
PY
  fi
} | tee "$BENCH_DIR/flood-results.txt"
