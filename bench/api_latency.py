#!/usr/bin/env python3
"""Latency of one query through a running `tm serve`, over one kept-alive HTTP connection.

    api_latency.py URL FILTER RUNS OUT

Sends GET /api/v1/query?filter=FILTER RUNS times on the same connection (as an IDS or an
analyst's tool talking to the daemon would) and reads each answer in full. Prints "best_us
median_us": the fastest and the median request (from sending it to the last byte of the
answer, measured here, client side), and writes the last answer to OUT (the caller checks
it). The first request, which opens the connection and warms the daemon, is not counted.
"""
import http.client
import statistics
import sys
import time
import urllib.parse


def main() -> None:
    if len(sys.argv) != 5:
        raise SystemExit(__doc__)
    url, flt, runs, out = urllib.parse.urlsplit(sys.argv[1]), sys.argv[2], int(sys.argv[3]), sys.argv[4]
    path = "/api/v1/query?" + urllib.parse.urlencode({"filter": flt})
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=600)
    times, body = [], b""
    for i in range(runs + 1):
        t0 = time.perf_counter()
        conn.request("GET", path)
        resp = conn.getresponse()
        body = resp.read()
        t1 = time.perf_counter()
        if resp.status != 200:
            raise SystemExit("api_latency.py: HTTP %d: %s" % (resp.status, body[:200].decode(errors="replace")))
        if i > 0:
            times.append((t1 - t0) * 1e6)
    with open(out, "wb") as f:
        f.write(body)
    print("%d %d" % (min(times), statistics.median(times)))


if __name__ == "__main__":
    main()
