// A disk ring: files of one kind kept oldest first inside a byte budget (and, optionally, an
// age: flow files, and each class's segments with max_age), the oldest deleted whole to make room — each
// class's packet segments, the store's global budget over all classes, and the flow files.
//
// Not thread-safe: each ring belongs to one writer thread.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <span>
#include <string>
#include <vector>

namespace tmach::store {

class DiskRing {
 public:
  struct File {
    std::string base;  // path without extension
    uint64_t bytes = 0;
    uint64_t first_ts = 0;
    uint64_t last_ts = 0;
  };
  using OnEvict = std::function<void(const File&)>;

  // `extensions`: a file's parts, deleted in this order (the sidecar first: a segment's pcap
  // without its sidecar would be "recovered" at the next start).
  explicit DiskRing(std::vector<std::string> extensions) : ext_(std::move(extensions)) {}

  void add(File f);  // the newest
  bool empty() const { return files_.empty(); }
  size_t size() const { return files_.size(); }
  uint64_t bytes() const { return bytes_; }
  // The newest last_ts of any file ever added (kept after eviction): the ring's clock.
  uint64_t newest_ts() const { return newest_ts_; }
  const File& oldest() const { return files_.front(); }

  // Deletes the oldest file (every part; a part already gone is no error) and returns it.
  // The deletion is made durable by make_evictions_durable(), once for a batch.
  File evict_oldest();
  // Evicts the oldest while the ring holds more than `budget` bytes, then makes that durable.
  void evict_over(uint64_t budget, const OnEvict& on_evict = {});
  // Evicts every file whose last_ts is more than `max_age` older than `newest_ts`, then makes
  // that durable: wherever it is in the ring, as capture files read out of time order (a newer
  // one first) put older packets behind newer ones.
  void evict_older(uint64_t newest_ts, uint64_t max_age, const OnEvict& on_evict = {});
  // Syncs each directory a file was deleted from since the last call, once (else a power
  // cut could bring evicted files back). Throws util::IoError naming the directory.
  void make_evictions_durable();

 private:
  File evict_at(size_t i);  // evict_oldest() of the i-th file
  std::vector<std::string> ext_;
  std::deque<File> files_;  // oldest first
  uint64_t bytes_ = 0;
  uint64_t newest_ts_ = 0;
  std::vector<std::string> unsynced_dirs_;  // where files were deleted since the last sync
};

// A budget over several rings (the store's global budget over its classes): evicts the file
// with the oldest first_ts of any ring while they hold more than `budget` bytes together,
// then makes that durable (each ring's directories synced once).
void evict_over(std::span<DiskRing* const> rings, uint64_t budget,
                const std::function<void(size_t ring, const DiskRing::File&)>& on_evict);

}  // namespace tmach::store
