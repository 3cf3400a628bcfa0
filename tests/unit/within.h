// Waits until `ok()` holds, looking every 20 ms: false when `t` passed first (a test's bound on
// what a thread of the code under test must have done by then).
#pragma once

#include <chrono>
#include <functional>
#include <thread>

inline bool within(std::chrono::milliseconds t, const std::function<bool()>& ok) {
  auto end = std::chrono::steady_clock::now() + t;
  while (!ok()) {
    if (std::chrono::steady_clock::now() > end) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return true;
}
