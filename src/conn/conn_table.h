// The connection table: one entry per bidirectional connection, with its memory fixed at
// construction.
//
// Two arrays: the entries, kept dense (entry i < size(); an ended one is replaced by the
// last), and an open-addressed index over them (linear probing, backward-shift deletion)
// whose 8-byte slots hold the upper half of the entry's hash and its position. The index is
// sized for a load of 0.7 at max_connections, as the entries themselves used to be; keeping
// the 128-byte entries out of it means the memory a run touches (and the expiry sweep
// reads) grows with the connections actually open, not with the configured maximum.
//
// Expiry is incremental: expire_step() looks at a bounded slice of the entries, so the
// packet path never stalls on a table-wide sweep. Entry pointers are valid until the next
// call that inserts or expires.
//
// A full table makes room by eviction, CLOCK (second chance) style: a hand walks the
// entries; one whose connection had a packet since the hand last passed it (`referenced`,
// set by find_or_insert) loses that mark and stays, one idle since then (or timed out) is
// ended, with EndReason::kTableFull (kTimeout if it had timed out anyway), and the new
// connection takes its place. So a flood of one-packet connections replaces its own oldest
// entries in arrival order, while a connection with a packet in each turn of the hand
// (roughly max_connections new connections) keeps its entry. Each entry the hand looks at
// either makes room or uses up a mark some packet set, so the work is O(1) amortised per
// packet whatever the traffic, with no table-wide scan; and it looks at no more than
// kEvictScan entries per new connection: if all of them were referenced it ends the idlest
// of them (smallest active_clock). Only entries with suspend_timeout are never evicted: when
// the hand meets nothing else, the new connection is refused (untracked).
#pragma once

#include <algorithm>
#include <cstdint>
#include <functional>
#include <vector>

#include "conn/flow_key.h"
#include "util/huge_array.h"

namespace tmach::conn {

struct Timeouts {
  uint64_t tcp_ns = 300ull * 1000000000;    // TCP, open
  uint64_t closed_ns = 10ull * 1000000000;  // TCP after FIN both ways or RST
  uint64_t udp_ns = 60ull * 1000000000;
  uint64_t other_ns = 60ull * 1000000000;
};

// The live entries are the table's first size() (dense); a new one starts all zero
// (ConnEntry{}), which is why there are no default member initializers.
//
// Two clocks: the packets' own times (first_ts/last_ts: the smallest and largest timestamp
// of the connection's packets, what its flow record says) and the recorder's clock, the
// newest timestamp seen so far, which never goes backwards (born_clock/active_clock). Idleness is
// measured on the clock, so a packet older than others already seen (input out of time order)
// neither expires nor splits its connection.
struct alignas(64) ConnEntry {
  FlowKey key;
  uint8_t tcp_flags[2];  // OR of TCP flags, by direction (0 = originator)
  // Flags and the class, packed into two bytes so that an entry keeps to two cache lines.
  uint8_t orig_is_a : 1;  // side a sent the first packet we saw
  uint8_t cut : 1;        // cutoff reached
  uint8_t fin_seen : 2;   // bit 0: originator FIN, bit 1: responder FIN
  uint8_t rst_seen : 1;
  uint8_t suspend_cutoff : 1;   // per-connection control (daemon): record it whole
  uint8_t suspend_timeout : 1;  // per-connection control: never expire by inactivity (nor evict)
  uint16_t cls : 9;             // storage class, decided on the first packet (< kMaxClasses)
  uint64_t first_ts, last_ts;   // smallest and largest packet timestamp
  uint64_t born_clock;          // the clock when the entry was created (the flow id's seed)
  uint64_t active_clock;        // the clock at its last packet: idle since then
  uint64_t cutoff_ts;           // time the cutoff was reached
  uint64_t pkts[2];             // by direction (0 = originator)
  uint64_t wire[2];             // wire bytes by direction
  uint64_t stored : 45;         // packets stored (3.5e13 at most: years of a 10 Gbit/s link)
  // The opening SYN's sequence number, folded to 16 bits (fold_syn_seq): a SYN after the close
  // with the same one is that SYN sent again, not a new connection (as Wireshark tells them).
  uint64_t syn_seq : 16;
  // Moved to another class while open (Recorder::set_host_class): its first packets are in
  // another class's segments (the flow record's kFlowClassMoved).
  uint64_t class_moved : 1;
  // The stored packets reach past cutoff_ts (the flow record's kFlowControlAfterCut): a TCP
  // control packet (keep_tcp_control) was stored after the cutoff, or packets stored before
  // it were later in time (input out of order).
  uint64_t control_after_cut : 1;
  // A packet since the eviction hand last passed (its CLOCK mark): a bit of the word every
  // packet writes anyway (an entry has no byte to spare).
  uint64_t referenced : 1;

