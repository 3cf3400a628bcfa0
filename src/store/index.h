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
//           kNetTunnel + kind for each tunnel the packet went through, kNetCut for a
//           frame cut short before its keys (cut_before_its_keys()), kNetFragment for an IP
//           fragment;
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
#include <stdexcept>
#include <string>
#include <type_traits>
#include <unordered_map>
#include <utility>
#include <vector>

#include "packet/datagram_memory.h"
#include "packet/fragment_id.h"
#include "packet/packet_info.h"
#include "store/index_keys.h"
#include "store/roaring_writer.h"
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
// ... and frames cut short before their keys (store::cut_before_its_keys(): a snaplen): a
// query adds them to its candidates, whatever its filter, and its re-check judges them
// (query::PacketFilter: as libpcap does, where tm and libpcap read the frame alike).
inline constexpr uint32_t kNetCut = 0x20000;
// ... and IP fragments, first and later (a layer with MF set or an offset): under a `not` a
// query adds them to its candidates (query/planner.cpp), since a later fragment's keys are its
// datagram's and the re-check judges it by its first fragment only when the query reads that
// one (a time window may leave it out). Sidecars written before it have none (the old limit).
inline constexpr uint32_t kNetFragment = 0x30000;

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

// Finished roaring containers of a segment's keys (IndexBuilder), one record each in the
// order they were made: the key's slot with the container's kind in its top 2 bits, the
// container's key and cardinality less one (16 bits each), then its data (the portable
// format's bytes, which tell their size: 2 a value for an array, 8192 for a bitset, 2 + 4 a
// run for runs). 8 bytes of header: a segment of small packets makes about a container for
// every three of its index keys. Records are found by a reference: their offset in the arena
// divided by 2 (every size is even). Kept in 2 MiB chunks that clear() keeps: the builder's
// next segment reuses them; a record never straddles two chunks. The chunks are in base pages
// (util::page_alloc), not huge pages: written once in sequence, they gain little from 2 MiB
// pages, and on the benchmark VM fresh huge pages made recording small frames far slower
// (DESIGN.md, "Open problem: minimum-size frames").
class ContainerArena {
 public:
  static constexpr size_t kChunk = size_t{1} << 21;
  static constexpr size_t kHeader = 8;
  ContainerArena() = default;
  // (a moved-from arena is empty, ready for use)
  ContainerArena(ContainerArena&& o) noexcept { swap(o); }
  ContainerArena& operator=(ContainerArena&& o) noexcept {
    ContainerArena(std::move(o)).swap(*this);
    return *this;
  }
  void swap(ContainerArena& o) noexcept {
    chunks_.swap(o.chunks_);
    used_.swap(o.used_);
    std::swap(cur_, o.cur_);
    std::swap(at_, o.at_);
  }
  // Room for container `c` of `slot`: writes its header, returns where its c.bytes bytes of
  // data go. (A slot takes 30 bits: a segment's keys are far fewer, IndexBuilder's key cap.)
  uint8_t* add(const RoaringContainer& c, uint32_t slot) {
    if (slot >> 30) [[unlikely]]
      throw std::length_error("index: more than 2^30 keys in a segment");
    const size_t n = kHeader + c.bytes;
    if (at_ + n > kChunk || chunks_.empty()) [[unlikely]]
      next_chunk();
    uint8_t* p = chunks_[cur_].get() + at_;
    const uint32_t tagged = slot | uint32_t{c.kind} << 30;
    std::memcpy(p, &tagged, 4);
    std::memcpy(p + 4, &c.key, 2);
    std::memcpy(p + 6, &c.card_minus_1, 2);
    at_ += n;
    used_[cur_] = at_;
    return p + kHeader;
  }
  // f(reference, container, slot, data) for every record, in the order they were added.
  template <class F>
  void for_each(F&& f) const {
    for (size_t c = 0; c < used_.size() && c <= cur_; ++c)
      for (size_t at = 0; at < used_[c];) {
        const uint8_t* p = chunks_[c].get() + at;
        const RoaringContainer rc = container(p);
        f(static_cast<uint32_t>((c * kChunk + at) / 2), rc, slot(p), p + kHeader);
        at += kHeader + rc.bytes;
      }
  }
  // The reference of the record whose data add() put at `data` (the last one added).
  uint32_t reference(const uint8_t* data) const {
    return static_cast<uint32_t>((cur_ * kChunk + static_cast<size_t>(data - kHeader - chunks_[cur_].get())) /
                                 2);
  }
  const uint8_t* record(uint32_t ref) const {
    const size_t off = size_t{ref} * 2;
    return chunks_[off / kChunk].get() + off % kChunk;
  }
  static RoaringContainer container(const uint8_t* record) {
    uint32_t tagged;
    RoaringContainer c;
    std::memcpy(&tagged, record, 4);
    std::memcpy(&c.key, record + 4, 2);
    std::memcpy(&c.card_minus_1, record + 6, 2);
    c.kind = static_cast<RoaringContainer::Kind>(tagged >> 30);
    switch (c.kind) {
      case RoaringContainer::kArray:
        c.bytes = static_cast<uint16_t>(2 * (c.card_minus_1 + 1));
        break;
      case RoaringContainer::kBitset:
        c.bytes = 8192;
        break;
      default: {
        uint16_t runs;
        std::memcpy(&runs, record + kHeader, 2);
        c.bytes = static_cast<uint16_t>(2 + 4 * runs);
      }
    }
    return c;
  }
  static uint32_t slot(const uint8_t* record) {
    uint32_t tagged;
    std::memcpy(&tagged, record, 4);
    return tagged & ((uint32_t{1} << 30) - 1);
  }
  static const uint8_t* data(const uint8_t* record) { return record + kHeader; }
  // Empties it, keeping its chunks (and, until the next add(), what they hold).
  void clear() {
    cur_ = 0;
    at_ = 0;
    std::fill(used_.begin(), used_.end(), 0);
  }
  uint64_t memory_bytes() const { return chunks_.size() * uint64_t{kChunk}; }

