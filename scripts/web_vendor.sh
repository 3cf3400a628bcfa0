#!/bin/sh
# Build step (CMake): installs the web page's charting library (uPlot, version locked in
# src/server/web/package-lock.json) from npm into the build directory and copies the two files
# the page loads into OUT. npm is used at build time only; the files are embedded into
# tm-daemon. When npm or the network is missing, the build goes on: fallback files are written
# and the page shows its rates as a table instead of a chart (and says why).
# Usage: web_vendor.sh SRC_DIR OUT_DIR
set -u
SRC=$1
OUT=$2
mkdir -p "$OUT/npm"
cp "$SRC/package.json" "$SRC/package-lock.json" "$OUT/npm/"
ok=0
if command -v npm >/dev/null 2>&1; then
  if (cd "$OUT/npm" && timeout 300 npm ci --ignore-scripts --no-audit --no-fund --loglevel=error >npm.log 2>&1); then
    d="$OUT/npm/node_modules/uplot/dist"
    if [ -f "$d/uPlot.iife.min.js" ] && [ -f "$d/uPlot.min.css" ]; then
      cp "$d/uPlot.iife.min.js" "$d/uPlot.min.css" "$OUT/" && ok=1
    fi
  fi
fi
if [ "$ok" != 1 ]; then
  echo "web_vendor: WARNING: could not install uPlot from npm (see $OUT/npm/npm.log); the web page shows rates as a table" >&2
  echo "/* uPlot could not be installed from npm at build time: the page shows a table instead. */ window.uPlot = undefined;" >"$OUT/uPlot.iife.min.js"
  echo "/* uPlot missing at build time */" >"$OUT/uPlot.min.css"
fi
exit 0
