// Where a fanout member's capture starts. A packet socket bound to an interface receives all of
// its packets until it joins its PACKET_FANOUT group, while the group's sockets receive them
// too: started amid traffic, those packets would be stored twice. So a member discards what it
// holds stamped before it joined (or before the start of its whole group: start_at()), as
// Suricata does at its start. A packet that reached the socket outside the group was stamped
// before the join ended, and the socket's ring keeps the kernel's delivery order.
//
// Used by the source's capture thread (discard(), tick()); set() before that thread starts;
// discarded() from any thread; received() where the source's stats() runs.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <ctime>

namespace tmach::capture {

class StartGate {
 public:
  static uint64_t now_ns(clockid_t clock) {
    struct timespec ts;
    clock_gettime(clock, &ts);
    return static_cast<uint64_t>(ts.tv_sec) * 1000000000ull + static_cast<uint64_t>(ts.tv_nsec);
  }
  // Frames stamped (CLOCK_REALTIME) before `realtime_ns` are not captured; a later start wins.
  void set(uint64_t realtime_ns) {
    opened_.store(false, std::memory_order_relaxed);
    start_ns_ = std::max(start_ns_, realtime_ns);
    until_mono_ns_ = 0;  // (the second counts from the socket's first read: tick())
  }
  // True for a frame from before the start (counted). The gate opens for good at the first
  // frame stamped at or after the start (the ring is in delivery order: what follows came
  // through the group) or, on an idle socket, kOpenNs after its capture thread first read it
  // (tick()): a later step of the clock never discards anything. Counted from that read, not
  // from set(): the sources of several interfaces are set up one after another (rings of
  // hundreds of MB each) before any is read, and a gate that opened meanwhile would let the
  // frames from before the join through, stored twice.
  bool discard(uint64_t ts_ns) {
    if (start_ns_ == 0) [[likely]]
      return false;
    if (ts_ns < start_ns_) {
      discarded_.fetch_add(1, std::memory_order_relaxed);
      return true;
    }
    open();
    return false;
  }
  // Once per batch, before reading.
  void tick() {
    if (start_ns_ == 0) [[likely]]
      return;
    const uint64_t now = now_ns(CLOCK_MONOTONIC);
    if (until_mono_ns_ == 0)
      until_mono_ns_ = now + kOpenNs;
    else if (now >= until_mono_ns_)
      open();
  }
  uint64_t discarded() const { return discarded_.load(std::memory_order_relaxed); }
  // The kernel's count of packets received, less those discarded here (not captured: the
  // group's other sockets had them), never less than returned before (the kernel counts them
  // when they are queued, discard() as they are read). On the thread that reads the source's
  // statistics.
  // Until the gate opens, what the kernel counted may include frames still to be discarded: the
  // count stays where it was rather than rise by them for good.
  uint64_t received(uint64_t kernel_received) const {
    if (!opened_.load(std::memory_order_acquire)) return reported_;
    const uint64_t early = discarded();
    reported_ = std::max(reported_, kernel_received > early ? kernel_received - early : 0);
    return reported_;
  }

 private:
  static constexpr uint64_t kOpenNs = 1000000000ull;
  void open() {
    start_ns_ = 0;
    opened_.store(true, std::memory_order_release);  // (after every discard: received())
  }
  uint64_t start_ns_ = 0;           // 0: open
  std::atomic<bool> opened_{true};  // start_ns_ == 0, for received() on another thread
  uint64_t until_mono_ns_ = 0;      // 0: not read since set()
  std::atomic<uint64_t> discarded_{0};
  mutable uint64_t reported_ = 0;  // received()
};

}  // namespace tmach::capture
