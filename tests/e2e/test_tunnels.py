#!/usr/bin/env python3
"""End-to-end: tunnelled captures recorded with --cutoff none; `host INNER` finds exactly the
packets that carry the innermost address, `host OUTER` every packet of the tunnel, and
`inner`/`outer`/tunnel selectors narrow as documented. Expected counts come from tshark
(which decodes every layer), with the command next to each. Every capture of the tunnels,
ipv6, ipv4, link and nonip folders is recorded and stored whole."""
import json
import os
import struct
import unittest

from tmtest import StoreTest, corpus, corpus_files, read_pcap, record, tcpdump_packets, tm, write_pcap

# (file in tunnels/, innermost address, packets carrying it, outer address, packets carrying it)
CASES = [
    # tshark -r tunnels/4in4.pcap -Y 'ip.addr==10.0.0.1' | wc -l  -> 1;  tshark -r tunnels/4in4.pcap -Y 'ip.addr==1.2.3.4' | wc -l  -> 1
    ('4in4.pcap', '10.0.0.1', 1, '1.2.3.4', 1),
    # tshark -r tunnels/6in4.pcap -Y 'ipv6.addr==dead::beef' | wc -l  -> 1;  tshark -r tunnels/6in4.pcap -Y 'ip.addr==1.2.3.4' | wc -l  -> 1
    ('6in4.pcap', 'dead::beef', 1, '1.2.3.4', 1),
    # tshark -r tunnels/6in6in6.pcap -Y 'ipv6.addr==dead::beef' | wc -l  -> 1;  tshark -r tunnels/6in6in6.pcap -Y 'ipv6.addr==feed::beef' | wc -l  -> 1
    ('6in6in6.pcap', 'dead::beef', 1, 'feed::beef', 1),
    # tshark -r tunnels/gre-sample.pcap -Y 'ip.addr==172.28.2.3' | wc -l  -> 34;  tshark -r tunnels/gre-sample.pcap -Y 'ip.addr==172.27.1.66' | wc -l  -> 40
    ('gre-sample.pcap', '172.28.2.3', 34, '172.27.1.66', 40),
    # tshark -r tunnels/gre-within-gre.pcap -Y 'ip.addr==192.168.1.2' | wc -l  -> 624;  tshark -r tunnels/gre-within-gre.pcap -Y 'ip.addr==72.205.54.70' | wc -l  -> 628
    ('gre-within-gre.pcap', '192.168.1.2', 624, '72.205.54.70', 628),
    # tshark -r tunnels/vxlan-encapsulated-http.pcap -Y 'ip.addr==172.16.11.201' | wc -l  -> 12;  tshark -r tunnels/vxlan-encapsulated-http.pcap -Y 'ip.addr==10.1.200.131' | wc -l  -> 12
    ('vxlan-encapsulated-http.pcap', '172.16.11.201', 12, '10.1.200.131', 12),
    # tshark -r tunnels/geneve-many-options.pcap -Y 'ip.addr==10.0.0.226' | wc -l  -> 10;  tshark -r tunnels/geneve-many-options.pcap -Y 'ip.addr==192.168.33.179' | wc -l  -> 10
    ('geneve-many-options.pcap', '10.0.0.226', 10, '192.168.33.179', 10),
    # tshark -r tunnels/tcpdump-geneve.pcap -Y 'ip.addr==30.0.0.1' | wc -l  -> 39;  tshark -r tunnels/tcpdump-geneve.pcap -Y 'ip.addr==20.0.0.1' | wc -l  -> 39
    ('tcpdump-geneve.pcap', '30.0.0.1', 39, '20.0.0.1', 39),
    # tshark -r tunnels/gtp7_ipv6.pcap -Y 'ipv6.addr==fe80::224c:4fff:fe43:414c' | wc -l  -> 2;  tshark -r tunnels/gtp7_ipv6.pcap -Y 'ip.addr==118.92.124.41' | wc -l  -> 2
    ('gtp7_ipv6.pcap', 'fe80::224c:4fff:fe43:414c', 2, '118.92.124.41', 2),
    # tshark -r tunnels/ayiya3.pcap -Y 'ipv6.addr==2001:4978:f:4c::2' | wc -l  -> 25;  tshark -r tunnels/ayiya3.pcap -Y 'ip.addr==192.168.3.101' | wc -l  -> 35
    ('ayiya3.pcap', '2001:4978:f:4c::2', 25, '192.168.3.101', 35),
    # tshark -r tunnels/mpls-over-udp.pcap -Y 'ip.addr==10.3.0.10' | wc -l  -> 2;  tshark -r tunnels/mpls-over-udp.pcap -Y 'ip.addr==10.100.12.170' | wc -l  -> 2
    ('mpls-over-udp.pcap', '10.3.0.10', 2, '10.100.12.170', 2),
    # tshark -r tunnels/gre-over-udp-4754.pcap -Y 'ip.addr==172.17.0.2' | wc -l  -> 14;  tshark -r tunnels/gre-over-udp-4754.pcap -Y 'ip.addr==192.168.0.107' | wc -l  -> 14
    ('gre-over-udp-4754.pcap', '172.17.0.2', 14, '192.168.0.107', 14),
]


