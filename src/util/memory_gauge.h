// Memory accounting: the bytes a component's parts hold, each part set by the one thread that
// owns it, with the peak of their sum (any thread reads).
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>

namespace tmach::util {

class MemoryGauge {
 public:
  static constexpr size_t kParts = 4;
  // Part `part` holds `bytes` now; the peak follows the sum (as its owners set it: two parts
  // changing at once may leave the peak a little below the true one, never above).
  void set(size_t part, uint64_t bytes) {
    parts_[part].store(bytes, std::memory_order_relaxed);
    const uint64_t sum = now();
    uint64_t p = peak_.load(std::memory_order_relaxed);
    while (sum > p && !peak_.compare_exchange_weak(p, sum, std::memory_order_relaxed)) {
    }
  }
  uint64_t now() const {
    uint64_t n = 0;
    for (const auto& p : parts_) n += p.load(std::memory_order_relaxed);
    return n;
  }
  uint64_t part(size_t i) const { return parts_[i].load(std::memory_order_relaxed); }
  uint64_t peak() const { return peak_.load(std::memory_order_relaxed); }

 private:
  std::array<std::atomic<uint64_t>, kParts> parts_{};
  std::atomic<uint64_t> peak_{0};
};

}  // namespace tmach::util
