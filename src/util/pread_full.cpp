#include "util/pread_full.h"

#include <unistd.h>

#include <cerrno>

namespace tmach::util {

ssize_t pread_full(int fd, void* dst, size_t n, uint64_t off) {
  auto* d = static_cast<uint8_t*>(dst);
  size_t got = 0;
  while (got < n) {
    ssize_t r = ::pread(fd, d + got, n - got, static_cast<off_t>(off + got));
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return -1;
    if (r == 0) break;
    got += static_cast<size_t>(r);
  }
  return static_cast<ssize_t>(got);
}

}  // namespace tmach::util
