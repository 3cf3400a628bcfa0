#!/bin/sh
# Build step (CMake): installs playwright-core (version locked in tests/browser/package-lock.json)
# from npm into the build directory for the browser tests, which drive Debian's chromium
# (/usr/bin/chromium, installed by scripts/setup.sh). No browser is downloaded. A failure does
# not fail the build: the browser test then fails and says why.
# Usage: browser_deps.sh SRC_DIR OUT_DIR
set -u
SRC=$1
OUT=$2
mkdir -p "$OUT"
cp "$SRC/package.json" "$SRC/package-lock.json" "$OUT/"
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1
if ! command -v npm >/dev/null 2>&1; then
  echo "browser_deps: WARNING: npm missing; the browser tests will fail" >&2
  exit 0
fi
if ! (cd "$OUT" && timeout 300 npm ci --ignore-scripts --no-audit --no-fund --loglevel=error >npm.log 2>&1); then
  echo "browser_deps: WARNING: npm ci failed (see $OUT/npm.log); the browser tests will fail" >&2
fi
exit 0
