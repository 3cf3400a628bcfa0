// Tunnels: decapsulation of every tunnel kind from real captures, truncation of tunnelled
// packets at every byte offset (exact-size buffers: ASan sees any over-read), the flow key
// of tunnelled and IPsec packets, the fragment table, and layer-aware queries on decoded
// packets.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <pcap/pcap.h>

#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "conn/flow_key.h"
#include "conn/fragment_table.h"
#include "corpus_packets.h"
#include "packet/decoder.h"
#include "query/eval.h"
#include "query/parser.h"
#include "test_addr.h"

namespace {

using namespace tmach;
using packet::DecodeStatus;
using packet::IpAddr;
using packet::PacketInfo;
using Bytes = std::vector<uint8_t>;

using tmtest::Pkt;
using tmtest::read;

PacketInfo dec(const Pkt& p, size_t len = SIZE_MAX) {
  len = std::min(len, p.data.size());
  std::unique_ptr<uint8_t[]> buf(new uint8_t[len ? len : 1]);
  if (len) std::memcpy(buf.get(), p.data.data(), len);
  PacketInfo pi;
  EXPECT_EQ(packet::decode(uint32_t(p.linktype), buf.get(), uint32_t(len), pi), pi.status);
  return pi;
}

using tmtest::A;

bool M(const char* filter, const PacketInfo& p) {
  auto r = query::parse_expr(filter);
  EXPECT_EQ(r.kind, query::ParseResult::Kind::kIndexed) << filter << r.error;
  return query::matches(r.expr, p);
}

struct Case {
  const char* file;
  int packet;       // 1-based
  int layers;       // ip_count
  uint8_t kind;     // tunnel kind of the innermost layer
  const char* src;  // innermost addresses
  const char* dst;
  uint8_t proto;    // innermost protocol
  int64_t id = -1;  // tunnel id of the innermost layer, when checked
};

const Case kCases[] = {
    {"tunnels/4in4.pcap", 1, 2, packet::kTunnelIpIp, "10.0.0.1", "10.0.0.2", 17},
    {"tunnels/4in6.pcap", 1, 2, packet::kTunnelIpIp, "70.55.213.211", "192.88.99.1", 6},
    {"tunnels/6in4.pcap", 1, 2, packet::kTunnelIpIp, "dead::beef", "cafe::babe", 17},
    {"tunnels/6in6.pcap", 1, 2, packet::kTunnelIpIp, "dead::beef", "cafe::babe", 17},
    {"tunnels/6in6in6.pcap", 1, 3, packet::kTunnelIpIp, "dead::beef", "cafe::babe", 17},
    {"tunnels/ping6-in-ipv4.pcap", 1, 2, packet::kTunnelIpIp, "2001:db8:0:1::1", "2001:db8:0:1::2", 58},
    {"tunnels/gre-sample.pcap", 1, 2, packet::kTunnelGre, "66.59.111.190", "172.28.2.3", 1},
    {"tunnels/gre-within-gre.pcap", 1, 3, packet::kTunnelGre, "10.10.25.1", "192.168.1.2", 1},
    {"tunnels/gre-pptp.pcap", 1, 3, packet::kTunnelGre, "172.16.44.3", "8.8.8.8", 17, 6016},
    {"tunnels/erspanII.pcap", 1, 2, packet::kTunnelGre, "23.0.0.2", "23.0.0.3", 1},
    {"tunnels/wccp_redirect_gre.pcap", 1, 2, packet::kTunnelGre, "10.254.127.195", "10.254.108.228", 6},
    {"tunnels/gre-over-udp-4754.pcap", 1, 2, packet::kTunnelGre, "172.17.0.2", "1.1.1.1", 17},
    // GRE protocol 0x8909: Cisco MetaData (security group tag), then IPv4.
    {"tunnels/various_gre.pcap", 25, 2, packet::kTunnelGre, "172.17.1.54", "172.17.1.55", 1, 0x28},
    {"tunnels/vxlan.pcap", 3, 2, packet::kTunnelVxlan, "10.0.0.1", "10.0.0.2", 1, 123},
    {"tunnels/vxlan-encapsulated-http.pcap", 1, 2, packet::kTunnelVxlan, "172.16.11.201", "54.86.237.188", 6,
     1},
    {"tunnels/nsh-over-vxlan-gpe.pcap", 1, 2, packet::kTunnelVxlan, "192.168.0.1", "192.168.0.2", 17},
    {"tunnels/geneve.pcap", 1, 2, packet::kTunnelGeneve, "30.0.0.1", "30.0.0.2", 1, 0},
    {"tunnels/geneve-many-options.pcap", 1, 2, packet::kTunnelGeneve, "10.0.0.226", "95.217.228.176", 6,
     0xc012e},
    {"tunnels/tcpdump-geneve.pcap", 3, 2, packet::kTunnelGeneve, "30.0.0.2", "30.0.0.1", 6, 11},
    {"tunnels/gtp1_gn_normal_incl_fragmentation.pcap", 1, 2, packet::kTunnelGtp, "10.131.47.185",
     "79.101.110.141", 6},
    {"tunnels/gtp7_ipv6.pcap", 1, 2, packet::kTunnelGtp, "fe80::224c:4fff:fe43:414c", "ff02::1:3", 17},
    {"tunnels/gtp_ext_header.pcap", 1, 2, packet::kTunnelGtp, "10.155.182.202", "10.155.186.57", 6, 1050199},
    {"tunnels/Teredo.pcap", 30, 2, packet::kTunnelTeredo, "2001:0:4137:9e50:8000:f12a:b9c8:2815",
     "2001:4860:0:2001::68", 58},
    {"tunnels/ayiya3.pcap", 12, 2, packet::kTunnelAyiya, "2001:4978:f:4c::2", "2001:4860:b002::68", 6},
    {"tunnels/mpls-over-udp.pcap", 1, 2, packet::kTunnelMplsUdp, "10.3.0.10", "10.1.0.10", 1},
};

TEST(Tunnels, CorpusDecapsulation) {
  for (const Case& c : kCases) {
    SCOPED_TRACE(std::string(c.file) + " #" + std::to_string(c.packet));
    auto pkts = read(c.file);
    ASSERT_GE(pkts.size(), size_t(c.packet));
    PacketInfo pi = dec(pkts[size_t(c.packet - 1)]);
    EXPECT_EQ(pi.status, DecodeStatus::kOk) << (pi.anomaly ? pi.anomaly : "");
    ASSERT_EQ(pi.ip_count, c.layers);
    const auto& in = *pi.inner();
    EXPECT_EQ(in.tunnel, c.kind) << packet::tunnel_name(in.tunnel);
    EXPECT_EQ(pi.ip[0].tunnel, packet::kTunnelNone);
    EXPECT_EQ(in.src, A(c.src)) << in.src.str();
    EXPECT_EQ(in.dst, A(c.dst)) << in.dst.str();
    EXPECT_EQ(in.proto, c.proto);
    if (c.id >= 0) {
      EXPECT_EQ(in.tunnel_id, uint32_t(c.id));
    }
    // Queries: any layer, one layer, the tunnel selectors.
    std::string inner_host = std::string("host ") + c.src;
    EXPECT_TRUE(M(inner_host.c_str(), pi));
    EXPECT_TRUE(M(("inner " + inner_host).c_str(), pi));
    EXPECT_FALSE(M(("outer " + inner_host).c_str(), pi));
    EXPECT_TRUE(M(("outer host " + pi.ip[0].src.str()).c_str(), pi));
    EXPECT_TRUE(M("tunnel", pi));
    EXPECT_TRUE(M((std::string("tunnel ") + packet::tunnel_name(c.kind)).c_str(), pi));
    // The flow key is the inner one, with a tunnel hash.
    auto k = conn::make_key(pi);
    ASSERT_TRUE(k);
    EXPECT_NE(k->key.tunnel, 0u);
    EXPECT_EQ(k->key.proto, c.proto);
  }
}

TEST(Tunnels, NonIpInsideATunnelIsTheOuterPacket) {
  auto pkts = read("tunnels/vxlan.pcap");
  PacketInfo pi = dec(pkts[0]);  // ARP in VXLAN
  EXPECT_EQ(pi.status, DecodeStatus::kOk);
  EXPECT_EQ(pi.ip_count, 1);
  EXPECT_TRUE(pi.arp);
  EXPECT_EQ(pi.ethertype, 0x0800);
  EXPECT_TRUE(M("host 10.0.0.1", pi));  // the ARP sender inside
  EXPECT_FALSE(M("tunnel", pi));
}

TEST(Tunnels, PlainUdpOnATunnelPortStaysPlain) {
  // l2tp-avp-overflow: L2TP control messages (T bit) on 1701: no inner layer.
  for (const auto& p : read("tunnels/l2tp-avp-overflow.pcap")) {
    PacketInfo pi = dec(p);
    EXPECT_LE(pi.ip_count, 1);
  }
  // Teredo.pcap: native IPv4 traffic mixed in stays one layer.
  auto pkts = read("tunnels/Teredo.pcap");
  EXPECT_EQ(dec(pkts[0]).ip_count, 1);
}

TEST(Tunnels, SameInnerFlowInTwoTunnelsIsTwoConnections) {
  auto a = read("tunnels/6in4.pcap"), b = read("tunnels/6in6.pcap");
  PacketInfo pa = dec(a[0]), pb = dec(b[0]);
  auto ka = conn::make_key(pa), kb = conn::make_key(pb);
  ASSERT_TRUE(ka && kb);
  EXPECT_EQ(ka->key.a, kb->key.a);  // same inner 5-tuple
  EXPECT_EQ(ka->key.port_a, kb->key.port_a);
  EXPECT_FALSE(ka->key == kb->key);
  // Both directions of a tunnelled connection share a key.
  auto g = read("tunnels/gre-sample.pcap");
  auto k1 = conn::make_key(dec(g[10])), k2 = conn::make_key(dec(g[11]));
  ASSERT_TRUE(k1 && k2);
  EXPECT_EQ(k1->key, k2->key);
  EXPECT_NE(k1->src_is_a, k2->src_is_a);
  // Geneve: one VNI per direction here (10, 11): the VNI is part of the key.
  auto gv = read("tunnels/geneve-many-options.pcap");
  auto g1 = conn::make_key(dec(gv[0])), g2 = conn::make_key(dec(gv[1]));
  EXPECT_EQ(g1->key, g2->key);
}

TEST(Tunnels, IpsecSpi) {
  auto pkts = read("nonip/ip6_esp.pcap");
  ASSERT_FALSE(pkts.empty());
  PacketInfo pi = dec(pkts[1]);  // #1 is ICMPv6, then ESP
  ASSERT_EQ(pi.ip_count, 1);
  ASSERT_TRUE(pi.ip[0].has_spi);
  EXPECT_EQ(pi.ip[0].spi, 10u);
  const std::string q = "spi " + std::to_string(pi.ip[0].spi);
  EXPECT_TRUE(M(q.c_str(), pi));
  EXPECT_TRUE(M("esp", pi));
  EXPECT_FALSE(M("spi 1", pi) && pi.ip[0].spi != 1);
  auto k = conn::make_key(pi);
  ASSERT_TRUE(k);
  EXPECT_NE(k->key.tunnel, 0u);  // the SPI
  EXPECT_EQ(k->key.port_a, 0);
  auto ah = read("nonip/OSPFv3_with_AH.pcap");
  ASSERT_FALSE(ah.empty());
  size_t with_spi = 0;
  for (const auto& p : ah) with_spi += dec(p).ip_count && dec(p).ip[0].has_spi;
  EXPECT_GT(with_spi, 0u);
}

// ESP in UDP on port 4500 (NAT traversal, RFC 3948): the SPI is the UDP layer's (tshark: 8
// packets of espudp1.pcap with esp.spi == 0x12345678); the connection stays the UDP one.
TEST(Tunnels, IpsecSpiInUdpNatTraversal) {
  auto pkts = read("nonip/espudp1.pcap");
  ASSERT_EQ(pkts.size(), 8u);
  for (const auto& p : pkts) {
    PacketInfo pi = dec(p);
    ASSERT_EQ(pi.ip_count, 1);
    EXPECT_EQ(pi.ip[0].proto, 17);
    ASSERT_TRUE(pi.ip[0].has_spi);
    EXPECT_EQ(pi.ip[0].spi, 0x12345678u);
    EXPECT_TRUE(M("spi 305419896", pi));
    EXPECT_FALSE(M("spi 1", pi));
    EXPECT_FALSE(M("esp", pi));  // (as tcpdump's `esp`: IP protocol 50)
    auto k = conn::make_key(pi);
    ASSERT_TRUE(k);
    EXPECT_EQ(k->key.tunnel, 0u);
  }
  // A tunnel's packet sent from port 4500 stays the tunnel's (its destination port decides
  // first, as for the tunnels): VXLAN from source port 4500 was taken for ESP and not decoded.
  auto vx = read("tunnels/vxlan.pcap");
  ASSERT_FALSE(vx.empty());
  Pkt p = vx[2];  // (ICMP inside: #0 and #1 are ARP)
  PacketInfo before = dec(p);
  ASSERT_GE(before.ip_count, 2);
  ASSERT_EQ(p.data[12], 0x08);  // (IPv4 behind Ethernet)
  const size_t udp = 14 + (p.data[14] & 0x0f) * 4;
  p.data[udp] = 4500 >> 8;  // source port
  p.data[udp + 1] = 4500 & 0xff;
  PacketInfo after = dec(p);
  EXPECT_EQ(after.ip_count, before.ip_count);
  EXPECT_EQ(after.ip[1].tunnel, before.ip[1].tunnel);
  EXPECT_FALSE(after.ip[0].has_spi);
}

TEST(Tunnels, LinkTypes) {
  struct L {
    const char* file;
    const char* host;
  } cases[] = {{"link/pppoe.pcap", nullptr},
               {"link/radiotap.pcap", "172.17.156.76"},
               {"link/ipoib.pcap", "192.168.56.10"},
               {"link/pbb.pcap", nullptr},
               {"link/vntag.pcap", nullptr}};
  for (const auto& c : cases) {
    SCOPED_TRACE(c.file);
    size_t with_ip = 0, with_host = 0;
    auto pkts = read(c.file);
    for (const auto& p : pkts) {
      PacketInfo pi = dec(p);
      with_ip += pi.ip_count > 0;
      if (c.host) with_host += M((std::string("host ") + c.host).c_str(), pi);
    }
    EXPECT_GT(with_ip, 0u);
    if (c.host) {
      EXPECT_GT(with_host, 0u);
    }
  }
}

// Ethernet / IPv4 / GRE with protocol `proto` / `payload`.
Bytes eth_ip_gre(uint16_t proto, const Bytes& payload) {
  Bytes f = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 0x08, 0x00};
  const size_t total = 20 + 4 + payload.size();
  Bytes ip = {0x45,
              0,
              uint8_t(total >> 8),
              uint8_t(total),
              0,
              1,
              0,
              0,
              64,
              packet::kProtoGre,
              0,
              0,
              192,
              0,
              2,
              1,
              192,
              0,
              2,
              2};
  f.insert(f.end(), ip.begin(), ip.end());
  Bytes gre = {0, 0, uint8_t(proto >> 8), uint8_t(proto)};
  f.insert(f.end(), gre.begin(), gre.end());
  f.insert(f.end(), payload.begin(), payload.end());
  return f;
}

