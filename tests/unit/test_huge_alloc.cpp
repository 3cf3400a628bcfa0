// util::huge_alloc / HugeAllocator: the large buffers' allocator (index log, postings, sidecar).
#include <gtest/gtest.h>
#include <sys/mman.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <numeric>
#include <string>
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

TEST(HugeAlloc, ReallocKeepsContentsWhereverItGoes) {
  const size_t mb2 = util::kHugePageBytes;
  auto* p = static_cast<uint8_t*>(util::huge_alloc(mb2));
  for (size_t i = 0; i < mb2; i += 4096) p[i] = static_cast<uint8_t>(i / 4096 + 1);
  // Something mapped right after it: it cannot grow where it is, so it moves.
  void* blocker =
      mmap(p + mb2, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
  const bool blocked = blocker == p + mb2;
  auto* q = static_cast<uint8_t*>(util::huge_realloc(p, mb2, 3 * mb2));
  if (blocked) {
    EXPECT_NE(q, p);
  }
  EXPECT_EQ(reinterpret_cast<uintptr_t>(q) % mb2, 0u);
  bool same = true;
  for (size_t i = 0; i < mb2; i += 4096) same &= q[i] == static_cast<uint8_t>(i / 4096 + 1);
  EXPECT_TRUE(same);
  EXPECT_EQ(q[3 * mb2 - 1], 0);  // the grown part: fresh, zero, writable
  q[3 * mb2 - 1] = 7;
  // Shrinking keeps the start (and what is in it).
  auto* r = static_cast<uint8_t*>(util::huge_realloc(q, 3 * mb2, mb2 + 1));
  EXPECT_EQ(r, q);
  EXPECT_EQ(r[4096], 2);
  util::huge_free(r, 2 * mb2);
  if (blocker != MAP_FAILED) munmap(blocker, 4096);
}

TEST(HugeAlloc, HugeVectorGrowsWithoutLosingValues) {
  util::HugeVector<uint32_t> v;
  EXPECT_TRUE(v.empty());
  const size_t n = 5 * util::kHugePageBytes / sizeof(uint32_t) + 3;  // heap, then huge, then remapped
  bool aligned = true;
  for (size_t i = 0; i < n; ++i) {
    v.push_back(static_cast<uint32_t>(i * 2654435761u));
    if (v.capacity() * sizeof(uint32_t) >= util::kHugePageBytes)
      aligned &= reinterpret_cast<uintptr_t>(v.data()) % util::kHugePageBytes == 0;
  }
  EXPECT_TRUE(aligned);
  ASSERT_EQ(v.size(), n);
  bool same = true;
  for (size_t i = 0; i < n; ++i) same &= v[i] == static_cast<uint32_t>(i * 2654435761u);
  EXPECT_TRUE(same);
  EXPECT_EQ(v.back(), static_cast<uint32_t>((n - 1) * 2654435761u));
  // Capacity doubles (the memory accounting counts it): never more than twice what is held,
  // once past the first huge page.
  EXPECT_LE(v.capacity(), 2 * n);
  EXPECT_EQ(v.capacity() * sizeof(uint32_t) % util::kHugePageBytes, 0u);

  util::HugeVector<uint32_t> c = v;  // a copy: the same values, its own memory
  EXPECT_NE(c.data(), v.data());
  EXPECT_TRUE(std::equal(c.begin(), c.end(), v.begin(), v.end()));
  const uint32_t* at = v.data();
  const size_t cap = v.capacity();
  util::HugeVector<uint32_t> m = std::move(v);  // a move: the same memory
  EXPECT_EQ(m.data(), at);
  EXPECT_TRUE(v.empty());
  m.clear();  // keeps the memory
  EXPECT_EQ(m.capacity(), cap);
  m.push_back(9);
  EXPECT_EQ(m.data(), at);
  EXPECT_EQ(m[0], 9u);
  m.swap(c);
  EXPECT_EQ(c.size(), 1u);
  EXPECT_EQ(m.size(), n);

  util::HugeVector<uint32_t> small;
  small.reserve(10);
  EXPECT_GE(small.capacity(), 10u);
  const uint32_t three[] = {1, 2, 3};
  small.assign(std::begin(three), std::end(three));
  EXPECT_EQ(small.size(), 3u);
  EXPECT_EQ(small[2], 3u);
  small = m;  // copy-assign over a small one: grows into huge pages
  EXPECT_EQ(small.size(), n);
  EXPECT_EQ(small[n - 1], m[n - 1]);
}

namespace {
// The VmFlags of the mapping holding `p` (/proc/self/smaps: "hg" for MADV_HUGEPAGE, "nh" for
// MADV_NOHUGEPAGE), or "" where there is no such line.
std::string vm_flags(const void* p) {
  std::ifstream smaps("/proc/self/smaps");
  const auto at = reinterpret_cast<uintptr_t>(p);
  std::string line;
  bool in = false;
  while (std::getline(smaps, line)) {
    unsigned long lo, hi;
    if (std::sscanf(line.c_str(), "%lx-%lx ", &lo, &hi) == 2 && line.find(':') > line.find(' ')) {
      in = at >= lo && at < hi;
    } else if (in && line.rfind("VmFlags:", 0) == 0) {
      return line.substr(8) + " ";
    }
  }
  return "";
}
}  // namespace

TEST(HugeAlloc, PageAllocIsInBasePagesAndTheArenaUsesIt) {
  // page_alloc: zero-filled, writable to the last byte, advised out of huge pages; huge_alloc
  // advised into them. The index's container arena (written once, in sequence) is in base pages.
  const size_t bytes = 3 * util::kHugePageBytes + 17;
  auto* p = static_cast<uint8_t*>(util::page_alloc(bytes));
  auto* h = static_cast<uint8_t*>(util::huge_alloc(bytes));
  bool zero = true;
  for (size_t i = 0; i < bytes; i += 997) zero &= p[i] == 0;
  EXPECT_TRUE(zero);
  p[bytes - 1] = 5;
  EXPECT_EQ(p[bytes - 1], 5);
  const std::string pf = vm_flags(p), hf = vm_flags(h);
  if (pf.empty()) GTEST_SKIP() << "no VmFlags in /proc/self/smaps";
  if (hf.find(" hg ") == std::string::npos)
    GTEST_SKIP() << "madvise(MADV_HUGEPAGE) not honoured (no THP): " << hf;
  EXPECT_NE(pf.find(" nh "), std::string::npos) << pf;
  EXPECT_EQ(pf.find(" hg "), std::string::npos) << pf;

  store::ContainerArena arena;
  store::RoaringContainer c{};
  c.kind = store::RoaringContainer::kArray;
  c.card_minus_1 = 0;
  c.bytes = 2;
  const uint8_t* data = arena.add(c, 7);
  const std::string af = vm_flags(data);
  EXPECT_NE(af.find(" nh "), std::string::npos) << af;
  EXPECT_EQ(store::ContainerArena::slot(arena.record(arena.reference(data))), 7u);
  util::page_free(p, bytes);
  util::huge_free(h, bytes);
}
