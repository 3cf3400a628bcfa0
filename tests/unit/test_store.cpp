#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>

#include "packet/decoder.h"
#include "store/catalog.h"
#include "store/disk_ring.h"
#include "store/index_keys.h"
#include "store/layout.h"
#include "store/pcap_scan.h"
#include "store/recovery.h"
#include "store/ring.h"
#include "store/segment_writer.h"
#include "store/sidecar.h"
#include "store/sidecar_format.h"
#include "store/store_dir.h"
#include "temp_dir.h"
#include "util/crc32.h"
#include "util/file_io.h"

using namespace tmach;
namespace fs = std::filesystem;

namespace {

// Ethernet/IPv4/UDP frame 10.0.0.<a> -> 10.0.0.<b>, ports sp -> dp, `pad` payload bytes.
std::vector<uint8_t> udp_frame(uint8_t a, uint8_t b, uint16_t sp, uint16_t dp, size_t pad = 0) {
  std::vector<uint8_t> f(42 + pad, 0);
  f[12] = 0x08;
  f[14] = 0x45;
  uint16_t tot = static_cast<uint16_t>(28 + pad);
  f[16] = static_cast<uint8_t>(tot >> 8);
  f[17] = static_cast<uint8_t>(tot);
  f[22] = 64;
  f[23] = 17;
  f[26] = 10, f[29] = a;
  f[30] = 10, f[33] = b;
  f[34] = static_cast<uint8_t>(sp >> 8), f[35] = static_cast<uint8_t>(sp);
  f[36] = static_cast<uint8_t>(dp >> 8), f[37] = static_cast<uint8_t>(dp);
  uint16_t ul = static_cast<uint16_t>(8 + pad);
  f[38] = static_cast<uint8_t>(ul >> 8), f[39] = static_cast<uint8_t>(ul);
  return f;
}
}  // namespace

TEST(Ring, PushPopInOrderAcrossWraps) {
  store::Ring r(1 << 16);
  std::vector<uint8_t> data(1000);
  uint64_t pushed = 0, popped = 0;
  for (int round = 0; round < 500; ++round) {
    for (int i = 0; i < 7; ++i) {
      data[0] = static_cast<uint8_t>(pushed);
      uint32_t len = 100 + static_cast<uint32_t>((pushed * 37) % 900);
      if (r.try_push(pushed, 1, len, data.data(), len)) ++pushed;
    }
    while (auto* h = r.front()) {
      ASSERT_EQ(h->ts_ns, popped);
      ASSERT_EQ(h->caplen, 100 + (popped * 37) % 900);
      ASSERT_EQ(r.payload(h)[0], static_cast<uint8_t>(popped));
      r.pop();
      ++popped;
    }
  }
  EXPECT_EQ(pushed, popped);
  EXPECT_GT(pushed, 3000u);
}

// Records of every size (8-byte steps), with keys or without, through a ring whose size is
// not a round number, consumed in bursts of random length: every record comes out whole
// and in order, including those that end exactly at the ring's end.
TEST(Ring, RandomSizesKeepOrderAndContent) {
  store::Ring r((1 << 16) + 8);  // rounded up inside to a multiple of 64
  std::mt19937 rng(7);
  std::vector<uint8_t> data(3000);
  store::IndexKeys keys;
  keys.n_v4 = 2;
  keys.v4[0] = 0x01020304;
  keys.v4[1] = 0x05060708;
  uint64_t pushed = 0, popped = 0;
  auto len_of = [](uint64_t i) { return static_cast<uint32_t>((i * 2654435761u) % 2900); };
  for (int round = 0; round < 20000; ++round) {
    int burst = static_cast<int>(rng() % 9);
    for (int i = 0; i < burst; ++i) {
      uint32_t len = len_of(pushed);
      for (uint32_t b = 0; b < len; ++b) data[b] = static_cast<uint8_t>(pushed + b);
      if (!r.try_push(pushed, 1, len + 1, data.data(), len, pushed % 3 ? &keys : nullptr)) break;
      ++pushed;
    }
    int take = static_cast<int>(rng() % 9);
    for (int i = 0; i < take; ++i) {
      const store::RecordHeader* h = r.front();
      if (!h) break;
      ASSERT_EQ(h->ts_ns, popped);
      ASSERT_EQ(h->caplen, len_of(popped));
      ASSERT_EQ(h->keys_bytes != 0, popped % 3 != 0);
      const uint8_t* p = r.payload(h);
      for (uint32_t b = 0; b < h->caplen; ++b) ASSERT_EQ(p[b], static_cast<uint8_t>(popped + b));
      r.pop();
      ++popped;
    }
  }
  while (const store::RecordHeader* h = r.front()) {
    ASSERT_EQ(h->ts_ns, popped);
    r.pop();
    ++popped;
  }
  EXPECT_EQ(pushed, popped);
  EXPECT_GT(pushed, 50000u);
}

TEST(Ring, FullRingRefusesWithoutBlocking) {
  store::Ring r(1 << 16);
  std::vector<uint8_t> data(1500);
  int ok = 0;
  while (r.try_push(1, 1, 1500, data.data(), 1500)) ++ok;
  EXPECT_GT(ok, 30);
  EXPECT_LE(r.used(), r.capacity());
  EXPECT_FALSE(r.too_large(1500, nullptr));
  // Room comes back a chunk at a time: once the consumer passed the first one.
  const size_t per_chunk = r.pool().chunk_bytes() / ((sizeof(store::RecordHeader) + 1500 + 7) & ~size_t{7});
  size_t popped = 0;
  while (!r.try_push(1, 1, 1500, data.data(), 1500)) {
    ASSERT_NE(r.front(), nullptr);
    r.pop();
    ++popped;
  }
  EXPECT_LE(popped, per_chunk + 1);
}

TEST(Ring, RecordLargerThanAChunkIsRefusedAsTooLarge) {
  store::Ring r(1 << 16);  // chunks of 16 KiB
  std::vector<uint8_t> data(20000);
  EXPECT_TRUE(r.too_large(20000, nullptr));
  EXPECT_FALSE(r.try_push(1, 1, 20000, data.data(), 20000));
  EXPECT_TRUE(r.try_push(1, 1, 9000, data.data(), 9000));
  EXPECT_EQ(r.used(), (sizeof(store::RecordHeader) + 9000 + 7) & ~size_t{7});
}

