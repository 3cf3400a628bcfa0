"""Query answers of several link types (issue 18 item 3): a store recorded from corpus captures of
Ethernet, raw IP and Linux cooked capture answers a query over all of them as pcapng (one interface
per link type, nanosecond timestamps) that tshark reads packet for packet and byte for byte as the
inputs hold them; --format pcap keeps the old behaviour (one link type, a warning); an answer of one
link type in pcapng is read by tcpdump as well (libpcap 1.10 reads no pcapng whose interfaces differ
in link type). The same through the HTTP API (format=, Content-Type) and a tm frontend's merge."""
import json
import os
import subprocess
import unittest

from test_cluster import Cluster
from tmtest import TM, StoreTest, corpus, listening_port, read_pcap, record, run, tcpdump_packets, tm

ETH = corpus("link", "icmp_dot1q.pcap")      # link type 1, 2008
RAW = corpus("link", "rotation.pcap")        # link type 101, 2011
SLL = corpus("link", "linuxsll-arp.pcap")    # link type 113, 2020
INPUTS = [(ETH, 1), (RAW, 101), (SLL, 113)]
PCAPNG_MAGIC = b"\x0a\x0d\x0d\x0a"


def input_packets(files):
    """(ts_ns, wirelen, bytes) of every packet of the inputs, in time order (ties: by bytes)."""
    out = []
    for f in files:
        out += [(ts, wire, data) for ts, cap, wire, data in read_pcap(f)]
    return sorted(out)


def tshark_packets(path):
    """(ts_ns, wirelen, bytes) per packet as tshark reads the file, and the interfaces' link types."""
    p = run(["tshark", "-r", path, "-T", "json", "-x"])
    pkts, ifaces = [], set()
    for pk in json.loads(p.stdout):
        layers = pk["_source"]["layers"]
        frame = layers["frame"]
        s, frac = frame["frame.time_epoch"].split(".")
        ts = int(s) * 10**9 + int(frac.ljust(9, "0")[:9])
        raw = layers["frame_raw"]
        raw = raw[0] if isinstance(raw, list) else raw
        pkts.append((ts, int(frame["frame.len"]), bytes.fromhex(raw)))
        ifaces.add(frame.get("frame.interface_id"))
    return pkts, ifaces


