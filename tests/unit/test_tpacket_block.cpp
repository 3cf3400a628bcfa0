// The walk over a TPACKET_V3 ring block (capture/tpacket_block.h) on blocks built by hand: the
// kernel's layout is walked whole; offsets that point outside the block (or would hand a frame
// out twice) end the walk there, with the rest of the block counted as damaged, and nothing
// outside the block is read (the block is a heap allocation of exactly its size: under ASan an
// out-of-bounds read fails the test; in any build the frames called back prove it).
#include <gtest/gtest.h>

#include <cstring>
#include <memory>
#include <new>
#include <ostream>
#include <vector>

#include "capture/tpacket_block.h"

namespace tmach::capture {
namespace {

constexpr uint32_t kReserve = 4;  // afpacket_source.cpp's PACKET_RESERVE (a VLAN tag)
// Where the kernel puts the frame's data: TPACKET_ALIGN(TPACKET3_HDRLEN + 16) + reserve - 14.
constexpr uint16_t kMac = static_cast<uint16_t>(TPACKET_ALIGN(TPACKET3_HDRLEN + 16) + kReserve - 14);
constexpr uint32_t kFirst = 48;  // BLK_PLUS_PRIV(0): the descriptor, 8-byte aligned
// The smallest frame: a header and the reserve, 8-byte aligned (56 bytes).
constexpr uint32_t kMinFrame = (sizeof(tpacket3_hdr) + kReserve + 7) & ~7u;

struct Block {
  explicit Block(uint32_t size) : size(size), mem(new (std::align_val_t{64}) uint8_t[size]) {
    std::memset(mem.get(), 0xee, size);
    desc()->version = TPACKET_V3;
    desc()->hdr.bh1.offset_to_first_pkt = kFirst;
    desc()->hdr.bh1.num_pkts = 0;
  }
  tpacket_block_desc* desc() { return reinterpret_cast<tpacket_block_desc*>(mem.get()); }
  tpacket3_hdr* at(uint32_t off) { return reinterpret_cast<tpacket3_hdr*>(mem.get() + off); }
  // Appends a frame of `snaplen` bytes as the kernel does (prb_fill_curr_block): its next
  // offset the frame rounded up to 8, the last frame's 0. Returns its offset.
  uint32_t add(uint32_t snaplen) {
    const uint32_t off = next;
    tpacket3_hdr* h = at(off);
    std::memset(h, 0, sizeof(*h));
    h->tp_mac = kMac;
    h->tp_net = kMac + 14;
    h->tp_snaplen = snaplen;
    h->tp_len = snaplen;
    h->tp_sec = 1700000000;
    h->tp_nsec = desc()->hdr.bh1.num_pkts;  // which frame this is
    const uint32_t len = (kMac + snaplen + 7) & ~7u;
    h->tp_next_offset = 0;
    if (last) at(last_off)->tp_next_offset = off - last_off;
    last = true;
    last_off = off;
    next = off + len;
    desc()->hdr.bh1.num_pkts++;
    return off;
  }
  struct Walk {
    std::vector<uint32_t> offsets;  // of the frames called back
    uint32_t damaged;
    bool operator==(const Walk&) const = default;
    friend void PrintTo(const Walk& w, std::ostream* os) {
      *os << "frames at {";
      for (uint32_t o : w.offsets) *os << " " << o;
      *os << " }, " << w.damaged << " damaged";
    }
  };
  Walk walk() {
    Walk w;
    w.damaged = walk_tpacket_block(mem.get(), size, kReserve, [&](tpacket3_hdr* h) {
      w.offsets.push_back(static_cast<uint32_t>(reinterpret_cast<uint8_t*>(h) - mem.get()));
      // What afpacket_source.cpp's to_raw() reads: the frame's data, all of it.
      const uint8_t* d = reinterpret_cast<uint8_t*>(h) + h->tp_mac;
      volatile uint32_t sum = 0;
      for (uint32_t i = 0; i < h->tp_snaplen; ++i) sum = sum + d[i];
    });
    return w;
  }