// Two producers' rings lend from one pool: a burst on one may take every free chunk (the whole
// budget, less a chunk's unused tail), the other is refused only while none is free, and gets
// one as soon as the writer gives chunks back.
TEST(Ring, RingsShareTheirClassBudget) {
  store::BufferPool pool(1 << 20, 2);
  store::Ring a(pool), b(pool);
  EXPECT_EQ(pool.capacity(), 1u << 20);
  std::vector<uint8_t> data(1500);
  const size_t record = (sizeof(store::RecordHeader) + 1500 + 7) & ~size_t{7};
  uint64_t pushed = 0;
  while (a.try_push(pushed, 1, 1500, data.data(), 1500)) ++pushed;
  EXPECT_EQ(pool.held_bytes(), pool.capacity());
  EXPECT_EQ(pool.high_water(), pool.capacity());
  EXPECT_GT(a.used() + pool.chunks() * record, pool.capacity());
  EXPECT_FALSE(b.try_push(0, 1, 1500, data.data(), 1500));
  for (uint64_t i = 0; i < pushed; ++i) {
    const store::RecordHeader* h = a.front();
    ASSERT_NE(h, nullptr);
    ASSERT_EQ(h->ts_ns, i);
    a.consume();
  }
  EXPECT_EQ(a.front(), nullptr);
  EXPECT_FALSE(b.try_push(0, 1, 1500, data.data(), 1500));  // consumed, not released yet
  a.release();
  EXPECT_EQ(a.used(), 0u);
  EXPECT_TRUE(b.try_push(0, 1, 1500, data.data(), 1500));
  EXPECT_LT(pool.held_bytes(), pool.capacity());
  ASSERT_NE(b.front(), nullptr);
  b.pop();
}

// A consumer that keeps up: the producer's ring takes turns with two chunks (the pool lends the
// one given back last), so the records stay in the same 2 MiB of a large buffer, in order.
TEST(Ring, KeptUpRingStaysInItsFirstMegabytes) {
  store::Ring r(64u << 20);
  std::vector<uint8_t> data(1500);
  const uint8_t* lowest = nullptr;
  const uint8_t* highest = nullptr;
  for (uint64_t i = 0; i < 40000; ++i) {  // 60 MB through the ring
    data[0] = static_cast<uint8_t>(i);
    uint32_t len = 60 + static_cast<uint32_t>((i * 37) % 1440);
    ASSERT_TRUE(r.try_push(i, 1, len, data.data(), len));
    const store::RecordHeader* h = r.front();
    ASSERT_NE(h, nullptr);
    ASSERT_EQ(h->ts_ns, i);
    ASSERT_EQ(h->caplen, len);
    ASSERT_EQ(r.payload(h)[0], static_cast<uint8_t>(i));
    const auto* p = reinterpret_cast<const uint8_t*>(h);
    if (!lowest || p < lowest) lowest = p;
    if (!highest || p > highest) highest = p;
    r.pop();
  }
  EXPECT_EQ(r.front(), nullptr);
  EXPECT_LT(static_cast<size_t>(highest - lowest), 2 * r.pool().chunk_bytes());
  EXPECT_EQ(r.pool().high_water(), 2 * r.pool().chunk_bytes());
  // Records never held more than one at a time; the skipped tails hold none.
  EXPECT_LE(r.high_water(), 2048u);
}

// A consumer that lags a little, then stops: the ring still takes records until the whole
// budget is lent, less the chunks' unused tails and the consumed head of the consumer's chunk.
TEST(Ring, LaggingConsumerStillGetsTheBudget) {
  store::Ring r(16u << 20);
  std::vector<uint8_t> data(1500);
  uint64_t pushed = 0;
  size_t backlog = 0;
  while (pushed < 6000) {  // ~9 MB: past the soft-wrap point, the consumer 1 MiB behind
    ASSERT_TRUE(r.try_push(pushed++, 1, 1500, data.data(), 1500));
    backlog += 1500;
    while (backlog > (1u << 20)) {
      ASSERT_NE(r.front(), nullptr);
      r.pop();
      backlog -= 1500;
    }
  }
  while (r.try_push(pushed, 1, 1500, data.data(), 1500)) ++pushed;
  size_t held = 0;
  for (; r.front() != nullptr; r.pop()) ++held;
  const size_t record = (sizeof(store::RecordHeader) + 1500 + 7) & ~size_t{7};
  const size_t slack = r.pool().chunk_bytes() + r.pool().chunks() * record;
  EXPECT_GT(held * record + slack, r.capacity());
  EXPECT_GT(r.high_water() + slack, r.capacity());
  EXPECT_EQ(r.pool().high_water(), r.capacity());
}

// A consumer that falls behind: the producer goes on past the soft-wrap point and fills the
// whole ring before it refuses anything; the records come out in order across both wraps.
TEST(Ring, LaggingConsumerGetsTheWholeRing) {
  store::Ring r(16u << 20);
  std::vector<uint8_t> data(1500);
  uint64_t pushed = 0, popped = 0;
  auto push = [&] {
    data[0] = static_cast<uint8_t>(pushed);
    if (!r.try_push(pushed, 1, 1500, data.data(), 1500)) return false;
    ++pushed;
    return true;
  };
  auto pop_some = [&](uint64_t n) {
    for (uint64_t k = 0; k < n; ++k) {
      const store::RecordHeader* h = r.front();
      ASSERT_NE(h, nullptr);
      ASSERT_EQ(h->ts_ns, popped);
      ASSERT_EQ(r.payload(h)[0], static_cast<uint8_t>(popped));
      r.pop();
      ++popped;
    }
  };
  while (push()) {
  }
  // Full: nothing refused before the end (but the chunks' unused tails).
  EXPECT_GT(r.used() + r.pool().chunks() * 2000, r.capacity());
  EXPECT_GT(r.high_water() + r.pool().chunks() * 2000, r.capacity());
  uint64_t first_fill = pushed;
  for (int round = 0; round < 20; ++round) {  // behind by most of the ring, and catching up
    pop_some((pushed - popped) / 2 + 1);
    while (push()) {
    }
  }
  pop_some(pushed - popped);
  EXPECT_EQ(r.front(), nullptr);
  EXPECT_GT(pushed, 3 * first_fill);
}

// The writer writes frames from the ring and releases them afterwards: until release(),
// consumed records keep their bytes and their room.
TEST(Ring, ConsumedRecordsStayUntilReleased) {
  store::Ring r(1 << 16);
  std::vector<uint8_t> data(1500, 0xab);
  while (r.try_push(1, 1, 1500, data.data(), 1500)) {
  }
  std::vector<const uint8_t*> frames;
  while (const store::RecordHeader* h = r.front()) {
    frames.push_back(r.payload(h));
    r.consume();
  }
  EXPECT_GT(frames.size(), 30u);
  std::vector<uint8_t> other(1500, 0xcd);
  EXPECT_FALSE(r.try_push(2, 1, 1500, other.data(), 1500));  // nothing released yet
  for (const uint8_t* f : frames) EXPECT_EQ(std::memcmp(f, data.data(), 1500), 0);
  r.release();
  EXPECT_EQ(r.used(), 0u);
  EXPECT_TRUE(r.try_push(2, 1, 1500, other.data(), 1500));
  const store::RecordHeader* h = r.front();
  ASSERT_NE(h, nullptr);
  EXPECT_EQ(h->ts_ns, 2u);
}

