#include "conn/conn_table.h"

#include <algorithm>
#include <bit>

namespace tmach::conn {

ConnTable::ConnTable(size_t max_connections, Timeouts t, EndCallback on_end)
    : max_(std::max<size_t>(max_connections, 16)), to_(t), on_end_(std::move(on_end)) {
  size_t cap = std::bit_ceil(static_cast<size_t>(static_cast<double>(max_) / 0.7) + 1);
  slots_ = util::HugeArray<ConnEntry>(cap);
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

ConnEntry* ConnTable::find(const FlowKey& key, uint64_t hash) {
  for (size_t i = hash & mask_;; i = (i + 1) & mask_) {
    ConnEntry& e = slots_[i];
    if (!e.used) return nullptr;
    if (e.hash == hash && e.key == key) return &e;
  }
}

ConnEntry* ConnTable::find_or_insert(const KeyedPacket& kp, uint64_t now, bool& created) {
  created = false;
  size_t i = kp.hash & mask_;
  for (;; i = (i + 1) & mask_) {
    ConnEntry& e = slots_[i];
    if (!e.used) break;
    if (e.hash == kp.hash && e.key == kp.key) return &e;
  }
  if (size_ >= max_) {
    // Full: end idle connections over a larger slice, then look for a slot again
    // (the probe position may have moved because of backward shifts).
    expire_step(now, std::min<size_t>(slots_.size(), 65536));
    if (size_ >= max_) {
      ++stats_.untracked;
      return nullptr;
    }
    i = kp.hash & mask_;
    while (slots_[i].used) i = (i + 1) & mask_;
  }
  ConnEntry& e = slots_[i];
  e = ConnEntry{};
  e.used = 1;
  e.key = kp.key;
  e.hash = kp.hash;
  e.orig_is_a = kp.src_is_a ? 1 : 0;
  e.first_ts = e.last_ts = now;
  ++size_;
  ++stats_.created;
  stats_.peak = std::max<uint64_t>(stats_.peak, size_);
  created = true;
  return &e;
}

void ConnTable::erase_at(size_t i) {
  size_t j = i;
  for (;;) {
    j = (j + 1) & mask_;
    if (!slots_[j].used) break;
    size_t home = slots_[j].hash & mask_;
    // Move slots_[j] into the hole at i unless its home lies cyclically in (i, j].
    bool stays = (i <= j) ? (home > i && home <= j) : (home > i || home <= j);
    if (!stays) {
      slots_[i] = slots_[j];
      i = j;
    }
  }
  slots_[i].used = 0;
  --size_;
}

void ConnTable::expire_step(uint64_t now, size_t slots) {
  size_t seen = 0;
  while (seen < slots && size_ > 0) {
    ConnEntry& e = slots_[cursor_];
    if (e.used && !e.suspend_timeout && now > e.last_ts && now - e.last_ts > timeout_of(e)) {
      if (on_end_) on_end_(e, EndReason::kTimeout);
      ++stats_.expired;
      erase_at(cursor_);  // a later entry may shift into this slot: look at it again
      ++seen;
      continue;
    }
    cursor_ = (cursor_ + 1) & mask_;
    ++seen;
  }
}

void ConnTable::end_all() {
  for (auto& e : slots_) {
    if (!e.used) continue;
    if (on_end_) on_end_(e, EndReason::kShutdown);
    e.used = 0;
  }
  size_ = 0;
}

}  // namespace tmach::conn
