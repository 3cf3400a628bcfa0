// The sealer writes a sidecar from IndexBuilder's postings, serialising each bitmap itself
// (roaring_writer.h). It must write the very bytes the Roaring path writes for the same sets:
// here the Roaring side is built from a plain reference of what was added (std::set per key),
// independent of the builder's grouping, and both files are compared byte for byte.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "store/index.h"
#include "store/index_keys.h"
#include "store/sidecar.h"
#include "temp_dir.h"

using namespace tmach;
namespace fs = std::filesystem;

namespace {

std::vector<char> slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// What was added, the obvious way.
struct Reference {
  std::map<store::AddrKey, std::set<uint32_t>> addr;
  std::map<uint32_t, std::set<uint32_t>> port, proto, net, vlan;

  void add(uint32_t ord, const store::IndexKeys& k) {
    for (int i = 0; i < k.n_v4; ++i) {
      store::AddrKey a{};
      a[10] = a[11] = 0xff;
      std::memcpy(&a[12], &k.v4[i], 4);
      addr[a].insert(ord);
    }
    for (int i = 0; i < k.n_v6; ++i) addr[k.v6[i]].insert(ord);
    for (int i = 0; i < k.n_scalars; ++i) {
      const uint32_t s = k.scalars[i];
      if (s & store::kScalarNetFlag)
        net[s & ~store::kScalarNetFlag].insert(ord);
      else if (s < store::kScalarProtoBase)
        port[s].insert(ord);
      else if (s < store::kScalarVlanBase)
        proto[s - store::kScalarProtoBase].insert(ord);
      else if (s < store::kScalarVlanBase + 4096)
        vlan[s - store::kScalarVlanBase].insert(ord);
      else
        vlan[store::kAnyVlan].insert(ord);
    }
  }

  store::SegmentIndex bitmaps() const {
    store::SegmentIndex ix;
    auto bm = [](const std::set<uint32_t>& s) {
      std::vector<uint32_t> v(s.begin(), s.end());
      Roaring r;
      r.addMany(v.size(), v.data());
      r.runOptimize();
      return r;
    };
    for (auto& [k, s] : addr) ix.addr.emplace(k, bm(s));
    for (auto [from, to] : {std::pair{&port, &ix.port}, std::pair{&proto, &ix.proto},
                            std::pair{&net, &ix.net}, std::pair{&vlan, &ix.vlan}})
      for (auto& [k, s] : *from) to->emplace(k, bm(s));
    return ix;
  }
};

template <class K>
void expect_same_bitmaps(const std::map<K, Roaring>& got, const std::map<K, Roaring>& want,
                         const char* what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  for (auto g = got.begin(), w = want.begin(); g != got.end(); ++g, ++w) {
    ASSERT_TRUE(g->first == w->first) << what;
    ASSERT_TRUE(g->second == w->second) << what;
  }
}

void expect_same_index(const store::SegmentIndex& got, const store::SegmentIndex& want) {
  expect_same_bitmaps(got.addr, want.addr, "addr");
  expect_same_bitmaps(got.port, want.port, "port");
  expect_same_bitmaps(got.proto, want.proto, "proto");
  expect_same_bitmaps(got.net, want.net, "net");
  expect_same_bitmaps(got.vlan, want.vlan, "vlan");
}

// Random packets' keys from pools small enough that keys repeat across packets, with keys
// repeated within a packet (a port used as source and destination, an address twice), keys
// in every packet or every other one (run and bitset containers), and now and then a
// packet indexed again at an earlier ordinal (what a later fragment that came before its
// first gets): the builder's spans then need sorting and de-duplication.
struct Feeder {
  std::mt19937_64 rng;
  std::vector<uint32_t> v4_pool;
  std::vector<store::AddrKey> v6_pool;
  explicit Feeder(uint64_t seed, size_t v4s, size_t v6s) : rng(seed) {
    for (size_t i = 0; i < v4s; ++i) v4_pool.push_back(static_cast<uint32_t>(rng()));
    for (size_t i = 0; i < v6s; ++i) {
      store::AddrKey a;
      for (auto& b : a) b = static_cast<uint8_t>(rng());
      if (i % 3 == 0) a[0] = 0;                                    // some sort before the v4-mapped keys
      if (a[0] == 0 && a[10] == 0xff && a[11] == 0xff) a[10] = 0;  // never v4-mapped
      v6_pool.push_back(a);
    }
  }
  uint32_t pick(size_t n) { return static_cast<uint32_t>(rng() % n); }