  bool closed() const { return rst_seen || fin_seen == 3; }
  // Wire bytes, both directions: what the cutoff counts.
  uint64_t bytes() const { return wire[0] + wire[1]; }
  // The key's hash (KeyedPacket::hash), recomputed rather than stored: an entry is two
  // cache lines.
  uint64_t hash() const { return hash_key(key); }
};
static_assert(sizeof(ConnEntry) == 128);
// The classes a ConnEntry can name (ConnEntry::cls).
inline constexpr size_t kMaxClasses = 512;

// An ESP/AH connection (keyed by its SA pair) keeps the SPI of the pair's second SA (the one
// that does not name it: KeyedPacket::sa_partner; 0 while none was seen) in the bits of the
// fields only TCP uses (tcp_flags, syn_seq): an entry has no byte to spare. The first one seen
// is kept.
inline uint32_t sa_partner(const ConnEntry& e) {
  return static_cast<uint32_t>(e.tcp_flags[0]) << 24 | static_cast<uint32_t>(e.tcp_flags[1]) << 16 |
         static_cast<uint32_t>(e.syn_seq);
}
inline void note_sa_partner(ConnEntry& e, uint32_t spi) {
  if (spi == 0 || sa_partner(e) != 0) return;
  e.tcp_flags[0] = static_cast<uint8_t>(spi >> 24);
  e.tcp_flags[1] = static_cast<uint8_t>(spi >> 16);
  e.syn_seq = spi & 0xffffu;
}

// A SYN's sequence number as ConnEntry::syn_seq keeps it.
inline uint16_t fold_syn_seq(uint32_t seq) { return static_cast<uint16_t>(seq ^ (seq >> 16)); }

// kReopened: a closed TCP connection's 5-tuple opened again (find_or_insert's `opening`).
enum class EndReason : uint8_t { kTimeout, kTableFull, kShutdown, kReopened };

struct ConnTableStats {
  uint64_t created = 0;
  uint64_t expired = 0;     // ended by inactivity (the sweep, or the eviction hand finding it timed out)
  uint64_t evicted = 0;     // ended to make room: the table was full (EndReason::kTableFull)
  uint64_t untracked = 0;   // lookups of a new connection refused: full of never-evicted entries
  uint64_t reopened = 0;    // closed TCP connections ended by a new one on their 5-tuple (kReopened)
  uint64_t hand_steps = 0;  // entries the eviction hand looked at (its work; <= kEvictScan per insert)
  uint64_t peak = 0;
};

class ConnTable {
 public:
  using EndCallback = std::function<void(const ConnEntry&, EndReason)>;

  // `max_connections` bounds the memory: the slot array holds max/0.7 entries.
  ConnTable(size_t max_connections, Timeouts t, EndCallback on_end = {});
  // The most a table of `max_connections` maps (its entries and its index, paged in as they
  // are touched): what the config checks against the machine's memory.
  static uint64_t max_bytes(size_t max_connections);

  // The most entries the eviction hand looks at to make room for one new connection (a
  // bound on the worst case; the amortised work is about one entry per new connection).
  static constexpr size_t kEvictScan = 1024;

  // Finds the entry of `kp` (marking it referenced), or creates it (created = true) with
  // first_ts = last_ts = `ts` (the packet's time) and born_clock = active_clock = `now` (the
  // clock: the newest time seen, >= ts), ending an idle entry first when the table is full
  // (see the top). An entry found idle past its timeout at `now` (the sweep had not come to
  // it yet) is ended by it first, and the packet starts a new connection. So is a closed one
  // (FIN both ways, or RST) when the packet opens one, a TCP SYN without ACK (`opening`: its
  // fold_syn_seq(), -1 for any other packet) whose sequence number is not the closed one's
  // SYN's: the 5-tuple used again (a client's port reused, a refused connection tried anew),
  // a new connection with its own cutoff and flow record, as Zeek and Wireshark see it (the
  // same SYN sent again after a RST stays the connection's, as Wireshark's tcp.stream keeps
  // it); without it, the closed one's packets in its last closed_ns would take the new one's
  // place in the cutoff. The caller sets a new entry's syn_seq. Returns null only when the
  // table is full and the hand met nothing but entries with suspend_timeout: the caller stores
  // such packets untracked.
  ConnEntry* find_or_insert(const KeyedPacket& kp, uint64_t ts, uint64_t now, bool& created,
                            int32_t opening = -1);
  // The same for input in time order (the packet's time is the clock).
  ConnEntry* find_or_insert(const KeyedPacket& kp, uint64_t now, bool& created, int32_t opening = -1) {
    return find_or_insert(kp, now, now, created, opening);
  }
  ConnEntry* find(const FlowKey& key, uint64_t hash);
  // Starts loading the index slot of `hash` into the cache (the caller looks it up soon).
  void prefetch(uint64_t hash) const { __builtin_prefetch(&index_[home(tag_of(hash))]); }
  // Once the slot is in the cache: starts loading the entry it names, if any (both its cache
  // lines: the lookup reads the key, the packet path then updates the counters further on).
  // The probe loop's only effect is the prefetch, which the compiler does not count as one:
  // under GCC's default -ffinite-loops it deleted the loop as dead code. The empty volatile
  // asm naming the entry is an effect it must keep (it emits no instruction).
  void prefetch_entry(uint64_t hash) const {
    const uint32_t tag = tag_of(hash);
    for (size_t i = home(tag);; i = (i + 1) & mask_) {
      const Slot s = index_[i];
      if (s.pos1 == 0) return;
      if (s.tag == tag) {
        const char* p = reinterpret_cast<const char*>(&entries_[s.pos1 - 1]);
        __builtin_prefetch(p, 1);
        __builtin_prefetch(p + 64, 1);
        asm volatile("" : : "r"(p));
        return;
      }
    }
  }

