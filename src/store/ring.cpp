#include "store/ring.h"

#include <algorithm>

namespace tmach::store {

void Ring::prefetch_ahead(uint64_t at, size_t pos, uint64_t& done, bool write) const {
  constexpr uint64_t kAhead = 4096;
  if (done < at) done = at & ~uint64_t{63};
  // The offset of byte count `done` is pos + (done - at), done - at being in [-63, kAhead +
  // 64): cap_ is a multiple of 64, so pos and at agree modulo 64 and the sum is never
  // negative; and it passes the end of the ring at most once (cap_ > kAhead + 64).
  for (; done < at + kAhead; done += 64) {
    size_t off = pos + static_cast<size_t>(done - (at & ~uint64_t{63})) - (at & 63);
    if (off >= cap_) off -= cap_;
    const uint8_t* p = buf_.begin() + off;
    if (write)
      __builtin_prefetch(p, 1);
    else
      __builtin_prefetch(p, 0);
  }
}

Ring::Ring(size_t bytes) : cap_(std::max<size_t>((bytes + 63) & ~size_t{63}, 1u << 16)) {
  buf_ = util::HugeArray<uint8_t>(cap_);
}

bool Ring::try_push(uint64_t ts_ns, uint32_t linktype, uint32_t wirelen, const uint8_t* data, uint32_t caplen,
                    const IndexKeys* keys) {
  const uint32_t keys_bytes = keys ? static_cast<uint32_t>(keys->packed_bytes()) : 0;
  if (caplen > cap_) return false;  // (keeps the sum below from overflowing)
  uint32_t need = record_size(keys_bytes + caplen);
  uint64_t head = head_.load(std::memory_order_relaxed);
  size_t pos = hpos_;
  size_t tail_room = cap_ - pos;
  // A record that does not fit in the tail is preceded by a skip marker covering the tail.
  if (need > cap_ / 2) return false;  // cannot be placed reliably
  bool wrap = need > tail_room;
  if (!wrap && pos >= kSoftWrap && cap_ >= 2 * kSoftWrap) {
    // Past the first few MiB: start again at offset 0 once the consumer has released every
    // record, so the ring's working set stays small and in the caches, and the rest of its
    // memory is only touched when the writer falls behind. Only then: until the consumer
    // passes the skip marker, records can use only the first `pos` bytes, so wrapping with a
    // backlog would refuse packets the ring has room for. The consumer's position is looked
    // up at most every 64 KiB here (it is another core's cache line).
    if (cached_tail_ != head && head - tail_checked_ >= (64u << 10)) {
      tail_checked_ = head;
      refresh_tail(head);
    }
    wrap = cached_tail_ == head && tail_room + need <= cap_;
  }
  uint64_t total = wrap ? tail_room + need : need;
  if (head + total - cached_tail_ > cap_) {
    refresh_tail(head);
    if (head + total - cached_tail_ > cap_) return false;
  }
  if (wrap) {
    // tail_room is a multiple of 8 and >= 8, so a header's size field fits.
    uint32_t skip = 0;
    std::memcpy(buf_.begin() + pos, &skip, sizeof(skip));
    gap_at_ = head;
    gap_ = tail_room;
    head += tail_room;
    pos = 0;
  }
  // Both threads stream through the ring, which is far larger than the caches, and the
  // hardware prefetcher stops at every 4 KiB boundary: ask for the lines a little ahead.
  prefetch_ahead(head, pos, prefetched_head_, true);
  RecordHeader h{need, caplen, wirelen, linktype, ts_ns, keys_bytes, 0};
  uint8_t* rec = buf_.begin() + pos;
  std::memcpy(rec, &h, sizeof(h));
  if (keys) keys->pack(rec + sizeof(h));
  std::memcpy(rec + sizeof(h) + keys_bytes, data, caplen);
  head += need;
  hpos_ = advance(pos, need);
  head_.store(head, std::memory_order_release);
  return true;
}

void Ring::refresh_tail(uint64_t head) {
  cached_tail_ = tail_.load(std::memory_order_acquire);
  // Bytes held by records: the tail skipped at the last wrap (up to the whole ring but the
  // first few MiB, after a soft wrap) holds none, though it lies between tail and head until
  // the consumer passes its marker.
  uint64_t used = head - cached_tail_;
  if (cached_tail_ <= gap_at_ && gap_at_ + gap_ <= head) used -= gap_;
  if (used > high_water_) high_water_ = used;
}

const RecordHeader* Ring::front() {
  for (;;) {
    if (read_ == cached_head_) {
      cached_head_ = head_.load(std::memory_order_acquire);
      if (read_ == cached_head_) return nullptr;
    }
    const auto* h = reinterpret_cast<const RecordHeader*>(buf_.begin() + rpos_);
    if (h->size == 0) {  // skip marker: the record starts at offset 0
      read_ += cap_ - rpos_;
      rpos_ = 0;
      continue;
    }
    prefetch_ahead(read_, rpos_, prefetched_read_, false);
    return h;
  }
}

}  // namespace tmach::store