// Frames appended in place (written from where they lie, in batches) and copied frames, mixed,
// give the same file and sidecar as copying every frame.
TEST(Segment, InPlaceAppendsWriteTheSameFile) {
  TempDir d;
  std::string copied = (d.p / "00000001-100-lt1").string(), in_place = (d.p / "00000002-100-lt1").string();
  store::WriterOptions o;
  o.buffer_bytes = 4096;  // several flushes of copied packets too
  std::vector<std::vector<uint8_t>> frames;
  for (int i = 0; i < 1300; ++i)
    frames.push_back(udp_frame(static_cast<uint8_t>(1 + i % 7), 9, static_cast<uint16_t>(1000 + i % 11), 53,
                               static_cast<size_t>(i % 5 == 0 ? 400 + i % 1000 : i % 300)));  // copied or not
  {
    store::SegmentWriter a(copied, 1, 1, o), b(in_place, 2, 1, o);
    packet::PacketInfo info;
    store::IndexKeys keys;
    for (size_t i = 0; i < frames.size(); ++i) {
      const auto& f = frames[i];
      const auto n = static_cast<uint32_t>(f.size());
      a.append(100 + i, n + 4, f.data(), n);
      packet::decode(1, f.data(), n, info);
      store::index_keys(info, keys);
      if (i % 97 == 5) {
        b.append(100 + i, n + 4, f.data(), n, keys);  // a copied one between in-place ones
      } else {
        if (b.in_place_full()) b.flush();
        b.append_in_place(100 + i, n + 4, f.data(), n, keys);
      }
    }
    EXPECT_TRUE(b.has_in_place());  // the last frames wait for the flush seal() makes
    a.seal();
    b.seal();
  }
  auto slurp = [](const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    return std::vector<char>(std::istreambuf_iterator<char>(in), {});
  };
  EXPECT_EQ(slurp(copied + ".pcap"), slurp(in_place + ".pcap"));
  store::SidecarBody ba = store::read_sidecar_body(copied + ".idx"),
                     bb = store::read_sidecar_body(in_place + ".idx");
  EXPECT_EQ(ba.offsets, bb.offsets);
  ASSERT_EQ(ba.index.addr.size(), bb.index.addr.size());
  for (const auto& [k, bm] : ba.index.addr) EXPECT_TRUE(bm == bb.index.addr.at(k));
  ASSERT_EQ(ba.index.port.size(), bb.index.port.size());
  for (const auto& [k, bm] : ba.index.port) EXPECT_TRUE(bm == bb.index.port.at(k));
}

TEST(Layout, Names) {
  store::SegmentName n{42, 1764077400123456789ull, 1};
  std::string s = store::segment_base_name(n);
  EXPECT_EQ(s, "00000042-1764077400123456789-lt1");
  auto p = store::parse_segment_name(s);
  ASSERT_TRUE(p);
  EXPECT_EQ(p->seq, 42u);
  EXPECT_EQ(p->first_ns, 1764077400123456789ull);
  EXPECT_EQ(p->linktype, 1u);
  EXPECT_FALSE(store::parse_segment_name("notes"));
  EXPECT_FALSE(store::parse_segment_name("00000042-12-ltx"));
}

// The sidecar's header says whether the segment holds frames cut before their keys (kNetCut),
// so that queries look that key up only where there are some; a sidecar without the flag
// (written before it) is taken to hold some.
TEST(Segment, TheSidecarSaysWhetherItHoldsFramesCutBeforeTheirKeys) {
  TempDir d;
  auto write = [&](const std::string& name, bool cut) {
    std::string base = (d.p / name).string();
    store::SegmentWriter w(base, 1, 1, store::WriterOptions{});
    for (int i = 0; i < 10; ++i) {
      auto f = udp_frame(1, 2, 1000, 53, i);
      // One frame cut inside its IP header (14 + 12 bytes: no addresses) when `cut`.
      const uint32_t caplen = cut && i == 5 ? 26 : static_cast<uint32_t>(f.size());
      w.append(1000 + static_cast<uint64_t>(i), static_cast<uint32_t>(f.size()), f.data(), caplen);
    }
    w.seal();
    return base + ".idx";
  };
  const std::string with = write("00000001-1000-lt1", true), without = write("00000002-1000-lt1", false);
  EXPECT_TRUE(store::read_sidecar_meta(with).cut_frames);
  EXPECT_FALSE(store::read_sidecar_meta(without).cut_frames);
  EXPECT_TRUE(store::SidecarView::open(with)->meta().cut_frames);
  EXPECT_FALSE(store::SidecarView::open(without)->meta().cut_frames);
  // The index agrees: the key is there, or not.
  EXPECT_EQ(store::SidecarView::open(with)
                ->scalar(store::Field::kNet, store::kNetCut, store::kNetCut)
                .cardinality(),
            1u);
  EXPECT_TRUE(store::SidecarView::open(without)
                  ->scalar(store::Field::kNet, store::kNetCut, store::kNetCut)
                  .isEmpty());
  // A sidecar of an older writer: flags bit 1 clear (its header's CRC made good again).
  {
    std::fstream f(without, std::ios::in | std::ios::out | std::ios::binary);
    store::sidecar_format::Header h;
    f.read(reinterpret_cast<char*>(&h), sizeof(h));
    ASSERT_TRUE(f);
    EXPECT_EQ(h.flags, store::sidecar_format::kFlagMonotonic | store::sidecar_format::kFlagCutKnown);
    h.flags = store::sidecar_format::kFlagMonotonic;
    h.header_crc = 0;
    h.header_crc = util::crc32(&h, sizeof(h));
    f.seekp(0);
    f.write(reinterpret_cast<const char*>(&h), sizeof(h));
  }
  EXPECT_TRUE(store::read_sidecar_meta(without).cut_frames);
  EXPECT_TRUE(store::read_sidecar_meta(without).monotonic);
}

