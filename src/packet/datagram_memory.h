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

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <unordered_map>
#include <utility>
#include <vector>

#include "packet/fragment_id.h"

namespace tmach::packet {

// For hash tables keyed by fragment ids (FragmentId::seeded_hash: a sender chooses the ids).
struct FragmentIdHash {
  size_t operator()(const FragmentId& id) const { return static_cast<size_t>(id.seeded_hash()); }
};

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
  size_t capacity_;
  uint64_t ttl_;
  uint64_t seq_ = 0;
  std::unordered_map<FragmentId, Entry, FragmentIdHash> map_;
  std::deque<std::pair<FragmentId, uint64_t>> order_;  // (datagram, seq), oldest first
};

// Later fragments that came before their datagram's first fragment, waiting for it: the index
// builder's (their decoded packets) and the query re-check's (their place in the answer). Up to
// `capacity` wait at once, the oldest forgotten first; each is found by its datagram when the
// first fragment comes. Memory: at most 4 x capacity values (those taken out leave the front).
template <class T>
class WaitingFragments {
 public:
  explicit WaitingFragments(size_t capacity) : capacity_(capacity ? capacity : 1) {}

  void add(const FragmentId& id, T v) {
    while (by_id_.size() >= capacity_ || slots_.size() >= 4 * capacity_) forget_oldest();
    by_id_.emplace(id, base_ + slots_.size());
    slots_.push_back(Slot{id, std::move(v), true});
  }
  // f(value) for each one waiting for the datagram `id`, oldest first; those for which it
  // returns true stop waiting.
  template <class F>
  void take(const FragmentId& id, F&& f) {
    auto [from, to] = by_id_.equal_range(id);
    std::vector<uint64_t> found;
    for (auto it = from; it != to; ++it) found.push_back(it->second);
    std::sort(found.begin(), found.end());
    for (uint64_t n : found) {
      Slot& s = slots_[n - base_];
      if (!f(s.value)) continue;
      s.waiting = false;
      for (auto it = by_id_.find(id); it != by_id_.end() && it->first == id; ++it)
        if (it->second == n) {
          by_id_.erase(it);
          break;
        }
    }
    while (!slots_.empty() && !slots_.front().waiting) pop_front();
  }
  // f(value) for each one still waiting, oldest first.
  template <class F>
  void for_each(F&& f) {
    for (Slot& s : slots_)
      if (s.waiting) f(s.value);
  }
  size_t size() const { return by_id_.size(); }
  void clear() {
    base_ += slots_.size();
    slots_.clear();
    by_id_.clear();
  }

 private:
  struct Slot {
    FragmentId id;
    T value;
    bool waiting;
  };
  void forget_oldest() {
    Slot& s = slots_.front();
    if (s.waiting)
      for (auto [it, to] = by_id_.equal_range(s.id); it != to; ++it)
        if (it->second == base_) {
          by_id_.erase(it);
          break;
        }
    pop_front();
  }
  void pop_front() {
    slots_.pop_front();
    ++base_;
  }

  size_t capacity_;
  std::deque<Slot> slots_;  // slots_[i] is number base_ + i, oldest first
  uint64_t base_ = 0;
  std::unordered_multimap<FragmentId, uint64_t, FragmentIdHash> by_id_;  // those waiting -> number
};

}  // namespace tmach::packet
