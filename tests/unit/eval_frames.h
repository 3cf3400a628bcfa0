// Frame builder shared by the evaluator tests: bytes on the wire plus the PacketInfo the
// decoder gives for them (test_eval.cpp, test_eval_oracle.cpp).
#pragma once

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <pcap/pcap.h>

#include <algorithm>
#include <random>
#include <string>
#include <vector>

#include "packet/decoder.h"
#include "packet/packet_info.h"
#include "query/eval.h"
#include "query/parser.h"
#include "test_addr.h"

namespace tmach::query::eval_frames {

using packet::IpAddr;
using packet::IpLayer;
using packet::PacketInfo;
using tmtest::A;

// Whether `filter` (one the index can plan) matches p.
inline bool M(std::string_view filter, const PacketInfo& p) {
  ParseResult r = parse_expr(filter);
  EXPECT_EQ(r.kind, ParseResult::Kind::kIndexed) << filter << ": " << r.error << r.unplanned;
  return matches(r.expr, p);
}

// ---------------------------------------------------------------------------------------
// Frame builder: bytes on the wire plus the PacketInfo the decoder produces for them.

struct L4 {
  uint8_t proto = 0;
  std::vector<uint8_t> bytes;
  bool ports = false;  // TCP, UDP, SCTP, DCCP
  uint16_t sport = 0, dport = 0;
  uint8_t flags = 0;
};

inline void put16(std::vector<uint8_t>& b, uint16_t v) {
  b.push_back(uint8_t(v >> 8));
  b.push_back(uint8_t(v));
}

inline L4 ports_header(uint8_t proto, uint16_t sp, uint16_t dp, size_t len) {
  L4 l;
  l.proto = proto;
  l.ports = true;
  l.sport = sp;
  l.dport = dp;
  // Sized first, then filled: GCC 12 warns (falsely, -Wstringop-overread) on growing it.
  l.bytes.assign(std::max<size_t>(len, 4), 0);
  l.bytes[0] = uint8_t(sp >> 8);
  l.bytes[1] = uint8_t(sp);
  l.bytes[2] = uint8_t(dp >> 8);
  l.bytes[3] = uint8_t(dp);
  return l;
}

inline L4 tcp(uint16_t sp, uint16_t dp, uint8_t flags = packet::kTcpSyn) {
  L4 l = ports_header(packet::kProtoTcp, sp, dp, 20);
  l.bytes[12] = 0x50;  // data offset 5
  l.bytes[13] = flags;
  l.flags = flags;
  return l;
}
inline L4 udp(uint16_t sp, uint16_t dp) {
  L4 l = ports_header(packet::kProtoUdp, sp, dp, 12);
  l.bytes[5] = 12;  // length
  return l;
}
inline L4 sctp(uint16_t sp, uint16_t dp) { return ports_header(packet::kProtoSctp, sp, dp, 12); }
inline L4 dccp(uint16_t sp, uint16_t dp) { return ports_header(33, sp, dp, 16); }
inline L4 opaque(uint8_t proto, std::vector<uint8_t> bytes) {
  L4 l;
  l.proto = proto;
  l.bytes = std::move(bytes);
  return l;
}
inline L4 icmp(uint8_t type) { return opaque(packet::kProtoIcmp, {type, 0, 0, 0, 0, 1, 0, 1}); }
inline L4 icmp6(uint8_t type) { return opaque(packet::kProtoIcmp6, {type, 0, 0, 0, 0, 1, 0, 1}); }

struct Frame {
  std::string name;
  std::vector<uint8_t> bytes;
  PacketInfo info;
};

// Ethernet header (with 802.1Q tags) around a payload.
inline Frame ethernet(std::string name, uint16_t ethertype, const std::vector<uint8_t>& payload,
                      const std::vector<uint16_t>& vlans) {
  Frame f;
  f.name = std::move(name);
  f.bytes = {0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 1};
  for (uint16_t v : vlans) {
    put16(f.bytes, 0x8100);
    put16(f.bytes, v);
  }
  put16(f.bytes, ethertype);
  f.bytes.insert(f.bytes.end(), payload.begin(), payload.end());
  f.info.linktype = 1;
  f.info.has_eth = true;
  f.info.ethertype = ethertype;
  f.info.vlan_count = uint8_t(vlans.size());
  for (size_t i = 0; i < vlans.size() && i < size_t(PacketInfo::kMaxVlans); ++i) f.info.vlans[i] = vlans[i];
  return f;
}

inline void fill_l4(IpLayer& l, const L4& l4, uint32_t l4_offset, bool first) {
  l.l4_offset = uint16_t(l4_offset);
  l.has_l4 = first && (l4.ports || !l4.bytes.empty());
  l.has_ports = first && l4.ports;
  if (l.has_ports) {
    l.sport = l4.sport;
    l.dport = l4.dport;
  }
  if (first && l4.proto == packet::kProtoTcp) l.tcp_flags = l4.flags;
}

struct V4Opts {
  std::vector<uint16_t> vlans;
  uint16_t frag_offset = 0;  // 8-byte units
  bool more_fragments = false;
  int option_words = 0;  // IPv4 options (NOPs), 4 bytes each
};

inline Frame v4(std::string name, const char* src, const char* dst, const L4& l4, const V4Opts& o = {}) {
  const int ihl = 5 + o.option_words;
  std::vector<uint8_t> ip;
  ip.push_back(uint8_t(0x40 | ihl));
  ip.push_back(0);
  put16(ip, uint16_t(ihl * 4 + l4.bytes.size()));
  put16(ip, 0x1234);
  put16(ip, uint16_t((o.more_fragments ? 0x2000 : 0) | o.frag_offset));
  ip.push_back(64);
  ip.push_back(l4.proto);
  put16(ip, 0);
  IpAddr s = A(src), d = A(dst);
  ip.insert(ip.end(), s.b.begin() + 12, s.b.end());
  ip.insert(ip.end(), d.b.begin() + 12, d.b.end());
  ip.resize(size_t(ihl * 4), 1);  // NOP options
  ip.insert(ip.end(), l4.bytes.begin(), l4.bytes.end());

  Frame f = ethernet(std::move(name), 0x0800, ip, o.vlans);
  IpLayer& l = f.info.ip[f.info.ip_count++];
  l.version = 4;
  l.src = s;
  l.dst = d;
  l.header_proto = l.proto = l4.proto;
  l.frag_offset = o.frag_offset;
  l.fragment = o.more_fragments || o.frag_offset != 0;
  l.frag_id = 0x1234;
  l.l3_offset = uint16_t(14 + 4 * o.vlans.size());
  fill_l4(l, l4, l.l3_offset + ihl * 4u, o.frag_offset == 0);
  return f;
}

// IPv6, optionally with a fragment header (frag_offset in 8-byte units) before the L4 bytes.
inline Frame v6(std::string name, const char* src, const char* dst, const L4& l4,
                std::vector<uint16_t> vlans = {}, bool fragment = false, uint16_t frag_offset = 0) {
  std::vector<uint8_t> ip = {0x60, 0, 0, 0};
  put16(ip, uint16_t(l4.bytes.size() + (fragment ? 8 : 0)));
  ip.push_back(fragment ? 44 : l4.proto);
  ip.push_back(64);
  IpAddr s = A(src), d = A(dst);
  ip.insert(ip.end(), s.b.begin(), s.b.end());
  ip.insert(ip.end(), d.b.begin(), d.b.end());
  if (fragment) {
    ip.push_back(l4.proto);
    ip.push_back(0);
    put16(ip, uint16_t(frag_offset << 3 | 1));
    ip.insert(ip.end(), {0, 0, 0x56, 0x78});
  }
  ip.insert(ip.end(), l4.bytes.begin(), l4.bytes.end());

  Frame f = ethernet(std::move(name), 0x86dd, ip, vlans);
  IpLayer& l = f.info.ip[f.info.ip_count++];
  l.version = 6;
  l.src = s;
  l.dst = d;
  l.header_proto = fragment ? 44 : l4.proto;
  l.proto = l4.proto;
  l.fragment = fragment;
  l.frag_offset = frag_offset;
  l.frag_id = fragment ? 0x5678 : 0;
  l.l3_offset = uint16_t(14 + 4 * vlans.size());
  fill_l4(l, l4, l.l3_offset + 40u + (fragment ? 8 : 0), frag_offset == 0);
  return f;
}

inline Frame arp(std::string name, uint16_t op, const char* spa, const char* tpa,
                 std::vector<uint16_t> vlans = {}, bool rarp = false) {
  std::vector<uint8_t> a = {0, 1, 8, 0, 6, 4};
  put16(a, op);
  IpAddr s = A(spa), t = A(tpa);
  a.insert(a.end(), {0, 0, 0, 0, 0, 1});
  a.insert(a.end(), s.b.begin() + 12, s.b.end());
  a.insert(a.end(), {0, 0, 0, 0, 0, 0});
  a.insert(a.end(), t.b.begin() + 12, t.b.end());
  Frame f = ethernet(std::move(name), rarp ? 0x8035 : 0x0806, a, vlans);
  f.info.status = packet::DecodeStatus::kNotIp;
  f.info.arp = true;
  f.info.arp_addrs = true;
  f.info.arp_spa = s;
  f.info.arp_tpa = t;
  return f;
}

}  // namespace tmach::query::eval_frames
