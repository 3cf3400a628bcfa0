#!/usr/bin/env python3
"""End-to-end: a packet whose IPv4/IPv6 fixed header is malformed (a version nibble that is not
the EtherType's, an IPv4 header length below 5) is found by `host X`, `net N`, `ip proto P`,
`ip`, `ip6` as tcpdump finds it: libpcap reads the EtherType and the addresses at their fixed
offsets, without looking at the version or the header length (docs/USAGE.md "Malformed IP
headers"). The capture is crafted here; the expected answer is tcpdump's on it."""
import socket
import struct
import unittest

from tmtest import StoreTest, corpus, record, tcpdump_packets, tm, write_pcap


def ip4(src, dst, proto, payload, ver=4, ihl=5):
    h = struct.pack("!BBHHHBBH4s4s", ver << 4 | ihl, 0, 20 + len(payload), 1, 0, 64, proto, 0,
                    socket.inet_aton(src), socket.inet_aton(dst))
    return h + payload


def ip6(src, dst, nh, payload, ver=6):
    return struct.pack("!IHBB16s16s", ver << 28, len(payload), nh, 64, socket.inet_pton(socket.AF_INET6, src),
                       socket.inet_pton(socket.AF_INET6, dst)) + payload


def tcp(sp, dp):
    return struct.pack("!HHIIBBHHH", sp, dp, 1, 0, 5 << 4, 0x02, 8192, 0, 0)


def udp(sp, dp):
    return struct.pack("!HHHH", sp, dp, 8, 0)


def eth(payload, etype):
    return bytes.fromhex("66778899aabb001122334455") + struct.pack("!H", etype) + payload


# (what, frame, bytes captured or None for all of it)
FRAMES = [
    ("tcp4", eth(ip4("10.1.1.1", "10.9.9.9", 6, tcp(40000, 80)), 0x0800), None),
    ("ipv4 with version 6", eth(ip4("10.6.6.6", "10.9.9.9", 6, tcp(40001, 8080), ver=6), 0x0800), None),
    ("ipv4 with version 0", eth(ip4("10.1.1.1", "10.8.8.8", 17, udp(53, 53), ver=0), 0x0800), None),
    ("ipv4 ihl 4", eth(ip4("10.9.9.9", "10.7.7.7", 17, udp(5353, 5353), ihl=4), 0x0800), None),
    ("ipv4 ihl 0", eth(ip4("10.1.1.1", "10.9.9.9", 1, b"\x08\0\0\0\0\1\0\1", ihl=0), 0x0800), None),
    # Cut before the protocol byte: neither tm nor tcpdump can say whose it is. (Cut inside the
    # addresses, libpcap still matches a filter on the bytes it has: `src host` on a captured source.)
    ("ipv4 with version 5, cut", eth(ip4("10.1.1.1", "10.9.9.9", 6, tcp(1, 2), ver=5), 0x0800), 14 + 9),
    ("udp6", eth(ip6("2001:db8::1", "2001:db8::99", 17, udp(1000, 53)), 0x86dd), None),
    ("ipv6 with version 4", eth(ip6("2001:db8::66", "2001:db8::99", 58, b"\x80\0\0\0\0\1\0\1", ver=4), 0x86dd),
     None),
    ("ipv6 with version 0", eth(ip6("2001:db8::99", "2001:db8::1", 6, tcp(40002, 443), ver=0), 0x86dd), None),
    ("ipv6 with version 7, cut", eth(ip6("2001:db8::99", "2001:db8::1", 6, tcp(1, 2), ver=7), 0x86dd), 14 + 6),
]

FILTERS = [
    "host 10.9.9.9",
    "src host 10.1.1.1",
    "dst host 10.9.9.9",
    "net 10.9.9.0/24",
    "host 10.8.8.8",
    "ip proto 6",
    "ip proto 17",
    "icmp",
    "tcp",
    "ip and host 10.7.7.7",
    "ip6 and host 2001:db8::66",
    "ip6 host 2001:db8::99",
    "host 2001:db8::99",
    "src host 2001:db8::99",
    "net 2001:db8::/64",
    "icmp6",
    "ip6 proto 6",
    "tcp port 80",
]


class MalformedIpHeaders(StoreTest):
    def test_crafted_capture_answers_as_tcpdump(self):
        src = self.path("malformed.pcap")
        records = []
        for i, (_, frame, cap) in enumerate(FRAMES):
            data = frame[:cap] if cap else frame
            records.append((1700000000 * 10**9 + i * 10**6, len(data), len(frame), data))
        write_pcap(src, records)
        every = tcpdump_packets(src)
        self.assertEqual(len(every), len(FRAMES))
        record(self.store, [src])
        for flt in FILTERS:
            with self.subTest(filter=flt):
                want = tcpdump_packets(src, flt)
                self.assertTrue(want, "the capture must hold packets for '%s'" % flt)
                self.assertSamePackets(self.query_packets(self.store, flt), want, flt)
        # The malformed headers themselves are among the answers (what the old decoder missed).
        self.assertEqual(len(tcpdump_packets(src, "host 10.9.9.9")), 4)
        self.assertEqual(len(tcpdump_packets(src, "host 2001:db8::99")), 3)

    def test_ipv6_bad_version_from_tcpdump_tests(self):
        # tcpdump's ipv6-bad-version.pcap: #2 and #4 carry EtherType 0x86dd with version 0, an
        # ICMPv6 neighbor solicitation from fe80::20c:29ff:fe76:6c14 to ff02::1 inside
        # (tcpdump -nn -xx -r malformed/ipv6-bad-version.pcap: "IP6 version error: 0 != 6").
        src = corpus("malformed", "ipv6-bad-version.pcap")
        every = tcpdump_packets(src)
        record(self.store, [src])
        for flt in ("host ff02::1", "host fe80::20c:29ff:fe76:6c14", "icmp6", "ip6"):
            with self.subTest(filter=flt):
                want = tcpdump_packets(src, flt)
                self.assertSamePackets(self.query_packets(self.store, flt), want, flt)
        self.assertEqual(tcpdump_packets(src, "host ff02::1"), [every[1], every[3]])

    def test_a_sub_second_field_of_a_second_or_more_is_said(self):
        # timestamp_invalid_micro.pcap: records whose microseconds field is 1000000 and more
        # (tcpdump prints it as it is, tshark drops it). tm carries it into the seconds, and says so
        # (it did without a word), naming the first record's offset and value.
        src = corpus("malformed", "timestamp_invalid_micro.pcap")
        with open(src, "rb") as f:
            data = f.read()
        offsets, off = [], 24
        while off + 16 <= len(data):
            _, frac, cap, _ = struct.unpack("<IIII", data[off:off + 16])
            if frac >= 1000000:
                offsets.append((off, frac))
            off += 16 + cap
        self.assertTrue(offsets)
        p = tm("record", "--store", self.store, "--read", src, "--cutoff", "none")
        self.assertIn("%s: %d record%s whose sub-second field is a second or more (the first at offset %d: %d us): "
                      "carried into the seconds" % (src, len(offsets), "" if len(offsets) == 1 else "s",
                                                    offsets[0][0], offsets[0][1]), p.stderr.decode())


if __name__ == "__main__":
    unittest.main()
