#include "flow/flow_drain.h"

#include <pthread.h>
#include <spdlog/spdlog.h>

#include <chrono>

namespace tmach::flow {

FlowDrain::FlowDrain(FlowOptions opts, std::vector<std::string> class_names,
                     std::vector<std::string>* problems)
    : writer_(std::make_unique<FlowStoreWriter>(std::move(opts), std::move(class_names), problems)) {}

FlowDrain::~FlowDrain() {
  close();
  try {
    join();
  } catch (const std::exception& e) {
    spdlog::error("flow records: {}", e.what());
  }
}

void FlowDrain::tick(uint64_t now_ns) {
  if (finishing_.load(std::memory_order_acquire)) return;
  std::lock_guard lk(mu_);
  if (finishing_.load(std::memory_order_acquire)) return;  // (tm-flows drains from now on)
  writer_->drain(now_ns);
}

void FlowDrain::hold() {
  if (finishing_.exchange(true, std::memory_order_acq_rel)) return;
  thread_ = std::thread([this] {
    pthread_setname_np(pthread_self(), "tm-flows");
    // The producers wait for this thread while it drains (bounded), and never after it.
    struct Unbound {
      FlowStoreWriter& w;
      ~Unbound() { w.bound(false); }
    } unbound{*writer_};
    try {
      // Waits for a drain the writer thread may have begun before it saw finishing_.
      { std::lock_guard lk(mu_); }
      writer_->write_behind();
      writer_->bound(true);
      while (!closed_.load(std::memory_order_acquire)) {
        const size_t blocks =
            writer_->drain(static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                                     std::chrono::steady_clock::now().time_since_epoch())
                                                     .count()));
        if (blocks == 0) writer_->wait_for_push(std::chrono::milliseconds(1));  // (close() comes unannounced)
      }
      writer_->finish();  // what was pushed last, and the seal (every record is pushed: unbounded or not)
    } catch (...) {
      failure_ = std::current_exception();
    }
  });
}

void FlowDrain::close() {
  hold();
  closed_.store(true, std::memory_order_release);
}

namespace {

std::string what_of(const std::exception_ptr& e) {
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& x) {
    return x.what();
  } catch (...) {
    return "unknown failure";
  }
}

}  // namespace

void FlowDrain::join() {
  if (thread_.joinable()) thread_.join();
  if (failure_) {
    failure_what_ = what_of(failure_);
    std::rethrow_exception(std::exchange(failure_, nullptr));
  }
}

void FlowDrain::join_quietly() {
  if (thread_.joinable()) thread_.join();
  if (failure_) failure_what_ = what_of(std::exchange(failure_, nullptr));
}

}  // namespace tmach::flow
