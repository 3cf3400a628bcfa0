#include "store/sealer.h"

#include <pthread.h>

#include <algorithm>

#include "util/file_io.h"

namespace tmach::store {

void Sealer::start() {
  // Named threads (top -H, perf): which part of the recorder uses the CPU.
  thread_ = std::thread([this] {
    pthread_setname_np(pthread_self(), "tm-sealer");
    loop();
  });
}

void Sealer::hand_over(uint16_t cls, std::unique_ptr<SegmentWriter> w, const OnSealed& on_sealed) {
  {
    std::unique_lock lk(mu_);
    auto j = std::make_unique<Job>();
    j->s.cls = cls;
    j->bytes = w->memory_bytes();
    j->s.w = std::move(w);
    jobs_.push_back(std::move(j));
    update_gauge();
  }
  cv_.notify_all();
  // Bounded: beyond kMaxInFlight in flight, wait for the oldest.
  for (;;) {
    {
      std::lock_guard lk(mu_);
      if (jobs_.size() <= kMaxInFlight) break;
    }
    collect(false, on_sealed);
    std::unique_lock lk(mu_);
    if (jobs_.size() > kMaxInFlight && !jobs_.front()->done)
      cv_.wait(lk, [&] { return jobs_.front()->done; });
  }
}

void Sealer::collect(bool wait_all, const OnSealed& on_sealed) {
  for (;;) {
    std::unique_ptr<Job> j;
    {
      std::unique_lock lk(mu_);
      if (jobs_.empty()) return;
      if (!jobs_.front()->done) {
        if (!wait_all) return;
        cv_.wait(lk, [&] { return jobs_.front()->done; });
      }
      j = std::move(jobs_.front());
      jobs_.pop_front();
      update_gauge();
    }
    on_sealed(j->s);
  }
}

void Sealer::stop() {
  if (!thread_.joinable()) return;
  {
    std::lock_guard lk(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

void Sealer::update_gauge(uint64_t extra) {
  if (!gauge_) return;
  uint64_t n = extra;
  for (const auto& j : jobs_) n += j->bytes;
  gauge_->set(part_, n);
}

void Sealer::loop() {
  std::unique_lock lk(mu_);
  for (;;) {
    Job* next = nullptr;
    for (auto& j : jobs_)
      if (!j->done) {
        next = j.get();
        break;
      }
    if (!next) {
      if (stop_) return;
      cv_.wait(lk);
      continue;
    }
    lk.unlock();
    // Only this thread touches the segment writer until `done`; the writer thread holds
    // nothing of it but the pointer.
    uint64_t idx = 0;
    std::string err;
    int err_number = 0;
    try {
      idx = next->s.w->seal();
    } catch (const std::exception& e) {
      err = e.what();
      err_number = util::error_number_of(e);
    }
    lk.lock();
    if (err.empty()) {
      // The seal's peak (its log, postings, offsets and sidecar at once), then what it keeps.
      const uint64_t before = next->bytes;
      next->bytes = 0;
      update_gauge(std::max(before, next->s.w->seal_peak_bytes()));
      next->bytes = next->s.w->memory_bytes();
      update_gauge();
    }
    next->s.idx_bytes = idx;
    next->s.error = std::move(err);
    next->s.error_number = err_number;
    next->done = true;
    cv_.notify_all();
  }
}

}  // namespace tmach::store
