// Exact evaluation: hand-built PacketInfo values against many filters, and an oracle test
// that compiles each filter with libpcap and runs the BPF program over synthetic Ethernet
// frames built together with the PacketInfo a decoder gives for them: tm must agree with
// BPF on every (filter, frame) pair.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <pcap/pcap.h>

#include <random>
#include <string>
#include <vector>

#include "packet/decoder.h"
#include "packet/packet_info.h"
#include "query/eval.h"
#include "query/parser.h"
#include "test_addr.h"

namespace tmach::query {
namespace {

using packet::IpAddr;
using packet::IpLayer;
using packet::PacketInfo;

using tmtest::A;

bool M(std::string_view filter, const PacketInfo& p) {
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

void put16(std::vector<uint8_t>& b, uint16_t v) {
  b.push_back(uint8_t(v >> 8));
  b.push_back(uint8_t(v));
}

L4 ports_header(uint8_t proto, uint16_t sp, uint16_t dp, size_t len) {
  L4 l;
  l.proto = proto;
  l.ports = true;
  l.sport = sp;
  l.dport = dp;
  put16(l.bytes, sp);
  put16(l.bytes, dp);
  l.bytes.resize(len, 0);
  return l;
}

L4 tcp(uint16_t sp, uint16_t dp, uint8_t flags = packet::kTcpSyn) {
  L4 l = ports_header(packet::kProtoTcp, sp, dp, 20);
  l.bytes[12] = 0x50;  // data offset 5
  l.bytes[13] = flags;
  l.flags = flags;
  return l;
}
L4 udp(uint16_t sp, uint16_t dp) {
  L4 l = ports_header(packet::kProtoUdp, sp, dp, 12);
  l.bytes[5] = 12;  // length
  return l;
}
L4 sctp(uint16_t sp, uint16_t dp) { return ports_header(packet::kProtoSctp, sp, dp, 12); }
L4 dccp(uint16_t sp, uint16_t dp) { return ports_header(33, sp, dp, 16); }
L4 opaque(uint8_t proto, std::vector<uint8_t> bytes) {
  L4 l;
  l.proto = proto;
  l.bytes = std::move(bytes);
  return l;
}
L4 icmp(uint8_t type) { return opaque(packet::kProtoIcmp, {type, 0, 0, 0, 0, 1, 0, 1}); }
L4 icmp6(uint8_t type) { return opaque(packet::kProtoIcmp6, {type, 0, 0, 0, 0, 1, 0, 1}); }

struct Frame {
  std::string name;
  std::vector<uint8_t> bytes;
  PacketInfo info;
};

// Ethernet header (with 802.1Q tags) around a payload.
Frame ethernet(std::string name, uint16_t ethertype, const std::vector<uint8_t>& payload,
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

void fill_l4(IpLayer& l, const L4& l4, uint32_t l4_offset, bool first) {
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

Frame v4(std::string name, const char* src, const char* dst, const L4& l4, const V4Opts& o = {}) {
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
Frame v6(std::string name, const char* src, const char* dst, const L4& l4, std::vector<uint16_t> vlans = {},
         bool fragment = false, uint16_t frag_offset = 0) {
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

Frame arp(std::string name, uint16_t op, const char* spa, const char* tpa, std::vector<uint16_t> vlans = {},
          bool rarp = false) {
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

// ---------------------------------------------------------------------------------------
// hand-built packets

TEST(Eval, TcpIpv4) {
  const PacketInfo p = v4("tcp4", "10.0.0.1", "192.168.1.2", tcp(12345, 80)).info;
  EXPECT_TRUE(M("", p));
  EXPECT_TRUE(M("host 10.0.0.1", p));
  EXPECT_TRUE(M("src host 10.0.0.1", p));
  EXPECT_FALSE(M("dst host 10.0.0.1", p));
  EXPECT_FALSE(M("src and dst host 10.0.0.1", p));
  EXPECT_TRUE(M("ip host 192.168.1.2", p));
  EXPECT_FALSE(M("arp host 10.0.0.1", p));
  EXPECT_FALSE(M("host 10.0.0.2", p));
  EXPECT_TRUE(M("net 10.0.0.0/8", p));
  EXPECT_TRUE(M("dst net 192.168", p));
  EXPECT_FALSE(M("src net 192.168.0.0/16", p));
  EXPECT_TRUE(M("net 0.0.0.0/0", p));
  EXPECT_FALSE(M("net ::/0", p));
  EXPECT_TRUE(M("port 80", p));
  EXPECT_TRUE(M("tcp port 80", p));
  EXPECT_FALSE(M("udp port 80", p));
  EXPECT_TRUE(M("dst port 80", p));
  EXPECT_FALSE(M("src port 80", p));
  EXPECT_TRUE(M("src port 12345", p));
  EXPECT_FALSE(M("src and dst port 80", p));
  EXPECT_TRUE(M("portrange 70-90", p));
  EXPECT_TRUE(M("tcp src portrange 10000-20000", p));
  EXPECT_FALSE(M("portrange 81-12344", p));
  EXPECT_TRUE(M("port http", p));
  EXPECT_TRUE(M("tcp", p));
  EXPECT_TRUE(M("ip proto 6", p));
  EXPECT_FALSE(M("ip6 proto 6", p));
  EXPECT_FALSE(M("udp or icmp", p));
  EXPECT_TRUE(M("ip", p));
  EXPECT_FALSE(M("ip6", p));
  EXPECT_FALSE(M("arp", p));
  EXPECT_FALSE(M("vlan", p));
  EXPECT_TRUE(M("not vlan 100", p));
  EXPECT_TRUE(M("host 10.0.0.1 and port 80", p));
  EXPECT_TRUE(M("host 10.0.0.9 or port 80 and tcp", p));
  EXPECT_FALSE(M("host 10.0.0.9 or port 80 and udp", p));
  EXPECT_TRUE(M("host 10.0.0.9 or (port 80 and tcp)", p));
  EXPECT_FALSE(M("not tcp", p));
  EXPECT_TRUE(M("not not tcp", p));
  EXPECT_TRUE(M("host 10.0.0.9 or 10.0.0.1", p));
  EXPECT_FALSE(M("host 10.0.0.1 and not 192.168.1.2", p));
  EXPECT_TRUE(M("tcp port 443 or 80", p));
}

TEST(Eval, UdpIpv6) {
  const PacketInfo p = v6("udp6", "2001:db8::1", "2001:db8:1::53", udp(40000, 53)).info;
  EXPECT_TRUE(M("host 2001:db8::1", p));
  EXPECT_TRUE(M("ip6 src host 2001:db8::1", p));
  EXPECT_FALSE(M("dst host 2001:db8::1", p));
  EXPECT_TRUE(M("net 2001:db8::/32", p));
  EXPECT_TRUE(M("dst net 2001:db8:1::/48", p));
  EXPECT_FALSE(M("src net 2001:db8:1::/48", p));
  EXPECT_TRUE(M("net ::/0", p));
  EXPECT_FALSE(M("net 0.0.0.0/0", p));
  EXPECT_TRUE(M("udp port 53", p));
  EXPECT_TRUE(M("port domain", p));
  EXPECT_FALSE(M("tcp port 53", p));
  EXPECT_TRUE(M("udp", p));
  EXPECT_TRUE(M("ip6 proto 17", p));
  EXPECT_FALSE(M("ip proto 17", p));
  EXPECT_TRUE(M("ip6 and udp", p));
  EXPECT_FALSE(M("ip", p));
  EXPECT_FALSE(M("host ::ffff:10.0.0.1", p));
}

TEST(Eval, Ipv4MappedLiteralMatchesOnlyIpv6Headers) {
  const PacketInfo p4 = v4("tcp4", "10.0.0.1", "10.0.0.2", tcp(1, 2)).info;
  const PacketInfo p6 = v6("tcp6", "::ffff:10.0.0.1", "::1", tcp(1, 2)).info;
  EXPECT_TRUE(M("host 10.0.0.1", p4));
  EXPECT_FALSE(M("host ::ffff:10.0.0.1", p4));
  EXPECT_FALSE(M("host 10.0.0.1", p6));
  EXPECT_TRUE(M("host ::ffff:10.0.0.1", p6));
  EXPECT_TRUE(M("net ::ffff:0:0/96", p6));
  EXPECT_FALSE(M("net ::ffff:0:0/96", p4));
}

TEST(Eval, Arp) {
  const PacketInfo p = arp("arp", 1, "10.0.0.1", "10.0.0.254").info;
  EXPECT_TRUE(M("arp", p));
  EXPECT_TRUE(M("rarp", p));
  EXPECT_TRUE(M("host 10.0.0.1", p));
  EXPECT_TRUE(M("src host 10.0.0.1", p));  // sender protocol address
  EXPECT_FALSE(M("dst host 10.0.0.1", p));
  EXPECT_TRUE(M("dst host 10.0.0.254", p));  // target protocol address
  EXPECT_TRUE(M("arp host 10.0.0.254", p));
  EXPECT_FALSE(M("ip host 10.0.0.1", p));  // `ip host` excludes ARP
  EXPECT_TRUE(M("net 10.0.0.0/24", p));
  EXPECT_FALSE(M("ip net 10.0.0.0/24", p));
  EXPECT_TRUE(M("src and dst net 10.0.0.0/24", p));
  EXPECT_FALSE(M("ip or ip6", p));
  EXPECT_FALSE(M("port 80 or tcp or udp or icmp", p));
  EXPECT_TRUE(M("not ip", p));
}

TEST(Eval, Ipv4NonFirstFragmentHasNoPorts) {
  V4Opts o;
  o.frag_offset = 185;
  // The payload's first bytes look like ports 53/53: they must not be taken for ports.
  const PacketInfo p = v4("frag", "10.0.0.7", "10.0.0.8", opaque(17, {0, 53, 0, 53, 0, 0, 0, 0}), o).info;
  EXPECT_FALSE(M("port 53", p));
  EXPECT_FALSE(M("udp port 53", p));
  EXPECT_FALSE(M("portrange 1-65535", p));
  EXPECT_TRUE(M("udp", p));  // ip proto matches fragments
  EXPECT_TRUE(M("ip proto 17", p));
  EXPECT_TRUE(M("host 10.0.0.7 and dst host 10.0.0.8", p));
  // Ports filled in for a later fragment (inherited from its first fragment by
  // FragmentLayers, as the query re-check does) are used: it is its datagram's packet.
  PacketInfo inherited = p;
  inherited.ip[0].has_ports = true;
  inherited.ip[0].sport = inherited.ip[0].dport = 53;
  EXPECT_TRUE(M("port 53", inherited));
  V4Opts first;
  first.more_fragments = true;
  const PacketInfo f = v4("first", "10.0.0.7", "10.0.0.8", udp(4000, 53), first).info;
  EXPECT_TRUE(M("udp port 53", f));
  EXPECT_TRUE(M("src port 4000", f));
}

TEST(Eval, DccpPortsNeverMatchPort) {
  const PacketInfo p = v4("dccp", "10.0.0.1", "10.0.0.2", dccp(80, 80)).info;
  ASSERT_TRUE(p.ip[0].has_ports);
  EXPECT_FALSE(M("port 80", p));
  EXPECT_FALSE(M("portrange 1-1000", p));
  EXPECT_TRUE(M("proto 33", p));
}

TEST(Eval, Vlan) {
  const PacketInfo p = v4("vlan", "10.0.0.1", "10.0.0.2", tcp(1234, 80), {{100}}).info;
  EXPECT_TRUE(M("vlan", p));
  EXPECT_TRUE(M("vlan 100", p));
  EXPECT_FALSE(M("vlan 200", p));
  EXPECT_TRUE(M("vlan 100 and tcp port 80", p));
  EXPECT_TRUE(M("tcp and host 10.0.0.1", p));  // tm decodes through the tag
  PacketInfo qinq = v6("qinq", "::1", "::2", udp(1, 2), {100, 200}).info;
  EXPECT_TRUE(M("vlan 100", qinq));
  EXPECT_TRUE(M("vlan 200", qinq));  // any tag, not only the outer one
  EXPECT_FALSE(M("vlan 300", qinq));
  // More tags than kept: only the kept ones are compared.
  qinq.vlan_count = 6;
  qinq.vlans[2] = 300;
  qinq.vlans[3] = 400;
  EXPECT_TRUE(M("vlan", qinq));
  EXPECT_TRUE(M("vlan 400", qinq));
  EXPECT_FALSE(M("vlan 500", qinq));
}

TEST(Eval, AnyIpLayerMatches) {
  // IPv4 GRE tunnel carrying IPv6 TCP: predicates hold on either layer.
  PacketInfo p;
  p.ip_count = 2;
  IpLayer& outer = p.ip[0];
  outer.version = 4;
  outer.src = A("198.51.100.1");
  outer.dst = A("198.51.100.2");
  outer.header_proto = outer.proto = packet::kProtoGre;
  IpLayer& inner = p.ip[1];
  inner.version = 6;
  inner.src = A("2001:db8::1");
  inner.dst = A("2001:db8::2");
  inner.header_proto = inner.proto = packet::kProtoTcp;
  inner.has_l4 = inner.has_ports = true;
  inner.sport = 443;
  inner.dport = 50000;
  EXPECT_TRUE(M("host 198.51.100.1", p));
  EXPECT_TRUE(M("host 2001:db8::2", p));
  EXPECT_TRUE(M("gre", p));
  EXPECT_TRUE(M("tcp port 443", p));
  EXPECT_TRUE(M("ip and ip6", p));
  EXPECT_TRUE(M("src net 198.51.100.0/24 and src port 443", p));
  EXPECT_FALSE(M("udp", p));
  // Layers past ip_count or kMaxIpLayers are not looked at.
  p.ip_count = 1;
  EXPECT_FALSE(M("host 2001:db8::2", p));
  p.ip[3] = inner;
  p.ip_count = 200;
  EXPECT_TRUE(M("host 2001:db8::2", p));
}

TEST(Eval, Ipv6ExtensionHeadersAreFollowed) {
  // Documented difference: TCP behind a hop-by-hop header is `tcp` to tm.
  PacketInfo p = v6("hbh", "2001:db8::1", "2001:db8::2", tcp(1, 80)).info;
  p.ip[0].header_proto = 0;
  EXPECT_TRUE(M("tcp", p));
  EXPECT_TRUE(M("ip6 proto 6", p));
  EXPECT_TRUE(M("tcp port 80", p));
  EXPECT_FALSE(M("ip6 proto 0", p));
}

TEST(Eval, EmptyOperands) {
  PacketInfo p;
  Expr e;
  e.op = Expr::Op::kAnd;
  EXPECT_TRUE(matches(e, p));
  e.op = Expr::Op::kOr;
  EXPECT_FALSE(matches(e, p));
  EXPECT_TRUE(matches(Expr::truth(), p));
}

// ---------------------------------------------------------------------------------------
// Oracle: libpcap's BPF on the bytes against tm on the PacketInfo.

std::vector<Frame> plain_frames() {
  std::vector<Frame> f;
  f.push_back(v4("tcp4 syn", "10.0.0.1", "192.168.1.2", tcp(12345, 80)));
  f.push_back(v4("tcp4 synack", "192.168.1.2", "10.0.0.1", tcp(80, 12345, 0x12)));
  f.push_back(v4("udp4 dns query", "10.0.0.5", "8.8.8.8", udp(5353, 53)));
  f.push_back(v4("udp4 dns reply", "8.8.8.8", "10.0.0.5", udp(53, 5353)));
  f.push_back(v4("udp4 sport 80", "10.0.0.1", "10.0.0.2", udp(80, 9999)));
  f.push_back(v4("tcp4 80-80 to self", "10.0.0.1", "10.0.0.1", tcp(80, 80, 0x10)));
  f.push_back(v4("tcp4 https", "10.0.0.3", "172.16.5.5", tcp(50000, 443)));
  f.push_back(v4("icmp4", "10.1.2.3", "10.0.0.1", icmp(8)));
  f.push_back(v4("udp4 from 0.0.0.10", "0.0.0.10", "255.255.255.255", udp(68, 67)));
  f.push_back(v4("sctp4", "172.16.0.1", "172.16.0.2", sctp(2905, 3868)));
  f.push_back(v4("igmp", "10.0.0.9", "224.0.0.1", opaque(2, {0x11, 0, 0, 0, 0, 0, 0, 0})));
  f.push_back(v4("esp4", "10.0.0.1", "10.0.0.2", opaque(50, {0, 0, 0, 1, 0, 0, 0, 1})));
  f.push_back(v4("gre4", "10.0.0.1", "10.0.0.3", opaque(47, {0, 0, 0x08, 0})));
  f.push_back(v4("dccp4 80", "10.0.0.1", "10.0.0.2", dccp(80, 80)));
  V4Opts opts;
  opts.option_words = 2;
  f.push_back(v4("tcp4 with options", "10.9.9.9", "10.0.0.2", tcp(22, 40000), opts));
  V4Opts first;
  first.more_fragments = true;
  f.push_back(v4("udp4 first fragment", "10.0.0.7", "10.0.0.8", udp(4000, 53), first));
  V4Opts later;
  later.frag_offset = 185;
  f.push_back(
      v4("udp4 later fragment", "10.0.0.7", "10.0.0.8", opaque(17, {0, 53, 0, 53, 0, 0, 0, 0}), later));
  f.push_back(v6("tcp6", "2001:db8::1", "2001:db8:1::2", tcp(443, 50000, 0x18)));
  f.push_back(v6("udp6 dhcp", "fe80::1", "ff02::1:2", udp(546, 547)));
  f.push_back(v6("icmp6", "2001:db8::1", "2001:db8::2", icmp6(128)));
  f.push_back(v6("sctp6", "2001:db8::5", "2001:db8::6", sctp(3868, 3868)));
  f.push_back(v6("ah6", "2001:db8::1", "2001:db8::3", opaque(51, {6, 4, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1})));
  f.push_back(v6("esp6", "2001:db8::3", "2001:db8::1", opaque(50, {0, 0, 0, 1, 0, 0, 0, 1})));
  f.push_back(v6("udp6 dns", "2001:db8::53", "2001:db8::1", udp(53, 33333)));
  f.push_back(
      v6("udp6 later fragment", "2001:db8::7", "2001:db8::8", opaque(17, {0, 53, 0, 53}), {}, true, 100));
  f.push_back(v6("mapped", "::ffff:10.0.0.1", "::1", tcp(1, 2)));
  f.push_back(arp("arp request", 1, "10.0.0.1", "10.0.0.254"));
  f.push_back(arp("arp reply", 2, "192.168.1.2", "10.0.0.1"));
  Frame lldp = ethernet("lldp", 0x88cc, std::vector<uint8_t>(30, 0), {});
  lldp.info.status = packet::DecodeStatus::kNotIp;
  f.push_back(lldp);
  return f;
}

std::vector<Frame> tagged_frames() {
  std::vector<Frame> f;
  f.push_back(v4("vlan100 tcp4", "10.0.0.1", "10.0.0.2", tcp(1234, 80), V4Opts{{100}}));
  f.push_back(v6("vlan200 udp6", "2001:db8::1", "2001:db8::2", udp(53, 53), {200}));
  f.push_back(arp("vlan100 arp", 1, "10.0.0.1", "10.0.0.2", {100}));
  return f;
}

const char* const kPlainFilters[] = {
    "host 10.0.0.1",
    "src host 10.0.0.1",
    "dst host 10.0.0.1",
    "src and dst host 10.0.0.1",
    "src or dst host 10.0.0.1",
    "ip host 10.0.0.1",
    "arp host 10.0.0.1",
    "arp src host 192.168.1.2",
    "host 10.0.0.1 or 8.8.8.8",
    "src 10.0.0.1",
    "host 2001:db8::1",
    "src host 2001:db8::1",
    "ip6 host 2001:db8::2",
    "host ::ffff:10.0.0.1",
    "net 10.0.0.0/8",
    "src net 192.168.0.0/16",
    "dst net 10.0.0.0/24",
    "net 10.0.0",
    "net 172.16",
    "net 10",
    "host 10.0.0",
    "net 10.0.0.0 mask 255.255.255.0",
    "ip net 10.0.0.0/8",
    "src and dst net 10.0.0.0/8",
    "net 2001:db8::/32",
    "net 2001:db8:1::/48",
    "net 0.0.0.0/0",
    "net ::/0",
    "port 80",
    "tcp port 80",
    "udp port 80",
    "udp port 53",
    "src port 80",
    "dst port 53",
    "src and dst port 80",
    "port 80 or 443",
    "tcp port 80 or 443",
    "portrange 50-100",
    "tcp portrange 1-1024",
    "udp portrange 1-1024",
    "portrange 3000-4000",
    "sctp port 3868",
    "sctp src port 2905",
    "port http",
    "port domain",
    "udp port domain",
    "port 4000",
    "port 3868 and not udp",
    "tcp",
    "udp",
    "icmp",
    "icmp6",
    "sctp",
    "igmp",
    "esp",
    "ah",
    "ip",
    "ip6",
    "arp",
    "proto 47",
    "proto \\gre",
    "ip proto 17",
    "ip6 proto 58",
    "ip proto \\tcp",
    "ip6 proto \\udp",
    "proto 33",
    "proto 50 or proto 51",
    "not tcp",
    "tcp and not port 80",
    "host 10.0.0.1 and port 80",
    "host 10.0.0.1 or host 8.8.8.8 and udp",
    "not host 10.0.0.1 or 10.0.0.8",
    "(tcp or udp) and not src net 10.0.0.0/8",
    "udp port 4000 or dst port 53",
    "icmp or arp",
    "ip and udp port 53",
    "host 10.0.0.1 and port (80 or 443)",
    "tcp port 80 and (host 10.0.0.1 or 192.168.1.2)",
    "dst 10.0.0.8 and dst port 53",
    "ip6 and tcp",
    "not ip6 and not arp",
    "not (ip or ip6 or arp)",
    "vlan",
    "vlan 100",
    "not vlan",
    "host 10",
};

const char* const kVlanFilters[] = {
    "vlan",
    "vlan 100",
    "vlan 200",
    "not vlan 100",
    "vlan 100 and tcp",
    "vlan and host 10.0.0.1",
    "vlan 100 and port 80",
    "vlan 200 and ip6",
    "vlan and udp port 53",
    "vlan 100 and arp host 10.0.0.2",
};

struct Bpf {
  pcap_t* pcap = pcap_open_dead(DLT_EN10MB, 65535);
  bpf_program prog{};
  bool ok = false;
  explicit Bpf(const char* filter) { ok = pcap_compile(pcap, &prog, filter, 1, PCAP_NETMASK_UNKNOWN) == 0; }
  ~Bpf() {
    if (ok) pcap_freecode(&prog);
    pcap_close(pcap);
  }
  std::string error() const { return pcap_geterr(pcap); }
  bool match(const std::vector<uint8_t>& b) const {
    pcap_pkthdr h{};
    h.caplen = h.len = uint32_t(b.size());
    return pcap_offline_filter(&prog, &h, b.data()) != 0;
  }
};

int check_against_bpf(const char* filter, const std::vector<Frame>& frames) {
  Bpf bpf(filter);
  EXPECT_TRUE(bpf.ok) << filter << ": " << bpf.error();
  ParseResult r = parse_expr(filter);
  EXPECT_EQ(r.kind, ParseResult::Kind::kIndexed) << filter << ": " << r.error;
  if (!bpf.ok || r.kind != ParseResult::Kind::kIndexed) return 0;
  int bpf_hits = 0;
  for (const Frame& f : frames) {
    bool want = bpf.match(f.bytes);
    bpf_hits += want;
    EXPECT_EQ(matches(r.expr, f.info), want) << "filter '" << filter << "' (" << r.expr.str()
                                             << ") on frame '" << f.name << "': libpcap says " << want;
  }
  return bpf_hits;
}

TEST(EvalOracle, AgreesWithLibpcapOnUntaggedFrames) {
  const std::vector<Frame> frames = plain_frames();
  ASSERT_GE(frames.size(), 20u);
  ASSERT_GE(std::size(kPlainFilters), 20u);
  // The frames exercise the filters: each matches some frames and not others (except
  // the few that hold for none of them: vlan on untagged frames).
  for (const char* filter : kPlainFilters) {
    int hits = check_against_bpf(filter, frames);
    if (std::string_view(filter) == "vlan" || std::string_view(filter) == "vlan 100") {
      EXPECT_EQ(hits, 0) << filter;
    } else if (std::string_view(filter) == "not vlan") {
      EXPECT_EQ(hits, int(frames.size())) << filter;
    } else {
      EXPECT_GT(hits, 0) << filter;
      EXPECT_LT(hits, int(frames.size())) << filter;
    }
  }
}

TEST(EvalOracle, AgreesWithLibpcapOnVlanFilters) {
  std::vector<Frame> frames = plain_frames();
  for (Frame& f : tagged_frames()) frames.push_back(std::move(f));
  for (const char* filter : kVlanFilters) EXPECT_GT(check_against_bpf(filter, frames), 0) << filter;
}

// ARP and RARP frames of every shape, decoded by the decoder: tm's `arp` is libpcap's `arp or
// rarp` (the EtherType alone), and `host` finds the protocol addresses libpcap finds in the
// 6/4 form (libpcap reads them at fixed offsets; tm reads no addresses at other lengths).
TEST(EvalOracle, ArpOfAnyShapeIsArp) {
  struct Shape {
    uint16_t ethertype, htype, ptype;
    uint8_t hlen, plen;
    size_t cut;  // bytes of the ARP body kept
  };
  const Shape shapes[] = {
      {0x0806, 1, 0x0800, 6, 4, 28},   {0x8035, 1, 0x0800, 6, 4, 28},  {0x0806, 6, 0x0800, 6, 4, 28},
      {0x0806, 1, 0x0800, 8, 4, 32},   {0x8035, 1, 0x0800, 14, 4, 36}, {0x0806, 0x3030, 0x0800, 14, 4, 44},
      {0x0806, 32, 0x0800, 20, 4, 56}, {0x0806, 1, 0x86dd, 6, 16, 52}, {0x0806, 1, 0x0800, 6, 4, 7},
  };
  int arp_hits = 0;
  for (const Shape& sh : shapes) {
    std::vector<uint8_t> b = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11};
    put16(b, sh.ethertype);
    put16(b, sh.htype);
    put16(b, sh.ptype);
    b.push_back(sh.hlen);
    b.push_back(sh.plen);
    put16(b, 1);
    for (int i = 0; i < 2; ++i) {  // sender, then target: hardware address, then 10.0.0.1 / 10.0.0.2
      b.insert(b.end(), sh.hlen, 0xaa);
      for (int k = 0; k < sh.plen; ++k) b.push_back(k == 0 ? 10 : k == sh.plen - 1 ? uint8_t(1 + i) : 0);
    }
    b.resize(14 + std::min<size_t>(sh.cut, b.size() - 14));
    PacketInfo p;
    packet::decode(packet::kLinkEthernet, b.data(), uint32_t(b.size()), p);
    const std::string what = "ethertype " + std::to_string(sh.ethertype) + " hlen " +
                             std::to_string(sh.hlen) + " plen " + std::to_string(sh.plen) + " cut " +
                             std::to_string(sh.cut);
    EXPECT_TRUE(M("arp", p)) << what;
    EXPECT_EQ(M("arp", p), Bpf("arp or rarp").match(b)) << what;
    EXPECT_TRUE(M("not ip and not ip6", p)) << what;
    arp_hits += M("arp", p);
    const bool usual = sh.hlen == 6 && sh.plen == 4 && sh.ptype == 0x0800 && sh.cut >= 28;
    EXPECT_EQ(p.arp_addrs, usual || (sh.htype == 32 && sh.cut >= 56)) << what;
    if (usual) {
      for (const char* f : {"host 10.0.0.1", "src host 10.0.0.1", "dst host 10.0.0.2", "host 10.0.0.3"})
        EXPECT_EQ(M(f, p), Bpf(f).match(b)) << f << " on " << what;
    }
  }
  EXPECT_EQ(arp_hits, int(std::size(shapes)));
}

// Random token strings over a vocabulary aimed at the frames above: every one that both
// tm plans and libpcap compiles must give the same answers.
TEST(EvalOracle, RandomFiltersAgree) {
  const std::vector<Frame> frames = plain_frames();
  const char* const vocab[] = {"host",      "net",         "port",
                               "portrange", "src",         "dst",
                               "and",       "or",          "not",
                               "(",         ")",           "(",
                               ")",         "tcp",         "udp",
                               "icmp",      "icmp6",       "ip",
                               "ip6",       "arp",         "sctp",
                               "esp",       "ah",          "igmp",
                               "proto",     "10.0.0.1",    "192.168.1.2",
                               "8.8.8.8",   "10.0.0",      "10.0.0.0/8",
                               "172.16",    "2001:db8::1", "2001:db8::/32",
                               "fe80::1",   "80",          "53",
                               "443",       "3868",        "4000",
                               "12345",     "1-1024",      "50000-60000",
                               "http",      "domain",      "17",
                               "6",         "58",          "vlan"};
  std::mt19937 rng(12345);
  int compared = 0;
  for (int i = 0; i < 20000 && compared < 1500; ++i) {
    std::string text;
    int len = 1 + int(rng() % 8);
    for (int k = 0; k < len; ++k) text += std::string(k ? " " : "") + vocab[rng() % std::size(vocab)];
    ParseResult r = parse_expr(text);
    if (r.kind != ParseResult::Kind::kIndexed) continue;
    Bpf bpf(text.c_str());
    if (!bpf.ok) continue;  // tm's extensions (a bare address, ...)
    ++compared;
    for (const Frame& f : frames)
      ASSERT_EQ(matches(r.expr, f.info), bpf.match(f.bytes))
          << "filter '" << text << "' (" << r.expr.str() << ") on frame '" << f.name << "'";
  }
  EXPECT_GE(compared, 500);
}

// Where tm knowingly answers differently from tcpdump; if one of these starts to agree,
// docs/USAGE.md's "Query language and its semantics" section needs updating too.
TEST(EvalOracle, DocumentedDifferences) {
  auto differs = [](const char* filter, const Frame& f) {
    Bpf bpf(filter);
    EXPECT_TRUE(bpf.ok) << filter;
    bool tm = matches(parse_expr(filter).expr, f.info);
    EXPECT_NE(tm, bpf.match(f.bytes)) << filter << " on " << f.name;
    return tm;
  };
  // tm decodes through VLAN tags; libpcap needs `vlan` before the rest.
  Frame tagged = v4("vlan100 tcp4", "10.0.0.1", "10.0.0.2", tcp(1234, 80), V4Opts{{100}});
  EXPECT_TRUE(differs("tcp", tagged));
  EXPECT_TRUE(differs("host 10.0.0.1", tagged));
  // tm's `vlan N` looks at every tag, libpcap's at the outer one.
  Frame qinq = v6("qinq", "::1", "::2", udp(1, 2), {100, 200});
  EXPECT_TRUE(differs("vlan 200", qinq));
  // tm follows the IPv6 extension-header chain: a first fragment still shows its ports.
  Frame frag6 = v6("udp6 first fragment", "2001:db8::7", "2001:db8::8", udp(4000, 53), {}, true, 0);
  EXPECT_TRUE(differs("udp port 53", frag6));
  // `arp` is ARP or RARP.
  Frame rarp = arp("rarp", 3, "10.0.0.1", "10.0.0.2", {}, true);
  EXPECT_TRUE(differs("arp", rarp));
}

}  // namespace
}  // namespace tmach::query
