#!/usr/bin/env python3
"""Latency of one query through a running `tm serve`, over one kept-alive HTTP connection.

    api_latency.py URL FILTER RUNS

Sends GET /api/v1/query?filter=FILTER RUNS times on the same connection (as an IDS or an
analyst's tool talking to the daemon would), reads each answer in full and checks it is a
pcap. Prints "best_us median_us packets": the fastest and the median request (from sending
it to the last byte of the answer, measured here, client side) and the packets of the last
answer. The first request, which opens the connection and warms the daemon, is not counted.
"""
import http.client
import statistics
import struct
import sys
import time
import urllib.parse


def pcap_packets(body: bytes) -> int:
    if len(body) < 24:
        raise SystemExit("api_latency.py: the answer is not a pcap (%d bytes)" % len(body))
    magic = body[:4]
    if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1"):
        endian = "<"
    elif magic in (b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"):
        endian = ">"
    else:
        raise SystemExit("api_latency.py: the answer is not a pcap (magic %s)" % magic.hex())
    n, off = 0, 24
    while off + 16 <= len(body):
        caplen = struct.unpack_from(endian + "I", body, off + 8)[0]
        off += 16 + caplen
        n += 1
    if off != len(body):
        raise SystemExit("api_latency.py: the pcap answer ends inside a packet")
    return n


def main() -> None:
    if len(sys.argv) != 4:
        raise SystemExit(__doc__)
    url, flt, runs = urllib.parse.urlsplit(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    path = "/api/v1/query?" + urllib.parse.urlencode({"filter": flt})
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=600)
    times, packets = [], 0
    for i in range(runs + 1):
        t0 = time.perf_counter()
        conn.request("GET", path)
        resp = conn.getresponse()
        body = resp.read()
        t1 = time.perf_counter()
        if resp.status != 200:
            raise SystemExit("api_latency.py: HTTP %d: %s" % (resp.status, body[:200].decode(errors="replace")))
        packets = pcap_packets(body)
        if i > 0:
            times.append((t1 - t0) * 1e6)
    print("%d %d %d" % (min(times), statistics.median(times), packets))


if __name__ == "__main__":
    main()
