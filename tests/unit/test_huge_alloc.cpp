// util::huge_alloc / HugeAllocator: the large buffers' allocator (index log, postings, sidecar).
#include <gtest/gtest.h>

#include <cstdint>
#include <numeric>
#include <vector>

#include "store/index.h"
#include "util/huge_alloc.h"

using namespace tmach;

TEST(HugeAlloc, AlignedZeroedWritable) {
  for (size_t bytes : {size_t{1}, size_t{4096}, util::kHugePageBytes - 1, util::kHugePageBytes,
                       util::kHugePageBytes + 1, 3 * util::kHugePageBytes + 17}) {
    auto* p = static_cast<uint8_t*>(util::huge_alloc(bytes));
    ASSERT_NE(p, nullptr) << bytes;
    EXPECT_EQ(reinterpret_cast<uintptr_t>(p) % util::kHugePageBytes, 0u) << bytes;
    // Zero-filled, and every byte asked for (and up to the 2 MiB rounding) is writable.
    const size_t whole = (bytes + util::kHugePageBytes - 1) / util::kHugePageBytes * util::kHugePageBytes;
    bool zero = true;
    for (size_t i = 0; i < whole; i += 997) zero &= p[i] == 0;
    EXPECT_TRUE(zero) << bytes;
    p[bytes - 1] = 2;
    p[whole - 1] = 3;
    EXPECT_EQ(p[bytes - 1], bytes == whole ? 3 : 2) << bytes;
    EXPECT_EQ(p[whole - 1], 3) << bytes;
    util::huge_free(p, bytes);
  }
  util::huge_free(nullptr, 123);  // (a no-op, as free(nullptr))
}

TEST(HugeAlloc, VectorGrowsAcrossTheThreshold) {
  // Small capacities from operator new, large ones from huge_alloc: contents survive each move.
  std::vector<uint32_t, util::HugeAllocator<uint32_t>> v;
  const size_t n = 3 * util::kHugePageBytes / sizeof(uint32_t) + 5;
  for (size_t i = 0; i < n; ++i) v.push_back(static_cast<uint32_t>(i * 2654435761u));
  bool same = true;
  for (size_t i = 0; i < n; ++i) same &= v[i] == static_cast<uint32_t>(i * 2654435761u);
  EXPECT_TRUE(same);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(v.data()) % util::kHugePageBytes, 0u);
  v.resize(10);
  v.shrink_to_fit();  // back below the threshold: from operator new again
  EXPECT_EQ(v.size(), 10u);
  EXPECT_EQ(v[9], static_cast<uint32_t>(9 * 2654435761u));
}

TEST(HugeAlloc, UninitVectorKeepsWhatItHolds) {
  // store::UninitVector (DefaultInitAllocator on HugeAllocator): resize() does not zero-fill,
  // but growing keeps the elements it had, and value-constructing still constructs.
  store::UninitVector<uint32_t> v(1000);
  std::iota(v.begin(), v.end(), 7u);
  v.resize(util::kHugePageBytes);  // 8 MiB: a huge buffer
  EXPECT_EQ(v[0], 7u);
  EXPECT_EQ(v[999], 1006u);
  store::UninitVector<uint32_t> w(5, 42u);
  EXPECT_EQ(w[4], 42u);
  EXPECT_TRUE(v.get_allocator() == w.get_allocator());
}
