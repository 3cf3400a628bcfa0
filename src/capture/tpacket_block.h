// The frames of one TPACKET_V3 ring block (afpacket_source.cpp), walked without trusting the
// offsets in it. The block is memory the kernel shares with us: a kernel bug, a ring set up
// with another layout than we think, or memory scribbled on would otherwise have us read (and,
// putting a VLAN tag back, write) outside the block, or hand out one frame many times. Every
// offset is checked against the block's size before it is followed; the first frame whose
// layout is impossible ends the walk, and it and the frames after it are counted as damaged
// (their bytes are not read: nothing in the block can be trusted past that point).
//
// What a frame the kernel filled always has (net/packet/af_packet.c, prb_fill_curr_block and
// tpacket_rcv): it starts 8-byte aligned (V3_ALIGNMENT there, not TPACKET_ALIGNMENT) after the
// block descriptor; its data (tp_mac) starts after its header and the PACKET_RESERVE bytes, and
// ends (tp_mac + tp_snaplen) inside the block; the next frame starts tp_next_offset bytes on,
// after this frame's data; the last frame of a block has tp_next_offset 0.
#pragma once

#include <algorithm>
#include <cstdint>

#ifdef __linux__
#include <linux/if_packet.h>

namespace tmach::capture {

class TpacketBlock {
 public:
  // The block at `block`, `size` bytes (the ring's tp_block_size), whose frames have `reserve`
  // bytes (PACKET_RESERVE) in front of their data that the caller may write to.
  void start(uint8_t* block, uint32_t size, uint32_t reserve) {
    block_ = block;
    size_ = size;
    reserve_ = reserve;
    damaged_ = 0;
    read_end_ = sizeof(tpacket_block_desc);
    if (size < sizeof(tpacket_block_desc)) {
      left_ = 0;
      return;
    }
    const auto* bd = reinterpret_cast<const tpacket_block_desc*>(block);
    left_ = bd->hdr.bh1.num_pkts;
    off_ = bd->hdr.bh1.offset_to_first_pkt;
  }

  // The next frame of the block, or null at its end or at a frame whose layout is impossible
  // (then damaged() counts it and the ones after it, and left() is 0).
  tpacket3_hdr* next() {
    if (left_ == 0) return nullptr;
    const uint64_t off = off_;
    if (off < sizeof(tpacket_block_desc) || off % kFrameAlign != 0 || off + sizeof(tpacket3_hdr) > size_)
        [[unlikely]]
      return give_up();
    auto* h = reinterpret_cast<tpacket3_hdr*>(block_ + off);
    const uint64_t end = uint64_t{h->tp_mac} + h->tp_snaplen;  // from the frame's start
    if (h->tp_mac < sizeof(tpacket3_hdr) + reserve_ || off + end > size_) [[unlikely]]
      return give_up();
    if (left_ > 1) {
      // 0 (a last frame's) with frames left would hand this frame out again for each of them; a
      // next frame starting inside this one's data would have its VLAN tag put back over it.
      if (h->tp_next_offset < end) [[unlikely]]
        return give_up();
      off_ = off + h->tp_next_offset;  // (may be past the block: checked at the next frame)
    }
    --left_;
    read_end_ = off + end;
    return h;
  }

  // Frames the block holds that next() has not returned (nor given up on) yet.
  uint32_t left() const { return left_; }
  // Frames given up on: the first one found impossible and every one after it.
  uint32_t damaged() const { return damaged_; }

 private:
  static constexpr uint64_t kFrameAlign = 8;

  // The frames left are counted damaged, but no more than the block could hold after the last
  // frame handed out (num_pkts itself may be what is damaged: up to 2^32).
  tpacket3_hdr* give_up() {
    const uint64_t min_frame = (sizeof(tpacket3_hdr) + reserve_ + kFrameAlign - 1) & ~(kFrameAlign - 1);
    const uint64_t rest = read_end_ < size_ ? size_ - read_end_ : 0;
    damaged_ = static_cast<uint32_t>(std::min<uint64_t>(left_, std::max<uint64_t>(1, rest / min_frame)));
    left_ = 0;
    return nullptr;
  }

  uint8_t* block_ = nullptr;
  uint64_t size_ = 0;
  uint32_t reserve_ = 0;
  uint64_t off_ = 0;       // the next frame's offset in the block (checked before it is read)
  uint64_t read_end_ = 0;  // where the data of the last frame handed out ends (or the descriptor)
  uint32_t left_ = 0;
  uint32_t damaged_ = 0;
};

// Calls on_frame(tpacket3_hdr*) for each frame of the block whose layout is possible, in order,
// up to the first that is not (TpacketBlock). Returns how many frames were given up on.
template <class OnFrame>
uint32_t walk_tpacket_block(uint8_t* block, uint32_t size, uint32_t reserve, OnFrame&& on_frame) {
  TpacketBlock b;
  b.start(block, size, reserve);
  while (tpacket3_hdr* h = b.next()) on_frame(h);
  return b.damaged();
}

}  // namespace tmach::capture

#endif
