#include "util/prefaulter.h"

#include <pthread.h>
#include <sys/mman.h>

#include <algorithm>

namespace tmach::util {

void Prefaulter::start(std::vector<std::pair<void*, size_t>> regions) {
  if (thread_.joinable()) return;
  thread_ = std::thread([this, regions = std::move(regions)] {
    pthread_setname_np(pthread_self(), "tm-prefault");
    constexpr size_t kPiece = size_t{2} << 20;
    for (auto [p, n] : regions) {
      auto* at = static_cast<uint8_t*>(p);
      for (size_t off = 0; off < n; off += kPiece) {
        if (stop_.load(std::memory_order_relaxed)) return;
        size_t len = std::min(kPiece, n - off);
        // Best effort: before Linux 5.14 (EINVAL) the memory is simply committed on first use.
        if (madvise(at + off, len, MADV_POPULATE_WRITE) != 0) return;
        done_.fetch_add(len, std::memory_order_relaxed);
      }
    }
  });
}

void Prefaulter::stop() {
  stop_.store(true, std::memory_order_relaxed);
  if (thread_.joinable()) thread_.join();
}

}  // namespace tmach::util