TEST(Segment, WriteSealReadBackAndIndexes) {
  TempDir d;
  std::string base = (d.p / "00000001-1000-lt1").string();
  store::WriterOptions o;
  o.directory_every = 10;
  {
    store::SegmentWriter w(base, 1, 1, o);
    for (int i = 0; i < 100; ++i) {
      auto f = udp_frame(static_cast<uint8_t>(1 + i % 3), 9, static_cast<uint16_t>(1000 + i % 5), 53, i);
      w.append(1000 + static_cast<uint64_t>(i), static_cast<uint32_t>(f.size()), f.data(),
               static_cast<uint32_t>(f.size()));
    }
    w.seal();
  }
  store::SegmentMeta m = store::read_sidecar_meta(base + ".idx");
  EXPECT_EQ(m.packets, 100u);
  EXPECT_EQ(m.first_ts, 1000u);
  EXPECT_EQ(m.last_ts, 1099u);
  EXPECT_TRUE(m.monotonic);
  EXPECT_EQ(m.pcap_bytes, fs::file_size(base + ".pcap"));
  store::SidecarBody b = store::read_sidecar_body(base + ".idx");
  EXPECT_EQ(b.offsets.size(), 100u);
  EXPECT_EQ(b.directory.size(), 10u);
  for (size_t i = 0; i < b.directory.size(); ++i) EXPECT_EQ(b.directory[i].ordinal, 10 * i);  // every 10th
  EXPECT_EQ(b.offsets[0], 24u);
  uint8_t a1[4] = {10, 0, 0, 1};
  auto it = b.index.addr.find(packet::IpAddr::v4(a1).b);
  ASSERT_NE(it, b.index.addr.end());
  EXPECT_EQ(it->second.cardinality(), 34u);  // i % 3 == 0
  EXPECT_EQ(b.index.port.at(53).cardinality(), 100u);
  EXPECT_EQ(b.index.port.at(1001).cardinality(), 20u);
  EXPECT_EQ(b.index.proto.at(17).cardinality(), 100u);
  // The pcap is complete and in order.
  uint64_t n = 0;
  store::scan_pcap(base + ".pcap", [&](uint64_t off, uint64_t ts, uint32_t, uint32_t, const uint8_t*) {
    EXPECT_EQ(off, b.offsets[n]);
    EXPECT_EQ(ts, 1000 + n);
    ++n;
  });
  EXPECT_EQ(n, 100u);
}

// Enough packets and distinct keys for several key blocks (256 keys) and offset blocks
// (4096 packets): every lookup through the lazily checked view equals what was written.
TEST(Sidecar, LookupsAcrossBlocksMatchWhatWasWritten) {
  TempDir d;
  std::string base = (d.p / "00000001-0-lt1").string();
  const int kPackets = 9000;  // source 10.0.hi.lo = packet i % 3000; destination 10.0.0.9
  {
    store::SegmentWriter w(base, 1, 1, {});
    for (int i = 0; i < kPackets; ++i) {
      int h = i % 3000;
      // Now and then a record over 64 KiB (a TSO frame): its block stores full offsets.
      size_t pad = i % 1000 == 999 ? 70000 : static_cast<size_t>(i % 7);
      auto f = udp_frame(0, 9, static_cast<uint16_t>(2000 + h), 53, pad);
      f[28] = static_cast<uint8_t>(h >> 8);
      f[29] = static_cast<uint8_t>(h);
      w.append(static_cast<uint64_t>(i), static_cast<uint32_t>(f.size()), f.data(),
               static_cast<uint32_t>(f.size()));
    }
    w.seal();
  }
  auto v = store::SidecarView::open(base + ".idx");
  store::SidecarBody all = store::read_sidecar_body(base + ".idx");
  ASSERT_EQ(all.offsets.size(), static_cast<size_t>(kPackets));
  for (int i = 0; i < kPackets; i += 7) ASSERT_EQ(v->offset(static_cast<uint32_t>(i)), all.offsets[i]) << i;
  EXPECT_EQ(v->offset(kPackets - 1), all.offsets[kPackets - 1]);
  EXPECT_THROW(v->offset(kPackets), store::SidecarError);
  for (int h = 0; h < 3000; h += 37) {
    uint8_t a[4] = {10, 0, static_cast<uint8_t>(h >> 8), static_cast<uint8_t>(h)};
    Roaring r = v->addr(packet::IpAddr::v4(a).b);
    ASSERT_EQ(r.cardinality(), 3u) << h;
    EXPECT_TRUE(r.contains(static_cast<uint32_t>(h)) && r.contains(static_cast<uint32_t>(h + 3000)));
    EXPECT_EQ(v->scalar(store::Field::kPort, 2000 + h, 2000 + h).cardinality(), 3u);
  }
  uint8_t absent[4] = {10, 0, 200, 1};
  EXPECT_TRUE(v->addr(packet::IpAddr::v4(absent).b).isEmpty());
  uint8_t lowest[4] = {1, 1, 1, 1};
  EXPECT_TRUE(v->addr(packet::IpAddr::v4(lowest).b).isEmpty());
  // A prefix and a port range spanning key blocks.
  uint8_t net[4] = {10, 0, 4, 0};
  EXPECT_EQ(v->addr_prefix(packet::IpAddr::v4(net), 96 + 22).cardinality(), 3u * 1024);
  EXPECT_EQ(v->scalar(store::Field::kPort, 2100, 2999).cardinality(), 3u * 900);
  EXPECT_EQ(v->scalar(store::Field::kPort, 0, 65535).cardinality(), static_cast<uint64_t>(kPackets));
}

// A damaged key block fails the lookups that read it, and only those.
TEST(Sidecar, DamagedKeyBlockFailsItsLookupsOnly) {
  TempDir d;
  std::string base = (d.p / "00000001-0-lt1").string();
  {
    store::SegmentWriter w(base, 1, 1, {});
    for (int h = 0; h < 1024; ++h) {
      auto f = udp_frame(0, 9, 1000, 53);
      f[28] = static_cast<uint8_t>(h >> 8);
      f[29] = static_cast<uint8_t>(h);
      w.append(static_cast<uint64_t>(h), 42, f.data(), 42);
    }
    w.seal();
  }
  std::string idx = base + ".idx";
  // Find the stored key 10.0.3.200 (v4-mapped) and flip a bit in it.
  std::string bytes;
  {
    std::ifstream in(idx, std::ios::binary);
    bytes.assign(std::istreambuf_iterator<char>(in), {});
  }
  uint8_t k[4] = {10, 0, 3, 200};
  auto key = packet::IpAddr::v4(k).b;
  size_t pos = bytes.find(std::string(reinterpret_cast<const char*>(key.data()), 16));
  ASSERT_NE(pos, std::string::npos);
  bytes[pos + 15] ^= 0x01;
  std::ofstream(idx, std::ios::binary | std::ios::trunc) << bytes;
  auto v = store::SidecarView::open(idx);
  EXPECT_THROW(v->addr(key), store::SidecarError);
  uint8_t other[4] = {10, 0, 0, 5};  // first key block: intact
  EXPECT_EQ(v->addr(packet::IpAddr::v4(other).b).cardinality(), 1u);
  EXPECT_THROW(store::read_sidecar_body(idx), store::SidecarError);
}

