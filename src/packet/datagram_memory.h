// A bounded memory of IP datagrams by their fragment id, for their later fragments: what the
// first fragment said (its connection's key for the connection table, conn/fragment_table.h;
// its decoded layers for the index and the query re-check, packet/fragment_layers.h).
//
// Up to `capacity` datagrams at once, whatever their ids: when full, the datagram begun
// longest ago is forgotten first; each is remembered for `ttl_ns` after its first fragment
// (a first fragment sent again starts its time anew and takes no more room). So a later
// fragment finds its first whenever fewer than `capacity` other datagrams began in between,
// within the ttl. (Direct-mapped tables, as both users had, lost datagrams to collisions: 6
// of 100 outstanding at once, 362 of 1000.) Memory grows with the datagrams remembered, up
// to capacity entries. Not thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <unordered_map>
#include <utility>

#include "packet/fragment_id.h"

namespace tmach::packet {

template <class V>
class DatagramMemory {
 public:
  explicit DatagramMemory(size_t capacity, uint64_t ttl_ns)
      : capacity_(capacity ? capacity : 1), ttl_(ttl_ns) {}

  // The datagram's value, to be (re)written: a first fragment seen at `now_ns`.
  V& remember(const FragmentId& id, uint64_t now_ns) {
    while (map_.size() >= capacity_ && !order_.empty() && !map_.contains(id)) {
      auto [old, seq] = order_.front();
      order_.pop_front();
      if (auto it = map_.find(old); it != map_.end() && it->second.seq == seq) map_.erase(it);
    }
    Entry& e = map_[id];
    e.expires = now_ns + ttl_ ? now_ns + ttl_ : 1;
    e.seq = ++seq_;
    order_.emplace_back(id, e.seq);
    // order_ holds one entry per first fragment seen; those that no longer count (a first sent
    // again) are pruned now and then, so it stays within twice the capacity.
    if (order_.size() > 2 * capacity_ + 16)
      std::erase_if(order_, [&](const auto& o) {
        auto it = map_.find(o.first);
        return it == map_.end() || it->second.seq != o.second;
      });
    return e.value;
  }

  // What the datagram's first fragment left, or null (unknown, forgotten or expired).
  const V* find(const FragmentId& id, uint64_t now_ns) const {
    auto it = map_.find(id);
    if (it == map_.end() || now_ns > it->second.expires) return nullptr;
    return &it->second.value;
  }

  size_t size() const { return map_.size(); }

 private:
  struct Entry {
    uint64_t expires = 0;
    uint64_t seq = 0;  // its place in order_ (the last time it was remembered)
    V value{};
  };
  struct Hash {
    size_t operator()(const FragmentId& id) const { return static_cast<size_t>(id.seeded_hash()); }
  };

  size_t capacity_;
  uint64_t ttl_;
  uint64_t seq_ = 0;
  std::unordered_map<FragmentId, Entry, Hash> map_;
  std::deque<std::pair<FragmentId, uint64_t>> order_;  // (datagram, seq), oldest first
};

}  // namespace tmach::packet