  uint32_t size;
  struct Free {
    void operator()(uint8_t* p) const { ::operator delete[](p, std::align_val_t{64}); }
  };
  std::unique_ptr<uint8_t[], Free> mem;
  uint32_t next = kFirst;
  bool last = false;
  uint32_t last_off = 0;
};

TEST(TpacketBlock, WalksTheKernelsLayout) {
  Block b(4096);
  std::vector<uint32_t> want;
  for (uint32_t len : {60u, 1514u, 61u, 64u}) want.push_back(b.add(len));
  EXPECT_EQ(b.walk(), (Block::Walk{want, 0u}));
}

TEST(TpacketBlock, AFrameEndingAtTheBlocksLastByte) {
  Block b(4096);
  const uint32_t off = b.add(100);
  b.add(4096 - b.next - kMac);  // its data ends exactly at the block's end
  EXPECT_EQ(b.walk(), (Block::Walk{{off, off + ((kMac + 100 + 7) & ~7u)}, 0u}));
}

TEST(TpacketBlock, EmptyBlock) {
  Block b(4096);
  EXPECT_EQ(b.walk(), (Block::Walk{{}, 0u}));
}

TEST(TpacketBlock, NextOffsetPastTheBlock) {
  Block b(4096);
  const uint32_t a = b.add(60);
  const uint32_t c = b.add(60);
  b.add(60);
  b.add(60);
  b.at(c)->tp_next_offset = 4096 - c;  // the third frame would start at the block's end
  EXPECT_EQ(b.walk(), (Block::Walk{{a, c}, 2u}));
}

TEST(TpacketBlock, HeaderCrossingTheBlocksEnd) {
  Block b(4096);
  const uint32_t a = b.add(60);
  b.add(60);
  b.at(a)->tp_next_offset = 4096 - 16 - a;  // 16 bytes left: less than a header
  EXPECT_EQ(b.walk(), (Block::Walk{{a}, 1u}));
}

TEST(TpacketBlock, SnaplenPastTheBlock) {
  Block b(4096);
  const uint32_t a = b.add(60);
  const uint32_t c = b.add(60);
  b.add(60);
  b.at(c)->tp_snaplen = 4096;                   // its data would run 4 KiB past the block
  EXPECT_EQ(b.walk(), (Block::Walk{{a}, 2u}));  // that frame and the one after it damaged
}

TEST(TpacketBlock, MacOffsetPastTheBlock) {
  Block b(4096);
  const uint32_t a = b.add(60);
  b.at(a)->tp_mac = 0xfff0;
  EXPECT_EQ(b.walk(), (Block::Walk{{}, 1u}));
}

TEST(TpacketBlock, MacOffsetInsideTheHeader) {
  // The VLAN tag put back would be written over the frame's own header.
  Block b(4096);
  const uint32_t a = b.add(60);
  b.at(a)->tp_mac = sizeof(tpacket3_hdr);
  EXPECT_EQ(b.walk(), (Block::Walk{{}, 1u}));
}

TEST(TpacketBlock, ZeroNextOffsetWithFramesLeft) {
  // Unchecked, the walk handed this frame out again for each frame the block says it holds.
  Block b(4096);
  const uint32_t a = b.add(60);
  b.add(60);
  b.add(60);
  b.at(a)->tp_next_offset = 0;
  EXPECT_EQ(b.walk(), (Block::Walk{{}, 3u}));
}

TEST(TpacketBlock, NextFrameInsideThisOnesData) {
  Block b(4096);
  const uint32_t a = b.add(200);
  b.add(60);
  b.at(a)->tp_next_offset = (kMac + 8 + 7) & ~7u;  // aligned, in bounds, inside the first frame's data
  EXPECT_EQ(b.walk(), (Block::Walk{{}, 2u}));
}

TEST(TpacketBlock, MisalignedNextFrame) {
  Block b(4096);
  const uint32_t a = b.add(60);
  b.add(60);
  b.at(a)->tp_next_offset += 4;
  EXPECT_EQ(b.walk(), (Block::Walk{{a}, 1u}));
}

TEST(TpacketBlock, MoreFramesClaimedThanTheBlockHolds) {
  // num_pkts far beyond what was written: the walk follows the frames as long as their offsets
  // stay in the block (here the last frame's 0 stops it), and never reads past the block.
  Block b(4096);
  std::vector<uint32_t> want;
  for (int i = 0; i < 3; ++i) want.push_back(b.add(60));
  b.desc()->hdr.bh1.num_pkts = 1000000;
  // Counted damaged: what the block could hold after the last frame read, not the million claimed.
  EXPECT_EQ(b.walk(), (Block::Walk{{want[0], want[1]}, (4096 - (want[1] + kMac + 60)) / kMinFrame}));

  // The same with every frame pointing on to the next, up to the block's end.
  Block full(4096);
  want.clear();
  while (full.next + kMac + 60 <= 4096) want.push_back(full.add(60));
  full.at(want.back())->tp_next_offset = (kMac + 60 + 7) & ~7u;  // on past the block
  full.desc()->hdr.bh1.num_pkts = 1000000;
  EXPECT_EQ(full.walk(), (Block::Walk{want, 1u}));  // (no room left: the one it went on to)
}

TEST(TpacketBlock, FirstFrameOutsideTheBlock) {
  Block b(4096);
  b.add(60);
  for (uint32_t first : {0u, 8u, 4096u, 4090u, 0xfffffff8u}) {
    b.desc()->hdr.bh1.offset_to_first_pkt = first;
    EXPECT_EQ(b.walk(), (Block::Walk{{}, 1u})) << first;
  }
}

TEST(TpacketBlock, TheCursorStopsAndResumesLikeABatch) {
  // afpacket_source.cpp hands out a block over several batches: next() picks up where it stopped.
  Block b(4096);
  std::vector<uint32_t> want;
  for (int i = 0; i < 5; ++i) want.push_back(b.add(60));
  TpacketBlock c;
  c.start(b.mem.get(), b.size, kReserve);
  EXPECT_EQ(c.left(), 5u);
  std::vector<uint32_t> got;
  for (int batch = 0; batch < 3; ++batch)
    for (int i = 0; i < 2; ++i)
      if (tpacket3_hdr* h = c.next())
        got.push_back(static_cast<uint32_t>(reinterpret_cast<uint8_t*>(h) - b.mem.get()));
  EXPECT_EQ(got, want);
  EXPECT_EQ(c.left(), 0u);
  EXPECT_EQ(c.damaged(), 0u);
  EXPECT_EQ(c.next(), nullptr);
}

}  // namespace
}  // namespace tmach::capture
