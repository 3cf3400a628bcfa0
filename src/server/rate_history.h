// A small in-memory history of a recorder's rates for the web page's chart (GET
// /api/v1/history): every `interval`, on the epoch's grid of it, a thread of its own
// (tm-history) takes the cumulative counters and keeps the rates since the previous sample,
// in a bounded ring (the oldest sample is dropped). Nothing is written to disk: the history
// starts with the process.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>

namespace tmach::server {

class RateHistory {
 public:
  // Cumulative counters now: {"classes": {NAME: {"seen_packets": N, ...}}, "kernel_dropped": N}.
  using Sampler = std::function<nlohmann::json()>;
  // Starts the thread; `capacity` samples are kept (1080 x 10 s: the last 3 hours).
  RateHistory(Sampler sample, std::chrono::milliseconds interval, size_t capacity);
  ~RateHistory();  // stops and joins the thread (within one wake-up)
  RateHistory(const RateHistory&) = delete;
  RateHistory& operator=(const RateHistory&) = delete;

  // {"interval_s", "capacity", "samples": [{"t_ns", "classes": {NAME: {"seen_pps", "seen_bps",
  // "stored_pps", "stored_bps", "cut_pps", "cut_bps", "dropped_pps", "ring_used"}},
  // "kernel_dropped_pps"}, ...]}, oldest first; bps are bytes per second.
  nlohmann::json json() const;
  // One sample now (the thread's step; tests call it directly). The sampler is called under
  // a mutex of this history, one call at a time.
  void sample_now();
  // How long the thread waits after a sample taken at `now_ns` (epoch): to the next multiple
  // of `interval` since the epoch at least a tenth of it away. Samples so land one in each
  // cell of the front-end's grid (cluster/history_merge.h); waiting a whole interval after
  // each sample drifted later by the sample's own time, until a cell had none (a dip in the
  // cluster's sum).
  static std::chrono::nanoseconds wait_after(uint64_t now_ns, std::chrono::milliseconds interval);

 private:
  void loop();
  Sampler sampler_;
  std::chrono::milliseconds interval_;
  size_t capacity_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;                // mu_
  std::deque<nlohmann::json> ring_;  // mu_
  std::mutex sample_mu_;             // one sample_now() at a time (the thread, a test)
  nlohmann::json prev_;              // sample_mu_
  uint64_t prev_ns_ = 0;             // sample_mu_
  std::thread thread_;               // last: started once the rest is constructed
};

}  // namespace tmach::server
