// The RAM buffer between the capture threads and the writer thread: a class's RAM budget
// (BufferPool) in chunks, lent to single-producer, single-consumer rings of packet records (one
// ring per capture thread).
//
// A ring is a queue of chunks. The capture thread appends records to its current chunk
// (try_push never blocks, never allocates); when one does not fit, it takes another chunk from
// the pool (a skip marker closes the last one) and goes on there. The writer thread reads
// records in place, chunk after chunk, and gives each chunk it passed back to the pool at
// release(). So the buffer is elastic: while the writer keeps up, a ring holds two chunks that
// take turns (the pool hands out the chunk given back last: its lines are still in the caches);
// when the writer falls behind, one ring may borrow every free chunk of the budget, whichever
// capture thread has the burst; a push is refused only when its ring's chunk is full and no
// chunk is free (the whole budget held, less the unused tails of chunks, and the consumed head of
// the chunk the writer is in), or when the record is larger than a chunk.
//
// A record is its header, the packet's index keys in packed form (index_keys.h: the capture
// thread decoded the packet already, so the writer only copies and indexes), then the frame.
#pragma once

#include <atomic>
#include <cstdint>
#include <cstring>
#include <memory>
#include <mutex>
#include <utility>
#include <vector>

#include "store/index_keys.h"
#include "util/huge_array.h"

namespace tmach::store {

struct RecordHeader {
  uint32_t size;  // bytes of this record, header included, rounded up to 8; 0 = skip to the next chunk
  uint32_t caplen;
  uint32_t wirelen;
  uint32_t linktype;
  uint64_t ts_ns;
  uint32_t keys_bytes;  // packed IndexKeys after the header; 0 = none given
  uint32_t reserved;
};
static_assert(sizeof(RecordHeader) == 32);

// A RAM budget in equal chunks, shared by the rings of one class (any thread; a mutex taken once
// per chunk).
class BufferPool {
 public:
  // `bytes` in chunks of 1 MiB, or of an eighth of a small budget (kMinChunk at least); at least
  // two chunks per ring that will use it (`rings`): more than `bytes` when they are fewer than
  // min_bytes(rings).
  explicit BufferPool(size_t bytes, size_t rings = 1);
  static constexpr size_t kMinChunk = 16u << 10;
  // The least budget that `rings` rings' two chunks each fit in; a pool of a smaller budget takes
  // that much anyway (the configuration refuses such budgets: config::min_ram_budget).
  static constexpr uint64_t min_bytes(size_t rings) { return uint64_t{2} * (rings ? rings : 1) * kMinChunk; }

  size_t chunk_bytes() const { return chunk_; }
  uint32_t chunks() const { return n_; }
  size_t capacity() const { return size_t{n_} * chunk_; }
  uint8_t* chunk(uint32_t i) { return buf_.begin() + size_t{i} * chunk_; }
  const uint8_t* chunk(uint32_t i) const { return buf_.begin() + size_t{i} * chunk_; }
  // A free chunk, the one given back last; false when every chunk is lent.
  bool acquire(uint32_t& id);
  void give_back(const uint32_t* ids, size_t n);
  // The buffer's fill: bytes of the chunks lent now, and the most ever lent at once.
  uint64_t held_bytes() const { return uint64_t{held_.load(std::memory_order_relaxed)} * chunk_; }
  uint64_t high_water() const { return uint64_t{peak_.load(std::memory_order_relaxed)} * chunk_; }
  // The memory (for util::Prefaulter), chunks in the order acquire() first hands them out.
  std::pair<void*, size_t> memory() { return {buf_.begin(), buf_.mapped_bytes()}; }

 private:
  // Huge pages where the kernel allows (fewer TLB misses), committed as touched rather than
  // zeroed up front.
  util::HugeArray<uint8_t> buf_;
  size_t chunk_;
  uint32_t n_;
  std::mutex mu_;
  std::vector<uint32_t> free_;  // mu_; the back is handed out next
  std::atomic<uint32_t> held_{0}, peak_{0};
};

class Ring {
 public:
  // A ring lending chunks of `pool` (which must outlive it).
  explicit Ring(BufferPool& pool);
  // A ring with a pool of its own of `bytes`.
  explicit Ring(size_t bytes);
  ~Ring();
  Ring(const Ring&) = delete;
  Ring& operator=(const Ring&) = delete;

