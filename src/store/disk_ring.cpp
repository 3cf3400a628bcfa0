#include "store/disk_ring.h"

#include <algorithm>
#include <filesystem>
#include <utility>

#include "util/file_io.h"

namespace tmach::store {

void DiskRing::add(File f) {
  bytes_ += f.bytes;
  newest_ts_ = std::max(newest_ts_, f.last_ts);
  files_.push_back(std::move(f));
}

DiskRing::File DiskRing::evict_oldest() { return evict_at(0); }

DiskRing::File DiskRing::evict_at(size_t i) {
  File f = std::move(files_[i]);
  files_.erase(files_.begin() + static_cast<std::ptrdiff_t>(i));
  bytes_ -= f.bytes;
  std::error_code ec;
  bool removed = false;
  for (const auto& e : ext_) removed |= std::filesystem::remove(f.base + e, ec);
  const std::string dir = util::parent_dir(f.base);
  if (removed && std::find(unsynced_dirs_.begin(), unsynced_dirs_.end(), dir) == unsynced_dirs_.end())
    unsynced_dirs_.push_back(dir);
  return f;
}

void DiskRing::make_evictions_durable() {
  // Each directory leaves the list once synced: after a failed sync (thrown) the rest, and
  // that one, are tried again at the next batch.
  while (!unsynced_dirs_.empty()) {
    util::fsync_dir(unsynced_dirs_.back());
    unsynced_dirs_.pop_back();
  }
}

void DiskRing::evict_over(uint64_t budget, const OnEvict& on_evict) {
  while (!files_.empty() && bytes_ > budget) {
    File f = evict_oldest();
    if (on_evict) on_evict(f);
  }
  make_evictions_durable();
}

void DiskRing::evict_older(uint64_t newest_ts, uint64_t max_age, const OnEvict& on_evict) {
  for (size_t i = 0; newest_ts > max_age && i < files_.size();) {
    if (files_[i].last_ts >= newest_ts - max_age) {
      ++i;
      continue;
    }
    File f = evict_at(i);
    if (on_evict) on_evict(f);
  }
  make_evictions_durable();
}

void evict_over(std::span<DiskRing* const> rings, uint64_t budget,
                const std::function<void(size_t ring, const DiskRing::File&)>& on_evict) {
  for (;;) {
    uint64_t total = 0;
    int oldest = -1;
    for (size_t i = 0; i < rings.size(); ++i) {
      total += rings[i]->bytes();
      if (!rings[i]->empty() &&
          (oldest < 0 || rings[i]->oldest().first_ts < rings[oldest]->oldest().first_ts))
        oldest = static_cast<int>(i);
    }
    if (total <= budget || oldest < 0) break;
    DiskRing::File f = rings[oldest]->evict_oldest();
    on_evict(static_cast<size_t>(oldest), f);
  }
  for (DiskRing* r : rings) r->make_evictions_durable();
}

}  // namespace tmach::store