class Tunnels(StoreTest):
    def test_inner_and_outer_addresses(self):
        for name, inner, n_inner, outer, n_outer in CASES:
            with self.subTest(file=name):
                store = self.path("s-" + name)
                record(store, [corpus("tunnels", name)], "--cutoff", "none")
                self.assertEqual(len(self.query_packets(store, "host " + inner)), n_inner)
                self.assertEqual(len(self.query_packets(store, "inner host " + inner)), n_inner)
                self.assertEqual(len(self.query_packets(store, "outer host " + inner)), 0)
                self.assertEqual(len(self.query_packets(store, "host " + outer)), n_outer)
                self.assertEqual(len(self.query_packets(store, "outer host " + outer)), n_outer)
                self.assertEqual(len(self.query_packets(store, "tunnel and host " + inner)), n_inner)

    def test_tunnel_selectors(self):
        store = self.path("s")
        record(store, [corpus("tunnels", n) for n in ("vxlan.pcap", "geneve.pcap", "gre-sample.pcap")],
               "--cutoff", "none")
        # vxlan.pcap: 10 packets, 2 of them ARP inside VXLAN (no inner IP layer):
        # tshark -r tunnels/vxlan.pcap -Y 'vxlan && !arp' | wc -l -> 8
        self.assertEqual(len(self.query_packets(store, "vxlan")), 8)
        self.assertEqual(len(self.query_packets(store, "vxlan 123")), 8)
        self.assertEqual(len(self.query_packets(store, "vxlan 7")), 0)
        # tshark -r tunnels/geneve.pcap -Y geneve | wc -l -> 6
        self.assertEqual(len(self.query_packets(store, "geneve")), 6)
        # tshark -r tunnels/gre-sample.pcap -Y gre | wc -l -> 40
        self.assertEqual(len(self.query_packets(store, "tunnel gre")), 40)
        self.assertEqual(len(self.query_packets(store, "tunnel")), 8 + 6 + 40)

    def test_every_capture_is_stored(self):
        for folder in ("tunnels", "ipv6", "ipv4", "link", "nonip"):
            for path in corpus_files(folder):
                if not path.endswith(".pcap"):
                    continue
                with self.subTest(file=path):
                    store = self.path("all-" + folder + "-" + os.path.basename(path))
                    record(store, [path], "--cutoff", "none")
                    want = len(tcpdump_packets(path))
                    self.assertEqual(len(self.query_packets(store, "")), want)


def ipv4_header(proto, src, dst, payload):
    hdr = bytearray(struct.pack(">BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), 1, 0, 64, proto, 0,
                                bytes(src), bytes(dst)))
    s = sum(struct.unpack(">10H", bytes(hdr)))
    while s >> 16:
        s = (s & 0xffff) + (s >> 16)
    hdr[10:12] = struct.pack(">H", ~s & 0xffff)
    return bytes(hdr) + payload


