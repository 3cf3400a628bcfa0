// The capture thread writes a packet's index keys straight into its ring record
// (pack_index_keys, Ring::try_push_decoded) instead of filling an IndexKeys and copying it.
// The writer reads those bytes as before, so they must be exactly pack() of index_keys(), and
// the records must fall in the chunks as try_push() places them.
#include <gtest/gtest.h>
#include <pcap/pcap.h>

#include <cstring>
#include <filesystem>
#include <functional>
#include <vector>

#include "packet/decoder.h"
#include "store/index_keys.h"
#include "store/ring.h"

using namespace tmach;
namespace fs = std::filesystem;

namespace {

// Calls f(linktype, frame, caplen, wirelen, info) for every packet of the corpus.
size_t for_each_corpus_packet(
    const std::function<void(uint32_t, const uint8_t*, uint32_t, uint32_t, const packet::PacketInfo&)>& f) {
  size_t packets = 0;
  for (const auto& e : fs::recursive_directory_iterator(TM_CORPUS_DIR)) {
    if (!e.is_regular_file()) continue;
    char err[PCAP_ERRBUF_SIZE];
    pcap_t* pc = pcap_open_offline(e.path().c_str(), err);
    if (!pc) continue;
    const auto lt = static_cast<uint32_t>(pcap_datalink(pc));
    pcap_pkthdr* h;
    const u_char* d;
    packet::PacketInfo info;
    while (pcap_next_ex(pc, &h, &d) == 1) {
      packet::decode(lt, d, h->caplen, info);
      f(lt, d, h->caplen, h->len, info);
      ++packets;
    }
    pcap_close(pc);
  }
  return packets;
}

// pack_index_keys(p) against pack(index_keys(p)): the same bytes, the same size, nothing
// written past them.
void expect_packs_alike(const packet::PacketInfo& p) {
  store::IndexKeys k;
  store::index_keys(p, k);
  std::vector<uint8_t> want(k.packed_bytes());
  k.pack(want.data());
  std::vector<uint8_t> got(store::IndexKeys::kMaxPackedBytes + 8, 0xa5);
  const size_t n = store::pack_index_keys(p, got.data());
  ASSERT_EQ(n, want.size());
  ASSERT_TRUE(std::equal(want.begin(), want.end(), got.begin()));
  for (size_t i = n; i < got.size(); ++i) ASSERT_EQ(got[i], 0xa5) << i;
}

packet::IpAddr addr(int i, bool v4) {
  const uint8_t b4[4] = {10, 0, 0, static_cast<uint8_t>(i)};
  packet::IpAddr a = packet::IpAddr::v4(b4);
  if (!v4) {
    a.b[0] = 0x20;
    a.b[15] = static_cast<uint8_t>(i);
  }
  return a;
}

}  // namespace

TEST(KeysInRing, PackIndexKeysWritesWhatPackOfIndexKeysWrites) {
  ASSERT_TRUE(fs::is_directory(TM_CORPUS_DIR)) << TM_CORPUS_DIR;
  size_t n = for_each_corpus_packet([](uint32_t, const uint8_t*, uint32_t, uint32_t,
                                       const packet::PacketInfo& p) { expect_packs_alike(p); });
  EXPECT_GE(n, 100000u);
}

// The extremes the corpus may lack: every layer, IPv4 and IPv6 addresses interleaved (a v4-mapped
// one in an IPv6 layer), tunnels, ports, ARP addresses, more VLANs than are kept.
TEST(KeysInRing, PackIndexKeysAtTheLimits) {
  for (int layers = 0; layers <= packet::PacketInfo::kMaxIpLayers + 1; ++layers)
    for (unsigned v4_pattern = 0; v4_pattern < 4; ++v4_pattern)
      for (bool arp : {false, true})
        for (int vlans : {0, 1, packet::PacketInfo::kMaxVlans + 1}) {
          SCOPED_TRACE(::testing::Message() << layers << " " << v4_pattern << " " << arp << " " << vlans);
          packet::PacketInfo p;
          p.ip_count = static_cast<uint8_t>(layers);
          for (int i = 0; i < std::min(layers, packet::PacketInfo::kMaxIpLayers); ++i) {
            packet::IpLayer& l = p.ip[i];
            l.version = (v4_pattern >> (i & 1)) & 1 ? 4 : 6;
            l.src = addr(2 * i, (v4_pattern >> (i & 1)) & 1);
            l.dst = addr(2 * i + 1, i % 3 == 0 || l.version == 4);  // v4-mapped in an IPv6 layer
            l.proto = i % 2 ? packet::kProtoUdp : packet::kProtoTcp;
            l.tunnel = static_cast<uint8_t>(i);
            l.has_ports = i != 2;
            l.sport = static_cast<uint16_t>(1000 + i);
            l.dport = static_cast<uint16_t>(2000 + i);
          }
          p.arp = arp && layers == 0;
          p.arp_addrs = p.arp && vlans != 1;
          p.arp_spa = addr(50, true);
          p.arp_tpa = addr(51, v4_pattern & 1);
          p.ethertype = 0x88cc;
          p.vlan_count = static_cast<uint8_t>(vlans);
          for (int i = 0; i < std::min(vlans, packet::PacketInfo::kMaxVlans); ++i)
            p.vlans[i] = static_cast<uint16_t>(0x1000 | (100 + i));
          expect_packs_alike(p);
        }
}