def time_range(path):
    """--from/--to (epoch seconds with nanoseconds) covering exactly the packets of a capture."""
    ts = [t for t, _, _, _ in read_pcap(path)]
    lo, hi = min(ts), max(ts) + 1
    return "%d.%09d" % (lo // 10**9, lo % 10**9), "%d.%09d" % (hi // 10**9, hi % 10**9)


class MixedLinkTypes(Cluster):
    def setUp(self):
        super().setUp()
        s = record(self.store, [f for f, _ in INPUTS], "--cutoff", "none")
        self.assertEqual(s["packets"], sum(len(read_pcap(f)) for f, _ in INPUTS))

    def check_all(self, out, what):
        with open(out, "rb") as f:
            self.assertEqual(f.read(4), PCAPNG_MAGIC, what + ": not a pcapng")
        got, ifaces = tshark_packets(out)
        want = input_packets([f for f, _ in INPUTS])
        self.assertEqual(len(got), len(want), what + ": packet count")
        self.assertEqual(sum(len(d) for _, _, d in got), sum(len(d) for _, _, d in want), what + ": bytes")
        self.assertEqual(sorted(got), want, what)
        self.assertEqual(ifaces, {"0", "1", "2"}, what + ": one interface per link type")

    def test_auto_writes_pcapng_with_every_packet(self):
        out = self.path("all.pcapng")
        p = tm("query", "--store", self.store, "-w", out)
        err = p.stderr.decode()
        self.assertIn("written as pcapng (link types 1, 101, 113)", err)
        self.assertNotIn("left out", err)
        self.check_all(out, "auto")
        p = tm("query", "--store", self.store, "--format", "pcapng", "-w", out)
        self.check_all(out, "--format pcapng")

    def test_format_pcap_keeps_one_link_type_and_warns(self):
        out = self.path("eth.pcap")
        p = tm("query", "--store", self.store, "--format", "pcap", "-w", out)
        err = p.stderr.decode()
        self.assertIn("32 matching packets of another link type than 1 were left out", err)
        self.assertIn("written as pcap (link type 1)", err)
        self.assertSamePackets(tcpdump_packets(out), tcpdump_packets(ETH), "--format pcap")
        p = tm("query", "--store", self.store, "--format", "pcap-ng", "-w", out, check=False)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("pcap-ng", p.stderr.decode())

    def test_one_link_type_in_pcapng_is_read_by_tcpdump(self):
        for f, lt in INPUTS:
            with self.subTest(input=os.path.basename(f)):
                lo, hi = time_range(f)
                out = self.path("one.pcapng")
                p = tm("query", "--store", self.store, "--format", "pcapng", "--from", lo, "--to", hi, "-w", out)
                self.assertIn("written as pcapng (link type %d)" % lt, p.stderr.decode())
                self.assertSamePackets(tcpdump_packets(out), tcpdump_packets(f), "tcpdump -r")
                got, _ = tshark_packets(out)
                self.assertEqual(got, input_packets([f]))
        # Auto over the oldest capture's time alone: its segments hold one link type, a pcap.
        lo, hi = time_range(ETH)
        out = self.path("first.pcap")
        p = tm("query", "--store", self.store, "--from", lo, "--to", hi, "-w", out)
        self.assertIn("written as pcap (link type 1)", p.stderr.decode())
        self.assertSamePackets(tcpdump_packets(out), tcpdump_packets(ETH))
        # A count of the pcap answer (the first link type's packets) is what that answer holds, with the
        # same warning naming the packets it leaves out.
        out = self.path("all.pcap")
        w = tm("query", "--store", self.store, "--format", "pcap", "-w", out, "-q")
        c = tm("query", "--store", self.store, "--format", "pcap", "--count", "-q")
        self.assertEqual(int(c.stdout), len(read_pcap(out)))
        self.assertEqual(int(c.stdout), len(read_pcap(ETH)))
        self.assertIn("of another link type than 1 were left out", c.stderr.decode())
        self.assertEqual(c.stderr, w.stderr)

    def test_http_api_and_tm_query_server(self):
        self.start_workers([self.store])
        url = self.workers[0]
        for fmt_param, ctype in (("", "application/x-pcapng"), ("&format=pcapng", "application/x-pcapng"),
                                 ("&format=pcap", "application/vnd.tcpdump.pcap")):
            with self.subTest(format=fmt_param):
                out = self.path("http.out")
                p = run(["curl", "-s", "-o", out, "-w", "%{http_code} %{content_type}",
                         url + "/api/v1/query?filter=" + fmt_param])
                self.assertEqual(p.stdout.decode(), "200 " + ctype)
                if ctype == "application/x-pcapng":
                    self.check_all(out, "HTTP" + fmt_param)
                else:
                    self.assertSamePackets(tcpdump_packets(out), tcpdump_packets(ETH))
        p = run(["curl", "-s", "-w", " %{http_code}", url + "/api/v1/query?format=pcapng2"])
        self.assertTrue(p.stdout.decode().endswith(" 400"), p.stdout)
        self.assertIn("format", p.stdout.decode())
        out = self.path("server.pcapng")
        p = tm("query", "--server", url, "-w", out)
        self.assertIn("written as pcapng", p.stderr.decode())
        self.check_all(out, "tm query --server")
        # Counted, every link type, whoever counts (/api/v1/count once read the pcapng answer it counts as pcap).
        total = sum(len(read_pcap(f)) for f, _ in INPUTS)
        self.assertEqual(json.loads(run(["curl", "-s", url + "/api/v1/count"]).stdout)["packets"], total)
        for where in (("--store", self.store), ("--server", url)):
            self.assertEqual(int(tm("query", *where, "--count", "-q").stdout), total, where[0])
            # --format pcap: what a pcap answer holds, the others warned of (--server sent no format,
            # and counted every link type).
            p = tm("query", *where, "--count", "-q", "--format", "pcap")
            self.assertEqual(int(p.stdout), len(read_pcap(ETH)), where[0])
            self.assertIn(b"of another link type than 1 were left out", p.stderr)

    def test_frontend_merges_workers_of_different_link_types(self):
        # Worker 0 holds Ethernet and raw IP, worker 1 Linux cooked: one answer of all three.
        w0, w1 = self.path("w0"), self.path("w1")
        record(w0, [ETH, RAW], "--cutoff", "none")
        record(w1, [SLL], "--cutoff", "none")
        self.start_workers([w0, w1])
        fe = self.start_frontend(balance=None)
        out = self.path("fe.pcapng")
        p = tm("query", "--server", fe, "-w", out)
        self.assertIn("written as pcapng", p.stderr.decode())
        self.check_all(out, "frontend auto")
        self.assertEqual(int(tm("query", "--server", fe, "--count", "-q").stdout),
                         sum(len(read_pcap(f)) for f, _ in INPUTS))
        p = run(["curl", "-s", "-o", out, "-w", "%{http_code} %{content_type}", fe + "/api/v1/query?format=pcapng"])
        self.assertEqual(p.stdout.decode(), "200 application/x-pcapng")
        self.check_all(out, "frontend format=pcapng")
        # pcap asked for: the first link type's packets, the others counted and named.
        out = self.path("fe.pcap")
        p = tm("query", "--server", fe, "--format", "pcap", "-w", out)
        self.assertIn("written as pcap", p.stderr.decode())
        self.assertSamePackets(tcpdump_packets(out), tcpdump_packets(ETH), "frontend --format pcap")
        # One worker's link type only (a time range that excludes the others): plain pcap.
        lo, hi = time_range(SLL)
        out = self.path("fe-sll")
        p = tm("query", "--server", fe, "--from", lo, "--to", hi, "-w", out)
        self.assertSamePackets(tcpdump_packets(out), tcpdump_packets(SLL), "frontend, one link type")

    def download_names(self, url, params):
        """The file names a browser is given for a query's answer: /api/v1/query's Content-Disposition,
        a download ticket's "name" and the ticket's download's Content-Disposition."""
        def disposition(u, *args):
            p = run(["curl", "-s", "-D", "-", "-o", "/dev/null"] + list(args) + [u]).stdout.decode()
            for line in p.splitlines():
                if line.lower().startswith("content-disposition:"):
                    return line.split('filename="', 1)[1].rstrip('"')
            self.fail("no Content-Disposition from %s: %s" % (u, p))
        q = "&".join("%s=%s" % kv for kv in params.items())
        names = [disposition(url + "/api/v1/query?" + q)]
        t = json.loads(run(["curl", "-s", "-X", "POST", url + "/api/v1/download?" + q]).stdout)
        names += [t["name"], disposition(url + t["url"])]
        return names

    def test_download_names_end_in_the_answers_format(self):
        # A pcapng answer (asked for, or auto with several link types) is named .pcapng for a browser;
        # a pcap one .pcap: on tm serve, and on a tm frontend whose workers each hold one link type
        # (the front-end's answer is pcapng: its plan takes the link types of theirs).
        w0, w1 = self.path("w0"), self.path("w1")
        record(w0, [ETH], "--cutoff", "none")
        record(w1, [SLL], "--cutoff", "none")
        self.start_workers([self.store, w0, w1])
        served, worker0, worker1 = self.workers
        self.workers = [worker0, worker1]
        fe = self.start_frontend(balance=None)
        lo, hi = time_range(ETH)  # the earliest: no segment of another link type begins before its end
        for url in (served, fe):
            for params, ext in (({}, ".pcapng"), ({"format": "pcapng"}, ".pcapng"), ({"format": "pcap"}, ".pcap"),
                                ({"from": lo, "to": hi}, ".pcap")):
                with self.subTest(url=url, params=params):
                    names = self.download_names(url, params)
                    for n in names:
                        self.assertTrue(n.startswith("tm-all-") and n.endswith(ext) and not n.endswith(ext + "ng"),
                                        (names, ext))
        # Each worker alone: one link type, pcap (auto), as their answers are.
        self.assertTrue(all(n.endswith(".pcap") for n in self.download_names(worker0, {})))


class LinkSpecificFilters(StoreTest):
    """A filter libpcap compiles only for one link type (802.11's `type data subtype qos-data`) was
    checked against Ethernet alone and refused for a store of 802.11 frames too. It is checked for the
    link types of the segments the query reads: answered as tcpdump answers it where it compiles,
    refused (exit 2, naming the link type) where it compiles for none, with the Ethernet segments of a
    store holding both warned of."""

    def test_an_802_11_filter_on_a_store_of_802_11_frames(self):
        wifi = corpus("link", "radiotap.pcap")  # link type 127
        record(self.store, [wifi], "--cutoff", "none")
        for flt in ("type data subtype qos-data", "wlan[0] = 0x88", "wlan addr2 8a:15:14:9b:5a:e0"):
            with self.subTest(filter=flt):
                want = tcpdump_packets(wifi, flt)
                self.assertTrue(want)
                out = self.path("a.pcap")
                tm("query", "--store", self.store, "-w", out, "-q", flt)
                self.assertSamePackets(tcpdump_packets(out), want)
                self.assertIn("matched: %d, " % len(want),
                              tm("query", "--store", self.store, "--explain", flt).stdout.decode())
        # Through tm serve: its plan, and a download's ticket (which asks for the plan first).
        srv = self.spawn_process([TM, "serve", "--store", self.store, "--listen", "127.0.0.1:0"], "serve")
        url = "http://127.0.0.1:%d" % listening_port(srv, srv.errfile, "tm serve")
        flt = "type data subtype qos-data"
        self.assertIn("matched: 2, ", tm("query", "--server", url, "--explain", flt).stdout.decode())
        p = run(["curl", "-s", "-w", "\n%{http_code}", "-X", "POST", "--data-urlencode", "filter=" + flt,
                 url + "/api/v1/download"])
        self.assertTrue(p.stdout.endswith(b"\n200"), p.stdout)
        srv.terminate()
        srv.wait(30)
        eth = self.path("eth")
        record(eth, [ETH], "--cutoff", "none")
        p = tm("query", "--store", eth, "--count", "type data subtype qos-data", check=False)
        self.assertEqual(p.returncode, 2, p.stderr)
        self.assertIn(b"802.11 link-layer types supported only on 802.11", p.stderr)
        # Both link types in one store: the 802.11 frames answered, the Ethernet ones said unmatched.
        record(self.store, [ETH], "--cutoff", "none")
        p = tm("query", "--store", self.store, "--count", "type data subtype qos-data")
        self.assertEqual(int(p.stdout), len(tcpdump_packets(wifi, "type data subtype qos-data")))
        self.assertIn(b"cannot be applied to packets of link type 1", p.stderr)
        p = tm("query", "--store", self.store, "--count", "ip[0] =", check=False)
        self.assertEqual(p.returncode, 2, p.stderr)
        self.assertIn(b"compiling 'ip[0] =' for link type 1, nor for 127", p.stderr)


if __name__ == "__main__":
    unittest.main()