def l2tpv3_capture(path):
    """Ethernet / IPv4 192.0.2.1 <-> 192.0.2.2 / L2TPv3 over IP (protocol 115), session ids
    0x1234 and 0x5678 with a 4-byte cookie / Ethernet / IPv4 10.0.0.7 <-> 10.0.0.8 / UDP
    1000 <-> 2000: three packets one way, two back, then one control message (session 0)."""
    def eth(payload):
        return b"\x02\0\0\0\0\x01\x02\0\0\0\0\x02\x08\x00" + payload

    def data(outer_src, outer_dst, session, src, dst, sport, dport):
        udp = struct.pack(">HHHH", sport, dport, 8 + 16, 0) + b"x" * 16
        inner = eth(ipv4_header(17, src, dst, udp))
        return eth(ipv4_header(115, outer_src, outer_dst, struct.pack(">I", session) + b"\xc0\xff\xee\x01" + inner))

    a, b, x, y = (192, 0, 2, 1), (192, 0, 2, 2), (10, 0, 0, 7), (10, 0, 0, 8)
    frames = [data(a, b, 0x1234, x, y, 1000, 2000) for _ in range(3)]
    frames += [data(b, a, 0x5678, y, x, 2000, 1000) for _ in range(2)]
    frames.append(eth(ipv4_header(115, a, b, b"\0\0\0\0\xc8\x03\0\x0c\0\0\0\0\0\0\0\0")))
    write_pcap(path, [(10**9 * (i + 1), len(f), len(f), f) for i, f in enumerate(frames)])


class L2tpv3(StoreTest):
    def test_over_ip_with_a_cookie(self):
        # The corpus has no L2TPv3 capture: a crafted one, whose counts tshark confirms
        # (python3 -c 'import test_tunnels as t; t.l2tpv3_capture("/tmp/l3.pcap")';
        #  T="tshark -r /tmp/l3.pcap -o 'l2tp.cookie_size:4 Byte Cookie' -o l2tp.l2_specific:None -d l2tp.pw_type==0,eth"
        #  $T -Y 'ip.addr==10.0.0.7' 2>/dev/null | wc -l -> 5;  $T -Y 'udp.port==2000' ... -> 5;
        #  $T -Y 'ip.addr==192.0.2.1' ... -> 6)
        path = self.path("l2tpv3.pcap")
        l2tpv3_capture(path)
        record(self.store, [path], "--cutoff", "none")
        self.assertEqual(len(self.query_packets(self.store, "host 10.0.0.7")), 5)
        self.assertEqual(len(self.query_packets(self.store, "inner udp port 2000")), 5)
        self.assertEqual(len(self.query_packets(self.store, "outer host 192.0.2.1")), 6)
        self.assertEqual(len(self.query_packets(self.store, "tunnel l2tp")), 5)
        self.assertEqual(len(self.query_packets(self.store, "ip proto 115")), 6)


