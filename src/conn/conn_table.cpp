#include "conn/conn_table.h"

#include <algorithm>
#include <bit>

namespace tmach::conn {

namespace {

// Positions are 32-bit in the index, and so are home slots (the upper half of the hash).
size_t clamped(size_t max_connections) { return std::clamp<size_t>(max_connections, 16, size_t{1} << 30); }
// The index's slots: at most 70 % of them used.
size_t index_slots(size_t max) {
  return std::bit_ceil(static_cast<size_t>(static_cast<double>(max) / 0.7) + 1);
}

}  // namespace

uint64_t ConnTable::max_bytes(size_t max_connections) {
  const size_t max = clamped(max_connections);
  return uint64_t{max} * sizeof(ConnEntry) + uint64_t{index_slots(max)} * sizeof(Slot);
}

ConnTable::ConnTable(size_t max_connections, Timeouts t, EndCallback on_end)
    : max_(clamped(max_connections)), to_(t), on_end_(std::move(on_end)) {
  size_t cap = index_slots(max_);
  index_ = util::HugeArray<Slot>(cap);
  entries_ = util::HugeArray<ConnEntry>(max_);
  mask_ = cap - 1;
}

uint64_t ConnTable::timeout_of(const ConnEntry& e) const {
  switch (e.key.proto) {
    case packet::kProtoTcp:
      return e.closed() ? to_.closed_ns : to_.tcp_ns;
    case packet::kProtoUdp:
      return to_.udp_ns;
    default:
      return to_.other_ns;
  }
}

bool ConnTable::timed_out(const ConnEntry& e, uint64_t now) const {
  return !e.suspend_timeout && now > e.active_clock && now - e.active_clock > timeout_of(e);
}

ConnEntry* ConnTable::find(const FlowKey& key, uint64_t hash) {
  const uint32_t tag = tag_of(hash);
  for (size_t i = home(tag);; i = (i + 1) & mask_) {
    const Slot s = index_[i];
    if (s.pos1 == 0) return nullptr;
    if (s.tag == tag) {
      ConnEntry& e = entries_[s.pos1 - 1];
      if (e.key == key) return &e;
    }
  }
}

ConnEntry* ConnTable::find_or_insert(const KeyedPacket& kp, uint64_t ts, uint64_t now, bool& created,
                                     int32_t opening) {
  created = false;
  const uint32_t tag = tag_of(kp.hash);
  size_t i = home(tag);
  bool ended = false;
  for (;; i = (i + 1) & mask_) {
    const Slot s = index_[i];
    if (s.pos1 == 0) break;
    if (s.tag == tag) {
      ConnEntry& e = entries_[s.pos1 - 1];
      if (e.key == kp.key) {
        const bool idle = timed_out(e, now);
        if (!idle && !(opening >= 0 && e.closed() && static_cast<int32_t>(e.syn_seq) != opening)) [[likely]] {
          if (!e.referenced) e.referenced = 1;  // (a store only once per turn of the hand)
          return &e;
        }
        // Idle past its timeout on the clock, where the sweep has not come yet (it visits a
        // few entries a packet): that connection ended, and this packet starts another, as it
        // would had the sweep come first (an NTP or DNS 5-tuple used again an hour later).
        // Or closed, and this packet opens a new one on its 5-tuple.
        if (on_end_) on_end_(e, idle ? EndReason::kTimeout : EndReason::kReopened);
        ++(idle ? stats_.expired : stats_.reopened);
        erase_entry(s.pos1 - 1);
        ended = true;
        break;
      }
    }
  }
  if (ended) {  // (the deletion shifted slots back: look for a free one again)
    i = home(tag);
    while (index_[i].pos1 != 0) i = (i + 1) & mask_;
  } else if (size_ >= max_) {
    // Full: end one idle connection, then look for a slot again (the probe position may
    // have moved because of backward shifts).
    if (!evict_one(now)) {
      ++stats_.untracked;
      return nullptr;
    }
    i = home(tag);
    while (index_[i].pos1 != 0) i = (i + 1) & mask_;
  }
  const size_t pos = size_++;
  index_[i] = Slot{tag, static_cast<uint32_t>(pos + 1)};
  ConnEntry& e = entries_[pos];
  e = ConnEntry{};
  e.key = kp.key;
  e.orig_is_a = kp.src_is_a ? 1 : 0;
  e.first_ts = e.last_ts = ts;
  e.born_clock = e.active_clock = std::max(ts, now);
  ++stats_.created;
  stats_.peak = std::max<uint64_t>(stats_.peak, size_);
  created = true;
  return &e;
}

size_t ConnTable::slot_of(uint64_t hash, uint32_t pos) const {
  for (size_t i = home(tag_of(hash));; i = (i + 1) & mask_)
    if (index_[i].pos1 == pos + 1) return i;  // (an entry always has its slot)
}

void ConnTable::erase_entry(size_t pos) {
  // Backward-shift deletion of the entry's slot.
  size_t i = slot_of(entries_[pos].hash(), static_cast<uint32_t>(pos));
  size_t j = i;
  for (;;) {
    j = (j + 1) & mask_;
    if (index_[j].pos1 == 0) break;
    size_t h = home(index_[j].tag);
    // Move index_[j] into the hole at i unless its home lies cyclically in (i, j].
    bool stays = (i <= j) ? (h > i && h <= j) : (h > i || h <= j);
    if (!stays) {
      index_[i] = index_[j];
      i = j;
    }
  }
  index_[i] = Slot{0, 0};
  // Keep the entries dense: the last one takes the freed place.
  const size_t last = --size_;
  if (pos != last) {
    index_[slot_of(entries_[last].hash(), static_cast<uint32_t>(last))].pos1 = static_cast<uint32_t>(pos + 1);
    entries_[pos] = entries_[last];
  }
}

void ConnTable::expire_step(uint64_t now, size_t slots) {
  // The entries a sweep of `slots` index slots would have met: each connection is looked
  // at as often as when the entries were the slots.
  size_t n = std::max<size_t>(
      1, static_cast<size_t>((static_cast<unsigned __int128>(slots) * size_ + index_.size() - 1) /
                             index_.size()));
  for (size_t seen = 0; seen < n && size_ > 0; ++seen) {
    if (cursor_ >= size_) cursor_ = 0;
    ConnEntry& e = entries_[cursor_];
    if (timed_out(e, now)) {
      if (on_end_) on_end_(e, EndReason::kTimeout);
      ++stats_.expired;
      erase_entry(cursor_);  // the last entry moves here: look at it next
      continue;
    }
    ++cursor_;
  }
}

bool ConnTable::evict_one(uint64_t now) {
  // The last entry is the newest (inserts append) and is what erase_entry() moves into the
  // freed place; the hand skips it and steps past a freed place, so one-packet connections
  // leave in the order they came.
  const size_t n = size_ - 1;
  size_t idlest = SIZE_MAX;
  for (size_t k = 0; k < kEvictScan; ++k) {
    if (hand_ >= n) hand_ = 0;
    ConnEntry& e = entries_[hand_];
    ++stats_.hand_steps;
    if (!e.suspend_timeout) {
      const bool timed_out = this->timed_out(e, now);
      if (timed_out || !e.referenced) {
        if (on_end_) on_end_(e, timed_out ? EndReason::kTimeout : EndReason::kTableFull);
        ++(timed_out ? stats_.expired : stats_.evicted);
        erase_entry(hand_++);
        return true;
      }
      e.referenced = 0;  // a second chance: it stays unless idle when the hand comes back
      if (idlest == SIZE_MAX || e.active_clock < entries_[idlest].active_clock) idlest = hand_;
    }
    ++hand_;
  }
  if (idlest == SIZE_MAX) return false;  // every entry looked at is never to be ended
  if (on_end_) on_end_(entries_[idlest], EndReason::kTableFull);
  ++stats_.evicted;
  erase_entry(idlest);
  return true;
}

void ConnTable::end_all(uint64_t now) {
  for (size_t i = 0; i < size_; ++i) {
    // One idle past its timeout ended by it, whether the sweep came to it or not (a record's
    // end state must not depend on the sweep's progress: on how the input was split).
    const bool idle = timed_out(entries_[i], now);
    if (on_end_) on_end_(entries_[i], idle ? EndReason::kTimeout : EndReason::kShutdown);
    if (idle) ++stats_.expired;
  }
  index_.zero();  // (at 10^8 connections, writing every slot took 2 GiB and 10 s at the end)
  size_ = 0;
  cursor_ = 0;
  hand_ = 0;
}

}  // namespace tmach::conn
