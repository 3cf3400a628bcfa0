// A single-producer, single-consumer ring of packet records in one fixed block of RAM.
//
// The capture thread appends (try_push never blocks, never allocates); the writer thread
// reads records in place and releases them. Memory is fixed at construction: the class's
// RAM budget. A record never wraps: when it does not fit before the end, a skip marker
// fills the tail and the record starts at offset 0. While the consumer keeps up, the producer
// wraps that way as soon as it is kSoftWrap bytes in (see try_push).
//
// A record is its header, the packet's index keys in packed form (index_keys.h: the capture
// thread decoded the packet already, so the writer only copies and indexes), then the frame.
#pragma once

#include <atomic>
#include <cstdint>
#include <cstring>
#include <memory>
#include <utility>

#include "store/index_keys.h"
#include "util/huge_array.h"

namespace tmach::store {

struct RecordHeader {
  uint32_t size;  // bytes of this record, header included, rounded up to 8; 0 = skip to start
  uint32_t caplen;
  uint32_t wirelen;
  uint32_t linktype;
  uint64_t ts_ns;
  uint32_t keys_bytes;  // packed IndexKeys after the header; 0 = none given
  uint32_t reserved;
};
static_assert(sizeof(RecordHeader) == 32);

class Ring {
 public:
  explicit Ring(size_t bytes);

  // Copies one packet (and its index keys, if given) in. Returns false, copying nothing, when
  // there is no room.
  bool try_push(uint64_t ts_ns, uint32_t linktype, uint32_t wirelen, const uint8_t* data, uint32_t caplen,
                const IndexKeys* keys = nullptr);

  // Consumer side: the oldest record not consumed yet, or null when there is none. Valid
  // until its memory is released.
  const RecordHeader* front();
  const uint8_t* payload(const RecordHeader* h) const {
    return reinterpret_cast<const uint8_t*>(h + 1) + h->keys_bytes;
  }
  // The packed keys (h->keys_bytes of them), when the producer gave them.
  const uint8_t* packed_keys(const RecordHeader* h) const { return reinterpret_cast<const uint8_t*>(h + 1); }
  // Consumes the front record. Its memory stays as it is (the producer cannot reuse it) until
  // release(): the writer hands frames to write() straight from the ring.
  void consume() {
    const uint32_t n = reinterpret_cast<const RecordHeader*>(buf_.begin() + rpos_)->size;
    read_ += n;
    rpos_ = advance(rpos_, n);
  }
  // Gives the memory of every consumed record back to the producer.
  void release() { tail_.store(read_, std::memory_order_release); }
  void pop() {
    consume();
    release();
  }

  size_t capacity() const { return cap_; }
  // The ring's memory (for util::Prefaulter).
  std::pair<void*, size_t> memory() { return {buf_.begin(), buf_.mapped_bytes()}; }
  size_t used() const {
    return static_cast<size_t>(head_.load(std::memory_order_acquire) - tail_.load(std::memory_order_acquire));
  }
  // The most bytes records held, sampled whenever the producer looks up the consumer's
  // position (at least once per ring's worth of data, and whenever the ring looks full).
  uint64_t high_water() const { return high_water_; }

 private:
  // Prefetches the lines from `done` (advanced) to a few KiB past `at` (byte counts), `at`
  // being at offset `pos` in the ring.
  void prefetch_ahead(uint64_t at, size_t pos, uint64_t& done, bool write) const;
  // Offset `pos` moved on by `n` bytes (n <= cap_): positions are kept as offsets next to
  // the byte counts, because `count % cap_` is a 64-bit division (cap_ is any multiple of
  // 64), and that was a good part of each side's cost per packet.
  size_t advance(size_t pos, size_t n) const {
    pos += n;
    return pos >= cap_ ? pos - cap_ : pos;
  }
  static uint32_t record_size(uint32_t bytes) { return (sizeof(RecordHeader) + bytes + 7) & ~7u; }
  // Producer: reloads cached_tail_ and samples the high-water mark.
  void refresh_tail(uint64_t head);

  // Huge pages where the kernel allows (fewer TLB misses on a ring of tens of MB), committed
  // as touched rather than zeroed up front.
  util::HugeArray<uint8_t> buf_;
  size_t cap_;
  // head_/tail_ count bytes ever written/released (monotonic); position = value % cap_.
  alignas(64) std::atomic<uint64_t> head_{0};
  size_t hpos_ = 0;  // producer: head_ % cap_
  static constexpr size_t kSoftWrap = 4u << 20;
  uint64_t cached_tail_ = 0;
  uint64_t tail_checked_ = 0;  // producer: head when cached_tail_ was last refreshed for a soft wrap
  uint64_t high_water_ = 0;
  uint64_t gap_at_ = 0, gap_ = 0;  // producer: where the last wrap's skipped tail starts, its bytes
  uint64_t prefetched_head_ = 0;   // producer: lines asked for (for writing) up to here
  alignas(64) std::atomic<uint64_t> tail_{0};
  uint64_t read_ = 0;             // consumer: bytes consumed (>= tail_, which counts those released)
  size_t rpos_ = 0;               // consumer: read_ % cap_
  uint64_t prefetched_read_ = 0;  // consumer: lines asked for up to here
  uint64_t cached_head_ = 0;
};

}  // namespace tmach::store