  store::IndexKeys keys(uint32_t ord) {
    store::IndexKeys k;
    const int nv4 = static_cast<int>(rng() % 4);
    for (int i = 0; i < nv4; ++i) k.v4[k.n_v4++] = v4_pool[pick(v4_pool.size())];
    if (nv4 && rng() % 8 == 0) k.v4[k.n_v4++] = k.v4[0];  // the same address twice
    if (rng() % 3 == 0) k.v6[k.n_v6++] = v6_pool[pick(v6_pool.size())];
    auto scalar = [&](uint32_t s) { k.scalars[k.n_scalars++] = s; };
    const uint32_t port = rng() % 2 ? pick(1024) : pick(65536);
    scalar(port);
    scalar(rng() % 10 == 0 ? port : pick(65536));  // source port = destination port
    scalar(store::kScalarProtoBase + (rng() % 4 ? 6 : pick(256)));
    scalar(store::kScalarNetFlag | (rng() % 5 ? store::kNetV4 : store::kNetV6));
    if (ord % 2 == 0) scalar(store::kScalarNetFlag | (store::kNetTunnel + 3));  // every other packet
    if (rng() % 7 == 0) {
      scalar(store::kScalarVlanBase + pick(4096));
      scalar(store::kScalarVlanBase + 4096);
    }
    scalar(store::kScalarProtoBase + 255);  // in every packet: one run
    return k;
  }

  // Feeds `packets` packets to `b` and `ref`, with some re-indexed at earlier ordinals.
  void feed(uint32_t packets, store::IndexBuilder& b, Reference& ref) {
    for (uint32_t ord = 0; ord < packets; ++ord) {
      store::IndexKeys k = keys(ord);
      b.add(ord, k);
      ref.add(ord, k);
      if (ord > 10 && rng() % 500 == 0) {
        const uint32_t earlier = ord - 1 - pick(std::min<uint32_t>(ord, 5000));
        store::IndexKeys e = keys(earlier);
        b.add(earlier, e);
        ref.add(earlier, e);
      }
    }
  }
};

void directory_and_offsets(uint32_t packets, std::vector<store::DirEntry>& dir, std::vector<uint32_t>& off) {
  uint32_t at = 24;
  for (uint32_t i = 0; i < packets; ++i) {
    if (i % 4096 == 0) dir.push_back(store::DirEntry{i, at, 1000ull * i});
    off.push_back(at);
    at += 16 + 60 + i % 1400;
  }
}

// A segment of `packets` packets with the reference's bitmaps: its meta and its body.
void reference_segment(uint64_t seq, uint32_t packets, const Reference& ref, store::SegmentMeta& meta,
                       store::SidecarBody& body) {
  meta.seq = seq;
  meta.packets = packets;
  meta.first_ts = 1;
  meta.last_ts = 1000ull * packets;
  directory_and_offsets(packets, body.directory, body.offsets);
  body.index = ref.bitmaps();
}

void check_same_sidecar(uint64_t seed, uint32_t packets, size_t v4s, size_t v6s) {
  SCOPED_TRACE(testing::Message() << "seed " << seed << ", " << packets << " packets");
  TempDir d;
  Feeder feeder(seed, v4s, v6s);
  store::IndexBuilder b;
  Reference ref;
  feeder.feed(packets, b, ref);
  store::SegmentMeta meta;
  store::SidecarBody body;
  reference_segment(seed, packets, ref, meta, body);

  // The snapshot (Roaring bitmaps from the postings) is the reference's index.
  expect_same_index(b.snapshot(), body.index);
  if (testing::Test::HasFatalFailure()) return;

  const std::string old_path = (d.p / "roaring.idx").string(), new_path = (d.p / "postings.idx").string();
  const uint64_t old_bytes = store::write_sidecar(old_path, meta, body);
  const store::PostingIndex& postings = b.finish_postings();
  const uint64_t new_bytes = store::write_sidecar(new_path, meta, body.directory, body.offsets, postings);
  EXPECT_EQ(new_bytes, old_bytes);
  const std::vector<char> a = slurp(old_path), c = slurp(new_path);
  ASSERT_EQ(a.size(), c.size());
  ASSERT_TRUE(a == c) << "the sidecars differ";
  // The last seals' way (the address spans made on a helper thread, the offsets encoded
  // ahead, the scalar fields serialised on a helper thread): the same bytes.
  Feeder feeder2(seed, v4s, v6s);
  store::IndexBuilder b2;
  Reference ref2;
  feeder2.feed(packets, b2, ref2);
  const std::string two_path = (d.p / "two_threads.idx").string();
  EXPECT_EQ(
      store::write_sidecar(two_path, meta, body.directory, store::encode_offsets(two_path, body.offsets),
                           b2.finish_postings(true), true),
      old_bytes);
  ASSERT_TRUE(slurp(two_path) == a) << "the sidecar written with two threads differs";

  // Read back: the same bitmaps, whole and through the view.
  store::SidecarBody back = store::read_sidecar_body(new_path);
  expect_same_index(back.index, body.index);
  EXPECT_EQ(back.offsets, body.offsets);
  auto view = store::SidecarView::open(new_path);
  view->verify_all();
  expect_same_index(view->all(), body.index);
  for (auto& [k, r] : body.index.addr) ASSERT_TRUE(view->addr(k) == r);
  for (auto& [k, r] : body.index.port) ASSERT_TRUE(view->scalar(store::Field::kPort, k, k) == r);
}

}  // namespace

