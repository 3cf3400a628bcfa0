#!/bin/sh
# Installs the Debian packages tm needs to build, test and benchmark.
# Idempotent: packages already present are not reinstalled; apt-get runs only when one is missing.
set -eu
PKGS="build-essential cmake pkg-config libpcap-dev libroaring-dev libzstd-dev liblz4-dev \
libtomlplusplus-dev libcli11-dev libspdlog-dev libfmt-dev nlohmann-json3-dev libcpp-httplib-dev libssl-dev \
libgtest-dev libgmock-dev libbenchmark-dev tcpdump tshark tcpreplay iproute2 python3 python3-dpkt clang-format netbase \
chromium nodejs openssl curl"
missing=""
for p in $PKGS; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
# npm (build time: the web page's chart library; test time: playwright-core for the browser
# tests): Debian's own package unless a nodejs that brings npm is installed already.
command -v npm >/dev/null 2>&1 || missing="$missing npm"
if [ -n "$missing" ]; then
  echo "setup: installing:$missing"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends $missing
fi
