// Tests of packet/decoder.h: hand-built frames per link type and encapsulation, every
// packet of the corpus (no crash, sane offsets), every prefix of a few real packets
// (truncation), and tcpdump as an oracle for addresses and ports.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <pcap/pcap.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "packet/decoder.h"
#include "packet/packet_info.h"

namespace {

using tmach::packet::decode;
using tmach::packet::DecodeStatus;
using tmach::packet::IpAddr;
using tmach::packet::IpLayer;
using tmach::packet::PacketInfo;
namespace fs = std::filesystem;

using Bytes = std::vector<uint8_t>;

// ---------------------------------------------------------------- frame builders

template <class... T>
Bytes cat(const T&... parts) {
  Bytes out;
  (out.insert(out.end(), parts.begin(), parts.end()), ...);
  return out;
}
void put16(Bytes& b, uint16_t v) {
  b.push_back(static_cast<uint8_t>(v >> 8));
  b.push_back(static_cast<uint8_t>(v));
}
void put32(Bytes& b, uint32_t v) {
  put16(b, static_cast<uint16_t>(v >> 16));
  put16(b, static_cast<uint16_t>(v));
}
Bytes be16(uint16_t v) {
  Bytes b;
  put16(b, v);
  return b;
}
Bytes zeros(size_t n) { return Bytes(n, 0); }

IpAddr ip(const char* s) {
  uint8_t buf[16] = {};
  if (std::strchr(s, ':')) {
    EXPECT_EQ(inet_pton(AF_INET6, s, buf), 1) << s;
    return IpAddr::v6(buf);
  }
  EXPECT_EQ(inet_pton(AF_INET, s, buf), 1) << s;
  return IpAddr::v4(buf);
}
Bytes raw_addr(const char* s) {
  IpAddr a = ip(s);
  return a.is_v4() ? Bytes(a.b.begin() + 12, a.b.end()) : Bytes(a.b.begin(), a.b.end());
}

Bytes eth(uint16_t type) { return cat(Bytes{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}, be16(type)); }
Bytes vlan(uint16_t vid, uint16_t next) { return cat(be16(static_cast<uint16_t>(0x2000 | vid)), be16(next)); }
Bytes mpls(uint32_t label, bool bottom) {
  Bytes b;
  put32(b, label << 12 | (bottom ? 0x100u : 0u) | 64u);
  return b;
}

struct V4 {
  uint8_t proto = tmach::packet::kProtoTcp;
  const char* src = "10.0.0.1";
  const char* dst = "10.0.0.2";
  uint8_t ihl = 5;
  uint16_t frag = 0;  // flags and offset word
  uint16_t id = 0x1234;
  int total = -1;  // -1: header + payload
  uint8_t version = 4;
};
Bytes ipv4(const V4& h, const Bytes& payload) {
  Bytes b;
  b.push_back(static_cast<uint8_t>(h.version << 4 | h.ihl));
  b.push_back(0);
  size_t hlen = h.ihl >= 5 ? h.ihl * 4u : 20u;
  put16(b, static_cast<uint16_t>(h.total >= 0 ? h.total : hlen + payload.size()));
  put16(b, h.id);
  put16(b, h.frag);
  b.push_back(64);
  b.push_back(h.proto);
  put16(b, 0);
  b = cat(b, raw_addr(h.src), raw_addr(h.dst));
  b.resize(hlen, 1);  // options: NOPs
  return cat(b, payload);
}

Bytes ipv6(uint8_t nh, const Bytes& payload, int plen = -1, const char* src = "2001:db8::1",
           const char* dst = "2001:db8::2") {
  Bytes b = {0x60, 0, 0, 0};
  put16(b, static_cast<uint16_t>(plen >= 0 ? plen : payload.size()));
  b.push_back(nh);
  b.push_back(64);
  return cat(b, raw_addr(src), raw_addr(dst), payload);
}
Bytes ext6(uint8_t nh, uint8_t len_units) {
  Bytes b((len_units + 1u) * 8, 0);  // sized first: GCC 12 warns (falsely) on growing a 2-byte vector
  b[0] = nh;
  b[1] = len_units;
  return b;
}
Bytes frag6(uint8_t nh, uint16_t offset, bool more, uint32_t id) {
  Bytes b = {nh, 0};
  put16(b, static_cast<uint16_t>(offset << 3 | (more ? 1 : 0)));
  put32(b, id);
  return b;
}

Bytes tcp(uint16_t sp, uint16_t dp, uint8_t flags, size_t payload = 0, uint8_t doff = 5) {
  Bytes b;
  put16(b, sp);
  put16(b, dp);
  put32(b, 1000);
  put32(b, 2000);
  b.push_back(static_cast<uint8_t>(doff << 4));
  b.push_back(flags);
  put16(b, 65535);
  put32(b, 0);
  if (doff > 5) b.resize(doff * 4u, 1);
  b.resize(b.size() + payload, 'x');
  return b;
}
Bytes udp(uint16_t sp, uint16_t dp, size_t payload, int len = -1) {
  Bytes b;
  put16(b, sp);
  put16(b, dp);
  put16(b, static_cast<uint16_t>(len >= 0 ? len : 8 + payload));
  put16(b, 0);
  b.resize(b.size() + payload, 'u');
  return b;
}
Bytes ports_hdr(uint16_t sp, uint16_t dp, size_t total) {  // SCTP, DCCP
  Bytes b;
  put16(b, sp);
  put16(b, dp);
  b.resize(total, 0);
  return b;
}
Bytes icmp(uint8_t type) { return Bytes{type, 0, 0, 0, 0, 1, 0, 1}; }
Bytes arp(uint16_t htype, uint16_t ptype, uint8_t hlen, uint8_t plen, uint16_t op, const char* spa,
          const char* tpa) {
  Bytes b;
  put16(b, htype);
  put16(b, ptype);
  b.push_back(hlen);
  b.push_back(plen);
  put16(b, op);
  Bytes sha(hlen, 0xaa), tha(hlen, 0), s = raw_addr(spa), t = raw_addr(tpa);
  s.resize(plen, 0);
  t.resize(plen, 0);
  return cat(b, sha, s, tha, t);
}

// Decodes from an exactly-sized heap copy (ASan sees any over-read) and checks that the
// return value is out.status.
PacketInfo dec(uint32_t linktype, const Bytes& frame, size_t len = SIZE_MAX) {
  len = std::min(len, frame.size());
  std::unique_ptr<uint8_t[]> buf(new uint8_t[len]);
  if (len) std::memcpy(buf.get(), frame.data(), len);
  PacketInfo pi;
  DecodeStatus s = decode(linktype, buf.get(), static_cast<uint32_t>(len), pi);
  EXPECT_EQ(s, pi.status);
  EXPECT_EQ(pi.linktype, linktype);
  return pi;
}

// ---------------------------------------------------------------- IPv4 / transport

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
  EXPECT_EQ(pi.ip_count, 0);

