// IPsec SA pairing (sa_pairs.h) and the connection keyer (conn_keyer.h): both directions of
// an ESP/AH SA pair are one connection; what must not pair does not.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <pcap/pcap.h>

#include <set>
#include <string>
#include <vector>

#include "conn/conn_keyer.h"
#include "conn/sa_pairs.h"
#include "packet/decoder.h"
#include "test_addr.h"

namespace {

using namespace tmach;
using packet::IpAddr;
using packet::PacketInfo;

using tmtest::A;

// An ESP (or AH) packet src -> dst with `spi`, optionally inside an IP-in-IP tunnel between
// `outer_a` and `outer_b`.
PacketInfo esp(const char* src, const char* dst, uint32_t spi, uint8_t proto = packet::kProtoEsp,
               const char* outer_a = nullptr, const char* outer_b = nullptr) {
  PacketInfo p;
  if (outer_a) {
    packet::IpLayer& o = p.ip[p.ip_count++];
    o.version = 4;
    o.src = A(outer_a);
    o.dst = A(outer_b);
    o.proto = o.header_proto = packet::kProtoIpIp;
  }
  packet::IpLayer& l = p.ip[p.ip_count++];
  l.version = 4;
  l.src = A(src);
  l.dst = A(dst);
  l.proto = l.header_proto = proto;
  l.has_spi = true;
  l.spi = spi;
  if (outer_a) l.tunnel = packet::kTunnelIpIp;
  return p;
}

conn::FlowKey key(conn::ConnKeyer& k, const PacketInfo& p, uint64_t t) { return k.key(p, t)->key; }

TEST(SaPairs, BothDirectionsAreOneConnection) {
  conn::ConnKeyer k;
  auto ab = key(k, esp("10.0.0.1", "10.0.0.2", 0x1111), 1);
  auto ba = key(k, esp("10.0.0.2", "10.0.0.1", 0x2222), 2);
  EXPECT_EQ(ab, ba);
  // Later packets of either SA keep the pair's key.
  EXPECT_EQ(key(k, esp("10.0.0.1", "10.0.0.2", 0x1111), 3), ab);
  EXPECT_EQ(key(k, esp("10.0.0.2", "10.0.0.1", 0x2222), 4), ab);
  EXPECT_EQ(k.sa_pairs().paired(), 1u);
  // Without the table (make_key), they were two.
  EXPECT_NE(conn::make_key(esp("10.0.0.1", "10.0.0.2", 0x1111))->key,
            conn::make_key(esp("10.0.0.2", "10.0.0.1", 0x2222))->key);
  // The same SPI both ways (OSPFv3 with manual AH keys) pairs too: one connection.
  auto x = key(k, esp("10.9.0.1", "10.9.0.2", 0x100, packet::kProtoAh), 5);
  EXPECT_EQ(key(k, esp("10.9.0.2", "10.9.0.1", 0x100, packet::kProtoAh), 6), x);
}

TEST(SaPairs, WhatMustNotPair) {
  conn::ConnKeyer k;
  auto ab = key(k, esp("10.0.0.1", "10.0.0.2", 1), 1);
  // Another peer, another protocol, another outer path: not partners.
  EXPECT_NE(key(k, esp("10.0.0.3", "10.0.0.1", 2), 2), ab);
  EXPECT_NE(key(k, esp("10.0.0.2", "10.0.0.1", 3, packet::kProtoAh), 3), ab);
  EXPECT_NE(key(k, esp("10.0.0.2", "10.0.0.1", 4, packet::kProtoEsp, "192.0.2.1", "192.0.2.2"), 4), ab);
  // A second SA in the same direction does not pair with the first.
  auto ab2 = key(k, esp("10.0.0.1", "10.0.0.2", 5), 5);
  EXPECT_NE(ab2, ab);
  // The reverse SA pairs with the latest unpaired one of its reverse direction (5), and a
  // second reverse SA finds nobody left (both 1 and 5 taken or superseded).
  EXPECT_EQ(key(k, esp("10.0.0.2", "10.0.0.1", 6), 6), ab2);
  EXPECT_NE(key(k, esp("10.0.0.2", "10.0.0.1", 7), 7), ab);
  EXPECT_EQ(k.sa_pairs().paired(), 1u);
}

TEST(SaPairs, RekeyedPairIsANewConnection) {
  conn::ConnKeyer k;
  auto old = key(k, esp("10.0.0.1", "10.0.0.2", 0xa), 1);
  EXPECT_EQ(key(k, esp("10.0.0.2", "10.0.0.1", 0xb), 2), old);
  auto fresh = key(k, esp("10.0.0.2", "10.0.0.1", 0xd), 3);  // rekey: B->A first this time
  EXPECT_NE(fresh, old);
  EXPECT_EQ(key(k, esp("10.0.0.1", "10.0.0.2", 0xc), 4), fresh);
  // The old SAs still in use keep the old pair.
  EXPECT_EQ(key(k, esp("10.0.0.1", "10.0.0.2", 0xa), 5), old);
  EXPECT_EQ(key(k, esp("10.0.0.2", "10.0.0.1", 0xb), 6), old);
}

TEST(SaPairs, ExpiryAndTunnels) {
  conn::SaPairTable t(64, 100);
  PacketInfo ab = esp("10.0.0.1", "10.0.0.2", 1), ba = esp("10.0.0.2", "10.0.0.1", 2);
  EXPECT_EQ(t.pair_id(ab.ip[0], 0, 1000), 1u);
  EXPECT_EQ(t.pair_id(ba.ip[0], 0, 1200), 2u);  // the open SA expired at 1100: no partner
  EXPECT_EQ(t.paired(), 0u);
  // Inside one tunnel (same outer path) they pair, and the key keeps the tunnel in it.
  conn::ConnKeyer k;
  PacketInfo t1 = esp("10.0.0.1", "10.0.0.2", 1, packet::kProtoEsp, "192.0.2.1", "192.0.2.2");
  PacketInfo t2 = esp("10.0.0.2", "10.0.0.1", 2, packet::kProtoEsp, "192.0.2.2", "192.0.2.1");
  auto k1 = key(k, t1, 1), k2 = key(k, t2, 2);
  EXPECT_EQ(k1, k2);
  EXPECT_NE(k1, key(k, esp("10.0.0.1", "10.0.0.2", 1), 3));  // untunnelled: another connection
}

TEST(SaPairs, LaterFragmentOfEspJoinsItsPair) {
  conn::ConnKeyer k;
  auto ab = key(k, esp("10.0.0.1", "10.0.0.2", 1), 1);
  PacketInfo first = esp("10.0.0.2", "10.0.0.1", 2);
  first.ip[0].fragment = true;
  first.ip[0].frag_id = 77;
  EXPECT_EQ(key(k, first, 2), ab);
  PacketInfo later = esp("10.0.0.2", "10.0.0.1", 0);
  later.ip[0].has_spi = false;  // no ESP header in a later fragment
  later.ip[0].fragment = true;
  later.ip[0].frag_id = 77;
  later.ip[0].frag_offset = 185;
  EXPECT_EQ(key(k, later, 3), ab);
}

// The corpus: OSPFv3 AH uses SPI 0x100 both ways between fe80::1 and fe80::2 (one
// connection), and to ff02::5 from each (one each); ip6_esp.pcap has 12 one-way SAs.
// tshark -r nonip/OSPFv3_with_AH.pcap -T fields -e ipv6.src -e ipv6.dst -e ah.spi | sort -u
// tshark -r nonip/ip6_esp.pcap -T fields -e ipv6.src -e ipv6.dst -e esp.spi | sort -u
size_t sa_connections(const char* rel) {
  char err[PCAP_ERRBUF_SIZE];
  pcap_t* p = pcap_open_offline((std::string(TM_CORPUS_DIR) + "/" + rel).c_str(), err);
  EXPECT_NE(p, nullptr) << err;
  if (!p) return 0;
  conn::ConnKeyer k;
  std::set<std::string> keys;  // (a set of byte vectors trips a GCC 12 false -Wstringop-overread)
  pcap_pkthdr* h;
  const u_char* d;
  uint64_t t = 0;
  while (pcap_next_ex(p, &h, &d) == 1) {
    PacketInfo pi;
    packet::decode(uint32_t(pcap_datalink(p)), d, h->caplen, pi);
    const auto* in = pi.inner();
    if (!in || !in->has_spi) continue;
    auto kp = k.key(pi, ++t);
    keys.insert(std::string(reinterpret_cast<const char*>(&kp->key), sizeof(kp->key)));
  }
  pcap_close(p);
  return keys.size();
}

TEST(SaPairs, Corpus) {
  EXPECT_EQ(sa_connections("nonip/OSPFv3_with_AH.pcap"), 3u);
  EXPECT_EQ(sa_connections("nonip/ip6_esp.pcap"), 12u);
}

}  // namespace