// An 802.11 data frame (to the DS) carrying IPv4/UDP 10.9.0.1:5000 -> 10.9.0.2:53.
Bytes wlan_udp() {
  Bytes f = {0x08, 0x01, 0, 0};                 // data, to DS; duration
  for (int i = 0; i < 18; ++i) f.push_back(1);  // three addresses
  f.push_back(0);                               // sequence
  f.push_back(0);
  Bytes llc = {0xaa, 0xaa, 0x03, 0, 0, 0, 0x08, 0x00};
  Bytes ip = {0x45, 0,    0,    28, 0,  1, 0, 0, 64, packet::kProtoUdp, 0, 0, 10, 9, 0, 1, 10, 9, 0,
              2,    0x13, 0x88, 0,  53, 0, 8, 0, 0};
  f.insert(f.end(), llc.begin(), llc.end());
  f.insert(f.end(), ip.begin(), ip.end());
  return f;
}

TEST(Tunnels, ArubaGreCarries80211) {
  for (uint16_t proto : {0x8200, 0x8210, 0x82f0, 0x8370}) {
    SCOPED_TRACE(proto);
    const Pkt p{eth_ip_gre(proto, wlan_udp()), packet::kLinkEthernet};
    PacketInfo pi = dec(p);
    ASSERT_EQ(pi.status, DecodeStatus::kOk) << (pi.anomaly ? pi.anomaly : "");
    ASSERT_EQ(pi.ip_count, 2);
    EXPECT_EQ(pi.ip[1].tunnel, packet::kTunnelGre);
    EXPECT_EQ(pi.ip[1].src, A("10.9.0.1"));
    EXPECT_EQ(pi.ip[1].dport, 53);
    EXPECT_TRUE(M("inner udp port 53 and tunnel gre", pi));
    // Every prefix: no over-read; the inner layer is lost only with a non-ok status.
    for (size_t len = 0; len < p.data.size(); ++len) {
      PacketInfo c = dec(p, len);
      if (c.ip_count < 2) {
        EXPECT_NE(c.status, DecodeStatus::kOk) << len;
      }
    }
  }
  // A management frame (beacon) inside: the packet is its outer layer.
  Bytes beacon = wlan_udp();
  beacon[0] = 0x80;
  PacketInfo pi = dec(Pkt{eth_ip_gre(0x8200, beacon), packet::kLinkEthernet});
  EXPECT_EQ(pi.status, DecodeStatus::kOk);
  EXPECT_EQ(pi.ip_count, 1);
  // Protocol types beside Aruba's (0x8201, 0x8380) are not 802.11.
  for (uint16_t proto : {0x8201, 0x8380}) {
    pi = dec(Pkt{eth_ip_gre(proto, wlan_udp()), packet::kLinkEthernet});
    EXPECT_EQ(pi.ip_count, 1) << proto;
  }
}

