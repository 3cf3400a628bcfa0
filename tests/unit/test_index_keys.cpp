// Index keys travel from the capture thread to the writer through the RAM ring in packed
// form; the writer indexes them without decoding. These tests hold that path to the
// definition in store/index.h, checked by a plain reference built from the decoded packets.
#include <gtest/gtest.h>
#include <pcap/pcap.h>

#include <algorithm>
#include <filesystem>
#include <map>
#include <set>
#include <vector>

#include "packet/decoder.h"
#include "store/index.h"
#include "store/index_keys.h"
#include "store/ring.h"

using namespace tmach;
namespace fs = std::filesystem;

namespace {

// The index as index.h defines it, the slow and obvious way.
struct Reference {
  std::map<store::AddrKey, std::set<uint32_t>> addr;
  std::map<uint32_t, std::set<uint32_t>> port, proto, net, vlan;

  void add(uint32_t ord, const packet::PacketInfo& p) {
    for (int i = 0; i < p.ip_count && i < packet::PacketInfo::kMaxIpLayers; ++i) {
      const packet::IpLayer& l = p.ip[i];
      if (l.fragment) net[store::kNetFragment].insert(ord);  // (any layer a fragment: one key)
      addr[l.src.b].insert(ord);
      addr[l.dst.b].insert(ord);
      proto[l.proto].insert(ord);
      net[l.version == 4 ? store::kNetV4 : store::kNetV6].insert(ord);
      if (l.tunnel) net[store::kNetTunnel + l.tunnel].insert(ord);
      if (l.has_ports &&
          (l.proto == packet::kProtoTcp || l.proto == packet::kProtoUdp || l.proto == packet::kProtoSctp)) {
        port[l.sport].insert(ord);
        port[l.dport].insert(ord);
      }
    }
    if (p.arp) {
      if (p.arp_addrs) {
        addr[p.arp_spa.b].insert(ord);
        addr[p.arp_tpa.b].insert(ord);
      }
      net[store::kNetArp].insert(ord);
    }
    if (p.ip_count == 0 && !p.arp) net[p.ethertype].insert(ord);
    for (int i = 0; i < p.vlan_count && i < packet::PacketInfo::kMaxVlans; ++i)
      vlan[p.vlans[i] & 0xfff].insert(ord);
    if (p.vlan_count) vlan[store::kAnyVlan].insert(ord);
    if (p.status == packet::DecodeStatus::kTruncated) {  // cut before its addresses or ports
      const packet::IpLayer* in = p.inner();
      const bool ports = in && (in->proto == packet::kProtoTcp || in->proto == packet::kProtoUdp ||
                                in->proto == packet::kProtoSctp);
      const bool chain = in && in->version == 6 && packet::is_ipv6_extension_header(in->proto);
      if (in ? in->frag_offset == 0 && ((ports && !in->has_ports) || chain) : !p.arp || !p.arp_addrs)
        net[store::kNetCut].insert(ord);
    }
  }
};

template <class K>
void expect_same(const std::map<K, Roaring>& got, const std::map<K, std::set<uint32_t>>& want,
                 const char* what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  auto g = got.begin();
  for (const auto& [k, ords] : want) {
    ASSERT_TRUE(g->first == k) << what;
    std::vector<uint32_t> v(g->second.cardinality());
    g->second.toUint32Array(v.data());
    EXPECT_EQ(v, std::vector<uint32_t>(ords.begin(), ords.end())) << what;
    ++g;
  }
}

void expect_same(const store::SegmentIndex& got, const Reference& want) {
  expect_same(got.addr, want.addr, "addr");
  expect_same(got.port, want.port, "port");
  expect_same(got.proto, want.proto, "proto");
  expect_same(got.net, want.net, "net");
  expect_same(got.vlan, want.vlan, "vlan");
}

}  // namespace

// Every corpus file (tunnels, VLANs, IPv6, ARP, non-IP, malformed): keys computed on decode,
// packed into the ring with the frame, unpacked by the consumer and indexed give exactly the
// reference index; and the decode-on-append path (recovery) gives the same.
TEST(IndexKeys, ThroughTheRingTheyIndexLikeTheDefinition) {
  ASSERT_TRUE(fs::is_directory(TM_CORPUS_DIR)) << TM_CORPUS_DIR;
  size_t files = 0, packets = 0;
  for (const auto& e : fs::recursive_directory_iterator(TM_CORPUS_DIR)) {
    if (!e.is_regular_file()) continue;
    char err[PCAP_ERRBUF_SIZE];
    pcap_t* pc = pcap_open_offline(e.path().c_str(), err);
    if (!pc) continue;
    SCOPED_TRACE(e.path().string());
    ++files;
    const auto lt = static_cast<uint32_t>(pcap_datalink(pc));
    store::Ring ring(1 << 20);
    store::IndexBuilder via_ring, via_decode;
    Reference ref;
    store::IndexKeys keys, got;
    packet::PacketInfo info;
    uint32_t ord = 0;
    pcap_pkthdr* h;
    const u_char* d;
    while (pcap_next_ex(pc, &h, &d) == 1) {
      packet::decode(lt, d, h->caplen, info);
      store::index_keys(info, keys);
      ASSERT_LE(keys.packed_bytes(), store::IndexKeys::kMaxPackedBytes);
      ASSERT_TRUE(ring.try_push(ord, lt, h->len, d, h->caplen, &keys));
      const store::RecordHeader* r = ring.front();
      ASSERT_NE(r, nullptr);
      ASSERT_EQ(r->keys_bytes, keys.packed_bytes());
      ASSERT_TRUE(got.unpack(ring.packed_keys(r), r->keys_bytes));
      ASSERT_EQ(std::memcmp(ring.payload(r), d, h->caplen), 0);  // the frame follows the keys intact
      via_ring.add(ord, got);
      packet::PacketInfo again;
      packet::decode(lt, ring.payload(r), r->caplen, again);
      via_decode.add_packet(ord, again);
      ref.add(ord, info);
      ring.pop();
      ++ord;
    }
    pcap_close(pc);
    packets += ord;
    expect_same(via_ring.snapshot(), ref);
    expect_same(via_decode.finish(), ref);
  }
  EXPECT_GE(files, 100u);
  EXPECT_GE(packets, 100000u);
}

