#include "util/huge_alloc.h"

#include <sys/mman.h>

#include <cstdint>
#include <cstring>

namespace tmach::util {

namespace {
size_t round_up(size_t bytes) { return (bytes + kHugePageBytes - 1) & ~(kHugePageBytes - 1); }

// `len` bytes (a multiple of 2 MiB) of fresh mapping starting on a 2 MiB boundary, without advice.
void* map_aligned(size_t len) {
  // Map 2 MiB more than needed and unmap the ends, so the buffer starts on a 2 MiB boundary:
  // a huge page covers an aligned 2 MiB only, and mmap aligns to 4 KiB.
  void* m = mmap(nullptr, len + kHugePageBytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (m == MAP_FAILED) throw std::bad_alloc();
  const auto start = reinterpret_cast<uintptr_t>(m);
  const uintptr_t aligned = (start + kHugePageBytes - 1) & ~(uintptr_t{kHugePageBytes} - 1);
  if (aligned > start) munmap(m, aligned - start);
  const uintptr_t tail = aligned + len, end = start + len + kHugePageBytes;
  if (end > tail) munmap(reinterpret_cast<void*>(tail), end - tail);
  return reinterpret_cast<void*>(aligned);
}
}  // namespace

void* huge_alloc(size_t bytes) {
  const size_t len = round_up(bytes == 0 ? 1 : bytes);
  if (len < bytes) throw std::bad_alloc();
  void* p = map_aligned(len);
  madvise(p, len, MADV_HUGEPAGE);  // (advice: fails harmlessly where THP is off)
  return p;
}

void* huge_realloc(void* p, size_t old_bytes, size_t new_bytes) {
  const size_t old_len = round_up(old_bytes == 0 ? 1 : old_bytes),
               len = round_up(new_bytes == 0 ? 1 : new_bytes);
  if (len < new_bytes) throw std::bad_alloc();
  if (len == old_len) return p;
  if (len < old_len) {  // shrinking: the tail goes back
    munmap(static_cast<uint8_t*>(p) + len, old_len - len);
    return p;
  }
  // Grown where it is when the address space after it is free (it stays aligned) ...
  void* q = mremap(p, old_len, len, 0);
  if (q == MAP_FAILED) {
    // ... else moved to a fresh aligned range: mremap moves the pages (the page tables: whole
    // huge pages when both ends are aligned), it does not copy them, and the moved part is
    // not faulted in again.
    void* to = map_aligned(len);
    q = mremap(p, old_len, len, MREMAP_MAYMOVE | MREMAP_FIXED, to);
    if (q == MAP_FAILED) {  // (not expected: then a copy)
      munmap(to, len);
      q = huge_alloc(len);
      std::memcpy(q, p, old_len);
      huge_free(p, old_len);
      return q;
    }
  }
  madvise(q, len, MADV_HUGEPAGE);  // (the grown part: a mapping's advice covers what it was)
  return q;
}

void huge_free(void* p, size_t bytes) noexcept {
  if (p) munmap(p, round_up(bytes == 0 ? 1 : bytes));
}

void* page_alloc(size_t bytes) {
  void* p = mmap(nullptr, bytes == 0 ? 1 : bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) throw std::bad_alloc();
  // (advice: where THP is "always" this keeps the buffer in base pages; fails harmlessly
  // where THP is not built in)
  madvise(p, bytes == 0 ? 1 : bytes, MADV_NOHUGEPAGE);
  return p;
}

void page_free(void* p, size_t bytes) noexcept {
  if (p) munmap(p, bytes == 0 ? 1 : bytes);
}

}  // namespace tmach::util
