#!/usr/bin/env python3
"""End-to-end: a port query on a fragmented connection returns every fragment of it (later
fragments are judged as their datagram, docs/USAGE.md "Fragments"), in order, also when the
fragments arrive out of order or span segments; BPF-only filters keep tcpdump's answer.
Expected packets are named by their position in the capture, read off `tcpdump -v -nr FILE`
(the command is next to each case)."""
import json
import struct
import unittest

from tmtest import StoreTest, corpus, read_pcap, record, store_segments, tcpdump_packets, tm, write_pcap

# (file, filter, positions of the packets that must be returned, what tcpdump itself returns)
CASES = [
    # tcpdump -v -nr ipv4/fragmented-3.pcap: one TCP segment 210.54.213.247.1265 > 131.243.1.10.21
    # in 5 fragments (id 19397, offsets 0, 1480, 2960, 4440, 5920); tcpdump 'port 21' -> the first only.
    ("ipv4/fragmented-3.pcap", "port 21", [0, 1, 2, 3, 4], [0]),
    ("ipv4/fragmented-3.pcap", "tcp src port 1265 and dst host 131.243.1.10", [0, 1, 2, 3, 4], [0]),
    ("ipv4/fragmented-3.pcap", "port 80", [], []),
    # tcpdump -v -nr ipv4/fragmented-1.pcap: UDP 164.1.123.163.123 > 164.1.123.61.137, id 242:
    # offset 0 (+), offset 48 (last), offset 0 (+) again (a resent first fragment).
    ("ipv4/fragmented-1.pcap", "udp port 137", [0, 1, 2], [0, 2]),
    # tcpdump -v -nr ipv6/ipv6-fragmented-dns.pcap: DNS over UDP/IPv6; #3 is a later fragment
    # (2896|342) whose first was not captured; #5..#7 are the reply to 51851 in three
    # fragments (0|1432, 1432|1432, 2864|374). tcpdump's `port` does not look behind the
    # IPv6 fragment header, so it returns the two queries only.
    ("ipv6/ipv6-fragmented-dns.pcap", "port 51851", [2, 4, 5, 6, 7], [2, 4]),
    ("ipv6/ipv6-fragmented-dns.pcap", "udp port 53", [0, 1, 2, 4, 5, 6, 7], [0, 1, 2, 4]),
]


