#include "store/ring.h"

#include <algorithm>
#include <cstddef>

#include "util/prefetch.h"

namespace tmach::store {

BufferPool::BufferPool(size_t bytes, size_t rings) {
  const size_t want = std::max<size_t>(8, 2 * rings);
  size_t c = 1u << 20;
  while (c > kMinChunk && bytes / c < want) c /= 2;
  chunk_ = c;
  n_ = static_cast<uint32_t>(std::max<size_t>(std::max<size_t>(2, 2 * rings), bytes / c));
  buf_ = util::HugeArray<uint8_t>(size_t{n_} * chunk_);
  free_.reserve(n_);
  for (uint32_t i = n_; i-- > 0;) free_.push_back(i);  // chunk 0 first
}

bool BufferPool::acquire(uint32_t& id) {
  std::lock_guard lk(mu_);
  if (free_.empty()) return false;
  id = free_.back();
  free_.pop_back();
  const uint32_t held = held_.load(std::memory_order_relaxed) + 1;
  held_.store(held, std::memory_order_relaxed);
  if (held > peak_.load(std::memory_order_relaxed)) peak_.store(held, std::memory_order_relaxed);
  return true;
}

void BufferPool::give_back(const uint32_t* ids, size_t n) {
  std::lock_guard lk(mu_);
  free_.insert(free_.end(), ids, ids + n);
  held_.store(held_.load(std::memory_order_relaxed) - static_cast<uint32_t>(n), std::memory_order_relaxed);
}

Ring::Ring(BufferPool& pool)
    : pool_(&pool), chunk_bytes_(pool.chunk_bytes()), slots_(size_t{pool.chunks()} + 1), wpos_(chunk_bytes_) {
  passed_.reserve(pool.chunks());
}

Ring::Ring(size_t bytes)
    : own_(std::make_unique<BufferPool>(bytes)),
      pool_(own_.get()),
      chunk_bytes_(pool_->chunk_bytes()),
      wpos_(chunk_bytes_) {
  slots_.resize(size_t{pool_->chunks()} + 1);
  passed_.reserve(pool_->chunks());
}

Ring::~Ring() = default;

void Ring::sample_high_water(uint64_t head) {
  const uint64_t used = head - released_.load(std::memory_order_acquire);
  if (used > high_water_.load(std::memory_order_relaxed)) high_water_.store(used, std::memory_order_relaxed);
}

template <class PutKeys>
inline void Ring::put_record(uint64_t ts_ns, uint32_t linktype, uint32_t wirelen, const uint8_t* data,
                             uint32_t caplen, PutKeys put_keys) {
  uint8_t* base = wbase_;
  util::prefetch_ahead<util::PrefetchFor::kWrite>(base, wpos_, kPrefetchAhead, chunk_bytes_, prefetched_w_);
  uint8_t* rec = base + wpos_;
  // The header field by field, the caller's fields before the keys (so they need not be kept
  // across the call that packs them): a RecordHeader built whole went through the vector
  // registers and the stack: with it, nine more instructions a packet (callgrind, small30).
  const auto put = [rec](size_t at, auto v) { std::memcpy(rec + at, &v, sizeof(v)); };
  put(offsetof(RecordHeader, caplen), caplen);
  put(offsetof(RecordHeader, wirelen), wirelen);
  put(offsetof(RecordHeader, linktype), linktype);
  put(offsetof(RecordHeader, ts_ns), ts_ns);
  const uint32_t keys_bytes = put_keys(rec + sizeof(RecordHeader));
  const auto need = static_cast<uint32_t>(record_size(uint64_t{keys_bytes} + caplen));
  put(offsetof(RecordHeader, size), need);
  put(offsetof(RecordHeader, keys_bytes), keys_bytes);
  put(offsetof(RecordHeader, reserved), uint32_t{0});
  std::memcpy(rec + sizeof(RecordHeader) + keys_bytes, data, caplen);
  wpos_ += need;
  head_.store(head_.load(std::memory_order_relaxed) + need, std::memory_order_release);
}

bool Ring::try_push(uint64_t ts_ns, uint32_t linktype, uint32_t wirelen, const uint8_t* data, uint32_t caplen,
                    const IndexKeys* keys) {
  const uint32_t keys_bytes = keys ? static_cast<uint32_t>(keys->packed_bytes()) : 0;
  const size_t chunk = chunk_bytes_;
  const uint64_t need = record_size(uint64_t{keys_bytes} + caplen);
  if (need > chunk) return false;  // too_large()
  if (need > chunk - wpos_) {      // (also before the first chunk: wpos_ == chunk)
    const uint64_t head = head_.load(std::memory_order_relaxed);
    uint32_t id;
    if (!pool_->acquire(id)) {
      sample_high_water(head);
      return false;
    }
    // The rest of the chunk is skipped (a marker, where there is room for one: wpos_ is a
    // multiple of 8; at the chunk's very end, or before the first chunk, there is none: the
    // consumer moves on by itself).
    if (wpos_ < chunk) {
      const uint32_t skip = 0;
      std::memcpy(wbase_ + wpos_, &skip, sizeof(skip));
    }
    slots_[wslot_++ % slots_.size()] = id;
    wbase_ = pool_->chunk(id);
    wpos_ = 0;
    prefetched_w_ = 0;
    sample_high_water(head);
  }
  put_record(ts_ns, linktype, wirelen, data, caplen, [&](uint8_t* at) {
    if (keys) {
      // (pack_with_slack's bytes past the keys are written over by the frame)
      if (chunk - wpos_ - sizeof(RecordHeader) >= IndexKeys::kMaxPackedBytes)
        keys->pack_with_slack(at);
      else
        keys->pack(at);
    }
    return keys_bytes;
  });
  return true;
}

bool Ring::try_push_decoded(uint64_t ts_ns, uint32_t linktype, uint32_t wirelen, const uint8_t* data,
                            uint32_t caplen, const packet::PacketInfo& info, IndexKeys& keys) {
  // The keys' size is known once they are written: in place when any size fits; otherwise (a
  // chunk's last records, or no chunk yet: wpos_ == chunk) through an IndexKeys, whose exact
  // size decides as before whether the record still fits or opens the next chunk.
  if (chunk_bytes_ - wpos_ >= record_size(uint64_t{IndexKeys::kMaxPackedBytes} + caplen)) {
    put_record(ts_ns, linktype, wirelen, data, caplen,
               [&](uint8_t* at) { return static_cast<uint32_t>(pack_index_keys(info, at)); });
    return true;
  }
  index_keys(info, keys);
  return try_push(ts_ns, linktype, wirelen, data, caplen, &keys);
}

const RecordHeader* Ring::front() {
  const size_t chunk = chunk_bytes_;
  for (;;) {
    if (read_ == cached_head_) {
      cached_head_ = head_.load(std::memory_order_acquire);
      if (read_ == cached_head_) return nullptr;
    }
    // A record is there: in the chunk being read, or (past its end or its skip marker) in the next.
    if (rchunk_ != kNone && rpos_ < chunk) {
      const auto* h = reinterpret_cast<const RecordHeader*>(rbase_ + rpos_);
      if (h->size != 0) {
        util::prefetch_ahead<util::PrefetchFor::kRead>(rbase_, rpos_, kPrefetchAhead, chunk, prefetched_r_);
        return h;
      }
    }
    if (rchunk_ != kNone) passed_.push_back(rchunk_);
    rchunk_ = slots_[rslot_++ % slots_.size()];
    rbase_ = pool_->chunk(rchunk_);
    rpos_ = 0;
    prefetched_r_ = 0;
  }
}

void Ring::release() {
  released_.store(read_, std::memory_order_release);
  if (!passed_.empty()) {
    pool_->give_back(passed_.data(), passed_.size());
    passed_.clear();
  }
}

}  // namespace tmach::store
