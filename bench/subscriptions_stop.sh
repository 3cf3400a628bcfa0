#!/usr/bin/env bash
# Stop benchmark: how long `tm serve` takes to stop while subscriptions with costly filters are
# open. tm serve records a veth's end inside a private network namespace, N subscriptions of a
# filter of 280 host terms (posted as a form: ~6 KB) stream what it writes, an ingest capture is
# replayed at top speed for a few seconds, then SIGTERM; prints the stop's wall time and tm
# serve's last line (what it stored and dropped). Not a `make bench` step: a tool for the stop
# path (stop 34 measured 27 s with 16 subscriptions, before a stop ended them at once).
#
# Needs root, ip, curl and tcpreplay, and bench/ingest.sh's captures (run it first).
#
# Environment (besides lib.sh's BENCH_DIR):
#   DAEMON_BIN     tm-daemon binary (default: build/tm-daemon next to TM_BIN)
#   SUBS           subscriptions (default 16)
#   REPLAY_SECS    seconds of top-speed replay before the stop (default 4)
#   BENCH_CAPTURE  capture in BENCH_DIR replayed (default ingest-small)
set -euo pipefail

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
DAEMON_BIN=${DAEMON_BIN:-$(dirname "$TM_BIN")/tm-daemon}
SUBS=${SUBS:-16}
REPLAY_SECS=${REPLAY_SECS:-4}
BENCH_CAPTURE=${BENCH_CAPTURE:-ingest-small}
PORT=8917
[[ $(id -u) == 0 ]] || die "needs root (a network namespace and a packet socket)"
for t in ip curl tcpreplay; do command -v "$t" >/dev/null || die "$t not found"; done
[[ -x $DAEMON_BIN ]] || die "DAEMON_BIN=$DAEMON_BIN is not an executable"
file=$BENCH_DIR/$BENCH_CAPTURE.pcap
[[ -r $file ]] || die "$file not found (run bench/ingest.sh first)"

ns=tmstop-$$ store=$BENCH_DIR/store-stop err=$BENCH_DIR/stop-serve.err
subs=()
cleanup() {
  for p in "${subs[@]}"; do kill "$p" 2>/dev/null || true; done
  ip netns pids "$ns" 2>/dev/null | xargs -r kill -9 2>/dev/null || true
  ip netns del "$ns" 2>/dev/null || true
  rm -rf "$store"
}
trap cleanup EXIT
rm -rf "$store"
ip netns add "$ns"
in_ns() { ip netns exec "$ns" "$@"; }
in_ns ip link add tmsend type veth peer name tmcap
for i in lo tmsend tmcap; do in_ns ip link set "$i" up; done
ip netns exec "$ns" "$DAEMON_BIN" serve --store "$store" -i tmcap --cutoff none --max-subscriptions $((SUBS + 1)) \
  --listen 127.0.0.1:$PORT --status-interval 0 >/dev/null 2>"$err" &
daemon=$!  # (ip netns exec execs the program: its pid)
api=http://127.0.0.1:$PORT/api/v1
for ((i = 0; i < 100; i++)); do
  in_ns curl -sf "$api/stats" >/dev/null && break
  sleep 0.1
done
filter=$(python3 -c "print(' and '.join('not host 10.99.%d.%d' % (i // 200, i % 200) for i in range(280)))")
for ((i = 0; i < SUBS; i++)); do
  in_ns curl -sN --data-urlencode "filter=$filter" "$api/subscribe" -o /dev/null &
  subs+=($!)
done
active=0
for ((i = 0; i < 100 && active < SUBS; i++)); do
  sleep 0.1
  active=$(in_ns curl -sf "$api/stats" | python3 -c "import json, sys; print(json.load(sys.stdin)['api']['active_subscriptions'])")
done
((active == SUBS)) || die "$active of $SUBS subscriptions open"
log "replaying $BENCH_CAPTURE at top speed for $REPLAY_SECS s into tm serve with $SUBS subscriptions"
in_ns timeout "$REPLAY_SECS" tcpreplay -q -i tmsend -t --loop 1000 "$file" >/dev/null 2>&1 || true
t0=$(now_us)
kill -TERM "$daemon"
wait "$daemon" || die "tm serve exited $? (its stderr: $err)"
t1=$(now_us)
echo "tm serve with $SUBS subscriptions: stopped $(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.2f", (b - a) / 1e6}') s after SIGTERM"
grep "stopped; at the end" "$err" | sed 's/^.*stopped; at the end: /  /'