TEST(SidecarPostings, SameBytesAsTheRoaringPath) {
  check_same_sidecar(1, 1, 4, 2);
  check_same_sidecar(2, 100, 8, 3);
  check_same_sidecar(3, 3000, 500, 100);      // several key blocks per field
  check_same_sidecar(4, 70000, 20000, 3000);  // ordinals over two containers
}

TEST(SidecarPostings, SameBytesOnALargeSegment) {
  // Five containers of ordinals: the offset table of multi-container bitmaps, bitsets (a key
  // in every other packet), runs (a key in every packet).
  check_same_sidecar(5, 270000, 30000, 3000);
}

TEST(SidecarPostings, EmptyBuilder) { check_same_sidecar(6, 0, 1, 1); }

// The sidecar is written through a 1 MiB buffer, a bitmap in place in it: a bitmap larger
// than that (a key in every other packet of 8.45 M: 129 bitset containers of 8 KiB) is
// written whole, its CRC and the section's right (the view verifies them).
TEST(SidecarPostings, ABitmapLargerThanTheWriteBuffer) {
  TempDir d;
  const uint32_t packets = 129u << 16;
  store::SegmentMeta meta;
  meta.seq = 7;
  meta.packets = packets;
  meta.first_ts = 1;
  meta.last_ts = 1000ull * packets;
  store::SidecarBody body;
  directory_and_offsets(packets, body.directory, body.offsets);
  std::vector<uint32_t> every_other;
  for (uint32_t i = 0; i < packets; i += 2) every_other.push_back(i);
  body.index.port[80].addMany(every_other.size(), every_other.data());
  body.index.port[443].addRange(0, packets);
  body.index.port[53].add(12345);
  ASSERT_GT(body.index.port[80].getSizeInBytes(true), size_t{1} << 20);
  const std::string path = (d.p / "big.idx").string();
  store::write_sidecar(path, meta, body);
  auto view = store::SidecarView::open(path);
  view->verify_all();
  for (auto& [k, r] : body.index.port) ASSERT_TRUE(view->scalar(store::Field::kPort, k, k) == r) << k;
  expect_same_index(store::read_sidecar_body(path).index, body.index);
}

// The builder is reused across segments (StoreWriter's spare builders): the second
// segment's postings hold nothing of the first's, though the memory is kept.
TEST(SidecarPostings, ReusedBuilderStartsAfresh) {
  TempDir d;
  store::IndexBuilder b;
  for (uint64_t seed : {7, 8}) {
    Feeder feeder(seed, 300, 50);
    Reference ref;
    feeder.feed(seed == 7 ? 20000 : 5000, b, ref);
    const store::PostingIndex& p = b.finish_postings();
    expect_same_index(store::to_segment_index(p), ref.bitmaps());
  }
  // Emptied by finish_postings(): nothing left for a next snapshot.
  store::SegmentIndex none = b.snapshot();
  EXPECT_TRUE(none.addr.empty() && none.port.empty() && none.net.empty());
}

