// Per-segment indexes: one per field, each mapping a value to the set of packet ordinals
// (position of the packet in its segment, 0-based) as a CRoaring bitmap.
//
// What goes in each field is decided once, by index_keys() (index_keys.h), and the planner
// relies on it. Every IP layer means those of the packet as FragmentLayers completes it when
// the builder is given one: a later fragment carries its first fragment's ports and inner
// layers.
// - kAddr:  every IP layer's source and destination, and ARP sender/target addresses
//           (16-byte v4-mapped form);
// - kPort:  every IP layer's source and destination port, for TCP, UDP and SCTP only;
// - kProto: every IP layer's transport protocol (after IPv6 extension headers);
// - kNet:   the kind of network layer: 4 (an IPv4 layer), 6 (an IPv6 layer), 0x0806 (ARP),
//           another EtherType for other frames, 0 for frames that could not be decoded, and
//           kNetTunnel + kind for each tunnel the packet went through;
// - kVlan:  every VLAN id, plus kAnyVlan for tagged frames.
#pragma once

#include <algorithm>
#include <array>
#include <bit>
#include <cstdint>
#include <cstring>
#include <deque>
#include <map>
#include <memory>
#include <roaring/roaring.hh>
#include <span>
#include <string>
#include <type_traits>
#include <unordered_map>
#include <utility>
#include <vector>

#include "packet/datagram_memory.h"
#include "packet/fragment_id.h"
#include "packet/packet_info.h"
#include "store/index_keys.h"
#include "util/huge_alloc.h"

namespace tmach::packet {
class FragmentLayers;
}

namespace tmach::store {

enum class Field : uint8_t { kAddr = 1, kPort = 2, kProto = 3, kNet = 4, kVlan = 5 };
inline constexpr uint32_t kAnyVlan = 0x10000;
inline constexpr uint32_t kNetV4 = 4, kNetV6 = 6, kNetArp = 0x0806, kNetUndecoded = 0;
// kNet also counts tunnels: kNetTunnel + IpLayer::tunnel for every layer a tunnel carried
// (statistics: what the link carries; keys above any EtherType).
inline constexpr uint32_t kNetTunnel = 0x10000;

using AddrKey = std::array<uint8_t, 16>;

// v4-mapped keys differ only in their last 4 bytes: mix every bit into the low bits (the
// tables index by the low bits).
struct AddrKeyHash {
  size_t operator()(const AddrKey& k) const {
    uint64_t a, b;
    std::memcpy(&a, k.data(), 8);
    std::memcpy(&b, k.data() + 8, 8);
    uint64_t h = a * 0x9e3779b97f4a7c15ull ^ b;
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ull;
    h ^= h >> 33;
    return static_cast<size_t>(h);
  }
};

inline bool same_key(const AddrKey& x, const AddrKey& y) {
  uint64_t a[2], b[2];
  std::memcpy(a, x.data(), 16);
  std::memcpy(b, y.data(), 16);
  return a[0] == b[0] && a[1] == b[1];
}

// A finished, queryable index (from a sidecar, or a snapshot of the builder).
struct SegmentIndex {
  // Sorted by key, so a CIDR is a contiguous key range and a port range too.
  std::map<AddrKey, Roaring> addr;
  std::map<uint32_t, Roaring> port, proto, net, vlan;