 private:
  struct Free {
    void operator()(uint8_t* p) const noexcept { util::page_free(p, kChunk); }
  };
  void next_chunk();
  std::vector<std::unique_ptr<uint8_t[], Free>> chunks_;
  std::vector<size_t> used_;  // bytes used in each chunk
  size_t cur_ = 0, at_ = 0;   // the chunk being filled, and how far
};

// A segment's indexes as postings: per field every key in SegmentIndex's order (addresses
// bytewise, scalars numerically), each once, with the bitmap of the packets carrying it as
// the key's finished containers in the builder's arena, in window order. The sealer writes the
// sidecar straight from them (write()), without a Roaring bitmap per key. The postings made by
// an IndexBuilder are valid until its next add(), its end, or its move (`arena` points into it),
// and are not to be copied.
struct PostingIndex {
  struct Span {
    const uint32_t* data;  // the references of the key's containers in the arena
    uint32_t size;         // how many
    // The bitmap's serialized size (roaring_portable_size): the sidecar writer visits keys in
    // key order and sizes its sections first.
    uint32_t bytes;
  };
  PostingIndex() = default;
  PostingIndex(const PostingIndex&) = delete;  // (a copy's spans would point into the original)
  PostingIndex& operator=(const PostingIndex&) = delete;
  PostingIndex(PostingIndex&&) = default;  // (the vectors' memory moves with them)
  PostingIndex& operator=(PostingIndex&&) = default;
  const ContainerArena* arena = nullptr;
  // Every key's container references, key after key (kept memory).
  UninitVector<uint32_t> refs;
  std::vector<std::pair<AddrKey, Span>> addr;
  std::vector<std::pair<uint32_t, Span>> port, proto, net, vlan;
  std::vector<uint32_t> slot_end;  // IndexBuilder's scratch while grouping (kept memory)

  // Writes the span's bitmap: s.bytes bytes at `out`.
  void write(Span s, uint8_t* out) const;
  void prefetch(Span s) const {
    if (s.size) __builtin_prefetch(arena->record(s.data[0]));
  }
};

// The same as Roaring bitmaps, made as a sidecar read back holds them (addMany, runOptimize).
SegmentIndex to_segment_index(const PostingIndex& p);