TEST(Sidecar, CorruptionIsDetected) {
  TempDir d;
  std::string base = (d.p / "00000001-0-lt1").string();
  {
    store::SegmentWriter w(base, 1, 1, {});
    auto f = udp_frame(1, 2, 3, 4);
    for (int i = 0; i < 50; ++i) w.append(static_cast<uint64_t>(i), 42, f.data(), 42);
    w.seal();
  }
  std::string idx = base + ".idx";
  auto size = fs::file_size(idx);
  for (uint64_t pos : {uint64_t{3}, uint64_t{20}, uint64_t{130}, size - 1}) {
    fs::copy_file(idx, idx + ".orig", fs::copy_options::overwrite_existing);
    {
      std::fstream f(idx, std::ios::in | std::ios::out | std::ios::binary);
      f.seekg(static_cast<std::streamoff>(pos));
      char c;
      f.get(c);
      f.seekp(static_cast<std::streamoff>(pos));
      f.put(static_cast<char>(c ^ 0x40));
    }
    EXPECT_THROW(
        {
          store::read_sidecar_meta(idx);
          store::read_sidecar_body(idx);
        },
        store::SidecarError)
        << "flip at " << pos;
    fs::copy_file(idx + ".orig", idx, fs::copy_options::overwrite_existing);
  }
  fs::resize_file(idx, size / 2);
  EXPECT_THROW(store::read_sidecar_meta(idx), store::SidecarError);
  fs::resize_file(idx, 10);
  EXPECT_THROW(store::read_sidecar_meta(idx), store::SidecarError);
}

TEST(Recovery, CutsIncompleteRecordAndRebuildsSidecar) {
  TempDir d;
  fs::create_directories(d.p / "default");
  std::ofstream(d.p / "STORE") << "tm store format 1\n";
  std::string base = (d.p / "default" / "00000003-5-lt1").string();
  {
    store::SegmentWriter w(base, 3, 1, {});
    for (int i = 0; i < 20; ++i) {
      auto f = udp_frame(1, 2, 3, 4, 10);
      w.append(5 + static_cast<uint64_t>(i), static_cast<uint32_t>(f.size()), f.data(),
               static_cast<uint32_t>(f.size()));
    }
    w.flush();
  }  // no seal: as if the process died
  auto full = fs::file_size(base + ".pcap");
  fs::resize_file(base + ".pcap", full - 7);  // the last record is cut
  store::Catalog cat = store::Catalog::scan(d.p.string());
  ASSERT_EQ(cat.segments.size(), 1u);
  EXPECT_EQ(cat.segments[0].state, store::SegmentInfo::State::kOpen);
  auto r = store::recover_segment(cat.segments[0]);
  EXPECT_EQ(r.packets, 19u);
  EXPECT_EQ(r.truncated_bytes, full - 7 - (24 + 19 * (16 + 52)));
  EXPECT_EQ(fs::file_size(base + ".pcap"), 24u + 19 * (16 + 52));
  auto m = store::read_sidecar_meta(base + ".idx");
  EXPECT_EQ(m.packets, 19u);
  EXPECT_EQ(m.seq, 3u);
  store::Catalog again = store::Catalog::scan(d.p.string());
  EXPECT_EQ(again.segments[0].state, store::SegmentInfo::State::kSealed);
}

TEST(Catalog, ForeignFilesReportedNotAdopted) {
  TempDir d;
  fs::create_directories(d.p / "default");
  std::ofstream(d.p / "STORE") << "tm store format 1\n";
  std::ofstream(d.p / "default" / "notes.txt") << "mine";
  std::ofstream(d.p / "README") << "mine";
  auto cat = store::Catalog::scan(d.p.string());
  EXPECT_EQ(cat.segments.size(), 0u);
  EXPECT_EQ(cat.foreign.size(), 2u);
}

// A catalog of names only lists the same segments as one that reads every header, leaving
// their time range open and their sizes to whoever opens them (the query executor).
TEST(Catalog, NamesOnlyListsTheSameSegments) {
  TempDir d;
  fs::create_directories(d.p / "default");
  std::ofstream(d.p / "STORE") << "tm store format 1\n";
  std::string sealed = (d.p / "default" / "00000001-1000-lt1").string();
  {
    store::SegmentWriter w(sealed, 1, 1, store::WriterOptions{});
    for (int i = 0; i < 10; ++i) {
      auto f = udp_frame(1, 2, 1000, 53, i);
      w.append(1000 + static_cast<uint64_t>(i), static_cast<uint32_t>(f.size()), f.data(),
               static_cast<uint32_t>(f.size()));
    }
    w.seal();
  }
  std::string open = (d.p / "default" / "00000002-2000-lt1").string();
  fs::copy_file(sealed + ".pcap", open + ".pcap");
  std::ofstream(open + ".idx.tmp") << "interrupted";
  std::ofstream(d.p / "default" / "notes.txt") << "mine";

  auto full = store::Catalog::scan(d.p.string());
  auto names = store::Catalog::scan(d.p.string(), store::Catalog::Depth::kNames);
  ASSERT_EQ(full.segments.size(), 2u);
  ASSERT_EQ(names.segments.size(), 2u);
  EXPECT_EQ(full.foreign, names.foreign);
  EXPECT_EQ(names.foreign.size(), 1u);
  EXPECT_EQ(full.classes, names.classes);
  for (size_t i = 0; i < 2; ++i) {
    EXPECT_EQ(full.segments[i].base, names.segments[i].base);
    EXPECT_EQ(full.segments[i].state, names.segments[i].state);
    EXPECT_EQ(full.segments[i].lo_ts(), names.segments[i].lo_ts());
  }
  const auto& f0 = full.segments[0];
  const auto& n0 = names.segments[0];
  EXPECT_TRUE(f0.headers_read);
  EXPECT_EQ(f0.meta.packets, 10u);
  EXPECT_EQ(f0.hi_ts(), 1009u);
  EXPECT_EQ(f0.pcap_bytes, fs::file_size(sealed + ".pcap"));
  EXPECT_FALSE(n0.headers_read);
  EXPECT_EQ(n0.hi_ts(), UINT64_MAX);  // unknown until its sidecar is opened
  // The segment being written is bounded by its size in both.
  EXPECT_EQ(full.segments[1].state, store::SegmentInfo::State::kOpen);
  EXPECT_EQ(names.segments[1].pcap_bytes, fs::file_size(open + ".pcap"));
}

// A rename to an older name whose loss on a power cut would leave the segment holding packets
// more than recovery tolerates (an hour) older than its name is made durable at once (its
// directory fsynced); one within half an hour is not (live capture renames a minute back at a
// segment's start). fsync_data() makes the current name durable, once.
TEST(Segment, ARenameFarBackIsMadeDurable) {
  TempDir d;
  fs::create_directories(d.p / "default");
  const uint64_t s = 1000000000ull;
  store::SegmentWriter w((d.p / "default" / store::segment_base_name({7, 10000 * s, 1})).string(), 7, 1, {});
  auto add = [&](uint64_t ts) {
    auto f = udp_frame(1, 2, 3, 4, 10);
    w.append(ts, static_cast<uint32_t>(f.size()), f.data(), static_cast<uint32_t>(f.size()));
  };
  add(10000 * s);
  const uint64_t before = util::fsync_dir_calls();
  add(9000 * s);  // ~17 min back: renamed, not synced
  EXPECT_EQ(w.base(), (d.p / "default" / store::segment_base_name({7, 9000 * s, 1})).string());
  EXPECT_EQ(util::fsync_dir_calls(), before);
  add(6000 * s);  // 67 min older than the name on disk (10000 s): synced
  EXPECT_EQ(w.base(), (d.p / "default" / store::segment_base_name({7, 6000 * s, 1})).string());
  EXPECT_EQ(util::fsync_dir_calls(), before + 1);
  add(5000 * s);  // 17 min older than the name synced: not
  EXPECT_EQ(util::fsync_dir_calls(), before + 1);
  w.fsync_data();  // the data synced, and the name it is found under
  EXPECT_EQ(util::fsync_dir_calls(), before + 2);
  w.fsync_data();
  EXPECT_EQ(util::fsync_dir_calls(), before + 2);
  w.seal();  // the sidecar's write syncs the directory (and the pcap's last rename with it)
  EXPECT_EQ(util::fsync_dir_calls(), before + 3);
}