  const std::map<uint32_t, Roaring>& scalar(Field f) const;
  size_t memory_bytes() const;
};

// A segment's indexes as plain postings: per field every key in SegmentIndex's order
// (addresses bytewise, scalars numerically), each once, with the ascending, duplicate-free
// ordinals of the packets carrying it; all ordinals in one array. What IndexBuilder groups its
// log into: the sealer writes the sidecar straight from it (roaring_writer.h) rather than
// through a Roaring bitmap per key, and frees one array instead of thousands of containers.
// An allocator whose resize() leaves new elements uninitialised (default-initialised): for
// buffers that are then fully overwritten, where the zero fill was a pass over fresh pages
// of its own (the seal's page faults were mostly that memset). Buffers of 2 MiB and more
// are in huge pages (util::HugeAllocator): these are the postings and sidecar sections.
template <class T>
struct DefaultInitAllocator : util::HugeAllocator<T> {
  template <class U>
  struct rebind {
    using other = DefaultInitAllocator<U>;
  };
  DefaultInitAllocator() = default;
  template <class U>
  DefaultInitAllocator(const DefaultInitAllocator<U>&) noexcept {}
  template <class U>
  void construct(U* p) noexcept(std::is_nothrow_default_constructible_v<U>) {
    ::new (static_cast<void*>(p)) U;
  }
  template <class U, class... Args>
  void construct(U* p, Args&&... args) {
    ::new (static_cast<void*>(p)) U(std::forward<Args>(args)...);
  }
};
template <class T>
using UninitVector = std::vector<T, DefaultInitAllocator<T>>;

//
// A span's ordinals are in `ords`, in `unordered`, or (a protocol's or network kind's, nearly
// always) in the builder's own list of them, used where it is: the postings made by an
// IndexBuilder are valid until its next add() or its end, and are not to be copied.
struct PostingIndex {
  struct Span {
    const uint32_t* data;
    uint32_t size;
    // The bitmap's serialized size (roaring_portable_size), found while the ordinals were
    // at hand: the sidecar writer visits keys in key order, all over the ordinals.
    uint32_t bytes;
  };
  PostingIndex() = default;
  PostingIndex(const PostingIndex&) = delete;  // (a copy's spans would point into the original)
  PostingIndex& operator=(const PostingIndex&) = delete;
  PostingIndex(PostingIndex&&) = default;  // (the vectors' memory moves with them)
  PostingIndex& operator=(PostingIndex&&) = default;
  // May be longer than what the spans cover (kept memory); grown without a zero fill, as
  // the grouping writes every entry.
  UninitVector<uint32_t> ords;
  // The lists that were not ascending (a packet carrying a protocol twice, or a fragment
  // indexed again): copied here, sorted and de-duplicated (kept memory).
  UninitVector<uint32_t> unordered;
  std::vector<std::pair<AddrKey, Span>> addr;
  std::vector<std::pair<uint32_t, Span>> port, proto, net, vlan;
  std::vector<uint32_t> slot_end;  // IndexBuilder's scratch while grouping (kept memory)

  static std::span<const uint32_t> of(Span s) { return {s.data, s.size}; }
};

// The same as Roaring bitmaps, made as a sidecar read back holds them (addMany, runOptimize).
SegmentIndex to_segment_index(const PostingIndex& p);

// Builds a segment's indexes as packets are appended. Per packet it finds each key's slot
// through flat tables (one direct array for ports, protocols and VLANs, one open-addressed
// probe per address: 4-byte keys for IPv4, 16-byte ones for the rest) and appends
// (slot, ordinal) to one sequential log — no per-key containers are touched on the packet
// path. Sealing groups the log by slot into postings (a counting sort; ordinals stay
// ascending but where a fragment was indexed again, or a packet carries a key twice).
// (A per-flow variant, indexing each connection's keys once, was measured slower on the
// benchmark traffic: most connections are a handful of packets, and the per-flow
// allocations cost more than the lookups they save.)
class IndexBuilder {
 public:
  IndexBuilder();
  // The packet's keys as index_keys() computed them (index_keys.h): the recorder's capture
  // thread computes them for every packet that is not an IP fragment.
  void add(uint32_t ordinal, const IndexKeys& keys) { add(ordinal, KeysView::of(keys)); }
  // The same from a view of them (the store writer's: the packed form in the RAM ring).
  void add(uint32_t ordinal, const KeysView& keys);
  // The same from a decoded packet. With `frags` (one memory per store writer, shared by its
  // segments, fed in capture order with `ts_ns`), a later fragment is indexed as its
  // datagram: with its first fragment's ports and inner layers (packet/fragment_layers.h). A
  // later fragment that comes before its first one in the same segment is indexed again
  // when the first arrives (up to kMaxOrphans waiting). Without `frags`, packets are indexed
  // as decoded.
  void add_packet(uint32_t ordinal, const packet::PacketInfo& p, packet::FragmentLayers* frags = nullptr,
                  uint64_t ts_ns = 0);
  // The postings of everything added, grouped into `out` (whose memory is reused).
  void build_postings(PostingIndex& out, bool two_threads = false) const;
  // The same into the builder's own PostingIndex, which keeps its memory for the builder's
  // next segment; the builder is empty afterwards. The reference stays valid until the
  // builder's next add() or finish_postings(), or its end.
  // With `two_threads`, the address keys' spans are made and sorted on a helper thread (a
  // std::async task, joined before it returns) while this one makes the scalar keys'.
  const PostingIndex& finish_postings(bool two_threads = false);
  SegmentIndex finish();          // as Roaring bitmaps; the builder is empty afterwards
  SegmentIndex snapshot() const;  // the same, keeping the state (segment being written)
  void clear();                   // empties the builder, keeping its memory