// Two rings of 16 KiB chunks fed the corpus, one by try_push(index_keys()), one by
// try_push_decoded(): every record equal, at the same offset of the pool (so chunks are changed
// at the same records, including those where only the exact size of the keys fits).
TEST(KeysInRing, TryPushDecodedPlacesRecordsAsTryPush) {
  store::Ring old_way(128 << 10), in_place(128 << 10);
  ASSERT_EQ(old_way.pool().chunk_bytes(), 16u << 10);
  const auto* old_mem = static_cast<const uint8_t*>(old_way.memory().first);
  const auto* new_mem = static_cast<const uint8_t*>(in_place.memory().first);
  uint64_t ts = 0;
  size_t pushed = 0, fallbacks = 0;
  store::IndexKeys spill;
  for_each_corpus_packet(
      [&](uint32_t lt, const uint8_t* d, uint32_t caplen, uint32_t len, const packet::PacketInfo& p) {
        store::IndexKeys k;
        store::index_keys(p, k);
        const bool a = old_way.try_push(ts, lt, len, d, caplen, &k);
        const bool b = in_place.try_push_decoded(ts, lt, len, d, caplen, p, spill);
        ++ts;
        ASSERT_EQ(a, b);
        if (!a) return;  // larger than a chunk
        ++pushed;
        const store::RecordHeader* x = old_way.front();
        const store::RecordHeader* y = in_place.front();
        ASSERT_TRUE(x && y);
        const size_t off = reinterpret_cast<const uint8_t*>(y) - new_mem;
        ASSERT_EQ(reinterpret_cast<const uint8_t*>(x) - old_mem, static_cast<ptrdiff_t>(off));
        const size_t room = 16384 - off % 16384;  // in the chunk, from the record on
        if (room < sizeof(store::RecordHeader) + store::IndexKeys::kMaxPackedBytes + caplen + 7 &&
            room >= x->size)
          ++fallbacks;  // the exact size fitted where the largest would not
        ASSERT_EQ(std::memcmp(x, y, sizeof(*x)), 0);
        ASSERT_EQ(std::memcmp(old_way.packed_keys(x), in_place.packed_keys(y), x->keys_bytes), 0);
        ASSERT_EQ(std::memcmp(in_place.payload(y), d, caplen), 0);
        old_way.pop();
        in_place.pop();
      });
  EXPECT_GE(pushed, 100000u);
  EXPECT_GE(fallbacks, 10u);
}

namespace {

// One IPv4 TCP layer from 10.0.0.<a> to 10.0.0.<a + 1>.
packet::PacketInfo tcp_info(int a) {
  packet::PacketInfo p;
  p.ip_count = 1;
  packet::IpLayer& l = p.ip[0];
  l.version = 4;
  l.src = addr(a, true);
  l.dst = addr(a + 1, true);
  l.proto = packet::kProtoTcp;
  l.has_ports = true;
  l.sport = 1000;
  l.dport = 80;
  return p;
}

std::vector<uint8_t> packed(const store::IndexKeys& k) {
  std::vector<uint8_t> b(k.packed_bytes());
  k.pack(b.data());
  return b;
}

}  // namespace

// A refused try_push_decoded() leaves index_keys(info) in its `keys` (the recorder's too_large()
// and retries use them rather than computing them again): when the ring is full, and when the
// frame is larger than a chunk.
TEST(KeysInRing, RefusedPushDecodedHandsBackTheKeys) {
  store::Ring r(1 << 16);  // 16 KiB chunks
  ASSERT_EQ(r.pool().chunk_bytes(), 16u << 10);
  store::IndexKeys want, got;
  std::vector<uint8_t> frame(20000, 0);

  const packet::PacketInfo big = tcp_info(7);
  store::index_keys(big, want);
  store::index_keys(tcp_info(100), got);  // other keys, to be written over
  ASSERT_NE(packed(got), packed(want));
  EXPECT_FALSE(r.try_push_decoded(1, 1, 20000, frame.data(), 20000, big, got));
  EXPECT_EQ(packed(got), packed(want));
  EXPECT_TRUE(r.too_large(20000, &got));
  EXPECT_EQ(r.used(), 0u);

  size_t n = 0;
  for (;; ++n) {
    const packet::PacketInfo p = tcp_info(static_cast<int>(n % 50));
    store::index_keys(tcp_info(200), got);
    if (!r.try_push_decoded(n, 1, 1500, frame.data(), 1500, p, got)) {
      store::index_keys(p, want);
      EXPECT_EQ(packed(got), packed(want));
      EXPECT_FALSE(r.too_large(1500, &got));
      break;
    }
    ASSERT_LT(n, 1000u);
  }
  EXPECT_GT(n, 30u);
  // Room again once the writer passed a chunk: the keys handed back push as try_push() does.
  size_t popped = 0;
  while (!r.try_push(n, 1, 1500, frame.data(), 1500, &got)) {
    ASSERT_NE(r.front(), nullptr);
    r.pop();
    ASSERT_LT(++popped, 100u);
  }
  EXPECT_GT(popped, 0u);
}