def outstanding_datagrams(n):
    """n UDP datagrams of two fragments each (~1.25 KB), 10.0.0.1:2000+i -> 10.0.0.2:53: the first
    fragments, the later ones, and three orders of them: all first fragments then all later ones,
    all later ones then all first ones, each later one just before its first."""

    def ip4(ident, flags_frag, payload):
        hdr = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), ident, flags_frag, 64, 17, 0,
                          bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2]))
        return b"\x02" * 6 + b"\x04" * 6 + b"\x08\x00" + hdr + payload

    firsts, laters = [], []
    for i in range(n):
        udp = struct.pack("!HHHH", 2000 + i, 53, 8 + 1200, 0) + bytes([i & 255]) * 1200
        firsts.append(ip4(i + 1, 0x2000, udp[:600]))  # more fragments, offset 0
        laters.append(ip4(i + 1, 600 // 8, udp[600:]))
    orders = {"firsts-then-laters": firsts + laters, "laters-then-firsts": laters + firsts,
              "each-later-first": [f for i in range(n) for f in (laters[i], firsts[i])]}
    return firsts, laters, orders


def frames_pcap(path, frames):
    """Writes Ethernet frames to `path` as a pcap, 1 us apart; returns `path`."""
    write_pcap(path, [(10**18 + k * 1000, len(f), len(f), f) for k, f in enumerate(frames)])
    return path


class Fragments(StoreTest):
    def test_port_query_returns_every_fragment(self):
        for n, (name, flt, want, tcpdump_want) in enumerate(CASES):
            with self.subTest(file=name, filter=flt):
                src = corpus(*name.split("/"))
                every = tcpdump_packets(src)
                # The positions above are what tcpdump says of the capture (guards the comments).
                tcpdump_says = tcpdump_packets(src, flt)
                self.assertEqual(tcpdump_says, [every[i] for i in tcpdump_want])
                store = self.path("s%d" % n)
                record(store, [src], "--cutoff", "none")
                self.assertSamePackets(self.query_packets(store, flt), [every[i] for i in want], flt)

    def test_a_later_fragment_without_its_first_is_found_by_its_flow(self):
        # tcpdump -nn -r ipv6/ipv6-fragmented-dns.pcap: #3 (from 0) is a later fragment (2896|342) whose
        # first was not captured. Its flow record has no ports (0 and 0); `tm query --flow` used to look
        # for `port 0` and find nothing, and evidence called its packet "no longer on disk".
        src = corpus("ipv6", "ipv6-fragmented-dns.pcap")
        every = tcpdump_packets(src)
        self.assertIn("frag (2896|342)", every[3])
        record(self.store, [src], "--cutoff", "none")
        flows = [json.loads(line) for line in tm("flows", "--store", self.store, "--format", "json").stdout.splitlines()]
        portless = [f for f in flows if f["orig_port"] == 0 and f["resp_port"] == 0]
        self.assertEqual(len(portless), 1, flows)
        out = self.path("flow.pcap")
        tm("query", "--store", self.store, "--flow", portless[0]["id"], "-w", out, "-q")
        self.assertSamePackets(tcpdump_packets(out), [every[3]])

    def test_out_of_order_and_across_segments(self):
        frames = read_pcap(corpus("ipv4", "fragmented-3.pcap"))
        # Two later fragments captured before the first one (timestamps in capture order).
        order = [1, 2, 0, 3, 4]
        shuffled = [(frames[k][0],) + frames[i][1:] for k, i in enumerate(order)]
        path = self.path("out-of-order.pcap")
        write_pcap(path, shuffled)
        every = tcpdump_packets(path)
        self.assertEqual(len(tcpdump_packets(path, "port 21")), 1)
        record(self.path("ooo"), [path], "--cutoff", "none")
        self.assertSamePackets(self.query_packets(self.path("ooo"), "port 21"), every)
        # Filters re-checked per packet: the later fragments are judged as their datagram once its
        # first fragment comes, under a `not` too (they matched both F and `not F` before).
        for flt in ("tcp src port 1265", "tcp dst port 21"):
            self.assertSamePackets(self.query_packets(self.path("ooo"), flt), every, flt)
            self.assertSamePackets(self.query_packets(self.path("ooo"), "not (%s)" % flt), [], "not " + flt)
        # Segments of ~4 KiB: the 1514-byte fragments span three segments.
        src = corpus("ipv4", "fragmented-3.pcap")
        store = self.path("small")
        record(store, [src], "--cutoff", "none", "--segment-size", "4k")
        self.assertGreater(len(store_segments(store)), 2)
        self.assertSamePackets(self.query_packets(store, "port 21"), tcpdump_packets(src))

    def test_many_datagrams_outstanding_at_once(self):
        # 300 UDP datagrams of two fragments each, 10.0.0.1:2000+i -> 10.0.0.2:53: all first
        # fragments then all later ones, all later ones then all first ones, and each later one
        # just before its first. The fragment memory was a direct-mapped table of 1024 slots
        # (datagrams whose ids collided lost their later fragments: ~40 of 300), the index
        # builder waited for at most 64 firsts, and the query re-check judged its waiting
        # fragments again only at the end of the segment, when colliding firsts had gone.
        n = 300
        firsts, laters, orders = outstanding_datagrams(n)
        for name, frames in orders.items():
            with self.subTest(order=name):
                path = frames_pcap(self.path(name + ".pcap"), frames)
                store = self.path("s-" + name)
                record(store, [path], "--cutoff", "none")
                every = tcpdump_packets(path)
                self.assertEqual(len(every), 2 * n)
                self.assertSamePackets(self.query_packets(store, "udp port 53"), every)
                two = (firsts[10], laters[10], firsts[290], laters[290])
                self.assertSamePackets(self.query_packets(store, "src port 2010 or src port 2290"),
                                       [every[k] for k, f in enumerate(frames) if f in two])
                self.assertSamePackets(self.query_packets(store, "not udp port 53"), [])
        # More later-fragments-first in one segment than may wait at once (4096), each waiting only
        # until its first comes: all are judged again (the re-check stopped keeping them after 4096
        # in a segment, waiting or not: 10096 of 12000, and 1904 in 'not udp port 53').
        _, _, orders = outstanding_datagrams(6000)
        path = frames_pcap(self.path("many.pcap"), orders["each-later-first"])
        store = self.path("s-many")
        record(store, [path], "--cutoff", "none")
        n = lambda flt: int(tm("query", "--store", store, "--count", "-q", flt).stdout)
        self.assertEqual((n("udp port 53"), n("not udp port 53")), (12000, 0))

    def test_later_fragments_without_their_first_are_not_cut(self):
        # 1000 datagrams, each far below the 15k cutoff: every packet is stored. A later fragment
        # whose first was not found (it came later, or was forgotten: the connection table's
        # memory was direct-mapped) was charged to its address pair's connection, whose count of
        # all such fragments then reached the cutoff: 1024 of 2000 stored, later ones first.
        n = 1000
        _, _, orders = outstanding_datagrams(n)
        for name, frames in orders.items():
            with self.subTest(order=name):
                path = frames_pcap(self.path(name + ".pcap"), frames)
                store = self.path("c-" + name)
                out = tm("record", "--store", store, "--read", path, "--json").stdout
                c = json.loads(out)["classes"]["default"]
                self.assertEqual((c["seen_packets"], c["stored_packets"], c["cut_packets"]), (2 * n, 2 * n, 0))
                self.assertSamePackets(self.query_packets(store, "ip"), tcpdump_packets(path))
        # A flood of later fragments whose firsts never come is still cut, at 64 times the cutoff:
        # 300 frames of 642 bytes at --cutoff 1k, stored while the pair's count is below 65536: 103.
        _, laters, _ = outstanding_datagrams(300)
        path = frames_pcap(self.path("orphans.pcap"), laters)
        self.assertEqual(len(laters[0]), 642)
        out = tm("record", "--store", self.path("orphans"), "--read", path, "--cutoff", "1k", "--json").stdout
        c = json.loads(out)["classes"]["default"]
        self.assertEqual((c["stored_packets"], c["cut_packets"]), (103, 197))

    def test_a_filter_and_its_negation_add_up_when_a_window_cuts_a_datagram(self):
        # A window that leaves a datagram's first fragment out: its later fragments have no ports
        # to the re-check (as to tcpdump), so `not port P` takes them. The index keeps a later
        # fragment under its datagram's ports, and a `not` took its exact complement, so they were
        # in neither `port P` nor `not port P`.
        cases = [(("ipv4", "fragmented-3.pcap"), ["port 21", "tcp port 21", "host 131.243.1.10"]),
                 (("ipv6", "ipv6-fragmented-dns.pcap"), ["port 53", "udp", "src port 53"]),
                 (("mixed", "afs.pcap"), ["port 7001", "udp port 7000"])]
        for parts, filters in cases:
            src = corpus(*parts)
            store = self.path("s-" + parts[1])
            record(store, [src], "--cutoff", "none")
            recs = read_pcap(src)
            starts = [ts for ts, cap, wire, d in recs if self.later_fragment(d)][:3]
            self.assertTrue(starts, parts)
            for start in starts:
                frm = "%d.%09d" % divmod(start, 10**9)
                count = lambda f: int(tm("query", "--store", store, "-q", "--count", "--from", frm, f).stdout)
                total = count("")
                for flt in filters:
                    with self.subTest(capture=parts[1], start=frm, filter=flt):
                        self.assertEqual(count(flt) + count("not " + flt), total)
                        self.assertEqual(count("not not " + flt), count(flt))
        # And as tcpdump answers the capture cut there (no ports: `not port 21` takes them).
        src = corpus("ipv4", "fragmented-3.pcap")
        start = [ts for ts, cap, wire, d in read_pcap(src) if self.later_fragment(d)][0]
        cut = self.path("cut.pcap")
        write_pcap(cut, [r for r in read_pcap(src) if r[0] >= start])
        out = self.path("a.pcap")
        tm("query", "--store", self.path("s-fragmented-3.pcap"), "-q", "-w", out, "--from",
           "%d.%09d" % divmod(start, 10**9), "not port 21")
        self.assertSamePackets(tcpdump_packets(out), tcpdump_packets(cut, "not port 21"))

    @staticmethod
    def later_fragment(frame):
        """An Ethernet frame of an IPv4 fragment with an offset, or of IPv6 with a fragment header at an offset."""
        et = struct.unpack(">H", frame[12:14])[0]
        if et == 0x0800:
            return struct.unpack(">H", frame[20:22])[0] & 0x1fff != 0
        if et == 0x86DD and frame[20] == 44:
            return struct.unpack(">H", frame[56:58])[0] & 0xfff8 != 0
        return False

    def test_bpf_filters_keep_tcpdump_semantics(self):
        src = corpus("ipv4", "fragmented-3.pcap")
        record(self.store, [src], "--cutoff", "none")
        flt = "tcp dst port 21 or less 0"  # `less` is not planned, nor split from an `or`: a libpcap scan
        self.assertIn("scan with libpcap BPF", tm("query", "--store", self.store, "--explain", flt).stdout.decode())
        self.assertSamePackets(self.query_packets(self.store, flt), tcpdump_packets(src, flt))
        self.assertEqual(len(tcpdump_packets(src, flt)), 1)
        # Split from an `and`, tm's `tcp dst port 21` keeps its meaning (the later fragments of
        # the datagram too), libpcap's `greater 0` takes what it selects.
        flt = "tcp dst port 21 and greater 0"
        self.assertIn("by libpcap BPF for the rest, (greater 0)",
                      tm("query", "--store", self.store, "--explain", flt).stdout.decode())
        self.assertSamePackets(self.query_packets(self.store, flt), self.query_packets(self.store, "tcp dst port 21"))
        self.assertEqual(len(self.query_packets(self.store, flt)), 5)


if __name__ == "__main__":
    unittest.main()
