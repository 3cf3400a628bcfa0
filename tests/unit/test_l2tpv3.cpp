// L2TPv3 (RFC 3931) data over IP (protocol 115) and over UDP (1701), on crafted bytes (the
// corpus has no L2TPv3 capture): the cookie/sublayer guess, control messages, frames that
// are not Ethernet, and truncation at every byte (exact-size buffers: ASan sees over-reads).
#include <gtest/gtest.h>

#include <cstring>
#include <memory>
#include <vector>

#include "packet/decoder.h"

namespace {

using namespace tmach;
using packet::DecodeStatus;
using packet::PacketInfo;
using Bytes = std::vector<uint8_t>;

// Byte by byte: vector::insert of a small vector trips GCC 12's false -Warray-bounds.
void append(Bytes& b, const Bytes& x) {
  for (uint8_t c : x) b.push_back(c);
}

void put16(Bytes& b, size_t at, uint16_t v) {
  b[at] = uint8_t(v >> 8);
  b[at + 1] = uint8_t(v);
}

// An IPv4 header (20 bytes, valid checksum unless `bad_sum`) + payload.
Bytes ipv4(uint8_t proto, uint8_t src_last, uint8_t dst_last, const Bytes& payload, bool bad_sum = false) {
  Bytes b = {0x45, 0, 0, 0, 0, 1, 0, 0, 64, proto, 0, 0, 10, 0, 0, src_last, 10, 0, 0, dst_last};
  put16(b, 2, uint16_t(20 + payload.size()));
  uint32_t sum = 0;
  for (size_t i = 0; i < 20; i += 2) sum += uint32_t(b[i] << 8 | b[i + 1]);
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  put16(b, 10, uint16_t(~sum ^ (bad_sum ? 1 : 0)));
  append(b, payload);
  return b;
}

Bytes udp(uint16_t sport, uint16_t dport, const Bytes& payload) {
  Bytes b(8, 0);
  put16(b, 0, sport);
  put16(b, 2, dport);
  put16(b, 4, uint16_t(8 + payload.size()));
  append(b, payload);
  return b;
}

Bytes ethernet(uint16_t type, const Bytes& payload) {
  Bytes b = {2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, uint8_t(type >> 8), uint8_t(type)};
  append(b, payload);
  return b;
}

// The inner frame: Ethernet, IPv4 10.0.0.7 -> 10.0.0.8, UDP 1000 -> 2000.
Bytes inner_frame(bool bad_sum = false) {
  return ethernet(0x0800, ipv4(17, 7, 8, udp(1000, 2000, Bytes(12, 0xab)), bad_sum));
}

// Session id, then `extra` bytes of cookie + sublayer, then the frame.
Bytes l2tpv3_session(uint32_t session, size_t extra, const Bytes& frame) {
  Bytes b = {uint8_t(session >> 24), uint8_t(session >> 16), uint8_t(session >> 8), uint8_t(session)};
  for (size_t i = 0; i < extra; ++i) b.push_back(uint8_t(0xc0 + i));  // cookie bytes, sublayer
  append(b, frame);
  return b;
}

PacketInfo dec(const Bytes& pkt, size_t len = SIZE_MAX) {
  len = std::min(len, pkt.size());
  std::unique_ptr<uint8_t[]> buf(new uint8_t[len ? len : 1]);
  if (len) std::memcpy(buf.get(), pkt.data(), len);
  PacketInfo pi;
  EXPECT_EQ(packet::decode(packet::kLinkIpv4, buf.get(), uint32_t(len), pi), pi.status);
  return pi;
}

void expect_inner(const PacketInfo& pi, uint32_t session) {
  ASSERT_EQ(pi.status, DecodeStatus::kOk) << (pi.anomaly ? pi.anomaly : "");
  ASSERT_EQ(pi.ip_count, 2);
  EXPECT_EQ(pi.ip[1].tunnel, packet::kTunnelL2tp);
  EXPECT_EQ(pi.ip[1].tunnel_id, session);
  EXPECT_EQ(pi.ip[1].src.str(), "10.0.0.7");
  EXPECT_EQ(pi.ip[1].dst.str(), "10.0.0.8");
  EXPECT_TRUE(pi.ip[1].has_ports);
  EXPECT_EQ(pi.ip[1].sport, 1000);
  EXPECT_EQ(pi.ip[1].dport, 2000);
}

TEST(L2tpv3, OverIpEveryCookieAndSublayerLength) {
  // 0: no cookie; 4: a 4-byte cookie or the default sublayer alone; 8: cookie 4 + sublayer
  // or cookie 8; 12: cookie 8 + sublayer.
  for (size_t extra : {0u, 4u, 8u, 12u}) {
    SCOPED_TRACE(extra);
    expect_inner(dec(ipv4(115, 1, 2, l2tpv3_session(0x01020304, extra, inner_frame()))), 0x01020304);
  }
}

TEST(L2tpv3, OverUdp) {
  Bytes hdr = {0x00, 0x03, 0x00, 0x00};  // T=0, version 3, reserved
  Bytes sess = l2tpv3_session(77, 4, inner_frame());
  append(hdr, sess);
  expect_inner(dec(ipv4(17, 1, 2, udp(1701, 1701, hdr))), 77);
  // A control message (T set) carries no frame.
  hdr[0] = 0xc8;
  PacketInfo pi = dec(ipv4(17, 1, 2, udp(1701, 1701, hdr)));
  EXPECT_EQ(pi.status, DecodeStatus::kOk);
  EXPECT_EQ(pi.ip_count, 1);
}

TEST(L2tpv3, WhatIsNotDecoded) {
  // Session 0: a control message over IP.
  PacketInfo c = dec(ipv4(115, 1, 2, l2tpv3_session(0, 0, inner_frame())));
  EXPECT_EQ(c.status, DecodeStatus::kOk);
  EXPECT_EQ(c.ip_count, 1);
  EXPECT_EQ(c.ip[0].proto, 115);
  // An inner IPv4 header with a wrong checksum is no plausible frame at any guess.
  PacketInfo bad = dec(ipv4(115, 1, 2, l2tpv3_session(5, 4, inner_frame(true))));
  EXPECT_EQ(bad.status, DecodeStatus::kOk);
  EXPECT_EQ(bad.ip_count, 1);
  // A PPP pseudowire is not decoded (the packet is its outer layer).
  Bytes ppp = {0xff, 0x03, 0x00, 0x21};
  Bytes ip = ipv4(17, 7, 8, udp(1, 2, {}));
  append(ppp, ip);
  EXPECT_EQ(dec(ipv4(115, 1, 2, l2tpv3_session(5, 0, ppp))).ip_count, 1);
  // IPv6 and ARP inside are found too.
  Bytes v6(40, 0);
  v6[0] = 0x60;
  v6[6] = 59;  // no next header
  v6[8 + 15] = 1;
  v6[24 + 15] = 2;
  PacketInfo p6 = dec(ipv4(115, 1, 2, l2tpv3_session(9, 8, ethernet(0x86dd, v6))));
  ASSERT_EQ(p6.ip_count, 2);
  EXPECT_EQ(p6.ip[1].version, 6);
  Bytes arp = {0, 1, 8, 0, 6, 4, 0, 1, 2, 0, 0, 0, 0, 1, 10, 0, 0, 7, 0, 0, 0, 0, 0, 0, 10, 0, 0, 8};
  PacketInfo pa = dec(ipv4(115, 1, 2, l2tpv3_session(9, 4, ethernet(0x0806, arp))));
  EXPECT_EQ(pa.status, DecodeStatus::kOk);
  EXPECT_EQ(pa.ip_count, 1);
  EXPECT_TRUE(pa.arp);
  EXPECT_EQ(pa.arp_tpa.str(), "10.0.0.8");
}

TEST(L2tpv3, TruncationAtEveryOffset) {
  Bytes hdr = {0x00, 0x03, 0x00, 0x00};
  Bytes sess = l2tpv3_session(77, 12, inner_frame());
  append(hdr, sess);
  for (const Bytes& pkt :
       {ipv4(115, 1, 2, l2tpv3_session(3, 8, inner_frame())), ipv4(17, 1, 2, udp(1701, 1701, hdr))}) {
    PacketInfo full = dec(pkt);
    ASSERT_EQ(full.ip_count, 2);
    for (size_t len = 0; len <= pkt.size(); ++len) {
      PacketInfo pi = dec(pkt, len);
      ASSERT_LE(pi.ip_count, 2) << len;
      if (pi.ip_count == 2) {
        EXPECT_EQ(pi.ip[1].src, full.ip[1].src) << len;
      }
    }
  }
}

}  // namespace
