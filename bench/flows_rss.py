#!/usr/bin/env python3
"""Server memory after a burst of flows queries: how close `tm serve` returns to its idle size.

Records a synthetic pcap of N distinct UDP flows (flows enabled by default) into a fresh store,
starts `tm serve` on it (read-only), reads VmRSS idle, sends ROUNDS rounds of PAR parallel
`/api/v1/flows` requests (each answers every flow), waits for the connections to end, and
reads VmRSS again. Prints the three figures. No assertion: a measurement (issue 19).

  python3 bench/flows_rss.py [--flows 200000] [--par 4] [--rounds 3] [--tm build/tm]
"""
import argparse
import os
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request


def rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def write_pcap(path, n):
    with open(path, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B23C4D, 2, 4, 0, 0, 65535, 1))
        ts = 1_700_000_000 * 10**9
        for i in range(n):
            src = bytes([10, (i >> 16) & 0xff, (i >> 8) & 0xff, i & 0xff])
            udp = struct.pack("!HHHH", 1024 + i % 60000, 53, 8 + 20, 0) + bytes(20)
            ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0, 64, 17, 0, src, bytes([192, 0, 2, 1])) + udp
            fr = b"\x02\x00\x00\x00\x00\x01\x02\x00\x00\x00\x00\x02\x08\x00" + ip
            ts += 10_000
            f.write(struct.pack("<IIII", ts // 10**9, ts % 10**9, len(fr), len(fr)) + fr)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--flows", type=int, default=200000)
    ap.add_argument("--par", type=int, default=4)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--tm", default=os.path.join(os.path.dirname(__file__), "../build/tm"))
    a = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="tm-flows-rss-")
    pcap, store = os.path.join(tmp, "in.pcap"), os.path.join(tmp, "store")
    write_pcap(pcap, a.flows)
    subprocess.run([a.tm, "record", "--store", store, "--read", pcap, "--json"], check=True, stdout=subprocess.DEVNULL)
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    srv = subprocess.Popen([a.tm, "serve", "--store", store, "--listen", "127.0.0.1:%d" % port],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = "http://127.0.0.1:%d" % port
    try:
        for _ in range(100):
            try:
                urllib.request.urlopen(url + "/health", timeout=2).read()
                break
            except OSError:
                time.sleep(0.1)
        time.sleep(1)
        idle = rss_kb(srv.pid)
        peak, sizes = idle, []

        def one():
            with urllib.request.urlopen(url + "/api/v1/flows?format=json", timeout=600) as r:
                sizes.append(len(r.read()))

        for _ in range(a.rounds):
            ts = [threading.Thread(target=one) for _ in range(a.par)]
            for t in ts:
                t.start()
            while any(t.is_alive() for t in ts):
                peak = max(peak, rss_kb(srv.pid))
                time.sleep(0.05)
        time.sleep(7)  # past httplib's 5 s keep-alive: every connection has ended
        after = rss_kb(srv.pid)
        print("flows %d, %d rounds x %d parallel, answers of %d bytes" % (a.flows, a.rounds, a.par, max(sizes)))
        print("VmRSS idle %.1f MB, peak %.1f MB, after %.1f MB" % (idle / 1024, peak / 1024, after / 1024))
    finally:
        srv.terminate()
        srv.wait()
        subprocess.run(["rm", "-rf", tmp])


if __name__ == "__main__":
    sys.exit(main())