  h = V4{};
  h.version = 5;
  pi = dec(tmach::packet::kLinkEthernet, cat(eth(0x0800), ipv4(h, payload)));
  EXPECT_EQ(pi.status, DecodeStatus::kMalformed);
  EXPECT_STREQ(pi.anomaly, "ipv4_bad_version");
  EXPECT_EQ(pi.ip_count, 0);
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

  pi = dec(tmach::packet::kLinkEthernet, f, 14 + 6);
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

// ---------------------------------------------------------------- link types

Bytes le32(uint32_t v) {
  return Bytes{static_cast<uint8_t>(v), static_cast<uint8_t>(v >> 8), static_cast<uint8_t>(v >> 16),
               static_cast<uint8_t>(v >> 24)};
}
Bytes bige32(uint32_t v) {
  Bytes b;
  put32(b, v);
  return b;
}

void expect_v4_tcp(const PacketInfo& pi, uint16_t l3) {
  ASSERT_EQ(pi.status, DecodeStatus::kOk) << (pi.anomaly ? pi.anomaly : "");
  ASSERT_EQ(pi.ip_count, 1);
  EXPECT_EQ(pi.ip[0].version, 4);
  EXPECT_EQ(pi.ip[0].l3_offset, l3);
  EXPECT_EQ(pi.ip[0].src, ip("10.0.0.1"));
  EXPECT_EQ(pi.ip[0].sport, 1111);
  EXPECT_EQ(pi.ip[0].dport, 2222);
  EXPECT_FALSE(pi.has_eth);
}
void expect_v6_udp(const PacketInfo& pi, uint16_t l3) {
  ASSERT_EQ(pi.status, DecodeStatus::kOk) << (pi.anomaly ? pi.anomaly : "");
  ASSERT_EQ(pi.ip_count, 1);
  EXPECT_EQ(pi.ip[0].version, 6);
  EXPECT_EQ(pi.ip[0].l3_offset, l3);
  EXPECT_EQ(pi.ip[0].dst, ip("2001:db8::2"));
  EXPECT_EQ(pi.ip[0].sport, 3333);
  EXPECT_EQ(pi.ip[0].dport, 4444);
}

const Bytes kV4 = ipv4({}, tcp(1111, 2222, tmach::packet::kTcpSyn));
const Bytes kV6 = ipv6(tmach::packet::kProtoUdp, udp(3333, 4444, 5));

TEST(DecoderLink, NullAndLoop) {
  using namespace tmach::packet;
  expect_v4_tcp(dec(kLinkNull, cat(le32(2), kV4)), 4);
  expect_v4_tcp(dec(kLinkNull, cat(bige32(2), kV4)), 4);
  for (uint32_t fam : {24u, 28u, 30u}) {
    expect_v6_udp(dec(kLinkNull, cat(le32(fam), kV6)), 4);
    expect_v6_udp(dec(kLinkNull, cat(bige32(fam), kV6)), 4);
    expect_v6_udp(dec(kLinkLoop, cat(bige32(fam), kV6)), 4);
  }
  expect_v4_tcp(dec(kLinkLoop, cat(bige32(2), kV4)), 4);
  PacketInfo pi = dec(kLinkNull, cat(le32(7), kV4));
  EXPECT_EQ(pi.status, DecodeStatus::kNotIp);
  pi = dec(kLinkLoop, cat(le32(2), kV4));  // LOOP is network order only
  EXPECT_EQ(pi.status, DecodeStatus::kNotIp);
  pi = dec(kLinkNull, cat(le32(2), kV6));  // family says IPv4, header says 6
  EXPECT_EQ(pi.status, DecodeStatus::kMalformed);
  pi = dec(kLinkNull, le32(2), 3);
  EXPECT_EQ(pi.status, DecodeStatus::kTruncated);
}

TEST(DecoderLink, Ppp) {
  using namespace tmach::packet;
  expect_v4_tcp(dec(kLinkPpp, cat(Bytes{0xff, 0x03, 0x00, 0x21}, kV4)), 4);
  expect_v4_tcp(dec(kLinkPpp, cat(Bytes{0x00, 0x21}, kV4)), 2);
  expect_v4_tcp(dec(kLinkPpp, cat(Bytes{0x21}, kV4)), 1);  // protocol-field compression
  expect_v6_udp(dec(kLinkPpp, cat(Bytes{0xff, 0x03, 0x00, 0x57}, kV6)), 4);
  expect_v6_udp(dec(50, cat(Bytes{0xff, 0x03, 0x00, 0x57}, kV6)), 4);
  expect_v4_tcp(dec(50, cat(Bytes{0x00, 0x21}, kV4)), 2);
  PacketInfo pi = dec(kLinkPpp, cat(Bytes{0xff, 0x03, 0xc0, 0x21}, zeros(20)));  // LCP
  EXPECT_EQ(pi.status, DecodeStatus::kNotIp);
  pi = dec(kLinkPpp, Bytes{0xff, 0x03, 0x00});
  EXPECT_EQ(pi.status, DecodeStatus::kTruncated);
}

TEST(DecoderLink, RawAndIpv4Ipv6) {
  using namespace tmach::packet;
  for (uint32_t lt : {uint32_t{kLinkRaw}, 12u, 14u}) {
    expect_v4_tcp(dec(lt, kV4), 0);
    expect_v6_udp(dec(lt, kV6), 0);
    EXPECT_EQ(dec(lt, kV4).ethertype, 0x0800);
    EXPECT_EQ(dec(lt, kV6).ethertype, 0x86dd);
    EXPECT_EQ(dec(lt, Bytes{0x50, 0, 0, 0}).status, DecodeStatus::kMalformed);
  }
  expect_v4_tcp(dec(kLinkIpv4, kV4), 0);
  expect_v6_udp(dec(kLinkIpv6, kV6), 0);
  EXPECT_EQ(dec(kLinkIpv4, kV6).status, DecodeStatus::kMalformed);
  EXPECT_EQ(dec(kLinkIpv6, kV4).status, DecodeStatus::kMalformed);
}

TEST(DecoderLink, CiscoHdlc) {
  using namespace tmach::packet;
  expect_v4_tcp(dec(kLinkCHdlc, cat(Bytes{0x0f, 0x00, 0x08, 0x00}, kV4)), 4);
  expect_v6_udp(dec(kLinkCHdlc, cat(Bytes{0x8f, 0x00, 0x86, 0xdd}, kV6)), 4);
  PacketInfo pi = dec(kLinkCHdlc, cat(Bytes{0x8f, 0x00, 0x80, 0x35}, zeros(20)));  // SLARP, not RARP
  EXPECT_EQ(pi.status, DecodeStatus::kNotIp);
  EXPECT_EQ(pi.ethertype, 0x8035);
  EXPECT_FALSE(pi.arp);
}

TEST(DecoderLink, LinuxSll) {
  using namespace tmach::packet;
  Bytes sll = {0, 0, 0, 1, 0, 6, 1, 2, 3, 4, 5, 6, 0, 0};
  expect_v4_tcp(dec(kLinkLinuxSll, cat(sll, be16(0x0800), kV4)), 16);
  expect_v6_udp(dec(kLinkLinuxSll, cat(sll, be16(0x86dd), kV6)), 16);
  PacketInfo pi = dec(kLinkLinuxSll, cat(sll, be16(0x8100), vlan(42, 0x0800), kV4));
  EXPECT_EQ(pi.vlan_count, 1);
  EXPECT_EQ(pi.vlans[0], 42);
  expect_v4_tcp(pi, 20);
  pi = dec(kLinkLinuxSll, cat(sll, be16(0x0806), arp(1, 0x0800, 6, 4, 2, "10.9.8.7", "10.9.8.6")));
  EXPECT_EQ(pi.status, DecodeStatus::kNotIp);
  EXPECT_TRUE(pi.arp);
  EXPECT_EQ(pi.arp_spa, ip("10.9.8.7"));
  pi = dec(kLinkLinuxSll, sll);
  EXPECT_EQ(pi.status, DecodeStatus::kTruncated);

  Bytes sll2_tail = {0, 0, 0, 0, 0, 2, 0, 1, 0, 6, 1, 2, 3, 4, 5, 6, 0, 0};
  expect_v4_tcp(dec(kLinkLinuxSll2, cat(be16(0x0800), sll2_tail, kV4)), 20);
  expect_v6_udp(dec(kLinkLinuxSll2, cat(be16(0x86dd), sll2_tail, kV6)), 20);
  pi = dec(kLinkLinuxSll2, cat(be16(0x86dd), sll2_tail), 19);
  EXPECT_EQ(pi.status, DecodeStatus::kTruncated);
}

Bytes tlv(uint16_t type, const Bytes& value) {
  size_t len = 4 + value.size();
  Bytes b = {static_cast<uint8_t>(len), static_cast<uint8_t>(len >> 8), static_cast<uint8_t>(type),
             static_cast<uint8_t>(type >> 8)};
  b = cat(b, value);
  b.resize((b.size() + 3) & ~size_t{3}, 0);
  return b;
}

TEST(DecoderLink, Nflog) {
  using namespace tmach::packet;
  Bytes hdr4 = {2, 0, 0, 1}, hdr6 = {10, 0, 0, 1};
  // Prefix TLV (odd length, padded), the packet, then a trailing TLV that must not be read as IP.
  Bytes f = cat(hdr4, tlv(1, Bytes{8, 0, 1}), tlv(10, Bytes{'e', 't', 'h', '0', 0}), tlv(9, kV4),
                tlv(11, zeros(8)));
  PacketInfo pi = dec(kLinkNflog, f);
  expect_v4_tcp(pi, 4 + 8 + 12 + 4);
  expect_v6_udp(dec(kLinkNflog, cat(hdr6, tlv(9, kV6))), 8);
  // The payload TLV says the packet is shorter than the IP header claims: cut there.
  Bytes shorter = kV4;
  shorter.resize(30);
  pi = dec(kLinkNflog, cat(hdr4, tlv(9, shorter), tlv(11, zeros(40))));
  EXPECT_EQ(pi.status, DecodeStatus::kTruncated);
  EXPECT_STREQ(pi.anomaly, "tcp_truncated");
  EXPECT_EQ(dec(kLinkNflog, cat(hdr4, tlv(1, zeros(4)))).status, DecodeStatus::kNotIp);
  EXPECT_EQ(dec(kLinkNflog, cat(hdr4, Bytes{2, 0, 9, 0})).status, DecodeStatus::kMalformed);
  EXPECT_EQ(dec(kLinkNflog, cat(hdr4, tlv(9, kV4)), 6).status, DecodeStatus::kTruncated);
}

TEST(DecoderLink, Fddi) {
  using namespace tmach::packet;
  // Frame control 0x50 (asynchronous LLC), destination, source, then LLC/SNAP.
  Bytes mac = {0x50, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
  Bytes snap = {0xaa, 0xaa, 0x03, 0, 0, 0};
  PacketInfo pi = dec(kLinkFddi, cat(mac, snap, be16(0x0800), kV4));
  ASSERT_EQ(pi.status, DecodeStatus::kOk) << (pi.anomaly ? pi.anomaly : "");
  ASSERT_EQ(pi.ip_count, 1);
  EXPECT_EQ(pi.ip[0].l3_offset, 21);
  EXPECT_EQ(pi.ip[0].sport, 1111);
  EXPECT_EQ(pi.ethertype, 0x0800);
  EXPECT_TRUE(pi.has_eth);
  EXPECT_EQ(pi.eth_offset, 1);
  expect_v6_udp(dec(kLinkFddi, cat(mac, snap, be16(0x86dd), kV6)), 21);
  pi = dec(kLinkFddi, cat(mac, snap, be16(0x0806), arp(6, 0x0800, 6, 4, 1, "10.1.1.1", "10.1.1.2")));
  EXPECT_EQ(pi.status, DecodeStatus::kNotIp);
  EXPECT_TRUE(pi.arp_addrs);
  EXPECT_EQ(pi.arp_tpa, ip("10.1.1.2"));
  // Other LLC (spanning tree), and SMT frames (format bits 00): non-IP.
  pi = dec(kLinkFddi, cat(mac, Bytes{0x42, 0x42, 0x03}, zeros(35)));
  EXPECT_EQ(pi.status, DecodeStatus::kNotIp);
  Bytes smt = mac;
  smt[0] = 0x41;
  pi = dec(kLinkFddi, cat(smt, snap, be16(0x0800), kV4));
  EXPECT_EQ(pi.status, DecodeStatus::kNotIp);
  EXPECT_EQ(pi.ip_count, 0);
  pi = dec(kLinkFddi, mac, 12);
  EXPECT_EQ(pi.status, DecodeStatus::kTruncated);
  EXPECT_STREQ(pi.anomaly, "fddi_truncated");
  pi = dec(kLinkFddi, cat(mac, snap, be16(0x0800), kV4), 13 + 7);
  EXPECT_EQ(pi.status, DecodeStatus::kTruncated);
  EXPECT_STREQ(pi.anomaly, "snap_truncated");
}

TEST(DecoderLink, UnsupportedAndEmpty) {
  using namespace tmach::packet;
  PacketInfo pi = dec(160, cat(zeros(20), kV4));  // an unknown link type
  EXPECT_EQ(pi.status, DecodeStatus::kUnsupportedLink);
  EXPECT_NE(pi.anomaly, nullptr);
  // Nothing captured at all: no read, a clean status.
  for (uint32_t lt : {0u, 1u, 9u, 10u, 12u, 14u, 50u, 101u, 104u, 108u, 113u, 228u, 229u, 239u, 276u}) {
    PacketInfo e;
    DecodeStatus s = decode(lt, nullptr, 0, e);
    EXPECT_EQ(s, DecodeStatus::kTruncated) << lt;
    EXPECT_EQ(e.status, s);
    EXPECT_EQ(e.ip_count, 0);
  }
}

TEST(Decoder, ResetsOutput) {
  PacketInfo pi;
  decode(tmach::packet::kLinkEthernet,
         cat(eth(0x8100), vlan(9, 0x0806), arp(1, 0x800, 6, 4, 1, "1.1.1.1", "2.2.2.2")).data(), 14 + 4 + 28,
         pi);
  ASSERT_TRUE(pi.arp);
  Bytes f = cat(Bytes{0x21}, kV4);
  decode(tmach::packet::kLinkPpp, f.data(), static_cast<uint32_t>(f.size()), pi);
  EXPECT_FALSE(pi.arp);
  EXPECT_EQ(pi.vlan_count, 0);
  EXPECT_EQ(pi.vlans[0], 0);
  EXPECT_EQ(pi.arp_spa, IpAddr{});
  EXPECT_EQ(pi.linktype, tmach::packet::kLinkPpp);
}

TEST(DecoderStrings, IpAddrAndStatus) {
  EXPECT_EQ(ip("10.0.0.1").str(), "10.0.0.1");
  EXPECT_EQ(ip("2001:db8::1").str(), "2001:db8::1");
  EXPECT_EQ(IpAddr{}.str(), "::");
  EXPECT_STREQ(tmach::packet::to_string(DecodeStatus::kOk), "ok");
  EXPECT_STREQ(tmach::packet::to_string(DecodeStatus::kNotIp), "not_ip");
  EXPECT_STREQ(tmach::packet::to_string(DecodeStatus::kTruncated), "truncated");
  EXPECT_STREQ(tmach::packet::to_string(DecodeStatus::kMalformed), "malformed");
  EXPECT_STREQ(tmach::packet::to_string(DecodeStatus::kUnsupportedLink), "unsupported_link");
}

// ---------------------------------------------------------------- corpus

struct Packet {
  Bytes data;
  uint32_t linktype = 0;
};

// Every packet of a capture file; nullopt if libpcap refuses the file.
std::optional<std::vector<Packet>> read_pcap(const std::string& path) {
  char err[PCAP_ERRBUF_SIZE];
  pcap_t* p = pcap_open_offline(path.c_str(), err);
  if (!p) return std::nullopt;
  std::vector<Packet> out;
  uint32_t lt = static_cast<uint32_t>(pcap_datalink(p));
  pcap_pkthdr* h;
  const u_char* d;
  while (pcap_next_ex(p, &h, &d) == 1) out.push_back({Bytes(d, d + h->caplen), lt});
  pcap_close(p);
  return out;
}

std::string corpus(const char* rel) { return std::string(TM_CORPUS_DIR) + "/" + rel; }

void check_sane(const PacketInfo& pi, uint32_t caplen, const std::string& where) {
  SCOPED_TRACE(where);
  EXPECT_LE(pi.ip_count, PacketInfo::kMaxIpLayers);
  if (pi.has_eth) {
    EXPECT_LT(pi.eth_offset, caplen);
  }
  bool problem = pi.status == DecodeStatus::kTruncated || pi.status == DecodeStatus::kMalformed ||
                 pi.status == DecodeStatus::kUnsupportedLink;
  EXPECT_EQ(pi.anomaly != nullptr, problem);
  if (pi.status == DecodeStatus::kOk) {
    EXPECT_GE(pi.ip_count, 1);
  }
  for (int i = 0; i < pi.ip_count && i < PacketInfo::kMaxIpLayers; ++i) {
    const IpLayer& l = pi.ip[i];
    EXPECT_TRUE(l.version == 4 || l.version == 6);
    EXPECT_LT(l.l3_offset, caplen);
    EXPECT_EQ(l.src.is_v4(), l.version == 4);
    if (l.has_l4 || l.has_ports) {
      EXPECT_LT(l.l4_offset, caplen);
      EXPECT_GT(l.l4_offset, l.l3_offset);
      EXPECT_LE(l.l4_offset + 4u, caplen);
    }
    if (l.has_l4 && l.frag_offset) {
      ADD_FAILURE() << "transport header in a non-first fragment";
    }
  }
}

TEST(DecoderCorpus, EveryPacketOfEveryFile) {
  ASSERT_TRUE(fs::is_directory(TM_CORPUS_DIR)) << TM_CORPUS_DIR;
  size_t files = 0, packets = 0, refused = 0, with_ip = 0;
  for (const auto& e : fs::recursive_directory_iterator(TM_CORPUS_DIR)) {
    if (!e.is_regular_file()) continue;
    std::string path = e.path().string();
    auto pkts = read_pcap(path);
    if (!pkts) {
      ++refused;
      continue;
    }
    ++files;
    for (size_t i = 0; i < pkts->size(); ++i) {
      const Packet& p = (*pkts)[i];
      // The exact-size copy in dec() lets ASan catch any read past caplen.
      PacketInfo pi = dec(p.linktype, p.data);
      check_sane(pi, static_cast<uint32_t>(p.data.size()), path + " #" + std::to_string(i + 1));
      ++packets;
      with_ip += pi.ip_count > 0;
    }
  }
  EXPECT_GE(files, 140u);
  EXPECT_GE(packets, 118000u);
  EXPECT_GT(with_ip, packets * 9 / 10);
  std::printf("corpus: %zu files, %zu packets (%zu with IP), %zu files refused by libpcap\n", files, packets,
              with_ip, refused);
}

// ---------------------------------------------------------------- truncation

uint32_t transport_header_len(const Bytes& f, const IpLayer& l) {
  switch (l.proto) {
    case tmach::packet::kProtoTcp:
      return (f[l.l4_offset + 12] >> 4) * 4u;
    case tmach::packet::kProtoUdp:
      return 8;
    case tmach::packet::kProtoSctp:
    case 33:
      return 12;
    default:
      return 4;
  }
}

void expect_same_layer(const IpLayer& a, const IpLayer& b) {
  EXPECT_EQ(a.version, b.version);
  EXPECT_EQ(a.src, b.src);
  EXPECT_EQ(a.dst, b.dst);
  EXPECT_EQ(a.header_proto, b.header_proto);
  EXPECT_EQ(a.proto, b.proto);
  EXPECT_EQ(a.fragment, b.fragment);
  EXPECT_EQ(a.frag_offset, b.frag_offset);
  EXPECT_EQ(a.frag_id, b.frag_id);
  EXPECT_EQ(a.l3_offset, b.l3_offset);
  EXPECT_EQ(a.l4_offset, b.l4_offset);
  EXPECT_EQ(a.has_l4, b.has_l4);
  EXPECT_EQ(a.has_ports, b.has_ports);
  EXPECT_EQ(a.sport, b.sport);
  EXPECT_EQ(a.dport, b.dport);
  EXPECT_EQ(a.tcp_flags, b.tcp_flags);
  EXPECT_EQ(a.l4_payload, b.l4_payload);
}

// Decodes every prefix 0..caplen of `full` and checks it against the full decode.
void check_prefixes(const Packet& p) {
  const Bytes& f = p.data;
  const uint32_t caplen = static_cast<uint32_t>(f.size());
  PacketInfo full = dec(p.linktype, f);
  ASSERT_EQ(full.status, DecodeStatus::kOk);
  ASSERT_EQ(full.ip_count, 1);
  const IpLayer& fl = full.ip[0];
  ASSERT_TRUE(fl.has_l4);
  const uint32_t ip_fixed_end = fl.l3_offset + (fl.version == 4 ? 20u : 40u);
  const uint32_t hdr_end = fl.l4_offset + transport_header_len(f, fl);
  ASSERT_LE(hdr_end, caplen);

  for (uint32_t len = 0; len <= caplen; ++len) {
    SCOPED_TRACE("prefix " + std::to_string(len) + " of " + std::to_string(caplen));
    PacketInfo pi = dec(p.linktype, f, len);
    check_sane(pi, len, "prefix");
    if (p.linktype == tmach::packet::kLinkNflog && len < fl.l3_offset && pi.status == DecodeStatus::kNotIp) {
      // Cut at a TLV boundary before the packet TLV: a log message without a packet.
      EXPECT_EQ(pi.ip_count, 0);
    } else if (len < hdr_end) {
      EXPECT_EQ(pi.status, DecodeStatus::kTruncated) << to_string(pi.status);
    } else {
      EXPECT_EQ(pi.status, DecodeStatus::kOk);
      EXPECT_EQ(pi.anomaly, nullptr);
    }
    // What the prefix holds completely decodes as in the full packet.
    EXPECT_EQ(pi.has_eth, full.has_eth && len >= full.eth_offset + 14u);
    if (pi.has_eth) {
      EXPECT_EQ(pi.eth_offset, full.eth_offset);
    }
    EXPECT_LE(pi.vlan_count, full.vlan_count);
    for (int i = 0; i < pi.vlan_count && i < PacketInfo::kMaxVlans; ++i)
      EXPECT_EQ(pi.vlans[i], full.vlans[i]);
    EXPECT_LE(pi.mpls_count, full.mpls_count);
    EXPECT_EQ(pi.ip_count, len >= ip_fixed_end ? 1 : 0);
    if (len >= fl.l3_offset + 1u) {
      EXPECT_EQ(pi.ethertype, full.ethertype);
    }
    if (pi.ip_count == 1) {
      const IpLayer& l = pi.ip[0];
      EXPECT_EQ(l.version, fl.version);
      EXPECT_EQ(l.src, fl.src);
      EXPECT_EQ(l.dst, fl.dst);
      EXPECT_EQ(l.header_proto, fl.header_proto);
      EXPECT_EQ(l.l3_offset, fl.l3_offset);
      EXPECT_EQ(l.has_ports, fl.has_ports && len >= fl.l4_offset + 4u);
      if (l.has_ports) {
        EXPECT_EQ(l.sport, fl.sport);
        EXPECT_EQ(l.dport, fl.dport);
      }
      EXPECT_EQ(l.has_l4, len >= hdr_end);
      if (len >= fl.l4_offset) {
        EXPECT_EQ(l.proto, fl.proto);
      }
    }
    if (len >= hdr_end) {
      EXPECT_EQ(pi.vlan_count, full.vlan_count);
      EXPECT_EQ(pi.mpls_count, full.mpls_count);
      EXPECT_EQ(pi.ethertype, full.ethertype);
      expect_same_layer(pi.ip[0], fl);
    }
  }
}

// The first packet of a corpus file for which `want` holds.
std::optional<Packet> find_packet(const char* rel, const std::function<bool(const PacketInfo&)>& want) {
  auto pkts = read_pcap(corpus(rel));
  if (!pkts) return std::nullopt;
  for (const Packet& p : *pkts) {
    PacketInfo pi;
    decode(p.linktype, p.data.data(), static_cast<uint32_t>(p.data.size()), pi);
    if (pi.status == DecodeStatus::kOk && want(pi)) return p;
  }
  return std::nullopt;
}

TEST(DecoderTruncation, TcpIpv4) {
  auto p = find_packet("mixed/wikipedia.pcap", [](const PacketInfo& pi) {
    return pi.ip[0].version == 4 && pi.ip[0].proto == tmach::packet::kProtoTcp && pi.ip[0].has_l4 &&
           pi.ip[0].l4_payload > 0 && pi.ip[0].tcp_flags & tmach::packet::kTcpPsh;
  });
  ASSERT_TRUE(p);
  check_prefixes(*p);
}

TEST(DecoderTruncation, Ipv6WithExtensionHeaders) {
  for (const char* rel : {"ipv6/ipv6-http-atomic-frag.pcap", "ipv6/ipv6-hbh-routing0.pcap"}) {
    SCOPED_TRACE(rel);
    auto p = find_packet(rel, [](const PacketInfo& pi) {
      return pi.ip[0].version == 6 && pi.ip[0].header_proto != pi.ip[0].proto && pi.ip[0].has_l4;
    });
    ASSERT_TRUE(p);
    check_prefixes(*p);
  }
}

TEST(DecoderTruncation, Vlan) {
  auto p = find_packet("link/vlan-qinqinq.pcap",
                       [](const PacketInfo& pi) { return pi.vlan_count >= 2 && pi.ip[0].has_l4; });
  ASSERT_TRUE(p);
  check_prefixes(*p);
}

TEST(DecoderTruncation, Mpls) {
  auto p = find_packet("link/mpls-in-vlan.pcap",
                       [](const PacketInfo& pi) { return pi.mpls_count >= 2 && pi.ip[0].has_l4; });
  ASSERT_TRUE(p);
  check_prefixes(*p);
}

TEST(DecoderTruncation, OtherLinkTypes) {
  for (const char* rel : {"link/nflog-http.pcap", "link/linux_dlt_sll2.pcap", "link/connect-with-header.pcap",
                          "ipv4/sctp.pcap"}) {
    SCOPED_TRACE(rel);
    auto p = find_packet(rel, [](const PacketInfo& pi) { return pi.ip[0].has_l4; });
    ASSERT_TRUE(p);
    check_prefixes(*p);
  }
}

// ---------------------------------------------------------------- tcpdump as oracle

// What tcpdump printed for one packet.
struct Seen {
  int version = 0;  // 4 or 6; 0: no IP line (or one we do not parse)
  IpAddr src, dst;
  int sport = -1, dport = -1;
  bool arp_request = false;  // "ARP, Request who-has T tell S"
  IpAddr arp_spa, arp_tpa;
};

// "1.2.3.4.80", "1.2.3.4", "2001:db8::1.21", "::1" -> address and port (-1 if none).
bool parse_endpoint(std::string tok, IpAddr& a, int& port) {
  if (!tok.empty() && tok.back() == ':') tok.pop_back();
  uint8_t buf[16];
  port = -1;
  auto addr = [&](const std::string& s) {
    if (inet_pton(AF_INET, s.c_str(), buf) == 1) {
      a = IpAddr::v4(buf);
      return true;
    }
    if (inet_pton(AF_INET6, s.c_str(), buf) == 1) {
      a = IpAddr::v6(buf);
      return true;
    }
    return false;
  };
  if (addr(tok)) return true;
  size_t dot = tok.rfind('.');
  if (dot == std::string::npos || dot + 1 == tok.size()) return false;
  std::string p = tok.substr(dot + 1);
  if (p.find_first_not_of("0123456789") != std::string::npos) return false;
  if (!addr(tok.substr(0, dot))) return false;
  port = std::stoi(p);
  return true;
}

Seen parse_tcpdump_line(const std::string& line) {
  Seen s;
  std::vector<std::string> t;
  for (size_t i = 0; i < line.size();) {
    size_t j = line.find(' ', i);
    if (j == std::string::npos) j = line.size();
    if (j > i) t.push_back(line.substr(i, j - i));
    i = j + 1;
  }
  for (size_t i = 1; i < t.size(); ++i) {
    // "ARP, Request who-has T tell S", with the target's hardware address after T when
    // it is not all zeros: "who-has T (00:ff:...) tell S" (IP over InfiniBand).
    const size_t hw = i + 4 < t.size() && t[i + 4].front() == '(' ? 1 : 0;
    if (t[i] == "ARP," && i + 5 + hw < t.size() && t[i + 1] == "Request" && t[i + 2] == "who-has" &&
        t[i + 4 + hw] == "tell") {
      int port;
      std::string sender = t[i + 5 + hw];
      if (sender.back() == ',') sender.pop_back();
      s.arp_request = parse_endpoint(t[i + 3], s.arp_tpa, port) && parse_endpoint(sender, s.arp_spa, port);
      return s;
    }
    if (t[i] != "IP" && t[i] != "IP6") continue;
    if (i + 3 < t.size() && t[i + 2] == ">" && parse_endpoint(t[i + 1], s.src, s.sport) &&
        parse_endpoint(t[i + 3], s.dst, s.dport))
      s.version = t[i] == "IP" ? 4 : 6;
    // After IPv6 extension headers tcpdump prints the ports apart:
    // "IP6 a > b: DSTOPT 36951 > 80: Flags ...", "IP6 a > b: frag (0|1232) 53 > 5353: ...".
    auto digits = [](const std::string& x) {
      return !x.empty() && x.find_first_not_of("0123456789") == std::string::npos;
    };
    for (size_t k = i + 4; s.version == 6 && s.sport < 0 && k + 2 < t.size() && k < i + 24; ++k) {
      if (digits(t[k]) && t[k + 1] == ">" && t[k + 2].back() == ':' &&
          digits(t[k + 2].substr(0, t[k + 2].size() - 1))) {
        s.sport = std::stoi(t[k]);
        s.dport = std::stoi(t[k + 2]);
      }
    }
    return s;  // only the first (outermost) IP header of the line
  }
  return s;
}

// tcpdump -nn -tt: one line per packet, each starting with the timestamp; continuation
// lines (some printers use them) start with white space.
std::vector<std::string> tcpdump_lines(const std::string& path) {
  std::vector<std::string> lines;
  std::string cmd = "tcpdump -nn -tt -r '" + path + "' 2>/dev/null";
  FILE* f = popen(cmd.c_str(), "r");
  if (!f) return lines;
  char buf[65536];
  while (std::fgets(buf, sizeof buf, f)) {
    std::string l(buf);
    if (!l.empty() && l.back() == '\n') l.pop_back();
    if (!l.empty() && l[0] >= '0' && l[0] <= '9') lines.push_back(l);
  }
  pclose(f);
  return lines;
}

TEST(DecoderOracle, MatchesTcpdump) {
  if (std::system("tcpdump --version >/dev/null 2>&1") != 0) GTEST_SKIP() << "tcpdump not installed";
  const char* files[] = {
      "mixed/wikipedia.pcap",
      "ipv6/ftp-ipv6.pcap",
      "link/linux_dlt_sll2.pcap",
      "link/vlan-qinqinq.pcap",
      "link/mpls-in-vlan.pcap",
      "link/nflog-http.pcap",
      "link/connect-with-header.pcap",
      "link/rotation.pcap",
      "ipv4/fragmented-1.pcap",
      "ipv4/sctp.pcap",
      "ipv4/dccp_partial_csum_v4_simple.pcap",
      "link/linuxsll-arp.pcap",
      "ipv6/ipv6-http-atomic-frag.pcap",
      "ipv6/ipv6-fragmented-dns.pcap",
      "link/LINKTYPE_IPV6.pcap",
      "mixed/bro.org.pcap",
      "link/HDLC.pcap",
      "link/quic_handshake.pcap",
      "link/icmp_dot1q.pcap",
      "link/snap-tcp.pcap",
      "link/mixed-vlan-mpls.pcap",
      "link/q-in-q.pcap",
      "link/LINKTYPE_IPV4.pcap",
      "ipv4/forces1.pcap",
      "ipv4/options.pcap",
      "ipv6/ipv6-routing-header.pcap",
      "ipv6/ipv6-srh-ext-header.pcap",
      "pcapng/bgp-role.pcapng",
      "pcapng/start-with-server.pcapng",
      "nonip/ip6_esp.pcap",
      "link/ipoib.pcap",         // ARP with 20-byte hardware addresses
      "pcapng/snap-arp.pcapng",  // ARP behind LLC/SNAP, hardware type 6
  };
  size_t total = 0;
  for (const char* rel : files) {
    SCOPED_TRACE(rel);
    auto pkts = read_pcap(corpus(rel));
    ASSERT_TRUE(pkts);
    std::vector<std::string> lines = tcpdump_lines(corpus(rel));
    ASSERT_EQ(lines.size(), pkts->size());
    size_t compared = 0;
    for (size_t i = 0; i < lines.size(); ++i) {
      SCOPED_TRACE("packet " + std::to_string(i + 1) + ": " + lines[i]);
      const Packet& p = (*pkts)[i];
      PacketInfo pi = dec(p.linktype, p.data);
      Seen s = parse_tcpdump_line(lines[i]);
      if (s.arp_request) {
        EXPECT_TRUE(pi.arp);
        EXPECT_TRUE(pi.arp_addrs);
        EXPECT_EQ(pi.arp_spa, s.arp_spa);
        EXPECT_EQ(pi.arp_tpa, s.arp_tpa);
        ++compared;
        continue;
      }
      if (s.version == 0) {
        EXPECT_EQ(pi.ip_count, 0);
        continue;
      }
      ASSERT_GE(pi.ip_count, 1);
      const IpLayer& l = pi.ip[0];
      EXPECT_EQ(l.version, s.version);
      EXPECT_EQ(l.src, s.src) << l.src.str();
      EXPECT_EQ(l.dst, s.dst) << l.dst.str();
      EXPECT_EQ(l.has_ports, s.sport >= 0);
      if (s.sport >= 0 && l.has_ports) {
        EXPECT_EQ(l.sport, s.sport);
        EXPECT_EQ(l.dport, s.dport);
      }
      ++compared;
    }
    EXPECT_GT(compared, 0u);
    total += compared;
  }
  std::printf("tcpdump oracle: %zu packets compared\n", total);
}

}  // namespace
