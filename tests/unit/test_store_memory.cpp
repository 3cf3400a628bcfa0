// The memory accounting and limits of index building (docs/DESIGN.md, "Memory"): a segment is
// sealed once its index holds segment_size / 8 keys, the builders' memory is counted, the
// gauge keeps the peak of its parts' sum.
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <thread>
#include <vector>

#include "store/catalog.h"
#include "store/index.h"
#include "store/segment_writer.h"
#include "store/store_writer.h"
#include "temp_dir.h"
#include "util/memory_gauge.h"

using namespace tmach;
namespace fs = std::filesystem;

namespace {

// Keys of a packet carrying `n` ports and `addrs` IPv4 addresses (tiny frames with many keys, as
// tunnels and VLAN stacks give them: the case the key cap bounds).
store::IndexKeys many_keys(int n, int addrs = 0) {
  store::IndexKeys k;
  k.n_scalars = static_cast<uint8_t>(n);
  for (int i = 0; i < n; ++i) k.scalars[i] = static_cast<uint32_t>(1000 + i);
  k.n_v4 = static_cast<uint8_t>(addrs);
  for (int i = 0; i < addrs; ++i) k.v4[i] = static_cast<uint32_t>(0x0a + (i << 24));
  return k;
}

void push_all(store::StoreWriter& w, int packets, uint32_t caplen, const store::IndexKeys& keys) {
  std::vector<uint8_t> frame(caplen, 0x42);
  for (int i = 0; i < packets; ++i)
    while (!w.push(0, 1'700'000'000'000'000'000ull + static_cast<uint64_t>(i) * 1000, 1, caplen, frame.data(),
                   caplen, &keys))
      std::this_thread::sleep_for(std::chrono::microseconds(50));
}

store::StoreOptions options(const fs::path& dir, uint64_t segment_size) {
  store::StoreOptions o;
  o.dir = dir.string();
  o.segment_size = segment_size;
  o.classes.push_back(store::ClassOptions{"default", 4 << 20, UINT64_MAX});
  return o;
}

}  // namespace

TEST(IndexMemory, SegmentSealedWhenItsKeysReachAnEighthOfTheSegmentSize) {
  TempDir d;
  const uint64_t size = 256 << 10;  // key cap: 32768 keys
  ASSERT_EQ(store::StoreWriter::index_key_cap(size), 32768u);
  const int kKeys = 30, kPackets = 3000;  // 90000 keys in 3000 * 36 bytes: under the size, over the cap
  {
    store::StoreWriter w(options(d.p, size));
    w.start();
    push_all(w, kPackets, 20, many_keys(20, 10));
    w.finish();
    EXPECT_EQ(w.stats(0).written_packets.load(), static_cast<uint64_t>(kPackets));
  }
  store::Catalog cat = store::Catalog::scan(d.p.string());
  uint64_t packets = 0;
  size_t segments = 0;
  for (const auto& s : cat.segments) {
    ++segments;
    packets += s.meta.packets;
    // Sealed at the first packet that found the cap reached: at most one packet's keys beyond it.
    EXPECT_LE(s.meta.packets * kKeys, 32768u + kKeys) << s.base;
    EXPECT_LT(s.meta.pcap_bytes, size) << s.base;
  }
  EXPECT_EQ(packets, static_cast<uint64_t>(kPackets));
  EXPECT_EQ(segments, 3u);  // 1093 + 1093 + 814 packets (by size alone: one segment)
}

TEST(IndexMemory, DistinctKeysCountTowardsTheCap) {
  // Every packet with two addresses never seen before (a scan, spoofed sources): 4 entries but 2
  // new keys of ~100 bytes each. Counted as entries alone, 3 M such packets built 963 MiB of index
  // for a 256 MiB segment (round 5 F3); each distinct key now counts kKeyWeight entries.
  TempDir d;
  const uint64_t size = 256 << 10;  // key cap: 32768
  const int kPackets = 3000;
  const uint64_t per_packet = 4 + 2 * store::SegmentWriter::kKeyWeight;
  {
    store::StoreWriter w(options(d.p, size));
    w.start();
    std::vector<uint8_t> frame(20, 0x42);
    for (int i = 0; i < kPackets; ++i) {
      store::IndexKeys k = many_keys(2, 2);
      k.v4[0] = static_cast<uint32_t>(2 * i + 1);
      k.v4[1] = static_cast<uint32_t>(2 * i + 2);
      while (!w.push(0, 1'700'000'000'000'000'000ull + static_cast<uint64_t>(i) * 1000, 1, 20, frame.data(),
                     20, &k))
        std::this_thread::sleep_for(std::chrono::microseconds(50));
    }
    w.finish();
  }
  store::Catalog cat = store::Catalog::scan(d.p.string());
  uint64_t packets = 0;
  for (const auto& s : cat.segments) {
    packets += s.meta.packets;
    EXPECT_LE(s.meta.packets * per_packet, 32768u + per_packet + 2 * store::SegmentWriter::kKeyWeight)
        << s.base;
  }
  EXPECT_EQ(packets, static_cast<uint64_t>(kPackets));
  EXPECT_GE(cat.segments.size(), static_cast<size_t>(kPackets * per_packet / 32768));  // (entries alone: 1)
}

