// The offsets sections of a sidecar: encode_offsets() writes each block of kOffsetsPerBlock
// offsets as a zstd frame of the delta-coded bytes (uint16 differences, 0xffff then a
// uint32 for a larger one). Checked here independently of the reader (each frame
// decompressed with plain ZSTD_decompress and compared to a reference delta coding) and
// through it (read_sidecar_body, SidecarView::offset), for block counts and differences at
// the edges.
#include <gtest/gtest.h>
#include <zstd.h>

#include <cstring>
#include <random>
#include <vector>

#include "store/sidecar.h"
#include "store/sidecar_format.h"
#include "temp_dir.h"

using namespace tmach;
using store::sidecar_format::kOffsetsPerBlock;
using store::sidecar_format::OffsetBlock;

namespace {

// The format's delta coding, written out again from its description in sidecar_format.h.
std::vector<uint8_t> reference_block(const uint32_t* off, size_t n) {
  std::vector<uint8_t> out;
  uint32_t prev = 0;
  for (size_t i = 0; i < n; ++i) {
    const uint32_t d = off[i] - prev;
    prev = off[i];
    if (d < 0xffff) {
      out.push_back(static_cast<uint8_t>(d));
      out.push_back(static_cast<uint8_t>(d >> 8));
    } else {
      out.push_back(0xff);
      out.push_back(0xff);
      for (int s = 0; s < 32; s += 8) out.push_back(static_cast<uint8_t>(d >> s));
    }
  }
  return out;
}

// Every block of `enc` against the reference coding of `off`.
void check_blocks(const store::EncodedOffsets& enc, const std::vector<uint32_t>& off) {
  const size_t nblocks = (off.size() + kOffsetsPerBlock - 1) / kOffsetsPerBlock;
  EXPECT_EQ(enc.table.size(), nblocks * sizeof(OffsetBlock));
  uint64_t pos = 0;
  for (size_t b = 0; b < nblocks; ++b) {
    OffsetBlock ob;
    std::memcpy(&ob, enc.table.data() + b * sizeof ob, sizeof ob);
    const size_t at = b * kOffsetsPerBlock, n = std::min<size_t>(off.size() - at, kOffsetsPerBlock);
    const std::vector<uint8_t> want = reference_block(off.data() + at, n);
    EXPECT_EQ(ob.pos, pos) << "block " << b;
    EXPECT_EQ(ob.raw, want.size()) << "block " << b;
    EXPECT_EQ(ob.pad, 0u);
    pos += ob.stored;
    ASSERT_LE(pos, enc.blocks.size());
    std::vector<uint8_t> got(want.size() + 16);
    const size_t r = ZSTD_decompress(got.data(), got.size(), enc.blocks.data() + ob.pos, ob.stored);
    ASSERT_FALSE(ZSTD_isError(r)) << "block " << b << ": " << ZSTD_getErrorName(r);
    got.resize(r);
    EXPECT_TRUE(got == want) << "block " << b << " decodes to other bytes";
  }
  EXPECT_EQ(pos, enc.blocks.size());
}

// Encodes `off`, checks every block against the reference and reads the offsets back
// through a sidecar. Returns the stored bytes of the blocks.
size_t check_round_trip(const std::vector<uint32_t>& off,
                        store::OffsetsCoding coding = store::OffsetsCoding::kRuns) {
  SCOPED_TRACE(testing::Message() << off.size() << " offsets, coding " << static_cast<int>(coding));
  const store::EncodedOffsets enc = store::encode_offsets("test.idx", off, coding);
  check_blocks(enc, off);
  if (coding != store::OffsetsCoding::kRuns) return enc.blocks.size();  // (the sidecar writes kRuns)

  TempDir d;
  const std::string path = (d.p / "offsets.idx").string();
  store::SegmentMeta meta;
  meta.packets = off.size();
  store::SidecarBody body;
  body.offsets = off;
  if (!off.empty()) body.directory.push_back(store::DirEntry{0, off[0], 0});
  store::write_sidecar(path, meta, body);
  EXPECT_EQ(store::read_sidecar_body(path).offsets, off);
  auto view = store::SidecarView::open(path);
  view->verify_all();
  for (uint32_t i = 0; i < off.size(); i += 97) EXPECT_EQ(view->offset(i), off[i]) << "ordinal " << i;
  if (!off.empty()) {
    EXPECT_EQ(view->offset(static_cast<uint32_t>(off.size() - 1)), off.back());
  }
  return enc.blocks.size();
}

// Offsets with differences from `next(i)`, from the pcap header on.
template <class Next>
std::vector<uint32_t> offsets(size_t n, Next next) {
  std::vector<uint32_t> off;
  uint32_t at = 24;
  for (size_t i = 0; i < n; ++i) {
    off.push_back(at);
    at += next(i);
  }
  return off;
}

}  // namespace

