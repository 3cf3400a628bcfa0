// Large heap buffers in transparent huge pages: the recorder's index log, postings and
// sidecar sections are tens of MB each, touched for the first time as a segment fills or
// seals. In 4 KiB pages that is a page fault (and a zeroed page) per 4 KiB, tens of
// thousands a segment, on threads that compete with capture for the cores; in 2 MiB pages
// (where the kernel allows: THP "madvise" mode honours MADV_HUGEPAGE) it is one per 2 MiB.
// glibc's allocator does not ask for them (only with GLIBC_TUNABLES=glibc.malloc.hugetlb=1,
// an environment setting read at start), hence this allocator for the few large buffers.
// Not every large buffer gains: page_alloc() below is for those written once in sequence (the
// index's container arena), where fresh huge pages cost more than they save on a VM.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <new>
#include <type_traits>
#include <utility>

namespace tmach::util {

inline constexpr size_t kHugePageBytes = size_t{2} << 20;

// `bytes` rounded up to 2 MiB, 2 MiB-aligned, anonymous, MADV_HUGEPAGE, committed as touched
// (zero-filled). Throws std::bad_alloc. Free with huge_free(p, the same bytes).
void* huge_alloc(size_t bytes);
void huge_free(void* p, size_t bytes) noexcept;
// Grows (or shrinks) a huge_alloc() buffer of `old_bytes` to `new_bytes`, keeping its contents
// and returning where it is now (maybe `p`). Growing does not copy: the pages are moved
// (mremap), so what was touched is not faulted in again. Throws std::bad_alloc (then `p` is
// unchanged).
void* huge_realloc(void* p, size_t old_bytes, size_t new_bytes);

// `bytes` (rounded up to the base page) of anonymous memory in the kernel's base pages
// (MADV_NOHUGEPAGE), committed as touched (zero-filled), for large buffers written once in
// sequence, where 2 MiB pages save few TLB misses. Each fresh huge page needs a whole free
// 2 MiB block of the kernel, and on a virtual machine whose balloon reports free pages to the
// host (DESIGN.md, "Open problem: minimum-size frames") those are the very blocks the host
// has taken back: every one is faulted in by the host again, where base pages mostly come
// from lists it still backs. Throws std::bad_alloc. Free with page_free(p, the same bytes).
void* page_alloc(size_t bytes);
void page_free(void* p, size_t bytes) noexcept;

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

// A growing array of trivially copyable values that can become large (a segment's per-packet
// offsets, the index builder's per-protocol lists: MBs each, growing one value at a time).
// Below 2 MiB it is on the heap like a std::vector; from 2 MiB on in huge pages, where it
// grows by huge_realloc(): no copy, and what was written stays paged in. A std::vector on
// HugeAllocator copies everything at each doubling instead, into fresh pages: that copy and
// its page faults were the writer thread's largest share of a recording's faults.
// Growth doubles the capacity, as a std::vector's does: capacity() (what the memory
// accounting counts) is never more than twice what is used, and only what was written is
// resident. Values past size() are not initialised; clear() keeps the memory.
template <class T>
class HugeVector {
  static_assert(std::is_trivially_copyable_v<T>);
  static_assert(alignof(T) <= __STDCPP_DEFAULT_NEW_ALIGNMENT__);
  // (whole values fill the 2 MiB pages exactly: a capacity rounded to them stays >= 2 MiB, so
  // release() frees a buffer the way grow() got it)
  static_assert(kHugePageBytes % sizeof(T) == 0);

 public:
  using value_type = T;
  using iterator = T*;
  using const_iterator = const T*;

  HugeVector() = default;
  HugeVector(const HugeVector& o) { assign(o.begin(), o.end()); }
  HugeVector(HugeVector&& o) noexcept
      : data_(std::exchange(o.data_, nullptr)),
        size_(std::exchange(o.size_, 0)),
        cap_(std::exchange(o.cap_, 0)) {}
  HugeVector& operator=(const HugeVector& o) {
    if (this != &o) assign(o.begin(), o.end());
    return *this;
  }
  HugeVector& operator=(HugeVector&& o) noexcept {
    HugeVector(std::move(o)).swap(*this);
    return *this;
  }
  ~HugeVector() { release(data_, cap_); }
  void swap(HugeVector& o) noexcept {
    std::swap(data_, o.data_);
    std::swap(size_, o.size_);
    std::swap(cap_, o.cap_);
  }

  void push_back(T v) {
    if (size_ == cap_) grow(size_ + 1);
    data_[size_++] = v;
  }
  void reserve(size_t n) {
    if (n > cap_) grow(n);
  }
  // New values (past the old size) are left uninitialised.
  void resize_for_overwrite(size_t n) {
    reserve(n);
    size_ = n;
  }
  void assign(const T* first, const T* last) {
    const auto n = static_cast<size_t>(last - first);
    size_ = 0;
    reserve(n);
    if (n) std::memcpy(data_, first, n * sizeof(T));
    size_ = n;
  }
  void clear() { size_ = 0; }

  size_t size() const { return size_; }
  size_t capacity() const { return cap_; }
  bool empty() const { return size_ == 0; }
  T* data() { return data_; }
  const T* data() const { return data_; }
  T* begin() { return data_; }
  T* end() { return data_ + size_; }
  const T* begin() const { return data_; }
  const T* end() const { return data_ + size_; }
  T& operator[](size_t i) { return data_[i]; }
  const T& operator[](size_t i) const { return data_[i]; }
  T& back() { return data_[size_ - 1]; }
  const T& back() const { return data_[size_ - 1]; }

 private:
  static bool huge(size_t cap) { return cap * sizeof(T) >= kHugePageBytes; }
  static void release(T* p, size_t cap) noexcept {
    if (!p) return;
    if (huge(cap))
      huge_free(p, cap * sizeof(T));
    else
      ::operator delete(p);
  }
  void grow(size_t need) {
    if (need > size_t(-1) / 2 / sizeof(T)) throw std::bad_alloc();
    size_t cap = std::max({need, 2 * cap_, size_t{16}});
    if (huge(cap)) {
      // All of the 2 MiB pages mapped (cap * sizeof(T) rounded up) is room.
      const size_t bytes = (cap * sizeof(T) + kHugePageBytes - 1) / kHugePageBytes * kHugePageBytes;
      cap = bytes / sizeof(T);
      if (huge(cap_)) {
        data_ = static_cast<T*>(huge_realloc(data_, cap_ * sizeof(T), cap * sizeof(T)));
      } else {  // from the heap into huge pages: the one copy, of less than 2 MiB
        T* p = static_cast<T*>(huge_alloc(cap * sizeof(T)));
        if (size_) std::memcpy(p, data_, size_ * sizeof(T));
        release(data_, cap_);
        data_ = p;
      }
    } else {
      T* p = static_cast<T*>(::operator new(cap * sizeof(T)));
      if (size_) std::memcpy(p, data_, size_ * sizeof(T));
      release(data_, cap_);
      data_ = p;
    }
    cap_ = cap;
  }

  T* data_ = nullptr;
  size_t size_ = 0, cap_ = 0;
};

}  // namespace tmach::util
