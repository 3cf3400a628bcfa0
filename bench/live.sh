#!/usr/bin/env bash
# Live benchmark: a generated capture replayed with tcpreplay over a veth pair, inside a private
# network namespace, at a list of rates and at top speed, into `tcpdump -w` and into
# `tm record -i` (cutoff none and 15k, capture methods libpcap and afpacket, 1 and 2 capture
# threads), one after the other, idle and with a neighbour writing large files at nice 19 (disk
# writeback pressure, as on a sensor that also rotates logs). Prints per rate and per tool: packets sent, received by the capture socket (the kernel's
# count), kept (tcpdump: written; tm: taken in, stored or cut by the cutoff), dropped by the
# kernel (ring full), dropped by tm (its ring to the writer full), and lost before any socket
# (sent but never received: the veth's per-CPU backlog, netdev_max_backlog).
#
# Needs root, ip, tcpreplay and tcpdump; without them it says so and exits 0 (a skipped step).
#
# Environment:
#   TM_BIN, GEN_BIN, BENCH_DIR  as for the other steps (see run.sh)
#   LIVE_SIZE    size of the generated capture (default 1g; gen_traffic, reused while unchanged)
#   LIVE_RATES   rates: pps:N (tcpreplay --pps), mbps:N (--mbps), top (--topspeed)
#                (default "pps:100000 pps:300000 pps:500000 top")
#   LIVE_TOOLS   any of tcpdump tm:METHOD:CUTOFF[:THREADS] (METHOD libpcap|afpacket, CUTOFF
#                none|15k|..., THREADS capture threads, default 1)
#                (default "tcpdump tm:libpcap:none tm:afpacket:none tm:afpacket:none:2 tm:libpcap:15k
#                tm:afpacket:15k tm:afpacket:15k:2")
#   LIVE_LOADS   any of idle neighbour (default "idle neighbour"): neighbour runs a loop writing
#                LIVE_NEIGHBOUR_SIZE files (default 1536m) at nice 19 beside each run
#   LIVE_BUFFER  kernel buffer of every capture (default 256m: tm's default capture.buffer_size;
#                tcpdump -B gets the same)
#   BENCH_SEED   generator seed (default 1)
# Last, per load and tool, the loss-free rate: the highest listed rate at which nothing was lost.
# RSS_MiB is the capture's peak resident memory (VmHWM) just before it is stopped.
set -euo pipefail

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"  # here, repo, TM_BIN, GEN_BIN, BENCH_DIR, die, log, helpers
LIVE_SIZE=${LIVE_SIZE:-1g}
LIVE_RATES=${LIVE_RATES:-pps:100000 pps:300000 pps:500000 top}
LIVE_TOOLS=${LIVE_TOOLS:-tcpdump tm:libpcap:none tm:afpacket:none tm:afpacket:none:2 tm:libpcap:15k tm:afpacket:15k tm:afpacket:15k:2}
LIVE_LOADS=${LIVE_LOADS:-idle neighbour}
LIVE_NEIGHBOUR_SIZE=${LIVE_NEIGHBOUR_SIZE:-1536m}
LIVE_BUFFER=${LIVE_BUFFER:-256m}
BENCH_SEED=${BENCH_SEED:-1}


if [[ $(id -u) != 0 ]]; then log "skipped: needs root (network namespace, veth, packet sockets)"; exit 0; fi
for t in ip tcpreplay tcpdump python3; do
  command -v $t >/dev/null || { log "skipped: $t is not installed"; exit 0; }
done
[[ -x $TM_BIN ]] || die "TM_BIN=$TM_BIN is not an executable"
[[ -x $GEN_BIN ]] || die "GEN_BIN=$GEN_BIN is not an executable"
buffer_bytes=$(python3 -c "import sys; s=sys.argv[1].lower(); m={'k':1<<10,'m':1<<20,'g':1<<30}; print(int(s[:-1])*m[s[-1]] if s[-1] in m else int(s))" "$LIVE_BUFFER")
mkdir -p "$BENCH_DIR"
BENCH_DIR=$(cd "$BENCH_DIR" && pwd)
results=$BENCH_DIR/live-results.txt

gen_capture live "$LIVE_SIZE"
capture=$BENCH_DIR/live.pcap
packets=$(info_value "$capture.info" packets)

