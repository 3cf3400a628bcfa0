#include "util/huge_alloc.h"

#include <sys/mman.h>

#include <cstdint>

namespace tmach::util {

namespace {
size_t round_up(size_t bytes) { return (bytes + kHugePageBytes - 1) & ~(kHugePageBytes - 1); }
}  // namespace

void* huge_alloc(size_t bytes) {
  const size_t len = round_up(bytes == 0 ? 1 : bytes);
  if (len < bytes) throw std::bad_alloc();
  // Map 2 MiB more than needed and unmap the ends, so the buffer starts on a 2 MiB boundary:
  // a huge page covers an aligned 2 MiB only, and mmap aligns to 4 KiB.
  void* m = mmap(nullptr, len + kHugePageBytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (m == MAP_FAILED) throw std::bad_alloc();
  const auto start = reinterpret_cast<uintptr_t>(m);
  const uintptr_t aligned = (start + kHugePageBytes - 1) & ~(uintptr_t{kHugePageBytes} - 1);
  if (aligned > start) munmap(m, aligned - start);
  const uintptr_t tail = aligned + len, end = start + len + kHugePageBytes;
  if (end > tail) munmap(reinterpret_cast<void*>(tail), end - tail);
  void* p = reinterpret_cast<void*>(aligned);
  madvise(p, len, MADV_HUGEPAGE);  // (advice: fails harmlessly where THP is off)
  return p;
}

void huge_free(void* p, size_t bytes) noexcept {
  if (p) munmap(p, round_up(bytes == 0 ? 1 : bytes));
}

}  // namespace tmach::util
