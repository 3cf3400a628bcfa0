// Ends a thread that waits for signals in sigwait() (the signals blocked in every thread) on
// every way out of a scope, an exception too: a std::thread destroyed while joinable aborts
// the program (std::terminate), losing the summary and the error message that explain the
// exception.
#pragma once

#include <pthread.h>

#include <atomic>
#include <csignal>
#include <thread>

namespace tmach::util {

// Whether `sig` is ignored (SIG_IGN: nohup's SIGHUP). Linux keeps an ignored signal pending
// while it is blocked, so sigwait() would take it: a command asks for such a signal only when
// it is not ignored.
inline bool signal_ignored(int sig) {
  struct sigaction old {};
  return sigaction(sig, nullptr, &old) == 0 && old.sa_handler == SIG_IGN;
}

class SigwaitJoiner {
 public:
  // `ending` (optional) is set before the thread is woken, for it to tell our SIGTERM from
  // the user's.
  explicit SigwaitJoiner(std::thread& t, std::atomic<bool>* ending = nullptr) : t_(t), ending_(ending) {}
  SigwaitJoiner(const SigwaitJoiner&) = delete;
  SigwaitJoiner& operator=(const SigwaitJoiner&) = delete;
  ~SigwaitJoiner() { end(); }

  // Wakes the thread (SIGTERM to it: pending, and harmless, if it no longer waits) and joins
  // it. Once; later calls do nothing.
  void end() {
    if (!t_.joinable()) return;
    if (ending_) *ending_ = true;
    pthread_kill(t_.native_handle(), SIGTERM);
    t_.join();
  }

 private:
  std::thread& t_;
  std::atomic<bool>* ending_;
};

}  // namespace tmach::util
