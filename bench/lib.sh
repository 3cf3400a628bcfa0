# What the benchmark scripts share, sourced by each before anything else:
#   source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# sets here (the bench/ folder), repo, TM_BIN, GEN_BIN and BENCH_DIR (each overridable from
# the environment), die and log prefixed with the script's name, and the helpers below.

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(dirname "$here")
TM_BIN=${TM_BIN:-$repo/build/tm}
GEN_BIN=${GEN_BIN:-$repo/build/gen_traffic}
BENCH_DIR=${BENCH_DIR:-$here/data}
bench_name=$(basename "${BASH_SOURCE[1]:-bench}")
die() { echo "$bench_name: error: $*" >&2; exit 1; }
log() { echo "$bench_name: $*" >&2; }

now_us() { local t=$EPOCHREALTIME; echo "${t/./}"; }  # bash 5: no fork, microseconds

# json FILE PATH: a value from a JSON file, e.g. json stats.json total.pcap_bytes
json() {
  python3 - "$1" "$2" <<'PY'
import json, sys
v = json.load(open(sys.argv[1]))
for k in sys.argv[2].split("."):
    v = v[k]
print(json.dumps(v) if isinstance(v, (list, dict)) else v)
PY
}

# evict PATH...: drop files, and every file under directories, from the page cache (written back first).
evict() {
  python3 - "$@" <<'PY'
import os, sys
def files(p):
    if os.path.isdir(p):
        for root, _, names in os.walk(p):
            for n in names:
                yield os.path.join(root, n)
    else:
        yield p
for arg in sys.argv[1:]:
    for p in files(arg):
        fd = os.open(p, os.O_RDONLY)
        try:
            os.fdatasync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)
PY
}

# info_value FILE KEY: the value of a "KEY: value" line of a generator .info file
info_value() { sed -n "s/^$2: //p" "$1" | head -1; }

# gen_capture NAME SIZE [gen_traffic options...]: makes $BENCH_DIR/NAME.pcap and NAME.pcap.info
# with $GEN_BIN (seed $GEN_SEED, else $BENCH_SEED, else 1) unless both exist with the same
# parameters and the file has the recorded size. Uses the caller's log and die.
gen_capture() {
  local name=$1 size=$2
  shift 2
  local seed=${GEN_SEED:-${BENCH_SEED:-1}}
  local file=$BENCH_DIR/$name.pcap info=$BENCH_DIR/$name.pcap.info
  local params version
  version=$("$GEN_BIN" --version 2>/dev/null || echo "gen_traffic ?")
  params="--bytes $size --seed $seed${*:+ $*} ($version)"
  if [[ -f $file && -f $info && $(info_value "$info" params) == "$params" &&
    $(info_value "$info" bytes) == "$(stat -c %s "$file")" ]]; then
    log "reusing $file ($params)"
    return
  fi
  log "generating $file ($params)"
  rm -f "$file" "$info"
  "$GEN_BIN" --out "$file.tmp" --bytes "$size" --seed "$seed" "$@" >"$info.tmp" ||
    die "gen_traffic failed for $file"
  echo "params: $params" >>"$info.tmp"
  mv "$info.tmp" "$info"
  mv "$file.tmp" "$file"
}
