// Frame builders shared by the decoder tests (test_decoder.cpp: hand-built frames;
// test_decoder_corpus.cpp: corpus, truncation, tcpdump oracle).
#pragma once

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

namespace decoder_frames {

using tmach::packet::decode;
using tmach::packet::DecodeStatus;
using tmach::packet::IpAddr;
using tmach::packet::IpLayer;
using tmach::packet::PacketInfo;
namespace fs = std::filesystem;

using Bytes = std::vector<uint8_t>;

// ---------------------------------------------------------------- frame builders

template <class... T>
inline Bytes cat(const T&... parts) {
  Bytes out;
  (out.insert(out.end(), parts.begin(), parts.end()), ...);
  return out;
}
inline void put16(Bytes& b, uint16_t v) {
  b.push_back(static_cast<uint8_t>(v >> 8));
  b.push_back(static_cast<uint8_t>(v));
}
inline void put32(Bytes& b, uint32_t v) {
  put16(b, static_cast<uint16_t>(v >> 16));
  put16(b, static_cast<uint16_t>(v));
}
inline Bytes be16(uint16_t v) {
  Bytes b;
  put16(b, v);
  return b;
}
inline Bytes zeros(size_t n) { return Bytes(n, 0); }

inline IpAddr ip(const char* s) {
  uint8_t buf[16] = {};
  if (std::strchr(s, ':')) {
    EXPECT_EQ(inet_pton(AF_INET6, s, buf), 1) << s;
    return IpAddr::v6(buf);
  }
  EXPECT_EQ(inet_pton(AF_INET, s, buf), 1) << s;
  return IpAddr::v4(buf);
}
inline Bytes raw_addr(const char* s) {
  IpAddr a = ip(s);
  return a.is_v4() ? Bytes(a.b.begin() + 12, a.b.end()) : Bytes(a.b.begin(), a.b.end());
}

inline Bytes eth(uint16_t type) { return cat(Bytes{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}, be16(type)); }
inline Bytes vlan(uint16_t vid, uint16_t next) {
  return cat(be16(static_cast<uint16_t>(0x2000 | vid)), be16(next));
}
inline Bytes mpls(uint32_t label, bool bottom) {
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
inline Bytes ipv4(const V4& h, const Bytes& payload) {
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

inline Bytes ipv6(uint8_t nh, const Bytes& payload, int plen = -1, const char* src = "2001:db8::1",
                  const char* dst = "2001:db8::2") {
  Bytes b = {0x60, 0, 0, 0};
  put16(b, static_cast<uint16_t>(plen >= 0 ? plen : payload.size()));
  b.push_back(nh);
  b.push_back(64);
  return cat(b, raw_addr(src), raw_addr(dst), payload);
}
inline Bytes ext6(uint8_t nh, uint8_t len_units) {
  Bytes b((len_units + 1u) * 8, 0);  // sized first: GCC 12 warns (falsely) on growing a 2-byte vector
  b[0] = nh;
  b[1] = len_units;
  return b;
}
inline Bytes frag6(uint8_t nh, uint16_t offset, bool more, uint32_t id) {
  Bytes b = {nh, 0};
  put16(b, static_cast<uint16_t>(offset << 3 | (more ? 1 : 0)));
  put32(b, id);
  return b;
}

inline Bytes tcp(uint16_t sp, uint16_t dp, uint8_t flags, size_t payload = 0, uint8_t doff = 5) {
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
inline Bytes udp(uint16_t sp, uint16_t dp, size_t payload, int len = -1) {
  Bytes b;
  put16(b, sp);
  put16(b, dp);
  put16(b, static_cast<uint16_t>(len >= 0 ? len : 8 + payload));
  put16(b, 0);
  b.resize(b.size() + payload, 'u');
  return b;
}
inline Bytes ports_hdr(uint16_t sp, uint16_t dp, size_t total) {  // SCTP, DCCP
  Bytes b;
  put16(b, sp);
  put16(b, dp);
  b.resize(total, 0);
  return b;
}
inline Bytes icmp(uint8_t type) { return Bytes{type, 0, 0, 0, 0, 1, 0, 1}; }
inline Bytes arp(uint16_t htype, uint16_t ptype, uint8_t hlen, uint8_t plen, uint16_t op, const char* spa,
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
inline PacketInfo dec(uint32_t linktype, const Bytes& frame, size_t len = SIZE_MAX) {
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

}  // namespace decoder_frames