ns=tmbench-live-$$
work=$BENCH_DIR/live-work.$$
cap_pid=""
cleanup() {
  stop_neighbour
  if [[ -n $cap_pid ]] && kill -0 "$cap_pid" 2>/dev/null; then kill "$cap_pid" 2>/dev/null || true; wait "$cap_pid" 2>/dev/null || true; fi
  ip netns del "$ns" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
mkdir -p "$work"
in_ns() { ip netns exec "$ns" "$@"; }
ip netns add "$ns"
in_ns sysctl -q -w net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1 || true
in_ns ip link add tmbsend type veth peer name tmbcap
for i in lo tmbsend tmbcap; do in_ns ip link set "$i" up; done
ifindex=$(in_ns ip -o link show tmbcap | cut -d: -f1)

# wait_capturing PID [N]: until PID has N (default 1) packet sockets bound to tmbcap, running,
# with their rings mapped (a capture with N threads starts once all of its sockets are in their
# fanout group: what comes before is not captured)
wait_capturing() {
  python3 - "$1" "$ifindex" "${2:-1}" <<'PY' || die "the capture (pid $1) did not start"
import re, sys, time
pid, ifindex, want = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
for _ in range(1200):
    try:
        mapped = set(re.findall(r"socket:\[(\d+)\]", open("/proc/%d/maps" % pid).read()))
        rows = [l.split() for l in open("/proc/%d/net/packet" % pid).read().splitlines()[1:]]
        if sum(len(r) >= 9 and r[8] in mapped and r[4] == ifindex and r[5] == "1" for r in rows) >= want:
            time.sleep(0.1)  # (the last one joined its group, then the start is set)
            sys.exit(0)
    except OSError:
        pass
    time.sleep(0.05)
sys.exit(1)
PY
}

# run_one RATE TOOL: prints "sent received kept kdrop tmdrop mbps"
run_one() {
  local rate=$1 tool=$2 out=$work/out err=$work/err store=$work/store
  local result
  rm -rf "$store" "$work/dump.pcap"
  if [[ $tool == tcpdump ]]; then
    ip netns exec "$ns" tcpdump -i tmbcap -s 0 -B $((buffer_bytes >> 10)) -w "$work/dump.pcap" >"$out" 2>"$err" &
  else
    local method cutoff threads
    IFS=: read -r _ method cutoff threads <<<"$tool"
    printf '[capture]\nmethod = "%s"\nbuffer_size = "%s"\nthreads = %s\n' "$method" "$LIVE_BUFFER" "${threads:-1}" \
      >"$work/tm.toml"
    ip netns exec "$ns" "$TM_BIN" record --store "$store" --interface tmbcap --json --cutoff "$cutoff" \
      --config "$work/tm.toml" >"$out" 2>"$err" &
  fi
  cap_pid=$!  # ip netns exec execs the capture: same pid
  if [[ $tool == tcpdump ]]; then wait_capturing "$cap_pid"; else wait_capturing "$cap_pid" "${threads:-1}"; fi
  local args=()
  case $rate in
    top) args=(--topspeed) ;;
    pps:*) args=(--pps "${rate#pps:}") ;;
    mbps:*) args=(--mbps "${rate#mbps:}") ;;
    *) die "rate '$rate': expected pps:N, mbps:N or top" ;;
  esac
  local sent mbps replay
  replay=$(in_ns tcpreplay -i tmbsend "${args[@]}" "$capture" 2>&1)
  sent=$(sed -n 's/^[[:space:]]*Successful packets:[[:space:]]*//p' <<<"$replay")
  mbps=$(sed -n 's/^[[:space:]]*Rated:.*, \([0-9.]*\) Mbps.*/\1/p' <<<"$replay" | head -1)
  sleep 2  # the capture's last blocks and its writer
  local rss
  rss=$(awk '/^VmHWM:/ {print $2}' "/proc/$cap_pid/status" 2>/dev/null)  # peak RSS (kB) before it stops
  kill -INT "$cap_pid"
  wait "$cap_pid" || die "$tool exited with an error: $(cat "$err")"
  cap_pid=""
  if [[ $tool == tcpdump ]]; then
    local kept recv kdrop
    kept=$(sed -n 's/^\([0-9]*\) packets captured.*/\1/p' "$err")
    recv=$(sed -n 's/^\([0-9]*\) packets received by filter.*/\1/p' "$err")
    kdrop=$(sed -n 's/^\([0-9]*\) packets dropped by kernel.*/\1/p' "$err")
    result="$sent $recv $kept $kdrop 0 ${mbps:-?} ${rss:-0}"
  else
    result=$(python3 - "$out" "$sent" "${mbps:-?}" "${rss:-0}" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
drop = sum(c["dropped_ring_full"] + c.get("dropped_too_large", 0) for c in s["classes"].values())
print(sys.argv[2], s["kernel"]["received"], s["packets"] - drop, s["kernel"]["dropped"], drop, sys.argv[3], sys.argv[4])
PY
    )
  fi
  # Deleted before the result is printed: the caller reads the line and starts the next run at
  # once, whose capture must not meet this store still being deleted (two rm -rf of one tree
  # printed "Directory not empty", and could delete files of the next run's store).
  rm -rf "$store" "$work/dump.pcap"
  echo "$result"
}

