// Tests of packet/decoder.h per link type (DLT_NULL, PPP, raw, HDLC, SLL, NFLOG, FDDI, ...),
// with hand-built frames from decoder_frames.h.

#include <bit>

#include "decoder_frames.h"

namespace {

using namespace decoder_frames;

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

TEST(DecoderLink, NullFamilyOfTheOtherByteOrder) {
  using namespace tmach::packet;
  // In this host's order a family is not swapped; in the other it is; a value neither way round
  // is not a family, so it is left as it is.
  constexpr bool little = std::endian::native == std::endian::little;
  const auto host = [](uint32_t v) { return little ? le32(v) : bige32(v); };
  const auto other = [](uint32_t v) { return little ? bige32(v) : le32(v); };
  for (uint32_t fam : {2u, 10u, 24u, 28u, 30u}) {
    EXPECT_FALSE(null_family_swapped(host(fam).data(), 4)) << fam;
    EXPECT_TRUE(null_family_swapped(other(fam).data(), 4)) << fam;
    const Bytes frame = cat(other(fam), kV6);
    EXPECT_TRUE(null_family_swapped(frame.data(), static_cast<uint32_t>(frame.size()))) << fam;
  }
  EXPECT_FALSE(null_family_swapped(le32(0).data(), 4));
  EXPECT_FALSE(null_family_swapped(le32(0x00010001).data(), 4));  // 65537 both ways round
  EXPECT_FALSE(null_family_swapped(bige32(2).data(), 3));         // cut short: nothing to read
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

// 802.11 behind radiotap: a QoS data header (26 bytes) padded to 28 when radiotap's Flags say
// so (Atheros; libpcap reads it so too), found through the presence words and TSFT; without
// the flag the same bytes are no LLC/SNAP. A 4-address QoS header with HT Control is 36 bytes.
TEST(DecoderLink, RadiotapPaddingAndLongHeaders) {
  using namespace tmach::packet;
  const Bytes snap = {0xaa, 0xaa, 0x03, 0x00, 0x00, 0x00, 0x08, 0x00};
  const Bytes qos = cat(Bytes{0x88, 0x01}, zeros(24));  // QoS data to the DS: 26 bytes
  // version, pad, length 25, present: TSFT | Flags | (more words), a second word, TSFT at 16, Flags
  Bytes rt = cat(Bytes{0, 0, 25, 0}, le32(0x80000003u), le32(0), zeros(4 + 8), Bytes{kRadiotapDataPad});
  ASSERT_EQ(rt.size(), 25u);
  EXPECT_EQ(radiotap_flags(rt.data(), static_cast<uint32_t>(rt.size())), kRadiotapDataPad);
  EXPECT_EQ(radiotap_flags(rt.data(), 24), -1);  // Flags not captured
  expect_v4_tcp(dec(kLinkRadiotap, cat(rt, qos, zeros(2), snap, kV4)), 25 + 28 + 8);
  Bytes plain = rt;
  plain.back() = 0;  // no padding: the pad bytes are where LLC/SNAP should be
  EXPECT_EQ(dec(kLinkRadiotap, cat(plain, qos, zeros(2), snap, kV4)).status, DecodeStatus::kNotIp);
  expect_v4_tcp(dec(kLinkRadiotap, cat(plain, qos, snap, kV4)), 25 + 26 + 8);
  // Four addresses, QoS, HT Control: 24 + 6 + 2 + 4.
  expect_v4_tcp(dec(kLinkIeee80211, cat(Bytes{0x88, 0x83}, zeros(34), snap, kV4)), 36 + 8);
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

}  // namespace