namespace {

// The builder against the reference for packets given at any ordinals: the snapshot while
// building, the sidecar's bytes (against the Roaring path) and its postings read back.
void check_ordinals(store::IndexBuilder& b, const std::vector<std::pair<uint32_t, store::IndexKeys>>& adds,
                    const std::string& what) {
  SCOPED_TRACE(what);
  TempDir d;
  Reference ref;
  uint32_t packets = 0;
  for (const auto& [ord, k] : adds) {
    b.add(ord, k);
    ref.add(ord, k);
    packets = std::max(packets, ord + 1);
  }
  store::SegmentMeta meta;
  store::SidecarBody body;
  reference_segment(1, packets, ref, meta, body);
  expect_same_index(b.snapshot(), body.index);
  const std::string want = (d.p / "roaring.idx").string(), got = (d.p / "postings.idx").string();
  store::write_sidecar(want, meta, body);
  const store::PostingIndex& p = b.finish_postings();
  expect_same_index(store::to_segment_index(p), body.index);
  store::write_sidecar(got, meta, body.directory, body.offsets, p);
  ASSERT_TRUE(slurp(want) == slurp(got)) << "the sidecars differ";
}

store::IndexKeys keys_of(uint32_t ord) {
  store::IndexKeys k;
  k.v4[k.n_v4++] = 0x0a000000u + ord % 7;
  k.scalars[k.n_scalars++] = ord % 3 == 0 ? 53 : 80;
  k.scalars[k.n_scalars++] = store::kScalarProtoBase + 17;
  k.scalars[k.n_scalars++] = store::kScalarNetFlag | store::kNetV4;
  return k;
}

}  // namespace

// The windows of 65536 ordinals at their edges: a first ordinal within a window, ordinals
// skipped across a window's end (fewer than 1024: packets without keys; more: the rest out of
// sequence), a packet out of sequence above the next ordinal and below it, a key only out of
// sequence.
TEST(SidecarPostings, WindowEdges) {
  std::vector<std::pair<uint32_t, store::IndexKeys>> adds;
  for (uint32_t o = 65000; o < 65530; ++o) adds.emplace_back(o, keys_of(o));
  for (uint32_t o = 65540; o < 140000; o += o % 5 == 0 ? 300 : 1) adds.emplace_back(o, keys_of(o));
  adds.emplace_back(200000, keys_of(1));  // 1024 or more ahead: out of sequence
  adds.emplace_back(140001, keys_of(2));  // also (the sequence stopped at the gap)
  store::IndexKeys only;
  only.scalars[only.n_scalars++] = 4242;  // a key in no packet in sequence
  adds.emplace_back(70000, only);
  adds.emplace_back(65001, keys_of(3));  // again, below: merged into its window's containers
  store::IndexBuilder b;
  check_ordinals(b, adds, "edges");
  // The same builder again (its memory reused), then moved and reused.
  adds.clear();
  for (uint32_t o = 0; o < 1000; ++o) adds.emplace_back(o, keys_of(o + 5));
  check_ordinals(b, adds, "reused");
  store::IndexBuilder moved = std::move(b);
  check_ordinals(moved, adds, "moved");
  b = store::IndexBuilder();
  check_ordinals(b, adds, "a moved-from builder made anew");
}

// A key in 80 windows (more than the 64 containers the writer describes on its stack), an arena
// of several chunks, then a smaller segment in the same builder: nothing of the first left.
TEST(SidecarPostings, ManyWindowsAndAReusedArena) {
  std::vector<std::pair<uint32_t, store::IndexKeys>> adds;
  for (uint32_t o = 0; o < 80 * 65536; o += 97) {
    store::IndexKeys k = keys_of(o);
    k.scalars[k.n_scalars++] = 1000 + o % 20000;  // many small arrays: several arena chunks
    adds.emplace_back(o, k);
  }
  store::IndexBuilder b;
  check_ordinals(b, adds, "80 windows");
  adds.resize(3000);
  check_ordinals(b, adds, "then a smaller segment");
}

// One late fragment re-indexed in a segment re-encodes only its windows' containers: the
// seal's memory stays that of the containers, not 4 bytes for every packet of its keys.
TEST(SidecarPostings, ALatePacketCostsItsWindowsOnly) {
  auto run = [](bool late) {
    store::IndexBuilder b;
    for (uint32_t o = 0; o < 3'000'000; ++o) b.add(o, keys_of(o));
    if (late) b.add(12345, keys_of(12345));
    b.finish_postings();
    return b.memory_bytes();
  };
  const uint64_t without = run(false), with = run(true);
  EXPECT_LT(with, without + (1u << 20)) << without << " bytes without the late packet, " << with << " with";
}