class IpsecPairs(StoreTest):
    """ESP/AH: the two directions of an SA pair are one connection for the cutoff."""

    def pair_capture(self):
        """nonip/02-sunrise-sunset-esp.pcap (8 ESP packets 192.1.2.23 -> 192.1.2.45, SPI
        0x12345678), each followed by a reply: addresses swapped, SPI 0x87654321 (the IPv4
        checksum is unchanged by the swap)."""
        frames = []
        for ts, cap, wire, data in read_pcap(corpus("nonip", "02-sunrise-sunset-esp.pcap")):
            assert data[12:14] == b"\x08\x00" and data[14] == 0x45 and data[23] == 50
            frames.append((ts, cap, wire, data))
            back = data[:26] + data[30:34] + data[26:30] + bytes.fromhex("87654321") + data[38:]
            frames.append((ts + 1000, cap, wire, back))
        path = self.path("esp-pair.pcap")
        write_pcap(path, frames)
        return path, frames

    def test_sa_pair_is_one_connection(self):
        path, frames = self.pair_capture()
        self.assertEqual(len(tcpdump_packets(path, "esp")), 16)
        self.assertEqual(record(self.path("a"), [path], "--cutoff", "none")["connections"], 1)
        # The cutoff counts both directions together: with room for 3 packets, 3 are kept
        # (two connections of one SA each would have kept 3 + 3).
        wire = frames[0][2]
        cutoff = 3 * wire
        keep, seen = 0, 0
        for _, _, w, _ in frames:
            keep += seen < cutoff
            seen += w
        self.assertEqual(keep, 3)
        s = record(self.path("b"), [path], "--cutoff", str(cutoff))
        self.assertEqual(s["connections"], 1)
        self.assertEqual(len(self.query_packets(self.path("b"), "")), keep)

    def test_two_sa_pairs_between_two_hosts_are_two_flows_of_their_own_packets(self):
        """Two SA pairs between the same two hosts at once (an IKE rekey's overlap): two connections,
        and each flow's packets (tm query --flow) are its own pair's. The flow's filter is its hosts and
        protocol, which both pairs' packets match: each flow answered all 16."""
        pairs = ((b"\x12\x34\x56\x78", b"\x87\x65\x43\x21"), (b"\xaa\xaa\x00\x01", b"\xbb\xbb\x00\x02"))
        frames = []
        for i, (ts, cap, wire, data) in enumerate(read_pcap(corpus("nonip", "02-sunrise-sunset-esp.pcap"))):
            back = data[:26] + data[30:34] + data[26:30] + data[34:]

            def sa(frame, spi):
                return frame[:34] + spi + frame[38:]
            # The first round opens each pair in turn (A->B, then its reply); later rounds interleave.
            order = ([(pairs[0][0], 0), (pairs[0][1], 1), (pairs[1][0], 0), (pairs[1][1], 1)] if i == 0 else
                     [(pairs[0][0], 0), (pairs[1][0], 0), (pairs[0][1], 1), (pairs[1][1], 1)])
            for k, (spi, rev) in enumerate(order):
                frames.append((ts + 1000 * k, cap, wire, sa(back if rev else data, spi)))
        path = self.path("esp-two-pairs.pcap")
        write_pcap(path, frames)
        self.assertEqual(len(tcpdump_packets(path, "esp")), 32)
        self.assertEqual(record(self.store, [path], "--cutoff", "none")["connections"], 2)
        rows = [json.loads(l) for l in tm("flows", "--store", self.store, "--format", "json").stdout.decode().splitlines()]
        self.assertEqual(len(rows), 2)
        got = set()
        for r in rows:
            self.assertEqual(r["orig_pkts"] + r["resp_pkts"], 16)
            out = self.path("flow-%s.pcap" % r["id"])
            tm("query", "--store", self.store, "-w", out, "-q", "--flow", r["id"])
            spis = sorted(set(data[34:38] for _, _, _, data in read_pcap(out)))
            self.assertEqual(len(read_pcap(out)), 16, "flow %s: SPIs %s" % (r["id"], [s.hex() for s in spis]))
            got.add(tuple(spis))
        self.assertEqual(got, {tuple(sorted(p)) for p in pairs})

    def test_corpus_sa_connections(self):
        # tshark -r nonip/ip6_esp.pcap -T fields -e ipv6.src -e ipv6.dst -e esp.spi | sort -u | wc -l
        #   -> 13: 12 one-way SAs (3ffe::1 to 12 peers) and one ICMPv6 packet: 13 connections.
        self.assertEqual(record(self.path("e"), [corpus("nonip", "ip6_esp.pcap")],
                                "--cutoff", "none")["connections"], 13)


def udp_datagram(src, dst, sport, dport, n=8):
    return ipv4_header(17, src, dst, struct.pack(">HHHH", sport, dport, 8 + n, 0) + b"u" * n)


def arp_body(op, spa, tpa, htype=1, hlen=6):
    return struct.pack(">HHBBH", htype, 0x0800, hlen, 4, op) + b"\xaa" * hlen + bytes(spa) + b"\0" * hlen + bytes(tpa)


SNAP = b"\xaa\xaa\x03\0\0\0"
HOSTS = ((10, 1, 1, 1), (10, 1, 1, 2), (10, 1, 1, 3))


