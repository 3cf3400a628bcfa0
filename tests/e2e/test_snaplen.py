"""Captures cut to a small snaplen (editcap -s N): tm's answers are tcpdump's on frames cut inside their
headers, as on whole ones. libpcap rejects a packet whose filter reads past its captured bytes, even under
`not` (`not port 80` of a frame cut before its ports), and reads what was captured (`ip` of a frame cut
inside its IP header, `src host X` when the source address is whole); tm judges such frames with
libpcap's compiled filter (docs/USAGE.md, "Frames cut short"), found through the index's key for them."""
import os
import struct
import subprocess
import unittest

from tmtest import StoreTest, corpus, record, tcpdump_packets, write_pcap

# Untagged, untunnelled captures, where tm answers as tcpdump on whole frames (test_query's oracle):
# TCP, IPv4 options, IPv6, ICMP, UDP/DHCP, ARP.
CAPTURES = {
    ("mixed", "bro.org.pcap"): "10.0.2.15",
    ("ipv4", "options.pcap"): "192.168.1.102",
    ("ipv6", "ftp-ipv6.pcap"): "2001:470:4867:99::21",
    ("ipv4", "5-pings.pcap"): "172.16.133.2",
    ("mixed", "dhcp_flood.pcap"): "128.2.7.31",
    ("link", "quic_handshake.pcap"): "::1",  # BSD loopback (DLT_NULL), macOS's AF_INET6 30
}
# Cut inside the Ethernet header, inside the IPv4 header, before and between the ports, inside IPv6's
# addresses, before its ports, inside TCP's header.
SNAPLENS = [12, 16, 26, 30, 35, 36, 40, 50, 56, 60]
FILTERS = ["ip", "ip6", "tcp", "udp", "icmp", "arp", "port 80", "not port 80", "src port 80", "port 21 or port 67",
           "host {h}", "src host {h}", "not host {h}", "tcp and not host {h}", "udp or icmp", "not ip and not ip6"]


class Snaplen(StoreTest):
    def test_frames_cut_short_are_answered_as_tcpdump_answers(self):
        for parts, host in CAPTURES.items():
            for snaplen in SNAPLENS:
                cut = self.path("cut-%d-%s" % (snaplen, parts[1]))
                subprocess.run(["editcap", "-s", str(snaplen), corpus(*parts), cut], check=True,
                               stdout=subprocess.DEVNULL)
                store = self.path("store-%d-%s" % (snaplen, parts[1]))
                record(store, [cut], "--cutoff", "none")
                for flt in FILTERS:
                    if flt == "arp" and parts[0] == "link":
                        continue  # (tcpdump refuses `arp` on BSD loopback)
                    flt = flt.format(h=host)
                    with self.subTest(capture=parts[1], snaplen=snaplen, filter=flt):
                        self.assertSamePackets(self.query_packets(store, flt), tcpdump_packets(cut, flt),
                                               "%s -s %d %r" % (parts[1], snaplen, flt))

    def test_frames_cut_short_on_ppp_hdlc_and_802_11_are_answered_as_tcpdump_answers(self):
        # PPP, Cisco HDLC and 802.11 (with radiotap) frames cut inside their IP headers or before their
        # ports: tm judged them itself (`ip` of a frame cut inside its IPv4 header: no; `not port 53` of
        # one cut before its ports: yes) where libpcap reads what was captured or rejects the frame, as
        # it does on Ethernet (exploratory tester).
        frames = []
        for i, (a, b, sp, dp) in enumerate([((10, 0, 0, 1), (10, 0, 0, 2), 1000, 53),
                                            ((10, 0, 0, 2), (10, 0, 0, 1), 53, 1000)]):
            udp = struct.pack("!HHHH", sp, dp, 16, 0) + b"question"
            ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 1, 0, 64, 17, 0, bytes(a), bytes(b)) + udp
            f = b"\xff\x03\x00\x21" + ip  # address, control, protocol IPv4
            frames.append((10**18 + i * 10**6, len(f), len(f), f))
        ppp, ppp_hdlc = self.path("ppp.pcap"), self.path("ppp-hdlc.pcap")
        write_pcap(ppp, frames, linktype=9)
        write_pcap(ppp_hdlc, frames, linktype=50)
        filters = ["ip", "ip6", "tcp", "udp", "icmp", "port 53", "not port 53", "src port 1000", "host {h}",
                   "src host {h}", "not host {h}", "udp or icmp", "not ip and not ip6"]
        # (the capture, where its first IP header starts, a host of it)
        for path, ip_at, host in ((ppp, 4, "10.0.0.1"), (ppp_hdlc, 4, "10.0.0.1"),
                                  (corpus("link", "HDLC.pcap"), 4, "10.0.0.1"),
                                  (corpus("link", "radiotap.pcap"), 82, "172.17.156.76")):
            name = os.path.basename(path)
            for snaplen in (ip_at - 3, ip_at + 2, ip_at + 10, ip_at + 16, ip_at + 20, ip_at + 22, ip_at + 24):
                cut = self.path("cut-%d-%s" % (snaplen, name))
                subprocess.run(["editcap", "-s", str(snaplen), path, cut], check=True, stdout=subprocess.DEVNULL)
                store = self.path("store-%d-%s" % (snaplen, name))
                record(store, [cut], "--cutoff", "none")
                for flt in filters:
                    if name == "HDLC.pcap" and flt.startswith("not host"):
                        continue  # (its SLARP frames: libpcap's `host` is also `rarp host` there; USAGE.md)
                    flt = flt.format(h=host)
                    with self.subTest(capture=name, snaplen=snaplen, filter=flt):
                        self.assertSamePackets(self.query_packets(store, flt), tcpdump_packets(cut, flt),
                                               "%s -s %d %r" % (name, snaplen, flt))

    def test_filters_libpcap_answers_are_compiled_as_for_a_file(self):
        # A filter tm hands to libpcap (protochain, byte offsets, greater) is compiled as tcpdump -r
        # compiles it: on BSD loopback, IPv6 is a file's address family 24, 28 or 30, not the
        # running system's AF_INET6 (Linux's 10), which libpcap tests compiling for a live capture.
        for name, proto in (("quic_handshake.pcap", 17), ("connect-with-header.pcap", 6)):
            store = self.path("store-" + name)
            record(store, [corpus("link", name)], "--cutoff", "none")
            for flt in ("ip6 protochain %d" % proto, "ip6[6] == %d" % proto, "ip6 and greater 10", "ip6",
                        "not ip6 and greater 10", "ip and greater 10"):
                with self.subTest(capture=name, filter=flt):
                    want = tcpdump_packets(corpus("link", name), flt)
                    if flt.startswith("ip6"):
                        self.assertTrue(want, flt)  # (the oracle finds some: not an empty comparison)
                    self.assertSamePackets(self.query_packets(store, flt), want, "%s %r" % (name, flt))


if __name__ == "__main__":
    unittest.main()