TEST(IndexMemory, OrdinaryFramesAreSealedBySizeAlone) {
  // 6 keys per 60-byte frame (a minimum-size IPv4 TCP packet) stay far below the cap.
  TempDir d;
  const uint64_t size = 64 << 10;
  const store::IndexKeys k = many_keys(4, 2);
  {
    store::StoreWriter w(options(d.p, size));
    w.start();
    push_all(w, 3000, 60, k);
    w.finish();
  }
  store::Catalog cat = store::Catalog::scan(d.p.string());
  ASSERT_GE(cat.segments.size(), 3u);
  for (size_t i = 0; i + 1 < cat.segments.size(); ++i)  // each but the last one full by size
    EXPECT_GT(cat.segments[i].meta.pcap_bytes + 76, size) << cat.segments[i].base;
}

TEST(IndexMemory, BuilderCountsItsKeysAndMemory) {
  store::IndexBuilder b;
  const uint64_t empty = b.memory_bytes();
  store::IndexKeys k = many_keys(6);
  for (uint32_t i = 0; i < 65536; ++i) b.add(i, k);
  EXPECT_EQ(b.entries(), 6u * 65536);
  // One window's log: 4 bytes a key and 1 a packet.
  EXPECT_GE(b.memory_bytes(), empty + 6u * 65536 * 4 + 65536);
  const uint64_t window = b.memory_bytes();
  // Later windows reuse the log: what grows is their keys' containers (one run each here),
  // not 4 bytes for every key of every packet (72 MB for these 3 M packets).
  for (uint32_t i = 65536; i < 3'000'000; ++i) b.add(i, k);
  EXPECT_EQ(b.entries(), 6u * 3'000'000);
  EXPECT_LT(b.memory_bytes(), window + (4u << 20));
  b.finish_postings();
  EXPECT_EQ(b.entries(), 0u);
  EXPECT_LT(b.memory_bytes(), window + (8u << 20));
}

// Keys that differ from packet to packet: the builder's memory follows its containers (what
// the sidecar will hold), within a small multiple of them, not its packets' keys.
TEST(IndexMemory, BuilderMemoryFollowsItsContainersNotItsPackets) {
  store::IndexBuilder b;
  store::IndexKeys k = many_keys(4, 2);
  for (uint32_t i = 0; i < 2'000'000; ++i) {
    k.scalars[0] = i % 50000;  // a port in one packet of 50000: a small array in every window
    k.v4[0] = 0x0a000000u + i % 3000;
    b.add(i, k);
  }
  const uint64_t building = b.memory_bytes();
  const store::PostingIndex& p = b.finish_postings();
  uint64_t bitmaps = 0;
  for (auto* f : {&p.port, &p.proto, &p.net}) {
    for (auto& [key, s] : *f) bitmaps += s.bytes;
  }
  for (auto& [key, s] : p.addr) bitmaps += s.bytes;
  // (here ~20 MB of bitmaps: 50000 ports in each of 31 windows)
  EXPECT_GT(bitmaps, 10u << 20);
  // One window's log and scratch (~6 MB), the containers (8 bytes of header each, their data
  // without the bitmaps' headers), the slots' state; then the containers' references.
  EXPECT_LT(building, bitmaps * 3 / 2 + (8u << 20));
  EXPECT_LT(b.memory_bytes(), bitmaps * 2 + (8u << 20));
}

TEST(IndexMemory, WriterReportsIndexMemoryAndItsPeak) {
  TempDir d;
  store::StoreWriter w(options(d.p, 1 << 20));
  EXPECT_EQ(w.index_memory_peak(), 0u);
  w.start();
  push_all(w, 40000, 60, many_keys(6));  // two segments and a half
  w.finish();
  // At least one segment's log and postings (6 keys of 4 bytes, twice, and offsets) at once.
  EXPECT_GE(w.index_memory_peak(), (1u << 20) / 76 * (6 * 8 + 4));
  EXPECT_LE(w.index_memory(), w.index_memory_peak());
  EXPECT_LT(w.index_memory_peak(), 64u << 20);
}

TEST(MemoryGauge, PeakOfTheSumOfItsParts) {
  util::MemoryGauge g;
  g.set(0, 100);
  g.set(1, 50);
  EXPECT_EQ(g.now(), 150u);
  g.set(0, 10);
  EXPECT_EQ(g.now(), 60u);
  EXPECT_EQ(g.peak(), 150u);
  g.set(1, 200);
  EXPECT_EQ(g.peak(), 210u);
  EXPECT_EQ(g.part(1), 200u);
}