TEST(SidecarOffsets, BlockCountsAtTheEdges) {
  std::mt19937 rng(1);
  auto sizes = [&](size_t) { return 16 + 60 + rng() % 1450; };
  check_round_trip({});
  for (size_t n : {size_t{1}, size_t{2}, size_t{4095}, size_t{kOffsetsPerBlock}, size_t{kOffsetsPerBlock} + 1,
                   3 * size_t{kOffsetsPerBlock} + 5})
    check_round_trip(offsets(n, sizes));
}

TEST(SidecarOffsets, EscapedDifferences) {
  // 0xfffe is the largest plain difference, 0xffff the first escaped one; a whole block of
  // escapes is the largest raw block (6 bytes an offset).
  const uint32_t edge[] = {0xfffe, 0xffff, 0x10000, 262144 + 16, 76};
  check_round_trip(offsets(3 * kOffsetsPerBlock + 7, [&](size_t i) { return edge[i % 5]; }));
  check_round_trip(offsets(kOffsetsPerBlock + 1, [](size_t) { return uint32_t{0x10000}; }));
  check_round_trip(offsets(5, [](size_t i) { return i == 0 ? uint32_t{0xffff} : uint32_t{82}; }));
}

TEST(SidecarOffsets, RunsOfOneSize) {
  // Runs of every length around the shortest one given to zstd as a match (8 repeats),
  // between random sizes, across block ends, of escaped differences too.
  std::mt19937 rng(3);
  std::vector<uint32_t> diffs;
  for (uint32_t len = 1; diffs.size() < 4 * kOffsetsPerBlock; len = len % 23 + 1) {
    const uint32_t d = rng() % 3 == 0 ? 0x10000 + rng() % 50 : 60 + rng() % 1500;
    diffs.insert(diffs.end(), len, d);
    diffs.push_back(60 + rng() % 1500);
  }
  check_round_trip(offsets(diffs.size(), [&](size_t i) { return diffs[i]; }));
  // A run to the end of a block, then one from the start of the next.
  check_round_trip(
      offsets(2 * kOffsetsPerBlock, [](size_t i) { return i < kOffsetsPerBlock - 10 ? 100 + i % 7 : 82; }));
}

TEST(SidecarOffsets, CompressesRepeatedSizesAndStoresNoise) {
  // Few distinct sizes (as minimum-size frames give): well under the 2 raw bytes an offset
  // (log2(6) bits for the low byte, a bit for the high one).
  std::mt19937 rng(2);
  const uint32_t common[] = {82, 90, 102, 144, 110, 1530};
  const size_t n = 5 * kOffsetsPerBlock;
  EXPECT_LT(check_round_trip(offsets(n, [&](size_t) { return common[rng() % 6]; })), n * 3 / 4);
  // One size throughout (the flows file's fixed-size records): a few bytes a block.
  EXPECT_LT(check_round_trip(offsets(n, [](size_t) { return uint32_t{76}; })), 5 * 64u);
  // Differences of random bytes: no worse than raw plus a small frame overhead per block.
  EXPECT_LT(check_round_trip(offsets(n, [&](size_t) { return 1 + rng() % 0xfffe; })), n * 2 + 5 * 64);
}

TEST(SidecarOffsets, StableFallbackDecodesAlike) {
  // The path a block takes when the experimental sequence API refuses it: plain level-1 frames
  // of the same bytes, whatever the differences.
  std::mt19937 rng(4);
  const auto stable = store::OffsetsCoding::kStable;
  check_round_trip({}, stable);
  for (size_t n : {size_t{1}, size_t{kOffsetsPerBlock}, 2 * size_t{kOffsetsPerBlock} + 3})
    check_round_trip(offsets(n, [&](size_t) { return 16 + 60 + rng() % 1450; }), stable);
  const uint32_t edge[] = {0xfffe, 0xffff, 0x10000, 76, 76, 76, 76, 76, 76, 76, 76, 76};
  check_round_trip(offsets(kOffsetsPerBlock + 9, [&](size_t i) { return edge[i % 12]; }), stable);
  // Its blocks differ from the runs' (so the test reaches the other path), the offsets do not.
  const auto off =
      offsets(kOffsetsPerBlock, [&](size_t i) { return i % 100 < 50 ? 82u : 16 + rng() % 1500; });
  EXPECT_FALSE(store::encode_offsets("a.idx", off, stable).blocks ==
               store::encode_offsets("b.idx", off, store::OffsetsCoding::kRuns).blocks);
}