# The neighbour: writes large files over and over at nice 19 until killed (its own process group).
neighbour_pid=""
start_neighbour() {
  local mb
  mb=$(python3 -c "import sys; v=sys.argv[1].lower(); m={'k':1/1024,'m':1,'g':1024}; print(int(float(v[:-1])*m[v[-1]]) if v[-1] in m else int(v)>>20)" "$LIVE_NEIGHBOUR_SIZE")
  setsid nice -n 19 bash -c "while :; do dd if=/dev/zero of='$work/neighbour.bin' bs=1M count=$mb conv=fsync status=none; rm -f '$work/neighbour.bin'; done" &
  neighbour_pid=$!
  sleep 1
}
stop_neighbour() {
  [[ -n $neighbour_pid ]] || return 0
  kill -- -"$neighbour_pid" 2>/dev/null || true
  wait "$neighbour_pid" 2>/dev/null || true
  neighbour_pid=""
  rm -f "$work/neighbour.bin"
}

{
  echo "Live capture: $capture ($packets packets, $(stat -c %s "$capture") bytes), veth in a namespace,"
  echo "kernel buffer $LIVE_BUFFER each, $(nproc) CPUs; loss = sent - kept"
  printf '%-10s %-10s %-22s %8s %10s %10s %10s %10s %10s %10s %7s %8s\n' load rate tool Mbit/s sent received kept kern_drop tm_drop pre_sock loss% RSS_MiB
} | tee "$results"
declare -A LOSSFREE  # load/tool -> the highest rate (in LIVE_RATES order) at which nothing was lost
for load in $LIVE_LOADS; do
  case $load in
    idle) ;;
    neighbour) start_neighbour ;;
    *) die "load '$load': expected idle or neighbour" ;;
  esac
  for rate in $LIVE_RATES; do
    for tool in $LIVE_TOOLS; do
      read -r sent recv kept kdrop tdrop mbps rss < <(run_one "$rate" "$tool")
      pre=$((sent - recv))
      loss=$(python3 -c "import sys; s,k=int(sys.argv[1]),int(sys.argv[2]); print('%.2f' % (100.0*(s-k)/s if s else 0))" "$sent" "$kept")
      rss_mib=$(awk -v k="${rss:-0}" 'BEGIN {printf "%.1f", k / 1024}')
      printf '%-10s %-10s %-22s %8s %10s %10s %10s %10s %10s %10s %7s %8s\n' "$load" "$rate" "$tool" "$mbps" "$sent" "$recv" "$kept" "$kdrop" "$tdrop" "$pre" "$loss" "$rss_mib" |
        tee -a "$results"
      if ((sent > 0 && kept == sent)); then LOSSFREE[$load/$tool]="$rate (${mbps} Mbit/s)"; fi
    done
  done
  stop_neighbour
done
{
  echo "Loss-free rate (the highest of LIVE_RATES at which every sent packet was kept; RSS: peak before the stop):"
  for load in $LIVE_LOADS; do
    for tool in $LIVE_TOOLS; do
      printf '  %-10s %-22s %s\n' "$load" "$tool" "${LOSSFREE[$load/$tool]:-none}"
    done
  done
} | tee -a "$results"