  // Index keys added so far (every key of every packet added, as given): what the log and the
  // postings grow with, 4 bytes each. The store writer seals a segment early when they reach
  // its cap (StoreWriter: segment_size / 8).
  uint64_t entries() const { return entries_; }
  // Distinct keys so far (slots: one per address, port, VLAN... seen in the segment). Each
  // costs memory of its own, whatever its entries: a table slot, its place in the key list
  // and the postings, a bitmap's header in the sidecar (~100 bytes).
  uint64_t keys() const { return nslots_; }
  // The heap memory the builder holds (allocated capacity: the log, the lists, the tables,
  // and the postings it keeps for its next segment), for the memory accounting.
  uint64_t memory_bytes() const;

 private:
  struct V6Slot {
    AddrKey key;
    int32_t slot;  // -1 = empty
  };
  struct V4Slot {
    uint32_t key;
    int32_t slot;  // -1 = empty
  };
  struct Entry {
    uint32_t slot;
    uint32_t ord;
  };
  int32_t ensure(int32_t& slot) {
    if (slot < 0) slot = static_cast<int32_t>(nslots_++);
    return slot;
  }
  int32_t& v6_slot(const AddrKey& k);
  int32_t& v4_slot(uint32_t k);
  size_t net_index(uint32_t key);  // in net_ (added if new)

  // As many as the fragment memory's datagrams (packet/fragment_layers.h): a datagram whose
  // later fragments all came first is indexed whole up to that many such datagrams at once.
  static constexpr size_t kMaxOrphans = 4096;
  struct Orphan {  // a later fragment whose first was not seen yet
    uint32_t ordinal;
    packet::PacketInfo info;
  };
  void add_keys(uint32_t ordinal, const packet::PacketInfo& p);

  // Appends in fixed chunks rather than one vector: growing never copies (a segment's log is
  // tens of MB), and clear() keeps the chunks for the builder's next segment. A chunk is one
  // huge page (util::huge_alloc): one page fault where 4 KiB pages took 512.
  template <class T, size_t kChunk>
  class ChunkLog {
    static_assert(std::has_single_bit(kChunk));
    static_assert(std::is_trivially_copyable_v<T>);
    struct Free {
      void operator()(T* p) const noexcept { util::huge_free(p, kChunk * sizeof(T)); }
    };

   public:
    void push_back(T v) {
      const size_t c = size_ / kChunk;
      if (c == chunks_.size())
        chunks_.push_back(std::unique_ptr<T[], Free>(static_cast<T*>(util::huge_alloc(kChunk * sizeof(T)))));
      chunks_[c][size_ % kChunk] = v;
      ++size_;
    }
    size_t size() const { return size_; }
    // Where `n` more values go when the current chunk has room for them (write them there,
    // then commit() as many as were written), else null (push_back() them).
    T* room(size_t n) {
      const size_t c = size_ / kChunk, at = size_ % kChunk;
      return c < chunks_.size() && at + n <= kChunk ? chunks_[c].get() + at : nullptr;
    }
    void commit(size_t n) { size_ += n; }
    T operator[](size_t i) const { return chunks_[i / kChunk][i % kChunk]; }  // (kChunk: a power of two)
    size_t memory_bytes() const {
      return chunks_.size() * kChunk * sizeof(T) + chunks_.capacity() * sizeof(void*);
    }
    void clear() { size_ = 0; }
    template <class F>
    void for_each(F&& f) const {
      for_each_chunk([&](const T* p, size_t n) {
        for (size_t i = 0; i < n; ++i) f(p[i]);
      });
    }
    // Chunk c's values and how many of them are in use (its pointer is null past the end).
    const T* chunk(size_t c, size_t& n) const {
      if (c * kChunk >= size_) {
        n = 0;
        return nullptr;
      }
      n = std::min(kChunk, size_ - c * kChunk);
      return chunks_[c].get();
    }
    // f(pointer, count) per chunk, in order.
    template <class F>
    void for_each_chunk(F&& f) const {
      for (size_t c = 0; c * kChunk < size_; ++c) f(chunks_[c].get(), std::min(kChunk, size_ - c * kChunk));
    }