// A segment's name carries a lower bound of its timestamps while written, and its smallest
// timestamp once sealed, wherever the oldest packet is in the file.
TEST(Segment, NameTellsTheSmallestTimestamp) {
  TempDir d;
  fs::create_directories(d.p / "default");
  std::ofstream(d.p / "STORE") << "tm store format 1\n";
  const uint64_t s = 1000000000ull;
  std::string first = (d.p / "default" / store::segment_base_name({7, 5000 * s, 1})).string();
  store::SegmentWriter w(first, 7, 1, {});
  auto add = [&](uint64_t ts) {
    auto f = udp_frame(1, 2, 3, 4, 10);
    w.append(ts, static_cast<uint32_t>(f.size()), f.data(), static_cast<uint32_t>(f.size()));
  };
  add(5000 * s);
  add(5001 * s);
  EXPECT_EQ(w.base(), first);  // in order: no rename
  add(4000 * s + 500);         // older than the name: renamed to its minute
  std::string minute = (d.p / "default" / store::segment_base_name({7, 3960 * s, 1})).string();
  EXPECT_EQ(w.base(), minute);
  EXPECT_TRUE(fs::exists(minute + ".pcap"));
  EXPECT_FALSE(fs::exists(first + ".pcap"));
  add(3990 * s);  // older than the packet, not than the name: stays
  EXPECT_EQ(w.base(), minute);
  w.seal();
  std::string exact = (d.p / "default" / store::segment_base_name({7, 3990 * s, 1})).string();
  EXPECT_EQ(w.base(), exact);
  EXPECT_TRUE(fs::exists(exact + ".pcap"));
  EXPECT_TRUE(fs::exists(exact + ".idx"));
  EXPECT_FALSE(fs::exists(minute + ".pcap"));
  auto m = store::read_sidecar_meta(exact + ".idx");
  EXPECT_EQ(m.first_ts, 3990 * s);
  EXPECT_EQ(m.last_ts, 5001 * s);
  EXPECT_FALSE(m.monotonic);
  // A reader that listed the segment under a former name finds it again.
  store::SegmentInfo listed;
  listed.cls = "default";
  listed.base = first;
  EXPECT_TRUE(store::relocate(listed));
  EXPECT_EQ(listed.base, exact);
  EXPECT_FALSE(store::relocate(listed));  // already right
  auto cat = store::Catalog::scan(d.p.string(), store::Catalog::Depth::kNames);
  ASSERT_EQ(cat.segments.size(), 1u);
  EXPECT_EQ(cat.segments[0].lo_ts(), 3990 * s);
}

// A segment left by a crash, holding packets older than its name, is renamed when recovered.
TEST(Recovery, RenamesToTheSmallestTimestamp) {
  TempDir d;
  fs::create_directories(d.p / "default");
  std::ofstream(d.p / "STORE") << "tm store format 1\n";
  std::string base = (d.p / "default" / "00000002-900-lt1").string();
  {
    store::SegmentWriter w(base, 2, 1, {});
    for (uint64_t ts : {900, 950, 100, 920}) {
      auto f = udp_frame(1, 2, 3, 4, 10);
      w.append(ts, static_cast<uint32_t>(f.size()), f.data(), static_cast<uint32_t>(f.size()));
    }
    w.flush();
    base = w.base();  // renamed to a lower bound when 100 came
  }                   // no seal: as if the process died
  EXPECT_EQ(fs::path(base).filename().string(), "00000002-0-lt1");
  store::Catalog cat = store::Catalog::scan(d.p.string());
  ASSERT_EQ(cat.segments.size(), 1u);
  ASSERT_EQ(cat.segments[0].state, store::SegmentInfo::State::kOpen);
  store::recover_segment(cat.segments[0]);
  std::string want = (d.p / "default" / "00000002-100-lt1").string();
  EXPECT_EQ(cat.segments[0].base, want);
  EXPECT_TRUE(fs::exists(want + ".idx"));
  EXPECT_FALSE(fs::exists(base + ".pcap"));
  auto again = store::Catalog::scan(d.p.string());
  ASSERT_EQ(again.segments.size(), 1u);
  EXPECT_EQ(again.segments[0].state, store::SegmentInfo::State::kSealed);
  EXPECT_EQ(again.segments[0].lo_ts(), 100u);
  EXPECT_EQ(again.segments[0].hi_ts(), 950u);
}

