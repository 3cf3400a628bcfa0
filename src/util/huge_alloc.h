// Large heap buffers in transparent huge pages: the recorder's index log, postings and
// sidecar sections are tens of MB each, touched for the first time as a segment fills or
// seals. In 4 KiB pages that is a page fault (and a zeroed page) per 4 KiB, tens of
// thousands a segment, on threads that compete with capture for the cores; in 2 MiB pages
// (where the kernel allows: THP "madvise" mode honours MADV_HUGEPAGE) it is one per 2 MiB.
// glibc's allocator does not ask for them (only with GLIBC_TUNABLES=glibc.malloc.hugetlb=1,
// an environment setting read at start), hence this allocator for the few large buffers.
#pragma once

#include <cstddef>
#include <new>

namespace tmach::util {

inline constexpr size_t kHugePageBytes = size_t{2} << 20;

// `bytes` rounded up to 2 MiB, 2 MiB-aligned, anonymous, MADV_HUGEPAGE, committed as touched
// (zero-filled). Throws std::bad_alloc. Free with huge_free(p, the same bytes).
void* huge_alloc(size_t bytes);
void huge_free(void* p, size_t bytes) noexcept;

// A std allocator: requests of 2 MiB and more through huge_alloc(), smaller ones through
// operator new (a huge page would mostly be wasted on them). Stateless: any two are equal.
template <class T>
struct HugeAllocator {
  using value_type = T;
  HugeAllocator() = default;
  template <class U>
  HugeAllocator(const HugeAllocator<U>&) noexcept {}

  static bool huge(size_t n) { return n * sizeof(T) >= kHugePageBytes; }
  T* allocate(size_t n) {
    if (n > size_t(-1) / sizeof(T)) throw std::bad_array_new_length();
    if (huge(n)) return static_cast<T*>(huge_alloc(n * sizeof(T)));
    if constexpr (alignof(T) > __STDCPP_DEFAULT_NEW_ALIGNMENT__)
      return static_cast<T*>(::operator new (n * sizeof(T), std::align_val_t{alignof(T)}));
    else
      return static_cast<T*>(::operator new(n * sizeof(T)));
  }
  void deallocate(T* p, size_t n) noexcept {
    if (huge(n))
      huge_free(p, n * sizeof(T));
    else if constexpr (alignof(T) > __STDCPP_DEFAULT_NEW_ALIGNMENT__)
      ::operator delete (p, n * sizeof(T), std::align_val_t{alignof(T)});
    else
      ::operator delete(p, n * sizeof(T));
  }
  template <class U>
  bool operator==(const HugeAllocator<U>&) const noexcept {
    return true;
  }
};

}  // namespace tmach::util
