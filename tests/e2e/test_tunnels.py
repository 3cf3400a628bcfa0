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

    def test_corpus_sa_connections(self):
        # tshark -r nonip/ip6_esp.pcap -T fields -e ipv6.src -e ipv6.dst -e esp.spi | sort -u | wc -l
        #   -> 13: 12 one-way SAs (3ffe::1 to 12 peers) and one ICMPv6 packet: 13 connections.
        self.assertEqual(record(self.path("e"), [corpus("nonip", "ip6_esp.pcap")],
                                "--cutoff", "none")["connections"], 13)


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


if __name__ == "__main__":
    unittest.main()