// An IPv6 header may carry a v4-mapped address: it is the same index key as the IPv4
// address (one 16-byte form), although the compact form keeps IPv4 keys apart.
TEST(IndexKeys, V4MappedAddressInIpv6IsTheIpv4Key) {
  const uint8_t v4[4] = {10, 0, 0, 1}, other[4] = {10, 0, 0, 2};
  packet::PacketInfo a;
  a.ip_count = 1;
  a.ip[0].version = 4;
  a.ip[0].src = packet::IpAddr::v4(v4);
  a.ip[0].dst = packet::IpAddr::v4(other);
  packet::PacketInfo b = a;
  b.ip[0].version = 6;  // same 16-byte addresses, in an IPv6 layer
  store::IndexBuilder ib;
  ib.add_packet(0, a);
  ib.add_packet(1, b);
  store::SegmentIndex s = ib.finish();
  ASSERT_EQ(s.addr.size(), 2u);
  EXPECT_EQ(s.addr.at(packet::IpAddr::v4(v4).b).cardinality(), 2u);
  EXPECT_EQ(s.net.at(store::kNetV4).cardinality(), 1u);
  EXPECT_EQ(s.net.at(store::kNetV6).cardinality(), 1u);
}

TEST(IndexKeys, UnpackRefusesWhatIsNotAWholePackedForm) {
  packet::PacketInfo p;
  p.ip_count = 1;
  p.ip[0].version = 6;
  p.ip[0].src.b[0] = 0x20;
  p.ip[0].proto = packet::kProtoUdp;
  p.ip[0].has_ports = true;
  p.ip[0].sport = 53;
  store::IndexKeys k, u;
  store::index_keys(p, k);
  std::vector<uint8_t> buf(k.packed_bytes());
  k.pack(buf.data());
  EXPECT_TRUE(u.unpack(buf.data(), buf.size()));
  EXPECT_EQ(u.n_v6, 2);
  EXPECT_EQ(u.n_scalars, k.n_scalars);
  for (size_t n = 0; n < buf.size(); ++n) EXPECT_FALSE(u.unpack(buf.data(), n)) << n;
  buf[1] = 200;  // more addresses than a packet can have
  EXPECT_FALSE(u.unpack(buf.data(), buf.size()));
}

// pack_with_slack() writes the bytes pack() writes, for every count of keys either side of its
// fixed-size blocks, and nothing past kMaxPackedBytes.
TEST(IndexKeys, PackWithSlackWritesWhatPackWrites) {
  using store::IndexKeys;
  for (int nv4 : {0, 1, 2, 3, IndexKeys::kMaxAddrs})
    for (int nv6 : {0, 1, IndexKeys::kMaxAddrs})
      for (int ns : {0, 1, 7, 8, 9, IndexKeys::kMaxScalars}) {
        IndexKeys k;
        k.n_v4 = static_cast<uint8_t>(nv4);
        k.n_v6 = static_cast<uint8_t>(nv6);
        k.n_scalars = static_cast<uint8_t>(ns);
        for (int i = 0; i < IndexKeys::kMaxAddrs; ++i) {
          k.v4[i] = 0x01020304u * static_cast<uint32_t>(i + 1);
          for (int j = 0; j < 16; ++j) k.v6[i][j] = static_cast<uint8_t>(i * 16 + j + 1);
        }
        for (int i = 0; i < IndexKeys::kMaxScalars; ++i)
          k.scalars[i] = 0x10001u * static_cast<uint32_t>(i + 7);
        std::vector<uint8_t> want(k.packed_bytes());
        k.pack(want.data());
        std::vector<uint8_t> got(IndexKeys::kMaxPackedBytes + 16, 0xa5);
        k.pack_with_slack(got.data());
        ASSERT_TRUE(std::equal(want.begin(), want.end(), got.begin())) << nv4 << " " << nv6 << " " << ns;
        for (size_t i = IndexKeys::kMaxPackedBytes; i < got.size(); ++i) ASSERT_EQ(got[i], 0xa5) << i;
        IndexKeys u;
        ASSERT_TRUE(u.unpack(got.data(), k.packed_bytes()));
        ASSERT_EQ(u.n_scalars, ns);
      }
}