TEST(Tunnels, CiscoMetadataInGre) {
  // various_gre.pcap: 20 packets in GRE with Cisco MetaData: 12 with ICMP or PIM inside, 8 with
  // an inner GRE keepalive (tshark -r tunnels/various_gre.pcap -Y cmd | wc -l -> 20).
  size_t cmd = 0;
  for (const auto& p : read("tunnels/various_gre.pcap")) {
    PacketInfo pi = dec(p);
    EXPECT_NE(pi.status, DecodeStatus::kMalformed);
    cmd += pi.ip_count == 2 && pi.ip[1].tunnel == packet::kTunnelGre;
  }
  EXPECT_EQ(cmd, 20u);
  // Crafted: the next protocol comes first in GRE's form of the header; cut inside it.
  Bytes ip = {0x45, 0,    0,    28, 0,  1, 0, 0, 64, packet::kProtoUdp, 0, 0, 10, 9, 0, 1, 10, 9, 0,
              2,    0x13, 0x88, 0,  53, 0, 8, 0, 0};
  Bytes hdr = {0x08, 0x00, 1, 1, 0, 1, 0, 7};
  hdr.insert(hdr.end(), ip.begin(), ip.end());
  const Pkt p{eth_ip_gre(0x8909, hdr), packet::kLinkEthernet};
  PacketInfo pi = dec(p);
  ASSERT_EQ(pi.ip_count, 2);
  EXPECT_EQ(pi.ip[1].dst, A("10.9.0.2"));
  pi = dec(p, 14 + 20 + 4 + 7);
  EXPECT_EQ(pi.status, DecodeStatus::kTruncated);
  EXPECT_STREQ(pi.anomaly, "cmd_truncated");
}

