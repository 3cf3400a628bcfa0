"""Captures cut to a small snaplen (editcap -s N): tm's answers are tcpdump's on frames cut inside their
headers, as on whole ones. libpcap rejects a packet whose filter reads past its captured bytes, even under
`not` (`not port 80` of a frame cut before its ports), and reads what was captured (`ip` of a frame cut
inside its IP header, `src host X` when the source address is whole); tm judges such frames with
libpcap's compiled filter (docs/USAGE.md, "Frames cut short"), found through the index's key for them."""
import os
import subprocess
import unittest

from tmtest import StoreTest, corpus, record, tcpdump_packets

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
