// A fixed-size, zero-filled array in anonymous memory, backed by transparent huge pages
// where the kernel allows: the connection table is hundreds of MB of random accesses, and
// 2 MiB pages remove most of its TLB misses. Pages are only committed when touched.
#pragma once

#include <sys/mman.h>

#include <cstddef>
#include <cstring>
#include <new>
#include <type_traits>

#include "util/huge_alloc.h"

namespace tmach::util {

template <class T>
class HugeArray {
  // T must be valid as all-zero bytes (its default state): the memory is not constructed.
  static_assert(std::is_trivially_copyable_v<T> && std::is_trivially_destructible_v<T>,
                "zero-filled memory must be a valid T");

 public:
  HugeArray() = default;
  explicit HugeArray(size_t n) : n_(n) {
    bytes_ = (n * sizeof(T) + kHugePageBytes - 1) & ~(kHugePageBytes - 1);
    if (bytes_ == 0) return;
    data_ = static_cast<T*>(huge_alloc(bytes_));
  }
  ~HugeArray() {
    if (data_) huge_free(data_, bytes_);
  }
  HugeArray(const HugeArray&) = delete;
  HugeArray& operator=(const HugeArray&) = delete;
  HugeArray(HugeArray&& o) noexcept { *this = std::move(o); }
  HugeArray& operator=(HugeArray&& o) noexcept {
    std::swap(data_, o.data_);
    std::swap(n_, o.n_);
    std::swap(bytes_, o.bytes_);
    return *this;
  }

  // Every element back to zero. The pages go back to the kernel, which gives zero pages at
  // the next touch: nothing is written, so a large array touched in a few places costs what it
  // touched, not its size (clearing one of 2 GiB wrote 2 GiB of fresh pages).
  void zero() {
    if (data_ && ::madvise(data_, bytes_, MADV_DONTNEED) != 0)
      std::memset(static_cast<void*>(data_), 0, n_ * sizeof(T));
  }
  T& operator[](size_t i) { return data_[i]; }
  const T& operator[](size_t i) const { return data_[i]; }
  size_t size() const { return n_; }
  size_t mapped_bytes() const { return bytes_; }  // n * sizeof(T), rounded up to 2 MiB
  T* begin() { return data_; }
  T* end() { return data_ + n_; }
  const T* begin() const { return data_; }
  const T* end() const { return data_ + n_; }

 private:
  T* data_ = nullptr;
  size_t n_ = 0;
  size_t bytes_ = 0;
};

}  // namespace tmach::util