// Builds a segment's indexes as packets are appended. Per packet it finds each key's slot
// through flat tables (one direct array for ports, protocols and VLANs, one open-addressed
// probe per address: 4-byte keys for IPv4, 16-byte ones for the rest) and appends
// (slot, ordinal) to one sequential log — no per-key containers are touched on the packet
// path. The log holds one window of packets: those whose ordinals share their high 16 bits,
// one roaring container's worth. When a window is complete its log is grouped by slot (a
// counting sort over the keys it touched, in the caches) and each key's container is
// written to the arena as the sidecar will hold it; the log's memory is then reused. A seal
// only gathers each key's containers and writes a header before them. So the memory the
// builder touches is bounded by its window and its containers (about the sidecar's size),
// not a log and postings of 8 bytes for every key of every packet, which were most of a
// recording's fresh memory.
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
  // The postings of everything added, in the builder's own PostingIndex, which keeps its
  // memory for the builder's next segment; the builder is empty afterwards. The reference stays valid until
  // the builder's next add() or finish_postings(), or its end. With `two_threads`, the address keys' spans
  // are made and sorted on a helper thread (a std::async task, joined before it returns) while this one makes
  // the scalar keys'.
  const PostingIndex& finish_postings(bool two_threads = false);
  SegmentIndex finish();          // as Roaring bitmaps; the builder is empty afterwards
  SegmentIndex snapshot() const;  // the same, keeping the state (segment being written)
  void clear();                   // empties the builder, keeping its memory

  // Index keys added so far (every key of every packet added, as given): what the sidecar
  // grows with. The store writer seals a segment early when they reach
  // its cap (StoreWriter: segment_size / 8).
  uint64_t entries() const { return entries_; }
  // Distinct keys so far (slots: one per address, port, VLAN... seen in the segment). Each
  // costs memory of its own, whatever its entries: a table slot, its place in the key list
  // and the postings, a container header for each window it is in, a bitmap's header in the
  // sidecar (~100 bytes).
  uint64_t keys() const { return nslots_; }
  // The heap memory the builder holds (allocated capacity: the window's log and lists, the
  // containers, the tables, and the postings it keeps for its next segment), for the memory
  // accounting.
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

  // The log of the window's packets, given in sequence (ordinal first_ord_, first_ord_ + 1,
  // ...) as their keys' slots and, per packet, how many (4 bytes a key and 1 a packet). A
  // packet out of sequence (a later fragment indexed again when its first arrived) goes to
  // out_of_sequence_ as pairs, for the whole segment: the seal merges them into their keys.
  // (HugeVectors: ~1 MiB for a window of small packets, kept for the next window)
  util::HugeVector<uint32_t> slots_;
  util::HugeVector<uint8_t> counts_;  // a packet has < 256 keys
  std::vector<Entry> out_of_sequence_;
  bool any_ = false;                       // something was added
  uint32_t first_ord_ = 0, next_ord_ = 0;  // next_ord_ - first_ord_ packets in the window's log
  uint32_t ord_ = 0;                       // add(): its ordinal
  uint64_t entries_ = 0;                   // entries()

  // Ends the window: its keys' containers made from the log and the lists, which are emptied.
  void flush_window();
  // Writes slot's container of `n` ordinals of one window (ascending, repeats next to each
  // other, which it drops) to the arena: its reference and shape.
  std::pair<uint32_t, RoaringContainer> write_container(uint32_t slot, uint32_t* ords, size_t n);
  // The same for a window just completed, counted in the slot's state.
  void add_container(uint32_t slot, uint32_t* ords, size_t n);
  // Per slot: its entries in the window (while flushing: where they go, then where they end).
  std::vector<uint32_t> window_;
  // Per slot: its containers so far, their data's bytes and whether one is a run.
  struct SlotState {
    uint32_t containers = 0;
    uint32_t data_bytes = 0;
    bool has_run = false;
  };
  std::vector<SlotState> slot_state_;
  std::vector<uint32_t> touched_;       // slots with entries in the window (scratch)
  UninitVector<uint32_t> window_ords_;  // the window's ordinals grouped by slot (scratch)
  ContainerArena arena_;

  // Waiting for their first fragment, by datagram: found at once when it comes (a scan of
  // all of them per first fragment cost O(orphans) each); the oldest go first when full.
  packet::WaitingFragments<Orphan> orphans_{kMaxOrphans};
  size_t nslots_ = 0;
  std::vector<int32_t> direct_;                    // encoded port/protocol/VLAN key -> slot
  std::vector<std::pair<uint32_t, int32_t>> net_;  // few keys: linear

  // Protocols and network-layer kinds: a handful of keys, each carried by a large share of the
  // packets (one of each per IP layer). Their ordinals in the window are appended to a list
  // per key as they come, a sequential write, rather than logged: the window's counting sort
  // then reads and scatters a third fewer entries, and takes these lists as they are.
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
  // Every address key and its slot, for the seal.
  std::vector<std::pair<AddrKey, int32_t>> addr_keys_;
  PostingIndex postings_;                 // finish_postings()'s result
  void build_postings(bool two_threads);  // into postings_, after the last flush_window()
  // f(field, key, slot) for every scalar key (port, protocol, VLAN, network kind): ascending
  // within a field but the network kinds (in the order they came).
  template <class F>
  void for_each_scalar(F&& f) const;
};

}  // namespace tmach::store
