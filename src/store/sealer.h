// The sealer: a thread of its own (tm-sealer) that seals the segments the writer thread
// hands over — index build, sidecar write, fsync — while the writer goes on draining the
// rings (a seal of a 256 MiB segment takes long enough to fill a ring). At most
// kMaxInFlight segments are in flight; they are given back in the order they were handed
// over, on the writer thread, which does the bookkeeping.
//
// Thread model: start(), hand_over(), collect() and stop() on the writer's side (the writer
// thread, or the thread that finishes after it); seal() runs on tm-sealer. The queue is
// guarded by mu_; a segment writer is touched by tm-sealer alone until it is done.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "store/segment_writer.h"
#include "util/memory_gauge.h"

namespace tmach::store {

class Sealer {
 public:
  static constexpr size_t kMaxInFlight = 2;
  struct Sealed {
    uint16_t cls;
    std::unique_ptr<SegmentWriter> w;
    uint64_t idx_bytes = 0;
    std::string error;     // the seal failed (the pcap is whole: it was flushed before)
    int error_number = 0;  // its errno, 0 when not known (util::error_number_of)
  };
  using OnSealed = std::function<void(Sealed&)>;

  Sealer() = default;
  ~Sealer() { stop(); }
  Sealer(const Sealer&) = delete;
  Sealer& operator=(const Sealer&) = delete;

  // The heap memory of the segments in its hands (handed over, not yet given back) is kept in
  // part `part` of `gauge` (before start()): a segment's memory as handed over, during its seal
  // the peak of it (the builder's log and postings, the offsets, the sidecar's bytes), then what
  // it holds until given back.
  void set_gauge(util::MemoryGauge* gauge, size_t part) {
    gauge_ = gauge;
    part_ = part;
  }
  void start();
  bool running() const { return thread_.joinable(); }
  // Queues `w` (flushed: its frames are in the file) for sealing. Beyond kMaxInFlight in
  // flight, gives back finished seals (collect) and waits for the oldest.
  void hand_over(uint16_t cls, std::unique_ptr<SegmentWriter> w, const OnSealed& on_sealed);
  // Gives back the finished seals, oldest first, up to the first unfinished one; with
  // `wait_all`, waits for every one in flight. A failed seal is given back with its error.
  void collect(bool wait_all, const OnSealed& on_sealed);
  // Ends the thread once every queued seal is done (they are not given back). Idempotent.
  void stop();

 private:
  struct Job {
    Sealed s;
    bool done = false;
    uint64_t bytes = 0;  // its memory (guarded by mu_)
  };
  void loop();
  void update_gauge(uint64_t extra = 0);  // under mu_: the jobs' bytes (+ extra) into the gauge
  util::MemoryGauge* gauge_ = nullptr;
  size_t part_ = 0;

  std::thread thread_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::unique_ptr<Job>> jobs_;  // handed over, oldest first (done or not); guarded by mu_
  bool stop_ = false;                      // guarded by mu_
};

}  // namespace tmach::store
