"""Flow records: one per connection, counts equal tshark's conversations, kept after packets are gone."""
import glob
import json
import os
import re
import struct
import subprocess

import urllib.error
import urllib.request

from tmtest import TM, StoreTest, corpus, listening_port, record, store_segments, tcpdump_packets, tm, write_pcap

LONG = '[connections]\ntcp_timeout = "1d"\ntcp_closed_timeout = "1d"\nudp_timeout = "1d"\nother_timeout = "1d"\n'
FILES = ["bro.org.pcap", "ssh.pcap", "smb3_multichannel.pcap", "1000-requests-one-dropped-response.pcap",
         "var-services-std-ports.pcap", "wikipedia.pcap", "nmap-vsn.pcap", "dhcp_flood.pcap"]
UNIT = {"bytes": 1, "kB": 1000, "MB": 1000 ** 2, "GB": 1000 ** 3}
LINE = re.compile(r"^(\S+)\s+<->\s+(\S+)\s+(\d+)\s+(\d+) (bytes|kB|MB|GB)\s+(\d+)\s+(\d+) (bytes|kB|MB|GB)")


def tshark_conversations(path, kind):
    """{frozenset(endpoints): {endpoint: (frames sent, bytes sent, bytes unit)}} from `tshark -q -z conv,KIND`."""
    out = subprocess.run(["tshark", "-r", path, "-q", "-z", "conv," + kind], stdout=subprocess.PIPE,
                         stderr=subprocess.DEVNULL).stdout.decode()
    convs = {}
    for line in out.splitlines():
        m = LINE.match(line)
        if not m:
            continue
        a, b = m.group(1), m.group(2)
        # "<-" is what B sent to A, "->" what A sent to B.
        convs[frozenset((a, b))] = {b: (int(m.group(3)), int(m.group(4)), UNIT[m.group(5)]),
                                    a: (int(m.group(6)), int(m.group(7)), UNIT[m.group(8)])}
    return convs


def ep(addr, port):
    return "%s:%d" % (addr, port)


SYN, RST, PSH, ACK, FIN = 0x02, 0x04, 0x08, 0x10, 0x01


def tcp_frame(a, b, sport, dport, flags, seq, ack=0, payload=b""):
    tcp = struct.pack("!HHIIBBHHH", sport, dport, seq, ack, 5 << 4, flags, 65535, 0, 0) + payload
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), 0, 0, 64, 6, 0, bytes(a), bytes(b)) + tcp
    return b"\x02\x00\x00\x00\x00\x01\x02\x00\x00\x00\x00\x02\x08\x00" + ip


def tcp_connection(t0, isn, data=20, close=FIN):
    """One client port 4000 -> server port 80 connection from t0 (ns): a handshake, `data` 1000-byte
    segments from the server, then FIN both ways and the last ACK; close=RST: refused (SYN, RST)."""
    c, s = (10, 0, 0, 1), (10, 0, 0, 2)
    ms = 10**6
    if close == RST:
        return [(t0, tcp_frame(c, s, 4000, 80, SYN, isn)), (t0 + ms, tcp_frame(s, c, 80, 4000, RST | ACK, 0, isn + 1))]
    out = [(t0, tcp_frame(c, s, 4000, 80, SYN, isn)),
           (t0 + ms, tcp_frame(s, c, 80, 4000, SYN | ACK, 5000 + isn, isn + 1)),
           (t0 + 2 * ms, tcp_frame(c, s, 4000, 80, ACK, isn + 1, 5001 + isn))]
    seq = 5001 + isn
    for i in range(data):
        out.append((t0 + (3 + i) * ms, tcp_frame(s, c, 80, 4000, PSH | ACK, seq, isn + 1, b"D" * 1000)))
        seq += 1000
    t = t0 + (3 + data) * ms
    out += [(t, tcp_frame(s, c, 80, 4000, FIN | ACK, seq, isn + 1)),
            (t + ms, tcp_frame(c, s, 4000, 80, FIN | ACK, isn + 1, seq + 1)),
            (t + 2 * ms, tcp_frame(s, c, 80, 4000, ACK, seq + 1, isn + 2))]
    return out