def classic_frames():
    """Ethernet frames between three hosts: UDP 53 and 123, and ARP (the building blocks of the
    FabricPath and FDDI captures below)."""
    a, b, c = HOSTS
    eth = b"\x02\0\0\0\0\x01\x02\0\0\0\0\x02"
    frames = [eth + b"\x08\x00" + udp_datagram(a, b, 1000, 53), eth + b"\x08\x00" + udp_datagram(b, a, 53, 1000),
              eth + b"\x08\x00" + udp_datagram(a, c, 2000, 123), eth + b"\x08\x06" + arp_body(1, c, a),
              eth + b"\x81\x00\x00\x07\x08\x00" + udp_datagram(c, b, 3000, 53)]
    return frames


def stamp(frames):
    return [(10**9 * (i + 1), len(f), len(f), f) for i, f in enumerate(frames)]


FILTERS = ["host 10.1.1.1", "host 10.1.1.3", "udp port 53", "port 123", "arp", "src host 10.1.1.2", ""]


class DecodingCompleteness(StoreTest):
    """Protocols found on captures the tests had not seen: each decoded down to its inner
    addresses, compared with tcpdump where tcpdump can see them."""

    def count(self, store, flt):
        return len(self.query_packets(store, flt))

    def test_cisco_metadata_in_gre(self):
        path = corpus("tunnels", "various_gre.pcap")
        record(self.store, [path], "--cutoff", "none")
        # tshark -r tunnels/various_gre.pcap -Y 'ip.addr==172.17.1.54' | wc -l -> 11 (ICMP and PIM
        # inside GRE protocol 0x8909; tcpdump does not look inside GRE)
        self.assertEqual(self.count(self.store, "host 172.17.1.54"), 11)
        self.assertEqual(self.count(self.store, "inner icmp"), 10)  # tshark ... -Y 'cmd && icmp' -> 10
        # tshark -r tunnels/various_gre.pcap -Y cmd | wc -l -> 20 (8 of them carry a GRE keepalive)
        self.assertEqual(self.count(self.store, "tunnel gre"), 20)
        # The outer layer is unchanged: every GRE packet, as tcpdump finds them behind their VLAN tag.
        self.assertEqual(self.count(self.store, "outer host 10.172.64.6"),
                         len(tcpdump_packets(path, "vlan and host 10.172.64.6")))

    def test_aruba_gre_carries_80211(self):
        # Aruba access points send 802.11 frames in GRE protocol 0x8200..0x8370: here each UDP
        # datagram of classic_frames() in an 802.11 data frame (to the DS), GRE protocol 0x8200
        # and 0x8370 alternately, between 192.0.2.1 and 192.0.2.2. The same 802.11 frames alone
        # (link type 105) are what tcpdump can filter: the inner answers must be its answers.
        wlan, grefr = [], []
        for i, f in enumerate(classic_frames()):
            at = 14 if f[12:14] in (b"\x08\x00", b"\x08\x06") else 18
            w = b"\x08\x01\0\0" + b"\x01" * 18 + b"\0\0" + SNAP + f[at - 2:at] + f[at:]
            wlan.append(w)
            gre = struct.pack(">HH", 0, 0x8200 if i % 2 == 0 else 0x8370) + w
            grefr.append(b"\x02\0\0\0\0\x01\x02\0\0\0\0\x02\x08\x00" + ipv4_header(47, (192, 0, 2, 1), (192, 0, 2, 2), gre))
        plain, tunnelled = self.path("wlan.pcap"), self.path("aruba.pcap")
        write_pcap(plain, stamp(wlan), linktype=105)
        write_pcap(tunnelled, stamp(grefr))
        record(self.store, [tunnelled], "--cutoff", "none")
        for flt in FILTERS:
            with self.subTest(filter=flt):
                want = len(tcpdump_packets(plain, flt or None))
                self.assertEqual(self.count(self.store, flt), want)
        self.assertEqual(self.count(self.store, "tunnel gre"), 4)  # the 4 IP frames
        self.assertEqual(self.count(self.store, "outer host 192.0.2.1"), 5)

    def test_fabricpath(self):
        # FabricPath (EtherType 0x8903): outer MACs, 0x8903, FTAG/TTL, then the classic frame.
        # tcpdump does not decode it: compare with tcpdump on the classic frames themselves.
        classic = classic_frames()
        fp = [b"\x02\0\0\0\0\x0a\x02\0\0\0\0\x0b\x89\x03\x00\x3f" + f for f in classic]
        plain, wrapped = self.path("classic.pcap"), self.path("fabricpath.pcap")
        write_pcap(plain, stamp(classic))
        write_pcap(wrapped, stamp(fp))
        self.assertEqual(len(tcpdump_packets(wrapped, "host 10.1.1.1")), 0)  # why the comparison is indirect
        record(self.store, [wrapped], "--cutoff", "none")
        for flt in FILTERS + ["vlan 7"]:
            with self.subTest(filter=flt):
                # tm decodes through VLAN tags always; libpcap needs `vlan and` for the tagged frame.
                both = "(%s) or (vlan and (%s))" % (flt, flt) if flt else None
                self.assertEqual(self.count(self.store, flt), len(tcpdump_packets(plain, both)))

    def test_fddi(self):
        # Link type 10: frame control 0x50 (LLC), destination and source MAC, LLC/SNAP, then the
        # EtherType's payload; one SMT frame (frame control 0x41) with nothing decodable.
        # tcpdump filters FDDI itself.
        frames = []
        for f in classic_frames():
            if f[12:14] == b"\x81\x00":
                continue  # no VLAN tags on FDDI
            frames.append(b"\x50" + f[:12] + SNAP + f[12:])
        frames.append(b"\x41" + b"\x01" * 12 + b"\0" * 20)
        path = self.path("fddi.pcap")
        write_pcap(path, stamp(frames), linktype=10)
        record(self.store, [path], "--cutoff", "none")
        for flt in FILTERS:
            with self.subTest(filter=flt):
                want = len(tcpdump_packets(path, flt or None))
                self.assertEqual(self.count(self.store, flt), want)
                if flt:
                    self.assertGreater(want, 0)

    def test_arp_over_infiniband(self):
        record(self.store, [corpus("link", "ipoib.pcap")], "--cutoff", "none")
        # tcpdump cannot filter IP over InfiniBand ("link-layer type filtering not implemented"):
        # tshark -r link/ipoib.pcap -Y arp | wc -l -> 4;
        # tshark -r link/ipoib.pcap -Y 'ip.addr==192.168.56.10 || arp.src.proto_ipv4==192.168.56.10
        #   || arp.dst.proto_ipv4==192.168.56.10' | wc -l -> 30 (all: 26 ICMP, 4 ARP)
        self.assertEqual(self.count(self.store, "arp"), 4)
        self.assertEqual(self.count(self.store, "arp and host 192.168.56.24"), 4)
        self.assertEqual(self.count(self.store, "host 192.168.56.10"), 30)

    def test_arp_is_every_arp_frame(self):
        # tm's `arp` is libpcap's `arp or rarp` (docs/USAGE.md), of any hardware/protocol length.
        sll2 = corpus("link", "linux_dlt_sll2.pcap")  # one ARP request, one RARP request
        record(self.path("a"), [sll2], "--cutoff", "none")
        self.assertEqual(self.count(self.path("a"), "arp"), len(tcpdump_packets(sll2, "arp or rarp")))
        # One ARP frame behind an 802.1ad tag, hardware type 0x3030, hardware length 14: tcpdump
        # needs `vlan and` (tm decodes through tags); its addresses are not read (length not 6).
        odd = corpus("malformed", "arp-too-long-tha.pcap")
        record(self.path("b"), [odd], "--cutoff", "none")
        self.assertEqual(self.count(self.path("b"), "arp"), len(tcpdump_packets(odd, "vlan and arp")))
        self.assertEqual(self.count(self.path("b"), "host 48.48.48.48"), 0)
        # Four ARP frames behind LLC/SNAP (hardware type 6): libpcap's `arp` looks at the
        # Ethernet type field only and finds none; tshark -r pcapng/snap-arp.pcapng -Y arp -> 4,
        # -Y 'arp.src.proto_ipv4==10.0.0.1 || arp.dst.proto_ipv4==10.0.0.1' -> 4.
        snap = corpus("pcapng", "snap-arp.pcapng")
        record(self.path("c"), [snap], "--cutoff", "none")
        self.assertEqual(self.count(self.path("c"), "arp"), 4)
        self.assertEqual(self.count(self.path("c"), "host 10.0.0.1"), 4)
        self.assertEqual(self.count(self.path("c"), "not arp"), 0)