  // Copies one packet (and its index keys, if given) in. Returns false, copying nothing, when
  // there is no room (or the record is larger than a chunk: too_large()).
  bool try_push(uint64_t ts_ns, uint32_t linktype, uint32_t wirelen, const uint8_t* data, uint32_t caplen,
                const IndexKeys* keys = nullptr);
  // The same with the keys of `info` (index_keys()), computed straight into the record when
  // the chunk has room for their largest packed form: the capture thread's path, which saves
  // filling an IndexKeys and copying it. The ring then holds the same bytes as try_push() of
  // index_keys(info): near a chunk's end (or before the first chunk) it fills `keys` and takes
  // that path, so records change chunks alike. Only that path refuses: after a refusal `keys`
  // holds index_keys(info), for the caller's too_large() and retries (not computed twice).
  bool try_push_decoded(uint64_t ts_ns, uint32_t linktype, uint32_t wirelen, const uint8_t* data,
                        uint32_t caplen, const packet::PacketInfo& info, IndexKeys& keys);
  // Whether a record of this frame could never be pushed (larger than a chunk).
  bool too_large(uint32_t caplen, const IndexKeys* keys) const {
    return record_size((keys ? static_cast<uint32_t>(keys->packed_bytes()) : 0) + uint64_t{caplen}) >
           pool_->chunk_bytes();
  }

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
    const uint32_t n = reinterpret_cast<const RecordHeader*>(rbase_ + rpos_)->size;
    read_ += n;
    rpos_ += n;
  }
  // Gives the memory of every consumed record back: the chunks passed, to the pool.
  void release();
  void pop() {
    consume();
    release();
  }

  // The pool's size (the class's budget, shared by its rings).
  size_t capacity() const { return pool_->capacity(); }
  // The memory of the pool (for util::Prefaulter).
  std::pair<void*, size_t> memory() { return pool_->memory(); }
  const BufferPool& pool() const { return *pool_; }
  // Bytes of records pushed and not released yet (any thread).
  size_t used() const {
    // released_ first: it never passes head_, so a push and a release between the two loads
    // cannot make it larger than the head read (which wrapped the difference to ~2^64).
    const uint64_t released = released_.load(std::memory_order_acquire);
    return static_cast<size_t>(head_.load(std::memory_order_acquire) - released);
  }
  // Bytes of records released so far (any thread): grows whenever the writer gives records back.
  uint64_t released() const { return released_.load(std::memory_order_acquire); }
  // The most bytes records held, sampled whenever the producer changes chunks or is refused.
  uint64_t high_water() const { return high_water_.load(std::memory_order_relaxed); }

 private:
  static constexpr uint32_t kNone = UINT32_MAX;
  static uint64_t record_size(uint64_t bytes) { return (sizeof(RecordHeader) + bytes + 7) & ~uint64_t{7}; }
  // How far past a record both sides ask for the chunk's lines (util::prefetch_ahead).
  static constexpr size_t kPrefetchAhead = 4096;
  // Writes a record at wpos_ of the chunk being filled, which the caller saw has room for it
  // (with the most keys put_keys may write): its header, its keys (put_keys(at) writes them and
  // returns their packed size), the frame; then publishes it. try_push() and try_push_decoded()
  // differ only in how they write the keys (defined and inlined in ring.cpp: the fast path).
  template <class PutKeys>
  [[gnu::always_inline]] inline void put_record(uint64_t ts_ns, uint32_t linktype, uint32_t wirelen,
                                                const uint8_t* data, uint32_t caplen, PutKeys put_keys);
  void sample_high_water(uint64_t head);

  std::unique_ptr<BufferPool> own_;  // Ring(bytes)
  BufferPool* pool_;
  size_t chunk_bytes_;  // pool_->chunk_bytes(), read per push without the pointer
  // The chunks of the ring in order, as ids: written by the producer before it publishes the
  // records in them (head_), read by the consumer as it reaches them. Never more than the pool's
  // chunks are in the ring, so a slot is rewritten only once the consumer read it (and gave its
  // chunk, or a later one, back through the pool's mutex).
  std::vector<uint32_t> slots_;
  // Producer.
  alignas(64) std::atomic<uint64_t> head_{0};  // bytes of records pushed
  uint8_t* wbase_ = nullptr;                   // the memory of the chunk being filled
  size_t wpos_;  // offset in it; chunk_bytes_ before the first (as full: one test for both)
  size_t prefetched_w_ = 0;
  uint64_t wslot_ = 0;  // slots written
  std::atomic<uint64_t> high_water_{0};
  // Consumer.
  alignas(64) std::atomic<uint64_t> released_{0};  // bytes of records released
  uint64_t read_ = 0;                              // bytes of records consumed
  uint64_t cached_head_ = 0;
  uint32_t rchunk_ = kNone;         // the chunk being read
  const uint8_t* rbase_ = nullptr;  // its memory (pool_->chunk(rchunk_))
  size_t rpos_ = 0;
  size_t prefetched_r_ = 0;
  uint64_t rslot_ = 0;            // slots read
  std::vector<uint32_t> passed_;  // chunks read to their end, given back at release()
};

}  // namespace tmach::store