   private:
    std::vector<std::unique_ptr<T[], Free>> chunks_;
    size_t size_ = 0;
  };

  // The log of what was added: packets given in sequence (ordinal first_ord_, first_ord_ + 1,
  // ...) as their keys' slots and, per packet, how many — 4 bytes a key and 1 a packet
  // rather than an (slot, ordinal) pair of 8 bytes a key: the log is the builder's memory,
  // most of it touched for the first time, and what the seal's counting sort reads twice.
  // A packet out of sequence (a later fragment indexed again when its first arrived) goes to
  // out_of_sequence_ as pairs.
  ChunkLog<uint32_t, size_t{1} << 19> slots_;  // 2 MiB chunks
  ChunkLog<uint8_t, size_t{1} << 21> counts_;  // 2 MiB chunks; a packet has < 256 keys
  std::vector<Entry> out_of_sequence_;
  uint32_t first_ord_ = 0, next_ord_ = 0;  // next_ord_ - first_ord_ packets in sequence
  uint32_t ord_ = 0;                       // add(): its ordinal
  uint64_t entries_ = 0;                   // entries()

  // Waiting for their first fragment, by datagram: found at once when it comes (a scan of
  // all of them per first fragment cost O(orphans) each); the oldest go first when full.
  packet::WaitingFragments<Orphan> orphans_{kMaxOrphans};
  size_t nslots_ = 0;
  std::vector<int32_t> direct_;                    // encoded port/protocol/VLAN key -> slot
  std::vector<std::pair<uint32_t, int32_t>> net_;  // few keys: linear

  // Protocols and network-layer kinds: a handful of keys, each carried by a large share of the
  // packets (one of each per IP layer). Their ordinals are appended to a list per key as they
  // come, a sequential write, rather than logged: the seal's counting sort then reads and
  // scatters a third fewer entries (build/micro_seal), and copies these lists whole.
  // A list grows by remapping its pages rather than copying them (util::HugeVector): the
  // common ones hold nearly every packet, tens of MB a segment.
  struct List {
    uint32_t slot;
    util::HugeVector<uint32_t> ords;
  };
  void append_to_list(int32_t& list, int32_t& slot);
  std::vector<List> lists_;
  // Cleared lists' memory, for the next segment.
  std::vector<util::HugeVector<uint32_t>> spare_lists_;
  std::vector<int32_t> proto_list_;  // protocol -> index in lists_, -1 = none yet
  std::vector<int32_t> net_list_;    // net_[i] -> index in lists_, -1 = none yet
  std::vector<V6Slot> v6_;           // open addressing, power of two
  size_t v6_used_ = 0;
  std::vector<V4Slot> v4_;  // open addressing, power of two, multiplicative hash
  size_t v4_used_ = 0;
  unsigned v4_shift_ = 0;  // 64 - log2(v4_.size())
  size_t v4_home(uint32_t k) const { return static_cast<size_t>((k * 0x9e3779b97f4a7c15ull) >> v4_shift_); }
  // Every address key and its slot, for build_postings().
  std::vector<std::pair<AddrKey, int32_t>> addr_keys_;
  PostingIndex postings_;  // finish_postings()'s result
};

}  // namespace tmach::store