class LayerStats(StoreTest):
    """tm stats --layers: what the link carries, per layer type."""

    def layers(self, files):
        record(self.store, files, "--cutoff", "none")
        return json.loads(tm("stats", "--store", self.store, "--json", "--layers").stdout)["layers"]

    def test_tunnel_kinds_and_ethertypes(self):
        got = self.layers([corpus("tunnels", "vxlan.pcap"), corpus("tunnels", "gre-sample.pcap"),
                           corpus("nonip", "LLDP_and_CDP.pcap")])
        # Packets in which VXLAN carried an IP layer (its ARP frames count under "arp"):
        # tshark -r tunnels/vxlan.pcap -Y "vxlan && !arp" | wc -l -> 8
        self.assertEqual(got["tunnel vxlan"], 8)
        self.assertEqual(got["arp"], 2)  # tshark -r tunnels/vxlan.pcap -Y arp | wc -l -> 2
        # tshark -r tunnels/gre-sample.pcap -Y gre | wc -l -> 40
        self.assertEqual(got["tunnel gre"], 40)
        # tshark -r nonip/LLDP_and_CDP.pcap -Y lldp | wc -l -> 8
        self.assertEqual(got["ethertype 0x88cc"], 8)


    def test_a_filter_with_a_part_libpcap_answers_keeps_tms_meaning_for_the_rest(self):
        # `A and B` where tm plans A and libpcap must answer B (greater, len, byte offsets): the
        # packets tm answers for A (VLANs, tunnels looked into) that libpcap's B takes, as
        # tcpdump takes them from tm's own answer to A. Handed to libpcap whole, `tcp and
        # greater 0` answered nothing of a GRE capture whose `tcp` is 22 packets.
        cases = [
            (("tunnels", "gre-sample.pcap"), "tcp", "greater 0"),
            (("tunnels", "gre-sample.pcap"), "host 172.28.2.3 and tcp", "len > 100"),
            (("tunnels", "vxlan-encapsulated-http.pcap"), "host 172.16.11.201", "udp[4:2] > 200"),
            (("link", "icmp_dot1q.pcap"), "host 192.168.123.1", "less 100"),
            (("mixed", "bro.org.pcap"), "tcp and host 10.0.2.15", "tcp[13] & 2 != 0"),
            # tm's own terms (libpcap has no `tunnel`), and terms libpcap alone would find contradictory
            # (`ip6 and ip[9] = 41`: "expression rejects all packets"): the whole was refused.
            (("tunnels", "gre-sample.pcap"), "tunnel gre and host 172.28.2.3", "len > 100"),
            (("tunnels", "6in4.pcap"), "ip6", "ip[9] = 41"),
        ]
        for parts, a, b in cases:
            store = self.path("s-" + parts[1])
            if not os.path.exists(store):
                record(store, [corpus(*parts)], "--cutoff", "none")
            answer_a = self.path("a.pcap")
            tm("query", "--store", store, "-w", answer_a, "-q", a)
            want = tcpdump_packets(answer_a, b)
            self.assertTrue(want, (parts, a, b))  # (not an empty comparison)
            if b not in ("greater 0", "ip[9] = 41"):  # (true of every packet A selects: that A keeps its meaning)
                self.assertLess(len(want), len(tcpdump_packets(answer_a)), (parts, a, b))  # (b narrows)
            for flt in ("%s and %s" % (a, b), "%s and (%s)" % (b, a), "not not %s and %s" % (b, a)):
                with self.subTest(capture=parts[1], filter=flt):
                    self.assertSamePackets(self.query_packets(store, flt), want, "%s %r" % (parts[1], flt))


if __name__ == "__main__":
    unittest.main()