  // Advances the expiry sweep by `slots` index slots' worth (the entries a sweep of that
  // many slots would have met: slots * size() / capacity(), at least one), ending idle
  // connections: those idle (active_clock) for longer than their timeout at clock `now`.
  // expire_step(now, capacity()) looks at every entry.
  void expire_step(uint64_t now, size_t slots);
  // Ends every connection: those idle past their timeout at clock `now` by it (kTimeout),
  // the others by the shutdown. Oldest state first is not guaranteed.
  void end_all(uint64_t now);

  size_t size() const { return size_; }
  size_t capacity() const { return index_.size(); }  // index slots
  size_t max_connections() const { return max_; }
  size_t memory_bytes() const { return index_.size() * sizeof(Slot) + entries_.size() * sizeof(ConnEntry); }
  // The memory as mapped (2 MiB pages): the index, committed whole at start, and the entries,
  // committed as the table first fills them (up to the peak of connections open at once).
  size_t index_mapped_bytes() const { return index_.mapped_bytes(); }
  size_t entries_mapped_bytes() const { return entries_.mapped_bytes(); }
  const ConnTableStats& stats() const { return stats_; }
  // The memory a run is sure to touch (for util::Prefaulter): the whole index (every new
  // connection lands somewhere in it), and the first `entry_bytes` of the entries.
  std::vector<std::pair<void*, size_t>> hot_memory(size_t entry_bytes) {
    return {{index_.begin(), index_.mapped_bytes()},
            {entries_.begin(), std::min(entry_bytes, entries_.mapped_bytes())}};
  }
  uint64_t timeout_of(const ConnEntry& e) const;
  // Idle past its timeout at clock `now` (never with suspend_timeout).
  bool timed_out(const ConnEntry& e, uint64_t now) const;

  template <class F>
  void for_each(F&& f) const {
    for (size_t i = 0; i < size_; ++i) f(entries_[i]);
  }
  template <class F>
  void for_each_mutable(F&& f) {
    for (size_t i = 0; i < size_; ++i) f(entries_[i]);
  }

 private:
  // An index slot: zero is empty. `tag` is the upper half of the entry's hash (its home
  // slot is tag & mask_, so backward-shift deletion needs no entry); `pos1` is the entry's
  // position plus one.
  struct Slot {
    uint32_t tag;
    uint32_t pos1;
  };
  static uint32_t tag_of(uint64_t hash) { return static_cast<uint32_t>(hash >> 32); }
  size_t home(uint32_t tag) const { return tag & mask_; }
  // The index slot naming entry `pos` (whose hash is `hash`).
  size_t slot_of(uint64_t hash, uint32_t pos) const;
  // Ends entry `pos`: removes its slot, moves the last entry into its place.
  void erase_entry(size_t pos);
  // Makes room for one entry in a full table (see the top). False: nothing could be ended.
  bool evict_one(uint64_t now);

  util::HugeArray<Slot> index_;
  util::HugeArray<ConnEntry> entries_;  // [0, size_) in use
  size_t mask_;
  size_t max_;
  size_t size_ = 0;
  size_t cursor_ = 0;  // the expiry sweep's position
  size_t hand_ = 0;    // the eviction hand's position
  Timeouts to_;
  EndCallback on_end_;
  ConnTableStats stats_;
};

}  // namespace tmach::conn
