// Tests of packet/decoder.h with hand-built frames: IPv4/IPv6 and transports, Ethernet
// encapsulations. Link types: test_decoder_link.cpp; corpus, truncation and tcpdump as an
// oracle: test_decoder_corpus.cpp. Frame builders: decoder_frames.h.

#include "decoder_frames.h"

namespace {

using namespace decoder_frames;

// What a malformed fixed IP header gives: its addresses and protocol byte, nothing more.
void expect_malformed_layer(const IpLayer& l, uint8_t version, const IpAddr& src, const IpAddr& dst,
                            uint8_t proto, uint16_t l3_offset) {
  EXPECT_EQ(l.version, version);
  EXPECT_EQ(l.src, src);
  EXPECT_EQ(l.dst, dst);
  EXPECT_EQ(l.header_proto, proto);
  EXPECT_EQ(l.proto, proto);
  EXPECT_EQ(l.l3_offset, l3_offset);
  EXPECT_FALSE(l.fragment);
  EXPECT_EQ(l.frag_offset, 0);
  EXPECT_EQ(l.frag_id, 0u);
  EXPECT_FALSE(l.has_l4);
  EXPECT_FALSE(l.has_ports);
  EXPECT_EQ(l.l4_payload, 0u);
  EXPECT_EQ(l.tunnel, 0);
  EXPECT_FALSE(l.has_spi);
}

TEST(Decoder, EthernetIpv4Tcp) {
  Bytes f =
      cat(eth(0x0800), ipv4({}, tcp(40000, 443, tmach::packet::kTcpSyn | tmach::packet::kTcpAck, 100, 8)));
  PacketInfo pi = dec(tmach::packet::kLinkEthernet, f);
  EXPECT_EQ(pi.status, DecodeStatus::kOk);
  EXPECT_EQ(pi.anomaly, nullptr);
  EXPECT_TRUE(pi.has_eth);
  EXPECT_EQ(pi.eth_offset, 0);
  EXPECT_EQ(pi.ethertype, 0x0800);
  EXPECT_EQ(pi.vlan_count, 0);
  EXPECT_EQ(pi.mpls_count, 0);
  ASSERT_EQ(pi.ip_count, 1);
  const IpLayer& l = pi.ip[0];
  EXPECT_EQ(l.version, 4);
  EXPECT_EQ(l.src, ip("10.0.0.1"));
  EXPECT_EQ(l.dst, ip("10.0.0.2"));
  EXPECT_TRUE(l.src.is_v4());
  EXPECT_EQ(l.header_proto, tmach::packet::kProtoTcp);
  EXPECT_EQ(l.proto, tmach::packet::kProtoTcp);
  EXPECT_FALSE(l.fragment);
  EXPECT_EQ(l.frag_id, 0x1234u);
  EXPECT_EQ(l.l3_offset, 14);
  EXPECT_EQ(l.l4_offset, 34);
  EXPECT_TRUE(l.has_l4);
  EXPECT_TRUE(l.has_ports);
  EXPECT_EQ(l.sport, 40000);
  EXPECT_EQ(l.dport, 443);
  EXPECT_EQ(l.tcp_flags, tmach::packet::kTcpSyn | tmach::packet::kTcpAck);
  EXPECT_EQ(l.l4_payload, 100u);
  EXPECT_EQ(pi.inner(), &pi.ip[0]);
}

TEST(Decoder, Ipv4OptionsAndUdp) {
  V4 h;
  h.proto = tmach::packet::kProtoUdp;
  h.ihl = 7;
  PacketInfo pi = dec(tmach::packet::kLinkEthernet, cat(eth(0x0800), ipv4(h, udp(53, 5353, 37))));
  ASSERT_EQ(pi.status, DecodeStatus::kOk);
  EXPECT_EQ(pi.ip[0].l4_offset, 14 + 28);
  EXPECT_EQ(pi.ip[0].sport, 53);
  EXPECT_EQ(pi.ip[0].dport, 5353);
  EXPECT_EQ(pi.ip[0].l4_payload, 37u);
  EXPECT_EQ(pi.ip[0].tcp_flags, 0);
}

TEST(Decoder, Ipv4Fragments) {
  V4 h;
  h.proto = tmach::packet::kProtoUdp;
  h.frag = 0x2000;  // MF, offset 0: the first fragment has the UDP header
  h.id = 0xbeef;
  PacketInfo pi = dec(tmach::packet::kLinkEthernet, cat(eth(0x0800), ipv4(h, udp(1000, 2000, 100))));
  ASSERT_EQ(pi.status, DecodeStatus::kOk);
  EXPECT_TRUE(pi.ip[0].fragment);
  EXPECT_EQ(pi.ip[0].frag_offset, 0);
  EXPECT_EQ(pi.ip[0].frag_id, 0xbeefu);
  EXPECT_TRUE(pi.ip[0].has_l4);
  EXPECT_EQ(pi.ip[0].dport, 2000);

  h.frag = 0x2000 | 185;  // MF, offset 1480 bytes
  pi = dec(tmach::packet::kLinkEthernet, cat(eth(0x0800), ipv4(h, udp(1000, 2000, 100))));
  ASSERT_EQ(pi.status, DecodeStatus::kOk);
  EXPECT_TRUE(pi.ip[0].fragment);
  EXPECT_EQ(pi.ip[0].frag_offset, 185);
  EXPECT_FALSE(pi.ip[0].has_l4);
  EXPECT_FALSE(pi.ip[0].has_ports);
  EXPECT_EQ(pi.ip[0].proto, tmach::packet::kProtoUdp);

  h.frag = 185;  // last fragment
  pi = dec(tmach::packet::kLinkEthernet, cat(eth(0x0800), ipv4(h, udp(1000, 2000, 100))));
  EXPECT_TRUE(pi.ip[0].fragment);
  EXPECT_FALSE(pi.ip[0].has_l4);

  h.frag = 0x4000;  // DF only: not a fragment
  pi = dec(tmach::packet::kLinkEthernet, cat(eth(0x0800), ipv4(h, udp(1000, 2000, 100))));
  EXPECT_FALSE(pi.ip[0].fragment);
  EXPECT_TRUE(pi.ip[0].has_l4);
}

TEST(Decoder, Ipv4LengthAndHeaderErrors) {
  Bytes payload = tcp(1, 2, tmach::packet::kTcpAck, 10);
  V4 h;
  h.total = 1500;  // longer than captured: fine, l4_payload per the header
  PacketInfo pi = dec(tmach::packet::kLinkEthernet, cat(eth(0x0800), ipv4(h, payload)));
  EXPECT_EQ(pi.status, DecodeStatus::kOk);
  EXPECT_EQ(pi.ip[0].l4_payload, 1500u - 40);

  h.total = 19;  // shorter than the header
  pi = dec(tmach::packet::kLinkEthernet, cat(eth(0x0800), ipv4(h, payload)));
  EXPECT_EQ(pi.status, DecodeStatus::kMalformed);
  EXPECT_STREQ(pi.anomaly, "ipv4_bad_total_length");
  EXPECT_EQ(pi.ip_count, 1);  // addresses were read
  EXPECT_FALSE(pi.ip[0].has_l4);

  h.total = 30;  // room for 10 bytes of TCP only: the rest is padding
  pi = dec(tmach::packet::kLinkEthernet, cat(eth(0x0800), ipv4(h, payload)));
  EXPECT_EQ(pi.status, DecodeStatus::kMalformed);
  EXPECT_STREQ(pi.anomaly, "tcp_exceeds_ip_length");
  EXPECT_TRUE(pi.ip[0].has_ports);
  EXPECT_FALSE(pi.ip[0].has_l4);

  h.total = 0;  // TSO: the datagram is what was captured
  pi = dec(tmach::packet::kLinkEthernet, cat(eth(0x0800), ipv4(h, payload)));
  EXPECT_EQ(pi.status, DecodeStatus::kOk);
  EXPECT_EQ(pi.ip[0].l4_payload, 10u);

  h = V4{};
  h.ihl = 4;
  pi = dec(tmach::packet::kLinkEthernet, cat(eth(0x0800), ipv4(h, payload)));
  EXPECT_EQ(pi.status, DecodeStatus::kMalformed);
  EXPECT_STREQ(pi.anomaly, "ipv4_bad_ihl");
  ASSERT_EQ(pi.ip_count, 1);  // the addresses at their fixed offsets, as libpcap's `host` reads them
  expect_malformed_layer(pi.ip[0], 4, ip("10.0.0.1"), ip("10.0.0.2"), tmach::packet::kProtoTcp, 14);

  h = V4{};
  h.version = 5;
  pi = dec(tmach::packet::kLinkEthernet, cat(eth(0x0800), ipv4(h, payload)));
  EXPECT_EQ(pi.status, DecodeStatus::kMalformed);
  EXPECT_STREQ(pi.anomaly, "ipv4_bad_version");
  ASSERT_EQ(pi.ip_count, 1);
  expect_malformed_layer(pi.ip[0], 4, ip("10.0.0.1"), ip("10.0.0.2"), tmach::packet::kProtoTcp, 14);
  EXPECT_EQ(pi.ethertype, 0x0800);

  h = V4{};
  h.ihl = 15;  // 60-byte header, frame ends after 30
  pi = dec(tmach::packet::kLinkEthernet, cat(eth(0x0800), ipv4(h, {})), 14 + 30);
  EXPECT_EQ(pi.status, DecodeStatus::kTruncated);
  EXPECT_STREQ(pi.anomaly, "ipv4_options_truncated");
  ASSERT_EQ(pi.ip_count, 1);
  EXPECT_EQ(pi.ip[0].dst, ip("10.0.0.2"));
}

TEST(Decoder, TcpHeaderProblems) {
  PacketInfo pi = dec(tmach::packet::kLinkEthernet, cat(eth(0x0800), ipv4({}, tcp(80, 8080, 0x12, 0, 4))));
  EXPECT_EQ(pi.status, DecodeStatus::kMalformed);
  EXPECT_STREQ(pi.anomaly, "tcp_bad_data_offset");
  EXPECT_FALSE(pi.ip[0].has_l4);
  EXPECT_TRUE(pi.ip[0].has_ports);  // ports are readable all the same
  EXPECT_EQ(pi.ip[0].sport, 80);

  // Cut inside the options: ports kept, header not complete.
  Bytes f = cat(eth(0x0800), ipv4({}, tcp(80, 8080, tmach::packet::kTcpSyn, 0, 10)));
  pi = dec(tmach::packet::kLinkEthernet, f, f.size() - 4);
  EXPECT_EQ(pi.status, DecodeStatus::kTruncated);
  EXPECT_STREQ(pi.anomaly, "tcp_options_truncated");
  EXPECT_TRUE(pi.ip[0].has_ports);
  EXPECT_FALSE(pi.ip[0].has_l4);
  EXPECT_EQ(pi.ip[0].dport, 8080);

  // Cut before the ports.
  pi = dec(tmach::packet::kLinkEthernet, f, 14 + 20 + 3);
  EXPECT_EQ(pi.status, DecodeStatus::kTruncated);
  EXPECT_STREQ(pi.anomaly, "tcp_truncated");
  EXPECT_EQ(pi.ip_count, 1);
  EXPECT_FALSE(pi.ip[0].has_ports);
  EXPECT_EQ(pi.ip[0].l4_offset, 34);
}

TEST(Decoder, UdpLengthClamped) {
  V4 h;
  h.proto = tmach::packet::kProtoUdp;
  PacketInfo pi = dec(tmach::packet::kLinkEthernet, cat(eth(0x0800), ipv4(h, udp(1, 2, 20, 4))));
  EXPECT_EQ(pi.status, DecodeStatus::kOk);
  EXPECT_EQ(pi.ip[0].l4_payload, 0u);
  pi = dec(tmach::packet::kLinkEthernet, cat(eth(0x0800), ipv4(h, udp(1, 2, 20, 9000))));
  EXPECT_EQ(pi.status, DecodeStatus::kOk);
  EXPECT_EQ(pi.ip[0].l4_payload, 20u);  // no more than the IP header says
  pi = dec(tmach::packet::kLinkEthernet, cat(eth(0x0800), ipv4(h, udp(1, 2, 20))), 14 + 20 + 7);
  EXPECT_EQ(pi.status, DecodeStatus::kTruncated);
  EXPECT_STREQ(pi.anomaly, "udp_truncated");
  EXPECT_TRUE(pi.ip[0].has_ports);
  EXPECT_FALSE(pi.ip[0].has_l4);
}

TEST(Decoder, SctpDccpIcmp) {
  V4 h;
  h.proto = tmach::packet::kProtoSctp;
  PacketInfo pi = dec(tmach::packet::kLinkEthernet, cat(eth(0x0800), ipv4(h, ports_hdr(7, 9, 28))));
  EXPECT_EQ(pi.status, DecodeStatus::kOk);
  EXPECT_TRUE(pi.ip[0].has_l4);
  EXPECT_TRUE(pi.ip[0].has_ports);
  EXPECT_EQ(pi.ip[0].sport, 7);
  EXPECT_EQ(pi.ip[0].dport, 9);

  h.proto = 33;  // DCCP
  pi = dec(tmach::packet::kLinkEthernet, cat(eth(0x0800), ipv4(h, ports_hdr(5001, 52667, 16))));
  EXPECT_EQ(pi.status, DecodeStatus::kOk);
  EXPECT_TRUE(pi.ip[0].has_ports);
  EXPECT_EQ(pi.ip[0].sport, 5001);
  EXPECT_EQ(pi.ip[0].dport, 52667);

  h.proto = tmach::packet::kProtoIcmp;
  pi = dec(tmach::packet::kLinkEthernet, cat(eth(0x0800), ipv4(h, icmp(8))));
  EXPECT_EQ(pi.status, DecodeStatus::kOk);
  EXPECT_TRUE(pi.ip[0].has_l4);
  EXPECT_FALSE(pi.ip[0].has_ports);
  EXPECT_EQ(pi.ip[0].l4_offset, 34);
  pi = dec(tmach::packet::kLinkEthernet, cat(eth(0x0800), ipv4(h, icmp(8))), 14 + 20 + 3);
  EXPECT_EQ(pi.status, DecodeStatus::kTruncated);
  EXPECT_STREQ(pi.anomaly, "icmp_truncated");

  pi = dec(tmach::packet::kLinkEthernet, cat(eth(0x86dd), ipv6(tmach::packet::kProtoIcmp6, icmp(128))));
  EXPECT_EQ(pi.status, DecodeStatus::kOk);
  EXPECT_TRUE(pi.ip[0].has_l4);
  EXPECT_FALSE(pi.ip[0].has_ports);

  h.proto = tmach::packet::kProtoGre;  // no transport header of ours: fine
  pi = dec(tmach::packet::kLinkEthernet, cat(eth(0x0800), ipv4(h, zeros(8))));
  EXPECT_EQ(pi.status, DecodeStatus::kOk);
  EXPECT_FALSE(pi.ip[0].has_l4);
  EXPECT_EQ(pi.ip[0].proto, tmach::packet::kProtoGre);
}

// ---------------------------------------------------------------- IPv6

TEST(Decoder, Ipv6Tcp) {
  Bytes f = cat(eth(0x86dd), ipv6(tmach::packet::kProtoTcp, tcp(1234, 80, tmach::packet::kTcpFin, 7)));
  PacketInfo pi = dec(tmach::packet::kLinkEthernet, f);
  ASSERT_EQ(pi.status, DecodeStatus::kOk);
  EXPECT_EQ(pi.ethertype, 0x86dd);
  const IpLayer& l = pi.ip[0];
  EXPECT_EQ(l.version, 6);
  EXPECT_EQ(l.src, ip("2001:db8::1"));
  EXPECT_EQ(l.dst, ip("2001:db8::2"));
  EXPECT_FALSE(l.src.is_v4());
  EXPECT_EQ(l.l3_offset, 14);
  EXPECT_EQ(l.l4_offset, 54);
  EXPECT_EQ(l.sport, 1234);
  EXPECT_EQ(l.dport, 80);
  EXPECT_EQ(l.tcp_flags, tmach::packet::kTcpFin);
  EXPECT_EQ(l.l4_payload, 7u);
}

TEST(Decoder, Ipv6ExtensionChain) {
  // HBH -> routing -> destination options -> fragment (first) -> UDP
  Bytes chain = cat(ext6(43, 0), ext6(60, 2), ext6(44, 1),
                    frag6(tmach::packet::kProtoUdp, 0, true, 0xabcdef01), udp(546, 547, 10));
  PacketInfo pi = dec(tmach::packet::kLinkEthernet, cat(eth(0x86dd), ipv6(0, chain)));
  ASSERT_EQ(pi.status, DecodeStatus::kOk) << (pi.anomaly ? pi.anomaly : "");
  const IpLayer& l = pi.ip[0];
  EXPECT_EQ(l.header_proto, 0);
  EXPECT_EQ(l.proto, tmach::packet::kProtoUdp);
  EXPECT_TRUE(l.fragment);
  EXPECT_EQ(l.frag_offset, 0);
  EXPECT_EQ(l.frag_id, 0xabcdef01u);
  EXPECT_EQ(l.l4_offset, 14 + 40 + 8 + 24 + 16 + 8);
  EXPECT_TRUE(l.has_l4);
  EXPECT_EQ(l.sport, 546);
  EXPECT_EQ(l.l4_payload, 10u);

  // Non-first fragment: no transport header.
  chain = cat(frag6(tmach::packet::kProtoTcp, 100, false, 7), zeros(64));
  pi = dec(tmach::packet::kLinkEthernet, cat(eth(0x86dd), ipv6(44, chain)));
  ASSERT_EQ(pi.status, DecodeStatus::kOk);
  EXPECT_EQ(pi.ip[0].header_proto, 44);
  EXPECT_EQ(pi.ip[0].proto, tmach::packet::kProtoTcp);
  EXPECT_TRUE(pi.ip[0].fragment);
  EXPECT_EQ(pi.ip[0].frag_offset, 100);
  EXPECT_EQ(pi.ip[0].frag_id, 7u);
  EXPECT_FALSE(pi.ip[0].has_l4);
  EXPECT_FALSE(pi.ip[0].has_ports);

  // Atomic fragment (offset 0, M 0): not part of a fragmented datagram.
  pi =
      dec(tmach::packet::kLinkEthernet, cat(eth(0x86dd), ipv6(44, cat(frag6(6, 0, false, 9), tcp(1, 2, 0)))));
  EXPECT_FALSE(pi.ip[0].fragment);
  EXPECT_EQ(pi.ip[0].frag_id, 9u);
  EXPECT_TRUE(pi.ip[0].has_l4);

  // Mobility header (135) is skipped like the others.
  pi = dec(tmach::packet::kLinkEthernet, cat(eth(0x86dd), ipv6(135, cat(ext6(6, 1), tcp(5, 6, 0)))));
  EXPECT_EQ(pi.status, DecodeStatus::kOk);
  EXPECT_EQ(pi.ip[0].proto, tmach::packet::kProtoTcp);
  EXPECT_EQ(pi.ip[0].dport, 6);
}

TEST(Decoder, Ipv6Stops) {
  for (uint8_t stop : {tmach::packet::kProtoEsp, tmach::packet::kProtoAh, tmach::packet::kProtoNoNext6}) {
    PacketInfo pi =
        dec(tmach::packet::kLinkEthernet, cat(eth(0x86dd), ipv6(60, cat(ext6(stop, 0), zeros(24)))));
    EXPECT_EQ(pi.status, DecodeStatus::kOk);
    EXPECT_EQ(pi.ip[0].header_proto, 60);
    EXPECT_EQ(pi.ip[0].proto, stop);
    EXPECT_FALSE(pi.ip[0].has_l4);
  }
}

TEST(Decoder, Ipv6JumbogramAndLengthErrors) {
  // Payload length 0 with a hop-by-hop header: the captured length counts.
  Bytes chain = cat(ext6(tmach::packet::kProtoTcp, 0), tcp(443, 50000, tmach::packet::kTcpAck, 70000 - 28));
  PacketInfo pi = dec(tmach::packet::kLinkEthernet, cat(eth(0x86dd), ipv6(0, chain, 0)));
  ASSERT_EQ(pi.status, DecodeStatus::kOk);
  EXPECT_EQ(pi.ip[0].l4_payload, 70000u - 28);
  EXPECT_EQ(pi.ip[0].sport, 443);

  // An extension header longer than the payload length says.
  pi = dec(tmach::packet::kLinkEthernet, cat(eth(0x86dd), ipv6(60, cat(ext6(6, 4), tcp(1, 2, 0)), 16)));
  EXPECT_EQ(pi.status, DecodeStatus::kMalformed);
  EXPECT_STREQ(pi.anomaly, "ipv6_ext_exceeds_length");
  EXPECT_EQ(pi.ip_count, 1);

  // Cut inside an extension header.
  Bytes f = cat(eth(0x86dd), ipv6(0, cat(ext6(43, 0), ext6(6, 3), tcp(1, 2, 0))));
  pi = dec(tmach::packet::kLinkEthernet, f, 14 + 40 + 8 + 20);
  EXPECT_EQ(pi.status, DecodeStatus::kTruncated);
  EXPECT_STREQ(pi.anomaly, "ipv6_ext_truncated");
  EXPECT_EQ(pi.ip[0].proto, 43);  // where the chain stopped
  EXPECT_FALSE(pi.ip[0].has_l4);

  pi = dec(tmach::packet::kLinkEthernet, f, 14 + 39);
  EXPECT_EQ(pi.status, DecodeStatus::kTruncated);
  EXPECT_STREQ(pi.anomaly, "ipv6_truncated");
  EXPECT_EQ(pi.ip_count, 0);

  Bytes bad = cat(eth(0x86dd), ipv6(6, tcp(1, 2, 0)));
  bad[14] = 0x40;
  pi = dec(tmach::packet::kLinkEthernet, bad);
  EXPECT_EQ(pi.status, DecodeStatus::kMalformed);
  EXPECT_STREQ(pi.anomaly, "ipv6_bad_version");
  ASSERT_EQ(pi.ip_count, 1);  // the addresses at their fixed offsets, as libpcap's `host` reads them
  expect_malformed_layer(pi.ip[0], 6, ip("2001:db8::1"), ip("2001:db8::2"), tmach::packet::kProtoTcp, 14);
  EXPECT_EQ(pi.ethertype, 0x86dd);
}

// A fixed IP header with an impossible field (a version nibble that is not the one its
// EtherType, PPP protocol or link type declares; an IPv4 header length below 5; a total
// length below the header's) keeps its layer with the addresses and the protocol byte at their
// fixed offsets, as libpcap's `host`, `net`, `ip proto` read them, and nothing else: no
// transport, no fragment, no tunnel, no extension header followed. Fewer bytes than the fixed
// header: no layer, the same anomaly.
TEST(Decoder, MalformedFixedHeaderKeepsAddresses) {
  using tmach::packet::kLinkEthernet;
  const Bytes udp_payload = udp(53, 4789, 8);
  for (uint8_t ihl = 0; ihl < 5; ++ihl) {
    for (uint8_t version : {4, 0, 6, 15}) {
      V4 h;
      h.ihl = ihl;
      h.version = version;
      h.proto = tmach::packet::kProtoUdp;
      h.frag = 0x2000 | 185;  // a later fragment, if it were read
      SCOPED_TRACE("ihl " + std::to_string(ihl) + " version " + std::to_string(version));
      Bytes f = cat(eth(0x0800), ipv4(h, udp_payload));
      PacketInfo pi = dec(kLinkEthernet, f);
      EXPECT_EQ(pi.status, DecodeStatus::kMalformed);
      EXPECT_STREQ(pi.anomaly, version != 4 ? "ipv4_bad_version" : "ipv4_bad_ihl");
      ASSERT_EQ(pi.ip_count, 1);
      expect_malformed_layer(pi.ip[0], 4, ip("10.0.0.1"), ip("10.0.0.2"), tmach::packet::kProtoUdp, 14);
      EXPECT_EQ(pi.ethertype, 0x0800);
      // Exactly the fixed header captured: the layer; one byte less: none.
      pi = dec(kLinkEthernet, f, 14 + 20);
      EXPECT_EQ(pi.status, DecodeStatus::kMalformed);
      ASSERT_EQ(pi.ip_count, 1);
      EXPECT_EQ(pi.ip[0].dst, ip("10.0.0.2"));
      pi = dec(kLinkEthernet, f, 14 + 19);
      EXPECT_EQ(pi.status, DecodeStatus::kMalformed);
      EXPECT_STREQ(pi.anomaly, version != 4 ? "ipv4_bad_version" : "ipv4_bad_ihl");
      EXPECT_EQ(pi.ip_count, 0);
    }
  }
  // A version-4 header with a valid length but a bad version (5..15, 0..3): same.
  V4 bv;
  bv.version = 9;
  bv.ihl = 6;
  PacketInfo pi = dec(kLinkEthernet, cat(eth(0x0800), ipv4(bv, tcp(1, 2, tmach::packet::kTcpSyn))));
  EXPECT_STREQ(pi.anomaly, "ipv4_bad_version");
  ASSERT_EQ(pi.ip_count, 1);
  expect_malformed_layer(pi.ip[0], 4, ip("10.0.0.1"), ip("10.0.0.2"), tmach::packet::kProtoTcp, 14);

  // Total length below the header length (the anomaly it always had): not a fragment either.
  V4 tl;
  tl.total = 19;
  tl.frag = 0x2000;
  pi = dec(kLinkEthernet, cat(eth(0x0800), ipv4(tl, tcp(1, 2, tmach::packet::kTcpSyn))));
  EXPECT_STREQ(pi.anomaly, "ipv4_bad_total_length");
  ASSERT_EQ(pi.ip_count, 1);
  expect_malformed_layer(pi.ip[0], 4, ip("10.0.0.1"), ip("10.0.0.2"), tmach::packet::kProtoTcp, 14);

  // No tunnel is followed: IP-in-IP, GRE behind a malformed header stay one layer.
  for (uint8_t proto : {tmach::packet::kProtoIpIp, tmach::packet::kProtoGre, tmach::packet::kProtoIpv6}) {
    V4 outer;
    outer.proto = proto;
    outer.ihl = 3;
    Bytes inner = proto == tmach::packet::kProtoGre    ? cat(Bytes{0, 0, 0x08, 0x00}, ipv4({}, tcp(1, 2, 0)))
                  : proto == tmach::packet::kProtoIpv6 ? ipv6(6, tcp(1, 2, 0))
                                                       : ipv4({}, tcp(1, 2, 0));
    pi = dec(kLinkEthernet, cat(eth(0x0800), ipv4(outer, inner)));
    EXPECT_STREQ(pi.anomaly, "ipv4_bad_ihl");
    ASSERT_EQ(pi.ip_count, 1) << int(proto);
    expect_malformed_layer(pi.ip[0], 4, ip("10.0.0.1"), ip("10.0.0.2"), proto, 14);
  }

  // Inside a tunnel not: such bytes are more likely a payload taken for the tunnel (junk on a
  // tunnel port) than an IP header, and a layer of them would be the packet's innermost flow.
  // The packet stays its outer layers, as before.
  V4 carrier;
  carrier.proto = tmach::packet::kProtoIpIp;
  V4 inner_bad;
  inner_bad.ihl = 2;
  inner_bad.src = "192.0.2.1";
  inner_bad.dst = "192.0.2.2";
  pi = dec(kLinkEthernet, cat(eth(0x0800), ipv4(carrier, ipv4(inner_bad, tcp(1, 2, 0)))));
  EXPECT_EQ(pi.status, DecodeStatus::kMalformed);
  EXPECT_STREQ(pi.anomaly, "ipv4_bad_ihl");
  ASSERT_EQ(pi.ip_count, 1);
  EXPECT_EQ(pi.ip[0].dst, ip("10.0.0.2"));
  EXPECT_EQ(pi.ip[0].proto, tmach::packet::kProtoIpIp);

  // IPv6 under EtherType 0x86dd with another version: the fixed header's next header is the
  // protocol (no extension header walked, as libpcap's `ip6 proto` reads ip6[6]).
  for (uint8_t version : {0, 4, 7, 15}) {
    SCOPED_TRACE("ipv6 version " + std::to_string(version));
    Bytes f = cat(eth(0x86dd), ipv6(0, cat(ext6(44, 0), frag6(17, 0, true, 7), udp(1, 2, 8)), -1,
                                    "2001:db8::5", "2001:db8::9"));
    f[14] = static_cast<uint8_t>(version << 4);
    pi = dec(kLinkEthernet, f);
    EXPECT_EQ(pi.status, DecodeStatus::kMalformed);
    EXPECT_STREQ(pi.anomaly, "ipv6_bad_version");
    ASSERT_EQ(pi.ip_count, 1);
    expect_malformed_layer(pi.ip[0], 6, ip("2001:db8::5"), ip("2001:db8::9"), 0, 14);
    pi = dec(kLinkEthernet, f, 14 + 40);
    EXPECT_EQ(pi.ip_count, 1);
    pi = dec(kLinkEthernet, f, 14 + 39);
    EXPECT_EQ(pi.status, DecodeStatus::kMalformed);
    EXPECT_STREQ(pi.anomaly, "ipv6_bad_version");
    EXPECT_EQ(pi.ip_count, 0);
  }

  // Behind VLAN tags and in PPP the same (the version is the carrier's); on raw IP links the
  // version nibble itself says v4 or v6, as libpcap's DLT_RAW: a bad one is no layer.
  V4 v5;
  v5.version = 5;
  pi = dec(kLinkEthernet, cat(eth(0x8100), vlan(7, 0x0800), ipv4(v5, tcp(1, 2, 0))));
  ASSERT_EQ(pi.ip_count, 1);
  expect_malformed_layer(pi.ip[0], 4, ip("10.0.0.1"), ip("10.0.0.2"), tmach::packet::kProtoTcp, 18);
  pi = dec(tmach::packet::kLinkPpp, cat(Bytes{0xff, 0x03, 0x00, 0x21}, ipv4(v5, tcp(1, 2, 0))));
  ASSERT_EQ(pi.ip_count, 1);
  expect_malformed_layer(pi.ip[0], 4, ip("10.0.0.1"), ip("10.0.0.2"), tmach::packet::kProtoTcp, 4);
  pi = dec(tmach::packet::kLinkRaw, ipv4(v5, tcp(1, 2, 0)));
  EXPECT_STREQ(pi.anomaly, "ip_bad_version");
  EXPECT_EQ(pi.ip_count, 0);
}

// ---------------------------------------------------------------- Ethernet encapsulations

TEST(Decoder, VlanTags) {
  PacketInfo pi =
      dec(tmach::packet::kLinkEthernet, cat(eth(0x8100), vlan(100, 0x0800), ipv4({}, tcp(1, 2, 0))));
  ASSERT_EQ(pi.status, DecodeStatus::kOk);
  EXPECT_EQ(pi.vlan_count, 1);
  EXPECT_EQ(pi.vlans[0], 100);
  EXPECT_EQ(pi.ethertype, 0x0800);
  EXPECT_EQ(pi.ip[0].l3_offset, 18);

  pi = dec(tmach::packet::kLinkEthernet,
           cat(eth(0x88a8), vlan(200, 0x8100), vlan(2001, 0x86dd), ipv6(17, udp(1, 2, 0))));
  ASSERT_EQ(pi.status, DecodeStatus::kOk);
  EXPECT_EQ(pi.vlan_count, 2);
  EXPECT_EQ(pi.vlans[0], 200);
  EXPECT_EQ(pi.vlans[1], 2001);
  EXPECT_EQ(pi.ip[0].l3_offset, 22);

  // Six tags (0x9100, 0x88a8, 0x8100 mixed): four recorded, six counted.
  Bytes f = cat(eth(0x9100), vlan(1, 0x88a8), vlan(2, 0x8100), vlan(3, 0x8100), vlan(4, 0x8100),
                vlan(5, 0x8100), vlan(4095, 0x0800), ipv4({}, tcp(1, 2, 0)));
  pi = dec(tmach::packet::kLinkEthernet, f);
  ASSERT_EQ(pi.status, DecodeStatus::kOk);
  EXPECT_EQ(pi.vlan_count, 6);
  EXPECT_EQ(pi.vlans[0], 1);
  EXPECT_EQ(pi.vlans[3], 4);
  EXPECT_EQ(pi.ip[0].l3_offset, 14 + 24);

  // Cut inside the second tag: after its TCI (its VLAN is known, as libpcap and Wireshark read
  // it: `vlan 2` matched no such frame), and before.
  pi = dec(tmach::packet::kLinkEthernet, f, 14 + 6);
  EXPECT_EQ(pi.status, DecodeStatus::kTruncated);
  EXPECT_STREQ(pi.anomaly, "vlan_truncated");
  EXPECT_EQ(pi.vlan_count, 2);
  EXPECT_EQ(pi.vlans[1], 2);
  pi = dec(tmach::packet::kLinkEthernet, f, 14 + 5);
  EXPECT_EQ(pi.status, DecodeStatus::kTruncated);
  EXPECT_STREQ(pi.anomaly, "vlan_truncated");
  EXPECT_EQ(pi.vlan_count, 1);

  // Absurd depth: the count saturates, offsets past 16 bits are refused, nothing crashes.
  Bytes deep = eth(0x8100);
  for (int i = 0; i < 20000; ++i) {
    Bytes tag = vlan(static_cast<uint16_t>(i & 0xfff), 0x8100);
    deep.insert(deep.end(), tag.begin(), tag.end());
  }
  deep = cat(deep, vlan(1, 0x0800), ipv4({}, tcp(1, 2, 0)));
  pi = dec(tmach::packet::kLinkEthernet, deep);
  EXPECT_EQ(pi.status, DecodeStatus::kMalformed);
  EXPECT_STREQ(pi.anomaly, "ip_offset_too_large");
  EXPECT_EQ(pi.vlan_count, 255);
  EXPECT_EQ(pi.vlans[2], 2);
  EXPECT_EQ(pi.ip_count, 0);
}

TEST(Decoder, Mpls) {
  Bytes f = cat(eth(0x8847), mpls(16, false), mpls(17, false), mpls(18, true), ipv4({}, tcp(22, 2222, 0)));
  PacketInfo pi = dec(tmach::packet::kLinkEthernet, f);
  ASSERT_EQ(pi.status, DecodeStatus::kOk);
  EXPECT_EQ(pi.mpls_count, 3);
  EXPECT_EQ(pi.ethertype, 0x0800);
  EXPECT_EQ(pi.ip[0].l3_offset, 26);
  EXPECT_EQ(pi.ip[0].sport, 22);

  pi = dec(tmach::packet::kLinkEthernet,
           cat(eth(0x8100), vlan(7, 0x8848), mpls(99, true), ipv6(17, udp(53, 53, 0))));
  ASSERT_EQ(pi.status, DecodeStatus::kOk);
  EXPECT_EQ(pi.vlan_count, 1);
  EXPECT_EQ(pi.mpls_count, 1);
  EXPECT_EQ(pi.ethertype, 0x86dd);
  EXPECT_EQ(pi.ip[0].version, 6);
  EXPECT_EQ(pi.ip[0].l3_offset, 22);

  // Ethernet pseudowire (control word): not IP.
  pi = dec(tmach::packet::kLinkEthernet, cat(eth(0x8847), mpls(5, true), zeros(4), eth(0x0800)));
  EXPECT_EQ(pi.status, DecodeStatus::kNotIp);
  EXPECT_EQ(pi.ethertype, 0x8847);
  EXPECT_EQ(pi.ip_count, 0);

  pi = dec(tmach::packet::kLinkEthernet, f, 14 + 6);
  EXPECT_EQ(pi.status, DecodeStatus::kTruncated);
  EXPECT_STREQ(pi.anomaly, "mpls_truncated");
  EXPECT_EQ(pi.mpls_count, 1);
}

TEST(Decoder, ArpAndRarp) {
  PacketInfo pi = dec(tmach::packet::kLinkEthernet,
                      cat(eth(0x0806), arp(1, 0x0800, 6, 4, 1, "192.168.1.1", "192.168.1.254")));
  EXPECT_EQ(pi.status, DecodeStatus::kNotIp);
  EXPECT_EQ(pi.anomaly, nullptr);
  EXPECT_EQ(pi.ethertype, 0x0806);
  EXPECT_TRUE(pi.arp);
  EXPECT_EQ(pi.arp_spa, ip("192.168.1.1"));
  EXPECT_EQ(pi.arp_tpa, ip("192.168.1.254"));
  EXPECT_EQ(pi.ip_count, 0);

  pi = dec(tmach::packet::kLinkEthernet, cat(eth(0x8035), arp(1, 0x0800, 6, 4, 3, "0.0.0.0", "10.1.2.3")));
  EXPECT_EQ(pi.ethertype, 0x8035);
  EXPECT_TRUE(pi.arp);
  EXPECT_EQ(pi.arp_tpa, ip("10.1.2.3"));

  EXPECT_TRUE(pi.arp_addrs);

  // Another hardware type with 6-byte addresses (802 LANs, ARP behind SNAP): addresses kept.
  pi = dec(tmach::packet::kLinkEthernet, cat(eth(0x0806), arp(6, 0x0800, 6, 4, 1, "1.2.3.4", "5.6.7.8")));
  EXPECT_TRUE(pi.arp);
  EXPECT_TRUE(pi.arp_addrs);
  EXPECT_EQ(pi.arp_spa, ip("1.2.3.4"));
  EXPECT_EQ(pi.arp_tpa, ip("5.6.7.8"));

  // Unusual lengths: still `arp` (libpcap's `arp` is the EtherType), addresses not read.
  for (uint16_t type : {0x0806, 0x8035}) {
    pi = dec(tmach::packet::kLinkEthernet, cat(eth(type), arp(6, 0x0800, 8, 4, 1, "1.2.3.4", "5.6.7.8")));
    EXPECT_EQ(pi.status, DecodeStatus::kNotIp);
    EXPECT_EQ(pi.ethertype, type);
    EXPECT_TRUE(pi.arp);
    EXPECT_FALSE(pi.arp_addrs);
    EXPECT_EQ(pi.arp_spa, IpAddr{});
  }
  pi = dec(tmach::packet::kLinkEthernet, cat(eth(0x0806), arp(1, 0x0800, 6, 16, 1, "1.2.3.4", "5.6.7.8")));
  EXPECT_TRUE(pi.arp);
  EXPECT_FALSE(pi.arp_addrs);
  pi = dec(tmach::packet::kLinkEthernet, cat(eth(0x0806), arp(1, 0x86dd, 6, 4, 1, "1.2.3.4", "5.6.7.8")));
  EXPECT_TRUE(pi.arp);
  EXPECT_FALSE(pi.arp_addrs);
  // IP over InfiniBand (RFC 4391): hardware type 32, 20-byte hardware addresses.
  pi = dec(tmach::packet::kLinkEthernet, cat(eth(0x0806), arp(32, 0x0800, 20, 4, 2, "10.0.0.9", "10.0.0.8")));
  EXPECT_TRUE(pi.arp_addrs);
  EXPECT_EQ(pi.arp_spa, ip("10.0.0.9"));
  EXPECT_EQ(pi.arp_tpa, ip("10.0.0.8"));

  // Cut short: `arp` all the same, without addresses.
  for (size_t len : {size_t{14}, size_t{14 + 7}, size_t{14 + 27}}) {
    pi = dec(tmach::packet::kLinkEthernet, cat(eth(0x0806), arp(1, 0x0800, 6, 4, 1, "1.2.3.4", "5.6.7.8")),
             len);
    EXPECT_EQ(pi.status, DecodeStatus::kTruncated) << len;
    EXPECT_STREQ(pi.anomaly, "arp_truncated");
    EXPECT_TRUE(pi.arp) << len;
    EXPECT_FALSE(pi.arp_addrs) << len;
  }
}

TEST(Decoder, FabricPathAndCiscoMetadata) {
  Bytes ip_pkt = ipv4({}, tcp(1, 2, 0));
  // FabricPath: outer MACs, 0x8903, FTAG/TTL, then the classic frame (here VLAN-tagged).
  Bytes fp = cat(eth(0x8903), Bytes{0x00, 0x3f}, Bytes{0xa, 0xb, 0xc, 0xd, 0xe, 0xf, 1, 2, 3, 4, 5, 6});
  PacketInfo pi = dec(tmach::packet::kLinkEthernet, cat(fp, be16(0x0800), ip_pkt));
  ASSERT_EQ(pi.status, DecodeStatus::kOk) << (pi.anomaly ? pi.anomaly : "");
  EXPECT_EQ(pi.ethertype, 0x0800);
  EXPECT_EQ(pi.ip[0].l3_offset, 30);
  EXPECT_EQ(pi.eth_offset, 0);  // the outer header
  pi = dec(tmach::packet::kLinkEthernet, cat(fp, be16(0x8100), vlan(7, 0x0800), ip_pkt));
  ASSERT_EQ(pi.status, DecodeStatus::kOk);
  EXPECT_EQ(pi.vlan_count, 1);
  EXPECT_EQ(pi.ip[0].l3_offset, 34);
  for (size_t len = 14; len < 30; ++len) {
    pi = dec(tmach::packet::kLinkEthernet, cat(fp, be16(0x0800), ip_pkt), len);
    EXPECT_EQ(pi.status, DecodeStatus::kTruncated) << len;
    EXPECT_STREQ(pi.anomaly, "fabricpath_truncated") << len;
  }

  // Cisco MetaData on Ethernet: version, length, option, SGT, then the EtherType.
  Bytes cmd = cat(eth(0x8909), Bytes{1, 1, 0, 1, 0, 42});
  pi = dec(tmach::packet::kLinkEthernet, cat(cmd, be16(0x0800), ip_pkt));
  ASSERT_EQ(pi.status, DecodeStatus::kOk) << (pi.anomaly ? pi.anomaly : "");
  EXPECT_EQ(pi.ip[0].l3_offset, 22);
  EXPECT_EQ(pi.ip[0].sport, 1);
  pi = dec(tmach::packet::kLinkEthernet,
           cat(cmd, be16(0x0806), arp(1, 0x0800, 6, 4, 1, "1.2.3.4", "5.6.7.8")));
  EXPECT_TRUE(pi.arp_addrs);
  EXPECT_EQ(pi.ethertype, 0x0806);
  pi = dec(tmach::packet::kLinkEthernet, cat(cmd, be16(0x0800), ip_pkt), 21);
  EXPECT_EQ(pi.status, DecodeStatus::kTruncated);
  EXPECT_STREQ(pi.anomaly, "cmd_truncated");
}

TEST(Decoder, LlcSnapAndOtherEthertypes) {
  Bytes ip_pkt = ipv4({}, tcp(1, 2, 0));
  Bytes snap = {0xaa, 0xaa, 0x03, 0, 0, 0, 0x08, 0x00};
  PacketInfo pi = dec(tmach::packet::kLinkEthernet,
                      cat(eth(static_cast<uint16_t>(snap.size() + ip_pkt.size())), snap, ip_pkt));
  ASSERT_EQ(pi.status, DecodeStatus::kOk);
  EXPECT_EQ(pi.ethertype, 0x0800);
  EXPECT_EQ(pi.ip[0].l3_offset, 22);

  // Spanning tree: LLC 42 42 03.
  pi = dec(tmach::packet::kLinkEthernet, cat(eth(38), Bytes{0x42, 0x42, 0x03}, zeros(35)));
  EXPECT_EQ(pi.status, DecodeStatus::kNotIp);
  EXPECT_EQ(pi.ethertype, 0);
  EXPECT_TRUE(pi.has_eth);

  // SNAP with a vendor OUI (CDP): not an EtherType.
  pi = dec(tmach::packet::kLinkEthernet,
           cat(eth(30), Bytes{0xaa, 0xaa, 0x03, 0, 0, 0x0c, 0x20, 0x00}, zeros(22)));
  EXPECT_EQ(pi.status, DecodeStatus::kNotIp);

  pi = dec(tmach::packet::kLinkEthernet, cat(eth(0x88cc), zeros(30)));  // LLDP
  EXPECT_EQ(pi.status, DecodeStatus::kNotIp);
  EXPECT_EQ(pi.ethertype, 0x88cc);
  EXPECT_EQ(pi.anomaly, nullptr);

  pi = dec(tmach::packet::kLinkEthernet, eth(0x0800), 13);
  EXPECT_EQ(pi.status, DecodeStatus::kTruncated);
  EXPECT_STREQ(pi.anomaly, "ethernet_truncated");
  EXPECT_FALSE(pi.has_eth);
}

}  // namespace