namespace {

// A segment of 20 UDP records (100 payload bytes each, at 10000 s + i) left as a crash leaves
// it (no sidecar), in class "default" of store `d`; returns its base path.
std::string unsealed_segment(const fs::path& d, uint64_t seq = 1) {
  fs::create_directories(d / "default");
  std::ofstream(d / "STORE") << "tm store format 1\n";
  const uint64_t s = 1000000000ull;
  std::string base = (d / "default" / store::segment_base_name({seq, 10000 * s, 1})).string();
  store::SegmentWriter w(base, seq, 1, {});
  for (uint64_t i = 0; i < 20; ++i) {
    auto f = udp_frame(1, 2, 3, 4, 100);
    w.append(10000 * s + i, static_cast<uint32_t>(f.size()), f.data(), static_cast<uint32_t>(f.size()));
  }
  w.flush();
  return base;
}

constexpr uint64_t kRec = 16 + 142;  // one record of unsealed_segment()

void poke(const std::string& path, uint64_t off, const std::string& bytes) {
  std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
  f.seekp(static_cast<std::streamoff>(off));
  f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

std::string u32(uint32_t v) { return std::string(reinterpret_cast<const char*>(&v), 4); }

struct Scanned {
  store::ScanResult r;
  std::vector<uint64_t> offs;
};
Scanned scan(const std::string& pcap) {
  Scanned s;
  store::ScanOptions o;
  o.min_ts = store::name_min_ts(pcap);
  s.r = store::scan_pcap(
      pcap, [&](uint64_t off, uint64_t, uint32_t, uint32_t, const uint8_t*) { s.offs.push_back(off); }, o);
  return s;
}

}  // namespace

// A scan of a segment (what a query of a segment without sidecar, and recovery, read) stops at
// a record tm never writes, says what is wrong and where, and visits nothing from there.
TEST(Scan, StopsAtARecordTmNeverWrites) {
  TempDir d;
  std::string pcap = unsealed_segment(d.p) + ".pcap";
  const uint64_t size = fs::file_size(pcap), at = 24 + 10 * kRec;
  {
    Scanned s = scan(pcap);
    EXPECT_EQ(s.r.end, store::ScanResult::End::kClean);
    EXPECT_EQ(s.offs.size(), 20u);
  }
  fs::copy_file(pcap, d.p / "good");
  auto restore = [&] { fs::copy_file(d.p / "good", pcap, fs::copy_options::overwrite_existing); };
  auto expect_damage_at = [&](uint64_t off, const char* what) {
    Scanned s = scan(pcap);
    EXPECT_EQ(s.r.end, store::ScanResult::End::kDamaged) << what;
    EXPECT_EQ(s.r.valid_end, off) << what;
    EXPECT_EQ(s.r.unread(), size - off) << what;
    EXPECT_EQ(s.offs.size(), (off - 24) / kRec) << what;
    EXPECT_FALSE(s.r.damage.empty()) << what;
    restore();
  };
  poke(pcap, at + 8, u32(142 + 40));  // captured length grown past the wire length
  expect_damage_at(at, "caplen > wirelen");
  poke(pcap, at + 8, u32(142 + 40) + u32(142 + 40));  // both grown: the next header is garbage
  expect_damage_at(at, "a length that leads to no record");
  poke(pcap, at + 8, u32(20u << 20) + u32(20u << 20));  // more than tm ever stored
  expect_damage_at(at, "caplen > 16 MiB");
  poke(pcap, at, u32(999));  // older than the segment's name (10000 s) by more than an hour
  expect_damage_at(at - kRec, "older than the name (the record before it leads there)");
  // Older than the name by less: an out-of-order packet of a segment written before names were
  // lower bounds (or renamed, the rename lost by a power cut), not damage.
  poke(pcap, at, u32(10000 - 600));
  {
    Scanned s = scan(pcap);
    EXPECT_EQ(s.r.end, store::ScanResult::End::kClean);
    EXPECT_EQ(s.offs.size(), 20u);
    restore();
  }
  poke(pcap, at + 5, std::string(2 * kRec, '\0'));  // zeros in the middle
  expect_damage_at(at, "zeros");
  // Zeros to the end are a tail a crash left unwritten, not damage.
  poke(pcap, at, std::string(size - at, '\0'));
  {
    Scanned s = scan(pcap);
    EXPECT_EQ(s.r.end, store::ScanResult::End::kIncomplete);
    EXPECT_EQ(s.r.valid_end, at);
    EXPECT_EQ(s.offs.size(), 10u);
  }
  restore();
  poke(pcap, 0, std::string(1, '\0'));  // the magic
  {
    Scanned s = scan(pcap);
    EXPECT_FALSE(s.r.header_ok);
    EXPECT_TRUE(s.offs.empty());
  }
}

// What tm does store is no damage: empty frames, times out of order, and (written before the
// recorder cut them to the snaplen) records longer than 262144 bytes.
TEST(Scan, AcceptsWhatTmStores) {
  TempDir d;
  fs::create_directories(d.p / "default");
  const uint64_t s = 1000000000ull;
  std::string base = (d.p / "default" / store::segment_base_name({1, 1000 * s, 1})).string();
  {
    store::SegmentWriter w(base, 1, 1, {});
    auto f = udp_frame(1, 2, 3, 4, 100);
    std::vector<uint8_t> big(300000, 0xab);
    w.append(1005 * s, 60, f.data(), 0);  // an empty frame
    w.append(1001 * s, static_cast<uint32_t>(f.size()), f.data(), static_cast<uint32_t>(f.size()));
    w.append(1000 * s, 400000, big.data(), static_cast<uint32_t>(big.size()));
    w.append(1002 * s, 0, f.data(), 0);  // wire length 0 too
    w.append(1003 * s, static_cast<uint32_t>(f.size()), f.data(), static_cast<uint32_t>(f.size()));
    w.append(1004 * s, static_cast<uint32_t>(big.size()), big.data(), static_cast<uint32_t>(big.size()));
    w.flush();
  }
  Scanned sc = scan(base + ".pcap");
  EXPECT_EQ(sc.r.end, store::ScanResult::End::kClean);
  EXPECT_EQ(sc.offs.size(), 6u);
  EXPECT_EQ(sc.r.valid_end, fs::file_size(base + ".pcap"));
}

// Recovery leaves a segment damaged before its end as it is: cutting it there would lose
// what follows, and its name stays (zeros are no packets of time 0 to rename it by).
TEST(Recovery, LeavesADamagedSegmentAsItIs) {
  TempDir d;
  std::string base = unsealed_segment(d.p, 4);
  const uint64_t size = fs::file_size(base + ".pcap");
  poke(base + ".pcap", 24 + 10 * kRec + 5, std::string(2 * kRec, '\0'));
  store::Catalog cat = store::Catalog::scan(d.p.string());
  ASSERT_EQ(cat.segments.size(), 1u);
  store::SegmentInfo seg = cat.segments[0];
  auto r = store::recover_segment(seg);
  EXPECT_NE(r.damaged.find("damaged record at offset " + std::to_string(24 + 10 * kRec)), std::string::npos)
      << r.damaged;
  EXPECT_EQ(fs::file_size(base + ".pcap"), size);
  EXPECT_FALSE(fs::exists(base + ".idx"));
  EXPECT_EQ(seg.base, base);
  EXPECT_EQ(seg.state, store::SegmentInfo::State::kOpen);
  EXPECT_EQ(seg.meta.packets, 10u);
  // A tail of zeros (space a crash left unwritten) is cut, as a record cut short is.
  fs::resize_file(base + ".pcap", 24 + 10 * kRec + 5);
  poke(base + ".pcap", 24 + 10 * kRec, std::string(5, '\0'));
  fs::resize_file(base + ".pcap", size);
  r = store::recover_segment(seg);
  EXPECT_TRUE(r.damaged.empty()) << r.damaged;
  EXPECT_EQ(r.packets, 10u);
  EXPECT_EQ(fs::file_size(base + ".pcap"), 24 + 10 * kRec);
  EXPECT_EQ(seg.base, base);  // its smallest time is its name's
  EXPECT_TRUE(fs::exists(base + ".idx"));
}

// A sidecar whose pcap is missing is no foreign file: the catalog lists it as a missing segment.
TEST(Catalog, SidecarWithoutItsPcapIsAMissingSegment) {
  TempDir d;
  std::string base = unsealed_segment(d.p, 2);
  store::Catalog cat = store::Catalog::scan(d.p.string());
  store::recover_segment(cat.segments[0]);
  fs::remove(base + ".pcap");
  for (auto depth : {store::Catalog::Depth::kHeaders, store::Catalog::Depth::kNames}) {
    cat = store::Catalog::scan(d.p.string(), depth);
    EXPECT_TRUE(cat.segments.empty());
    EXPECT_TRUE(cat.foreign.empty());
    ASSERT_EQ(cat.missing.size(), 1u);
    EXPECT_EQ(cat.missing[0].base, base);
    EXPECT_EQ(cat.missing[0].meta.seq, 2u);
    EXPECT_EQ(cat.missing[0].cls, "default");
  }
}

TEST(DiskRing, MaxAgeOnTheRingsClockKeptAfterEviction) {
  // Files that are not there: evicting them is no error. The clock is the newest last_ts added.
  store::DiskRing ring({".idx", ".pcap"});
  const uint64_t day = 86400ull * 1000000000;
  ring.add({"/nonexistent/a", 10, 1 * day, 2 * day});
  ring.add({"/nonexistent/b", 10, 2 * day, 3 * day});
  ring.add({"/nonexistent/c", 10, 40 * day, 41 * day});
  EXPECT_EQ(ring.newest_ts(), 41 * day);
  std::vector<std::string> gone;
  ring.evict_older(ring.newest_ts(), 30 * day,
                   [&](const store::DiskRing::File& f) { gone.push_back(f.base); });
  EXPECT_EQ(gone, (std::vector<std::string>{"/nonexistent/a", "/nonexistent/b"}));
  EXPECT_EQ(ring.size(), 1u);
  EXPECT_EQ(ring.bytes(), 10u);
  ring.evict_over(0);
  EXPECT_TRUE(ring.empty());
  EXPECT_EQ(ring.newest_ts(), 41 * day);  // the clock does not go back when files go
}

// Capture files read newest first: the ring's order is not the packets'. Every file past the
// age goes, wherever it is (only the first recorded was looked at: an older one behind a
// younger one was kept for good).
TEST(DiskRing, MaxAgeTakesOldFilesBehindYoungerOnes) {
  store::DiskRing ring({".idx", ".pcap"});
  const uint64_t h = 3600ull * 1000000000;
  ring.add({"/nonexistent/p3", 10, 3 * h, 3 * h + 1});
  ring.add({"/nonexistent/p2", 10, 2 * h, 2 * h + 1});
  ring.add({"/nonexistent/p0", 10, 0, 1});
  ring.add({"/nonexistent/p1", 10, 1 * h, 1 * h + 1});
  std::vector<std::string> gone;
  ring.evict_older(ring.newest_ts(), 90 * h / 60,
                   [&](const store::DiskRing::File& f) { gone.push_back(f.base); });
  EXPECT_EQ(gone, (std::vector<std::string>{"/nonexistent/p0", "/nonexistent/p1"}));
  EXPECT_EQ(ring.size(), 2u);
  EXPECT_EQ(ring.bytes(), 20u);
  EXPECT_EQ(ring.oldest().base, "/nonexistent/p3");
}

// Evicted files are deleted durably: each directory they were deleted from is synced once a
// batch is done (not once a file: eviction runs while recording), so that a power cut does not
// bring them back; files already gone need no sync.
TEST(DiskRing, AnEvictionBatchIsMadeDurableOnceADirectory) {
  TempDir d;
  auto file = [&](const std::string& cls, const std::string& name) {
    fs::create_directories(d.p / cls);
    for (const char* ext : {".idx", ".pcap"}) std::ofstream(d.p / cls / (name + ext)) << "x";
    return (d.p / cls / name).string();
  };
  store::DiskRing a({".idx", ".pcap"}), b({".idx", ".pcap"});
  for (int i = 1; i <= 4; ++i) a.add({file("a", std::to_string(i)), 10, i * 1000ull, i * 1000ull + 1});
  b.add({file("b", "5"), 10, 5000, 5001});
  const uint64_t before = util::fsync_dir_calls();
  a.evict_over(20);  // two files, one directory
  EXPECT_EQ(a.size(), 2u);
  EXPECT_FALSE(fs::exists(d.p / "a" / "1.pcap"));
  EXPECT_FALSE(fs::exists(d.p / "a" / "2.idx"));
  EXPECT_EQ(util::fsync_dir_calls(), before + 1);
  a.evict_over(20);  // nothing to evict
  a.evict_older(a.newest_ts(), 1000000);
  EXPECT_EQ(util::fsync_dir_calls(), before + 1);
  a.evict_older(a.newest_ts(), 500);  // by age: the oldest left
  EXPECT_EQ(a.size(), 1u);
  EXPECT_EQ(util::fsync_dir_calls(), before + 2);
  // The store's budget over two classes: each class's directory once.
  std::vector<store::DiskRing*> rings{&a, &b};
  store::evict_over(rings, 0, [](size_t, const store::DiskRing::File&) {});
  EXPECT_TRUE(a.empty() && b.empty());
  EXPECT_EQ(util::fsync_dir_calls(), before + 4);
  store::DiskRing gone({".idx", ".pcap"});
  gone.add({(d.p / "nowhere" / "7").string(), 10, 1, 2});
  gone.evict_over(0);
  EXPECT_EQ(util::fsync_dir_calls(), before + 4);
}

// A file set aside (a segment that is no pcap) is moved durably: the quarantine's directory
// and the class's are synced, and the directories that held the quarantine's new entries.
TEST(StoreDir, AQuarantineMoveIsMadeDurable) {
  TempDir d;
  const std::string root = (d.p / "store").string();
  auto bogus = [&](uint64_t seq) {
    fs::create_directories(d.p / "store" / "default");
    std::ofstream(d.p / "store" / "default" / (store::segment_base_name({seq, 1000, 1}) + ".pcap"))
        << "not a pcap, but named like a segment\n";
  };
  auto adopt_calls = [&] {
    store::StoreDir dir(root);
    store::AdoptReport report;
    const uint64_t before = util::fsync_dir_calls();
    dir.adopt(0, 0, report);
    return util::fsync_dir_calls() - before;
  };
  EXPECT_EQ(adopt_calls(), 0u);  // (nothing moved: the control)
  bogus(9);
  EXPECT_EQ(adopt_calls(), 4u);  // quarantine/default/, quarantine/ and the store (both new), default/
  EXPECT_FALSE(fs::exists(d.p / "store" / "default" / (store::segment_base_name({9, 1000, 1}) + ".pcap")));
  EXPECT_TRUE(fs::exists(d.p / "store" / "quarantine" / "default" /
                         (store::segment_base_name({9, 1000, 1}) + ".pcap")));
  bogus(10);
  EXPECT_EQ(adopt_calls(), 2u);  // quarantine/default/ and default/
}