class FlowCounts(StoreTest):
    def flows(self, store, *args):
        p = tm("flows", "--store", store, "--format", "json", "-q", *args)
        return [json.loads(x) for x in p.stdout.decode().splitlines()]

    def test_counts_equal_tshark_conversations(self):
        cfg = self.path("tm.toml")
        with open(cfg, "w") as f:
            f.write(LONG)
        checked = 0
        for name in FILES:
            src = corpus("mixed", name)
            store = self.path("s-" + name)
            record(store, [src], "--config", cfg, "--cutoff", "none")
            ours = {}
            for f in self.flows(store):
                if f["proto"] in ("tcp", "udp"):
                    o, r = ep(f["orig_addr"], f["orig_port"]), ep(f["resp_addr"], f["resp_port"])
                    ours[(f["proto"], frozenset((o, r)))] = {o: (f["orig_pkts"], f["orig_bytes"]),
                                                             r: (f["resp_pkts"], f["resp_bytes"])}
            for kind in ("tcp", "udp"):
                for key, want in tshark_conversations(src, kind).items():
                    with self.subTest(file=name, conv=sorted(key)):
                        self.assertIn((kind, key), ours)
                        got = ours[(kind, key)]
                        for endpoint, (frames, nbytes, unit) in want.items():
                            self.assertEqual(got[endpoint][0], frames)
                            if unit == 1:
                                self.assertEqual(got[endpoint][1], nbytes)
                            else:  # tshark rounds large byte counts to kB/MB
                                self.assertLess(abs(got[endpoint][1] - nbytes * unit), unit)
                        checked += 1
        self.assertGreater(checked, 100)

    def test_a_5_tuple_used_again_after_a_close_is_a_new_connection(self):
        # A SYN on the 5-tuple of a connection that closed (FIN both ways, or RST) within its
        # tcp_closed_timeout (10 s) opens a new connection, as Wireshark's tcp.stream and Zeek's
        # conn.log see it: its own flow record, its own cutoff. (It was the closed one's: one flow
        # record, and a first connection past the cutoff left the second's data unstored.)
        t0 = 1_700_000_000 * 10**9
        cases = {"fin": tcp_connection(t0, 1000) + tcp_connection(t0 + 2 * 10**9, 900000),
                 "rst": tcp_connection(t0, 1000, close=RST) + tcp_connection(t0 + 10**9, 2000)}
        # The same SYN sent again after the RST (a client's retry, same sequence number): one
        # connection to tshark, and to tm.
        retry = tcp_connection(t0, 1000, close=RST) + tcp_connection(t0 + 10**9, 1000, close=RST)
        path = self.path("retry.pcap")
        write_pcap(path, [(t, len(f), len(f), f) for t, f in retry])
        streams = subprocess.run(["tshark", "-r", path, "-T", "fields", "-e", "tcp.stream"], check=True,
                                 stdout=subprocess.PIPE).stdout.decode().split()
        self.assertEqual(set(streams), {"0"})
        j = record(self.path("store-retry"), [path], "--cutoff", "5k")
        self.assertEqual(j["connection_table"]["reopened"], 0)
        self.assertEqual([r["orig_pkts"] + r["resp_pkts"] for r in self.flows(self.path("store-retry"))], [4])
        for name, pkts in cases.items():
            path = self.path(name + ".pcap")
            write_pcap(path, [(t, len(f), len(f), f) for t, f in pkts])
            streams = subprocess.run(["tshark", "-r", path, "-T", "fields", "-e", "tcp.stream"], check=True,
                                     stdout=subprocess.PIPE).stdout.decode().split()
            want = [streams.count(s) for s in sorted(set(streams), key=int)]
            self.assertEqual(len(want), 2, name)  # the oracle sees two connections
            store = self.path("store-" + name)
            j = record(store, [path], "--cutoff", "5k")
            self.assertEqual(j["connection_table"]["reopened"], 1, name)
            rows = self.flows(store)
            with self.subTest(case=name):
                self.assertEqual([r["orig_pkts"] + r["resp_pkts"] for r in rows], want)
                self.assertEqual([r["state"] for r in rows][:1], [name])  # how the first one ended
            # The second connection's stored packets are those it has recorded alone.
            second = self.path(name + "-second.pcap")
            n_first = want[0]
            write_pcap(second, [(t, len(f), len(f), f) for t, f in pkts[n_first:]])
            alone = self.path("store-alone-" + name)
            record(alone, [second], "--cutoff", "5k")
            start = pkts[n_first][0]
            got = self.query_packets(store, "", "--from", "%d.%09d" % (start // 10**9, start % 10**9))
            with self.subTest(case=name, what="second connection's stored packets"):
                self.assertSamePackets(got, self.query_packets(alone, ""))
                self.assertGreater(len(got), 6)  # its data, not only control packets

    def test_flows_outlive_packets(self):
        src = corpus("mixed", "echo-connections.pcap")
        record(self.store, [src], "--cutoff", "none", "--segment-size", "64k", "--disk-budget", "256k")
        rows = self.flows(self.store, "tcp")
        n_tcp = len(tshark_conversations(src, "tcp"))
        self.assertEqual(len(rows), n_tcp)
        gone = [r for r in rows if r["packets_on_disk"] == "no"]
        kept = [r for r in rows if r["packets_on_disk"] != "no"]
        self.assertGreater(len(gone), 0, "early connections' packets were evicted")
        self.assertGreater(len(kept), 0)
        for r in gone[:5]:  # marked as having no packets left: indeed none is found, and that is said
            p = tm("query", "--store", self.store, "--flow", str(r["id"]), "--count")
            self.assertEqual(p.stdout.decode().strip(), "0")
            self.assertIn("warning: tm stored %d packet(s) of flow %s, and none is on disk any more"
                          % (r["stored_pkts"], r["id"]), p.stderr.decode())
            p = tm("query", "--store", self.store, "--community-id", r["community_id"], "-w", self.path("c.pcap"))
            self.assertIn("of the flows with Community ID %s, and none is on disk any more" % r["community_id"],
                          p.stderr.decode())
            # Narrowed by a filter of the user's, an empty answer says nothing of the disk.
            p = tm("query", "--store", self.store, "--flow", str(r["id"]), "--count", "udp")
            self.assertNotIn("none is on disk", p.stderr.decode())
        # A flow whose packets are still there: --flow fetches exactly them.
        f = kept[-1]
        out = self.path("flow.pcap")
        self.assertNotIn("warning", tm("query", "--store", self.store, "--flow", str(f["id"]), "-w", out).stderr.decode())
        flt = "host %s and host %s and port %d and port %d" % (f["orig_addr"], f["resp_addr"], f["orig_port"],
                                                              f["resp_port"])
        want = []
        for seg in store_segments(self.store):
            want += tcpdump_packets(seg, flt)
        self.assertGreater(len(want), 0)
        self.assertLessEqual(len(want), f["orig_pkts"] + f["resp_pkts"])
        self.assertSamePackets(tcpdump_packets(out), want)

    def test_dccp_ports_are_shown_in_every_format(self):
        """A DCCP record holds its ports: the text table left them out where JSON and Zeek's conn.log
        showed them (exploratory test). `port` still matches no DCCP packet, as in tcpdump."""
        src = corpus("ipv4", "dccp_partial_csum_v4_simple.pcap")
        record(self.store, [src], "--cutoff", "none")
        text = tm("flows", "--store", self.store, "-q").stdout.decode()
        self.assertIn("139.133.209.176:52667", text)
        self.assertIn("139.133.209.65:5001", text)
        zeek = tm("flows", "--store", self.store, "-q", "--format", "zeek").stdout.decode()
        self.assertRegex(zeek, r"139\.133\.209\.176\t52667\t139\.133\.209\.65\t5001\t")
        self.assertEqual(len(tcpdump_packets(src, "port 5001")), 0)
        self.assertEqual(tm("query", "--store", self.store, "--count", "-q", "port 5001").stdout.strip(), b"0")

    def test_a_flow_is_fetched_through_a_server_as_from_the_store(self):
        """--flow is a query's flow_id behind the service: tm query --server answers it as --store does (it
        needed --store before), an unknown flow is an empty answer that says so, a bad id a 400."""
        record(self.store, [corpus("mixed", "bro.org.pcap")], "--cutoff", "none")
        rows = [r for r in self.flows(self.store) if r["proto"] in ("tcp", "udp")][:4]
        self.assertTrue(rows)
        err = open(self.path("serve.err"), "w+b")
        self.addCleanup(err.close)
        server = subprocess.Popen([TM, "serve", "--store", self.store, "--listen", "127.0.0.1:0"],
                                  stdout=subprocess.DEVNULL, stderr=err)
        try:
            url = "http://127.0.0.1:%d" % listening_port(server, err, "tm serve")
            for r in rows:
                with self.subTest(flow=r["id"]):
                    local, remote = self.path("local.pcap"), self.path("remote.pcap")
                    tm("query", "--store", self.store, "--flow", str(r["id"]), "-w", local, "-q")
                    tm("query", "--server", url, "--flow", str(r["id"]), "-w", remote, "-q")
                    want = tcpdump_packets(local)
                    self.assertEqual(len(want), r["orig_pkts"] + r["resp_pkts"])
                    self.assertSamePackets(tcpdump_packets(remote), want)
                    n = tm("query", "--server", url, "--flow", str(r["id"]), "--count", "-q").stdout
                    self.assertEqual(int(n), len(want))
            p = tm("query", "--server", url, "--flow", "12345", "--count", check=False)
            self.assertEqual((p.returncode, p.stdout.strip()), (0, b"0"), p.stderr)
            self.assertIn(b"no flow 12345", p.stderr)
            p = tm("query", "--server", url, "--flow", str(rows[0]["id"]), "--community-id",
                   "1:AAAAAAAAAAAAAAAAAAAAAAAAAAA=", "--count", check=False)
            self.assertEqual(p.returncode, 2, p.stderr)
            self.assertIn(b"not both", p.stderr)
            # A bound given outside the flow's lifetime (the other one is the flow's) is said as such,
            # not as "from is after to" of a time the request never gave.
            for where in (["--store", self.store], ["--server", url]):
                for bound, word in (("--from", b"after"), ("--to", b"not after")):
                    with self.subTest(where=where[0], bound=bound):
                        p = tm("query", *where, "--flow", str(rows[0]["id"]), bound,
                               "2030-01-01" if bound == "--from" else "2001-01-01", "--count", check=False)
                        self.assertEqual(p.returncode, 2, p.stderr)  # (a refused request, either way)
                        self.assertIn(b"the time given is %s flow %s's" % (word, str(rows[0]["id"]).encode()),
                                      p.stderr)
                        self.assertNotIn(b"after to", p.stderr)
            # At the edges: 1 ns after the last packet, and a `to` (exclusive) at the first.
            edges = (("--from", rows[0]["last_ns"] + 1, b"after"), ("--to", rows[0]["first_ns"], b"not after"))
            for where in (["--store", self.store, "--count"], ["--server", url, "--count"],
                          ["--store", self.store, "--explain"]):
                for bound, ns, word in edges:
                    with self.subTest(where=where, bound=bound, edge=ns):
                        p = tm("query", *where, "--flow", str(rows[0]["id"]), bound, "%d.%09d" % divmod(ns, 10**9),
                               check=False)
                        self.assertEqual(p.returncode, 2, p.stderr)
                        self.assertIn(b"the time given is %s flow" % word, p.stderr)
            # Just inside them, the flow's edge packet is answered.
            for bound, ns in (("--from", rows[0]["last_ns"]), ("--to", rows[0]["first_ns"] + 1)):
                with self.subTest(inside=bound):
                    n = tm("query", "--store", self.store, "--flow", str(rows[0]["id"]), bound,
                           "%d.%09d" % divmod(ns, 10**9), "--count", "-q").stdout
                    self.assertGreaterEqual(int(n), 1)
            # --explain through the server gives the store's own plan and figures for a flow and a
            # Community ID, as --store does (it refused --flow and dropped --community-id).
            for sel in (["--flow", str(rows[0]["id"])], ["--community-id", rows[0]["community_id"]]):
                want = int(tm("query", "--store", self.store, *sel, "--count", "-q").stdout)
                self.assertGreater(want, 0)
                outs = []
                for where in (["--store", self.store], ["--server", url]):
                    with self.subTest(explain=sel[0], where=where[0]):
                        out = tm("query", *where, "--explain", *sel, "tcp or udp").stdout.decode()
                        self.assertIn("candidates read: %d, matched: %d, " % (want, want), out)
                        self.assertIn("src port %d" % rows[0]["orig_port"], out)  # the connection's filter
                        outs.append(re.sub(r", [\d.]+ ms\n", "\n", out))
                self.assertEqual(outs[0], outs[1])
            # A flow that is not there: nothing is read, and the plan says why.
            for where in (["--store", self.store], ["--server", url]):
                p = tm("query", *where, "--explain", "--flow", "12345")
                self.assertIn("plan: nothing to read: no flow 12345", p.stdout.decode())
                self.assertIn("candidates read: 0, matched: 0", p.stdout.decode())
            p = tm("query", "--store", self.store, "--explain", "-c", "3", "tcp", check=False)
            self.assertEqual(p.returncode, 2, p.stderr)
            self.assertIn(b"does not go with --explain", p.stderr)
            for route in ("count", "explain"):
                with self.subTest(route=route), self.assertRaises(urllib.error.HTTPError) as e:
                    urllib.request.urlopen(url + "/api/v1/%s?flow_id=12ab" % route, timeout=10)
                self.assertEqual(e.exception.code, 400)
                self.assertIn(b"flow_id", e.exception.read())
            # A JSON body takes the id as tm flows' JSON gives it: a number.
            req = urllib.request.Request(url + "/api/v1/count", data=json.dumps({"flow_id": rows[0]["id"]}).encode(),
                                         headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(req, timeout=10) as r:
                self.assertEqual(json.loads(r.read())["packets"], rows[0]["orig_pkts"] + rows[0]["resp_pkts"])
        finally:
            server.terminate()
            server.wait(30)

    def test_a_flow_is_its_own_packets_not_its_5_tuples_other_flows(self):
        """The same capture a day later: each connection's 5-tuple has two flows. --flow ID with a time
        range around both gives that flow's packets only; a range around the other flow alone is refused,
        naming the flow's packets it misses."""
        src = corpus("mixed", "wikipedia.pcap")
        later = self.path("later.pcap")
        subprocess.run(["editcap", "-t", "86400", src, later], check=True)
        record(self.store, [src], "--cutoff", "none")
        record(self.store, [later], "--cutoff", "none")
        rows = [r for r in self.flows(self.store) if r["proto"] == "tcp"]
        by_tuple = {}
        for r in rows:
            by_tuple.setdefault((r["orig_addr"], r["orig_port"], r["resp_addr"], r["resp_port"]), []).append(r)
        pairs = [sorted(v, key=lambda r: r["first_ns"]) for v in by_tuple.values() if len(v) == 2]
        self.assertGreater(len(pairs), 3)
        day = 86400 * 10**9
        for first, second in pairs[:4]:
            for r, other in ((first, second), (second, first)):
                with self.subTest(flow=r["id"]):
                    n = r["orig_pkts"] + r["resp_pkts"]
                    around = ("--from", "%d" % ((first["first_ns"] - day) // 10**9),
                              "--to", "%d" % ((second["last_ns"] + day) // 10**9))
                    for extra in ((), around, around[:2], around[2:]):
                        got = tm("query", "--store", self.store, "--flow", str(r["id"]), *extra, "--count", "-q")
                        self.assertEqual(int(got.stdout), n, extra)
                    # Around the other flow only.
                    p = tm("query", "--store", self.store, "--flow", str(r["id"]),
                           "--from", "%d.%09d" % divmod(other["first_ns"], 10**9),
                           "--to", "%d.%09d" % divmod(other["last_ns"] + 1, 10**9), "--count", check=False)
                    self.assertNotEqual(p.returncode, 0, p.stderr)
                    self.assertIn(b"flow %s's" % str(r["id"]).encode(), p.stderr)

    def test_a_tunnelled_flow_is_its_own_packets_not_its_tunnels_or_neighbours(self):
        """--flow gives the packets the recorder counted for the flow, no more: its filter (addresses, ports,
        protocol) also took the same inner 5-tuple in another tunnel, and a tunnel's packets whose outer
        addresses and inner protocol matched a plain flow's (a GRE flow of 8 packets answered 29, a Geneve one
        of 17 answered 33, its other direction in another VNI). --community-id likewise gives its flows'."""
        for name in ("various_gre.pcap", "tcpdump-geneve.pcap", "vxlan.pcap", "gtp1_gn_normal_incl_fragmentation.pcap",
                     "gtp_ext_header.pcap"):
            with self.subTest(capture=name):
                store = self.path(name)
                record(store, [corpus("tunnels", name)], "--cutoff", "none")
                rows = self.flows(store)
                self.assertTrue(rows)
                by_cid = {}
                for r in rows:
                    got = tm("query", "--store", store, "--flow", str(r["id"]), "--count", "-q")
                    self.assertEqual(int(got.stdout), r["stored_pkts"], r)
                    # With a filter split between tm and libpcap, that takes every packet: the same (a
                    # later fragment of an outer layer was judged without its datagram's layers).
                    got = tm("query", "--store", store, "--flow", str(r["id"]), "--count", "-q", "greater 0")
                    self.assertEqual(int(got.stdout), r["stored_pkts"], r)
                    if r.get("community_id"):
                        by_cid[r["community_id"]] = by_cid.get(r["community_id"], 0) + r["stored_pkts"]
                for cid, n in by_cid.items():
                    got = tm("query", "--store", store, "--community-id", cid, "--count", "-q")
                    self.assertEqual(int(got.stdout), n, cid)

    def test_a_tagged_flow_with_a_filter_libpcap_answers_whole(self):
        """`--flow ID 'vlan and greater 0'` of a VLAN-tagged flow: the flow's selector went to libpcap with the
        filter, at untagged offsets, and the query was refused ("expression rejects all packets"). The flow is
        now checked per packet, the filter answered by libpcap: its tagged packets, as tcpdump counts them."""
        for name in ("icmp_dot1q.pcap", "q-in-q.pcap"):
            with self.subTest(capture=name):
                store = self.path(name)
                src = corpus("link", name)
                record(store, [src], "--cutoff", "none")
                for r in self.flows(store):
                    flow = self.path("flow-%s.pcap" % r["id"])
                    tm("query", "--store", store, "--flow", str(r["id"]), "-w", flow)
                    want = len(tcpdump_packets(flow, "vlan and greater 0"))
                    self.assertGreater(want, 0)
                    got = tm("query", "--store", store, "--flow", str(r["id"]), "--count", "-q", "vlan and greater 0")
                    self.assertEqual(int(got.stdout), want, r)
                    text = tm("query", "--store", store, "--flow", str(r["id"]), "--explain",
                              "vlan and greater 0").stdout.decode()
                    self.assertIn("(checked per packet: libpcap answers the filter)", text)

    def test_a_flow_of_frames_cut_before_their_ports_is_its_packets(self):
        """Frames cut before their TCP ports (a small snaplen) are a connection of their own, ports 0 and 0:
        its flow (and Community ID) selected them with `not portrange 1-65535`, which libpcap's portrange
        rejects for such a frame, under a `not` too: the answer was empty, with a warning that the
        segments holding them were deleted."""
        c, s, ms = (10, 0, 0, 1), (10, 0, 0, 2), 10**6
        whole = [(i * ms, tcp_frame(c if i % 2 == 0 else s, s if i % 2 == 0 else c, 4000 if i % 2 == 0 else 80,
                                    80 if i % 2 == 0 else 4000, ACK, 100 + i)) for i in range(4)]
        frames = []
        for i, (t, f) in enumerate(whole):
            cap = 14 + 20 + 1 if i < 2 else len(f)  # the first two cut a byte into the TCP header
            frames.append((10**18 + t, cap, len(f), f[:cap]))
        path = self.path("cut.pcap")
        write_pcap(path, frames)
        record(self.store, [path], "--cutoff", "none")
        rows = self.flows(self.store)
        cut = [r for r in rows if r["orig_port"] == 0 and r["resp_port"] == 0]
        self.assertEqual(len(cut), 1, rows)
        r = cut[0]
        self.assertEqual(r["orig_pkts"] + r["resp_pkts"], 2)
        for args in (["--flow", str(r["id"])], ["--community-id", r["community_id"]]):
            p = tm("query", "--store", self.store, "--count", *args)
            self.assertEqual(int(p.stdout), 2, p.stderr)
            self.assertNotIn(b"deleted", p.stderr)
        # The whole frames are the other flow's, and not this one's.
        other = [x for x in rows if x is not r]
        self.assertEqual(len(other), 1)
        self.assertEqual(int(tm("query", "--store", self.store, "--count", "-q", "--flow", str(other[0]["id"])).stdout), 2)

    def test_a_damaged_flow_block_is_said_where_a_flow_is_not_found(self):
        """A flow whose record is in a damaged block of a flow file: tm query --flow / --community-id say
        the flow records they could not read, not only "no flow" (as if the store had never seen it)."""
        record(self.store, [corpus("mixed", "bro.org.pcap")], "--cutoff", "none")
        r = self.flows(self.store, "tcp")[0]
        flows = [f for f in os.listdir(os.path.join(self.store, "flows")) if f.endswith(".flows")]
        self.assertEqual(len(flows), 1)
        path = os.path.join(self.store, "flows", flows[0])
        first_block = 12 + len(b"default\0") + 4  # the magic and version, the names' size, the names, their CRC
        with open(path, "r+b") as f:  # a byte of the first block's compressed records
            f.seek(first_block + 16 + 40)
            b = f.read(1)
            f.seek(-1, 1)
            f.write(bytes([b[0] ^ 0x5a]))
        p = tm("flows", "--store", self.store, "--format", "json", check=False)
        self.assertIn(b"block checksum mismatch at offset %d (its " % first_block, p.stderr)
        for args in (["--flow", str(r["id"])], ["--community-id", r["community_id"]]):
            p = tm("query", "--store", self.store, "--count", *args, check=False)
            self.assertEqual((p.returncode, p.stdout.strip()), (0, b"0"), p.stderr)
            self.assertIn(b"that tm could not read (damaged: ", p.stderr)
            self.assertIn(b"checksum mismatch", p.stderr)

    def test_a_flow_asked_for_in_another_class_says_where_it_is(self):
        cfg = self.path("classes.toml")
        with open(cfg, "w") as f:
            f.write('[[class]]\nname = "web"\nfilter = "tcp port 80"\ncutoff = "none"\nprecedence = 10\n'
                    '[[class]]\nname = "default"\ncutoff = "none"\n')
        tm("record", "--store", self.store, "--config", cfg, "--read", corpus("mixed", "bro.org.pcap"))
        web = [r for r in self.flows(self.store) if r["class"] == "web"]
        self.assertTrue(web)
        r = web[0]
        n = tm("query", "--store", self.store, "--flow", str(r["id"]), "--class", "web", "--count", "-q").stdout
        self.assertEqual(int(n), r["orig_pkts"] + r["resp_pkts"])
        p = tm("query", "--store", self.store, "--flow", str(r["id"]), "--class", "default", "--count")
        self.assertEqual(p.stdout.strip(), b"0")
        self.assertIn(b"flow %s's packets are in class web" % str(r["id"]).encode(), p.stderr)
        # --class takes one class (or a,b): the filter after it is the filter, as tcpdump users write
        # it (it was taken for a second class: "no class 'tcp port 80'").
        count = lambda *args: int(tm("query", "--store", self.store, "--count", "-q", *args).stdout)
        web_80 = count("--class", "web", "tcp port 80")
        self.assertEqual(web_80, len(tcpdump_packets(corpus("mixed", "bro.org.pcap"), "tcp port 80")))
        self.assertEqual(count("--class", "default", "tcp port 80"), 0)
        self.assertEqual(count("--class", "web,default", "tcp port 80"), web_80)
        self.assertEqual(count("--class", "web", "--class", "default"), count())

    def test_control_packets_after_the_cutoff_are_on_disk(self):
        # Cut at 1k, the connections' FINs are still stored (keep_tcp_control): where the budget
        # evicted their first packets, their FINs are on disk, and the record must not say "no".
        src = corpus("mixed", "echo-connections.pcap")
        record(self.store, [src], "--cutoff", "1k", "--segment-size", "64k", "--disk-budget", "256k")
        rows = self.flows(self.store, "tcp")
        self.assertGreater(len(rows), 100)
        self.assertTrue(all(r["cut"] for r in rows))
        counted = 0
        for r in rows[::10]:
            n = int(tm("query", "--store", self.store, "--flow", str(r["id"]), "--count", "-q").stdout.decode())
            with self.subTest(flow=r["id"], packets_on_disk=r["packets_on_disk"], on_disk=n):
                self.assertEqual(r["packets_on_disk"] == "no", n == 0)
                if r["packets_on_disk"] == "yes":
                    self.assertEqual(n, r["stored_pkts"])
            counted += n > 0
        self.assertGreater(counted, 10)

    def test_damaged_class_names_of_a_flow_file_are_said_not_believed(self):
        # A flipped bit in a flow file's class names ("default" -> "eefault") made every record's
        # class another, and packets_on_disk a confident "no", without a word.
        record(self.store, [corpus("mixed", "wikipedia.pcap")])
        path = glob.glob(os.path.join(self.store, "flows", "*.flows"))[0]
        with open(path, "r+b") as f:
            f.seek(12)
            b = f.read(1)
            f.seek(12)
            f.write(bytes([b[0] ^ 1]))
        p = tm("flows", "--store", self.store, "--format", "json")
        rows = [json.loads(x) for x in p.stdout.decode().splitlines()]
        self.assertGreater(len(rows), 10)
        self.assertIn("%s: its class names are damaged" % path, p.stderr.decode())
        self.assertEqual({r["class"] for r in rows}, {"#0"})
        self.assertNotIn("no", {r["packets_on_disk"] for r in rows if r["stored_pkts"]})

    def test_flows_of_an_evicted_newer_capture_say_no(self):
        # The input goes back in time: a 2021 capture, then a 2011 one into the same store, whose
        # budget then deletes every segment of the first (segments go by write order). The
        # oldest segment left (2011) is older than every 2021 flow, which used to make them say
        # "yes" with none of their packets on disk.
        newer, older = corpus("mixed", "echo-connections.pcap"), corpus("mixed", "ssh.pcap")
        record(self.store, [newer], "--cutoff", "none", "--segment-size", "256k")
        record(self.store, [older], "--cutoff", "none", "--segment-size", "256k", "--disk-budget", "1m")
        rows = self.flows(self.store, "tcp")
        late = [r for r in rows if r["first_ns"] > 1600000000 * 10**9]
        early = [r for r in rows if r["first_ns"] < 1600000000 * 10**9]
        self.assertGreater(len(late), 100)
        self.assertGreater(len(early), 0)
        # The premise: packets of 2011 are left, none of 2021.
        count = lambda *a: int(tm("query", "--store", self.store, "--count", "-q", *a).stdout.decode())
        self.assertEqual(count("--from", "2020-01-01T00:00:00Z"), 0)
        self.assertGreater(count(), 0)
        self.assertEqual([r["id"] for r in late if r["packets_on_disk"] != "no"], [])
        # Every "no" is true (of both captures), and every "yes" or "some" finds packets.
        on_disk = lambda r: int(tm("query", "--store", self.store, "--flow", str(r["id"]), "--count", "-q").stdout)
        kept = [r for r in early if r["packets_on_disk"] != "no"]
        gone = [r for r in early if r["packets_on_disk"] == "no"]
        self.assertGreater(len(kept), 0)
        self.assertGreater(len(gone), 0)
        for r in late[::50] + gone[::5] + kept:
            with self.subTest(flow=r["id"], first=r["first"], packets_on_disk=r["packets_on_disk"]):
                n = on_disk(r)
                self.assertEqual(n == 0, r["packets_on_disk"] == "no")
                if r["packets_on_disk"] == "yes":
                    self.assertEqual(n, r["stored_pkts"])

    def test_filters_top_formats_and_errors(self):
        src = corpus("mixed", "var-services-std-ports.pcap")
        record(self.store, [src], "--cutoff", "2k")
        rows = self.flows(self.store, "port 53 and udp")
        want = [k for k in tshark_conversations(src, "udp") if any(e.endswith(":53") for e in k)]
        self.assertEqual(len(rows), len(want))
        self.assertTrue(all(r["resp_port"] == 53 for r in rows))
        top = self.flows(self.store, "--top", "2", "--by", "bytes")
        self.assertEqual(len(top), 2)
        allrows = self.flows(self.store)
        self.assertEqual(top[0]["orig_bytes"] + top[0]["resp_bytes"],
                         max(r["orig_bytes"] + r["resp_bytes"] for r in allrows))
        csv = tm("flows", "--store", self.store, "--format", "csv", "-q", "tcp").stdout.decode().splitlines()
        self.assertTrue(csv[0].startswith("id,first,last"))
        self.assertEqual(len(csv) - 1, len(self.flows(self.store, "tcp")))
        text = tm("flows", "--store", self.store, "-q", "tcp").stdout.decode().splitlines()
        self.assertEqual(len(text) - 1, len(csv) - 1)
        self.assertEqual(self.flows(self.store, "--from", "2001-01-01", "--to", "2001-01-02"), [])
        p = tm("flows", "--store", self.store, "host and", check=False)
        self.assertEqual(p.returncode, 2)
        p = tm("flows", "--store", self.store, "tcp[13] & 2 != 0", check=False)
        self.assertEqual(p.returncode, 2)  # the request's error (400 over the API), as a syntax error
        self.assertIn("tm query", p.stderr.decode())
        # What a record does not hold (it has the innermost layer, and a hash of those around it): `vlan 10`
        # answered no flow and `not vlan` every one, with exit 0 (encapsulation tester, on q-in-q.pcap).
        for f, named in (("vlan 10", "vlan 10"), ("not vlan", "vlan"), ("tcp and not geneve", "tunnel geneve"),
                         ("not tunnel", "tunnel"), ("spi 5", "spi 5"), ("outer host 10.0.0.1", "outer host 10.0.0.1")):
            p = tm("flows", "--store", self.store, f, check=False)
            self.assertEqual(p.returncode, 2, f)
            self.assertIn("'%s' is not in them" % named, p.stderr.decode())
        self.assertEqual(self.flows(self.store, "inner udp and port 53"), rows)  # the innermost layer: answered

    def test_flow_file_cut_short(self):
        src = corpus("mixed", "echo-connections.pcap")
        record(self.store, [src], "--cutoff", "none")
        d = os.path.join(self.store, "flows")
        flows = sorted(f for f in os.listdir(d) if f.endswith(".flows"))
        base = os.path.join(d, flows[-1][:-6])
        full = len(self.flows(self.store))
        os.remove(base + ".idx")  # as if the recorder died before sealing it ...
        os.truncate(base + ".flows", os.path.getsize(base + ".flows") - 100)  # ... in the middle of a block
        p = tm("flows", "--store", self.store, "--format", "json")
        partial = len(p.stdout.decode().splitlines())
        self.assertLess(partial, full)
        self.assertIn("warning", p.stderr.decode())
        # The next recorder recovers the file: cut after its last complete block, indexed again.
        tm("record", "--store", self.store, "--read", corpus("malformed", "empty.pcap"))
        self.assertTrue(os.path.exists(base + ".idx"))
        p = tm("flows", "--store", self.store, "--format", "json")
        self.assertEqual(len(p.stdout.decode().splitlines()), partial)
        self.assertNotIn("warning", p.stderr.decode())


    def test_a_flow_file_changed_since_its_seal_is_read_whole(self):
        # Its sidecar indexes a file of another size: the index is not trusted (its ordinals
        # may name other records), the file is read whole, and the warning says why.
        src = corpus("mixed", "echo-connections.pcap")
        record(self.store, [src], "--cutoff", "none")
        d = os.path.join(self.store, "flows")
        base = os.path.join(d, sorted(f for f in os.listdir(d) if f.endswith(".flows"))[-1][:-6])
        want = self.flows(self.store, "tcp")
        self.assertGreater(len(want), 100)
        with open(base + ".flows", "ab") as f:
            f.write(b"\0" * 100)
        p = tm("flows", "--store", self.store, "--format", "json", "tcp")
        self.assertEqual([json.loads(x) for x in p.stdout.decode().splitlines()], want)
        err = p.stderr.decode()
        self.assertIn("indexes a flow file of %d bytes" % (os.path.getsize(base + ".flows") - 100), err)
        self.assertIn("damaged or incomplete block", err)  # the whole read meets the bytes added

if __name__ == "__main__":
    import unittest
    unittest.main()