TEST(Tunnels, ArpOverInfiniband) {
  // ipoib.pcap: 4 ARP packets between 192.168.56.10 and 192.168.56.24 with 20-byte hardware
  // addresses (tshark -r link/ipoib.pcap -Y arp | wc -l -> 4).
  size_t arp = 0, host = 0;
  for (const auto& p : read("link/ipoib.pcap")) {
    PacketInfo pi = dec(p);
    if (!pi.arp) continue;
    ++arp;
    EXPECT_TRUE(pi.arp_addrs);
    host += M("host 192.168.56.24 and host 192.168.56.10 and arp", pi);
  }
  EXPECT_EQ(arp, 4u);
  EXPECT_EQ(host, 4u);
}

// Every prefix of a tunnelled packet: no over-read, layers only ever lost from the inside.
TEST(Tunnels, TruncationAtEveryOffset) {
  for (const Case& c : kCases) {
    SCOPED_TRACE(c.file);
    auto pkts = read(c.file);
    const Pkt& p = pkts[size_t(c.packet - 1)];
    PacketInfo full = dec(p);
    for (size_t len = 0; len <= p.data.size(); ++len) {
      PacketInfo pi = dec(p, len);
      ASSERT_LE(pi.ip_count, full.ip_count) << len;
      for (int i = 0; i < pi.ip_count; ++i) {
        EXPECT_EQ(pi.ip[i].src, full.ip[i].src) << len;
        EXPECT_EQ(pi.ip[i].tunnel, full.ip[i].tunnel) << len;
      }
      if (pi.status == DecodeStatus::kOk) {
        EXPECT_EQ(pi.anomaly, nullptr);
      }
      // Teredo is recognized by its payload: cut inside the IPv6 header it is plain UDP.
      if (pi.ip_count < full.ip_count && c.kind != packet::kTunnelTeredo) {
        EXPECT_NE(pi.status, DecodeStatus::kOk) << len;
      }
    }
  }
}

