// Makes memory resident ahead of use, on a thread of its own.
//
// The recorder's big fixed arrays (RAM rings, connection table) are committed as they are
// first touched, and committing fresh memory is slow here: a 2 MiB page is zeroed by the
// kernel, and on a virtual machine whose host reclaimed the guest's free memory, faulted in
// by the host first (measured on the benchmark machine: 0.4-0.6 GB/s for fresh huge pages,
// against 8 GB/s for memory used before). Left to the capture thread, that cost lands on the
// packet path. The prefaulter pays it instead, in the first moments of a run, when the other
// core has little to do yet (the writer is waiting for packets, nothing is being sealed).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <thread>
#include <utility>
#include <vector>

namespace tmach::util {

class Prefaulter {
 public:
  Prefaulter() = default;
  ~Prefaulter() { stop(); }
  Prefaulter(const Prefaulter&) = delete;
  Prefaulter& operator=(const Prefaulter&) = delete;

  // Starts making the regions resident, in the order given, 2 MiB at a time
  // (MADV_POPULATE_WRITE: pages already present keep their contents, so the owner may use
  // the memory meanwhile). The regions must outlive stop(). Once.
  void start(std::vector<std::pair<void*, size_t>> regions);
  // Stops after the piece under way (at most 2 MiB); waits for the thread.
  void stop();
  // Bytes made resident so far (pages that were already present included).
  size_t done_bytes() const { return done_.load(std::memory_order_relaxed); }

 private:
  std::thread thread_;
  std::atomic<bool> stop_{false};
  std::atomic<size_t> done_{0};
};

}  // namespace tmach::util
