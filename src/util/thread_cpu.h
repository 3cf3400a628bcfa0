// CPU time of the calling thread (user + system), for the record summary's per-thread figures:
// they say which thread bounds a run's wall time.
#pragma once

#include <time.h>

namespace tmach::util {

inline double thread_cpu_seconds() {
  timespec ts{};
  if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts) != 0) return 0.0;
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

}  // namespace tmach::util