TEST(Tunnels, DepthLimit) {
  // IPv6-in-IPv6 five deep: four layers kept, the fifth is an anomaly.
  Bytes inner = {};
  auto v6 = [](uint8_t nh, const Bytes& payload) {
    Bytes b = {0x60, 0, 0, 0, uint8_t(payload.size() >> 8), uint8_t(payload.size()), nh, 64};
    for (int i = 0; i < 32; ++i) b.push_back(uint8_t(i));
    b.insert(b.end(), payload.begin(), payload.end());
    return b;
  };
  Bytes pkt = v6(59, {});
  for (int i = 0; i < 4; ++i) pkt = v6(41, pkt);
  PacketInfo pi = dec(Pkt{pkt, packet::kLinkIpv6});
  EXPECT_EQ(pi.ip_count, PacketInfo::kMaxIpLayers);
  EXPECT_EQ(pi.status, DecodeStatus::kMalformed);
  EXPECT_STREQ(pi.anomaly, "tunnel_too_deep");
}

TEST(FragmentTable, LaterFragmentsJoinTheFirst) {
  for (const char* f : {"ipv4/fragmented-1.pcap", "ipv6/ipv6-fragmented-dns.pcap",
                        "tunnels/gtp1_gn_normal_incl_fragmentation.pcap"}) {
    SCOPED_TRACE(f);
    conn::FragmentTable ft;
    size_t later = 0;
    uint64_t t = 1;
    for (const auto& p : read(f)) {
      PacketInfo pi = dec(p);
      auto k = ft.key(pi, t++);
      const auto* in = pi.inner();
      if (in && in->fragment && in->frag_offset) {
        ++later;
        ASSERT_TRUE(k);
      }
    }
    EXPECT_GT(later, 0u);
    // A fragment that arrives before its first one keeps ports 0 (fragmented-1 has one).
    EXPECT_GT(ft.hits(), 0u);
    EXPECT_EQ(ft.hits() + ft.misses(), later);
  }
  // Expired entries are not used.
  conn::FragmentTable ft(16, 10);
  auto pkts = read("ipv4/fragmented-1.pcap");
  for (const auto& p : pkts) ft.key(dec(p), 1000 * (&p - pkts.data() + 1));
  EXPECT_EQ(ft.hits(), 0u);
}

}  // namespace
