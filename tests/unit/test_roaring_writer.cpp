// roaring_portable_write() must produce CRoaring's own bytes (addMany, runOptimize, portable
// write): the sidecars it writes are read back with Roaring::read and compared across versions
// of tm by cmp. Each case is checked against CRoaring itself.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <random>
#include <roaring/roaring.hh>
#include <string>
#include <vector>

#include "store/roaring_writer.h"

using namespace tmach;

namespace {

std::vector<char> croaring_bytes(const std::vector<uint32_t>& v) {
  Roaring r;
  r.addMany(v.size(), v.data());
  r.runOptimize();
  std::vector<char> out(r.getSizeInBytes(true));
  size_t n = r.write(out.data(), true);
  out.resize(n);
  return out;
}

// Sorts and de-duplicates, then compares size and bytes with CRoaring's.
void expect_same_as_croaring(std::vector<uint32_t> v, const std::string& what) {
  std::sort(v.begin(), v.end());
  v.erase(std::unique(v.begin(), v.end()), v.end());
  const std::vector<char> want = croaring_bytes(v);
  const size_t size = store::roaring_portable_size(v.data(), v.size());
  ASSERT_EQ(size, want.size()) << what << " (" << v.size() << " values)";
  std::vector<uint8_t> got(size + 16, 0xa5);  // guard bytes: nothing written past the size
  ASSERT_EQ(store::roaring_portable_write(v.data(), v.size(), got.data()), size) << what;
  for (size_t i = size; i < got.size(); ++i) ASSERT_EQ(got[i], 0xa5) << what << ": wrote past its size";
  ASSERT_EQ(std::memcmp(got.data(), want.data(), size), 0) << what << " (" << v.size() << " values)";
  // And CRoaring reads it back as the same set.
  Roaring back = Roaring::read(reinterpret_cast<const char*>(got.data()), true);
  ASSERT_EQ(back.cardinality(), v.size()) << what;
  // Each container decodes to its values (what a seal merging a late fragment does).
  for (size_t i = 0; i < v.size();) {
    size_t e = i;
    while (e < v.size() && v[e] >> 16 == v[i] >> 16) ++e;
    const store::RoaringContainer c = store::roaring_container_shape(v.data() + i, e - i);
    std::vector<uint8_t> data(c.bytes);
    store::roaring_container_write(v.data() + i, e - i, c, data.data());
    std::vector<uint32_t> vals(size_t{c.card_minus_1} + 1);
    ASSERT_EQ(vals.size(), e - i) << what;
    store::roaring_container_decode(c, data.data(), vals.data());
    ASSERT_TRUE(std::equal(vals.begin(), vals.end(), v.begin() + static_cast<std::ptrdiff_t>(i))) << what;
    i = e;
  }
}

std::vector<uint32_t> range(uint32_t lo, uint32_t n, uint32_t step = 1) {
  std::vector<uint32_t> v;
  for (uint32_t i = 0; i < n; ++i) v.push_back(lo + i * step);
  return v;
}

// `runs` runs of `len` consecutive values in container `key`, spread over it.
std::vector<uint32_t> runs_in(uint32_t key, uint32_t runs, uint32_t len) {
  std::vector<uint32_t> v;
  const uint32_t stride = 65536 / runs;
  for (uint32_t r = 0; r < runs; ++r)
    for (uint32_t i = 0; i < len; ++i) v.push_back(key << 16 | (r * stride + i));
  return v;
}

}  // namespace

TEST(RoaringWriter, EmptyAndSingleValues) {
  expect_same_as_croaring({}, "empty");
  for (uint32_t x : {0u, 1u, 65535u, 65536u, 65537u, 0x7fffffffu, 0xfffffffeu, 0xffffffffu})
    expect_same_as_croaring({x}, "single " + std::to_string(x));
  expect_same_as_croaring({0, 65535, 65536, 0xffffffffu}, "container edges");
  expect_same_as_croaring({0xfffffffeu, 0xffffffffu}, "last two");
}

TEST(RoaringWriter, ArrayAndBitsetBoundary) {
  // 4096 values: the largest array; 4097: a bitset. Every other value, so no runs.
  expect_same_as_croaring(range(0, 4096, 2), "4096 spread");
  expect_same_as_croaring(range(0, 4097, 2), "4097 spread");
  expect_same_as_croaring(range(3 << 16, 4096, 3), "4096 spread, key 3");
  expect_same_as_croaring(range(3 << 16, 4097, 3), "4097 spread, key 3");
  // Consecutive: runs win over both.
  expect_same_as_croaring(range(0, 4096), "4096 consecutive");
  expect_same_as_croaring(range(0, 4097), "4097 consecutive");
}

TEST(RoaringWriter, FullContainersAndLongRuns) {
  expect_same_as_croaring(range(0, 65536), "full container 0");
  expect_same_as_croaring(range(0xffff0000u, 65536), "full last container");
  expect_same_as_croaring(range(0, 3 * 65536), "three full containers");
  expect_same_as_croaring(range(100, 1000000), "long run over many containers");
  expect_same_as_croaring(range(65000, 2000), "run across a container boundary");
}

TEST(RoaringWriter, AlternatingStaysBitset) {
  expect_same_as_croaring(range(0, 32768, 2), "alternating, one container");
  expect_same_as_croaring(range(1, 32768 * 5, 2), "alternating, five containers");
}

TEST(RoaringWriter, RunOptimizeTiePoints) {
  // Array -> run iff 2 + 4 runs < 2 + 2 card. Runs of 2 are the tie (equal sizes): array.
  expect_same_as_croaring(runs_in(0, 50, 2), "array tie: 50 runs of 2");
  expect_same_as_croaring(runs_in(0, 1, 2), "array tie: 1 run of 2");
  {
    auto v = runs_in(0, 50, 2);
    v.push_back(65535);  // a lone value: 51 runs, card 101 (206 vs 204 bytes): array
    expect_same_as_croaring(v, "array: one byte pair over the tie");
  }
  {
    auto v = runs_in(0, 50, 2);
    v.push_back(2);  // extends the first run: 50 runs, card 101 (202 vs 204 bytes): run
    expect_same_as_croaring(v, "run: one byte pair under the tie");
  }
  expect_same_as_croaring(runs_in(0, 40, 3), "array -> run: runs of 3");
  expect_same_as_croaring(runs_in(7, 1, 4096), "array -> run: one run of 4096");
  // Bitset -> run iff 2 + 4 runs < 8192, i.e. runs <= 2047.
  expect_same_as_croaring(runs_in(0, 2047, 3), "bitset -> run at 2047 runs");
  expect_same_as_croaring(runs_in(0, 2048, 3), "bitset stays at 2048 runs");
  expect_same_as_croaring(runs_in(0, 2046, 3), "bitset -> run at 2046 runs");
  expect_same_as_croaring(runs_in(0, 2049, 2), "bitset stays at 2049 runs");
  expect_same_as_croaring(runs_in(2, 1024, 8), "bitset -> run: 1024 runs of 8");
}

TEST(RoaringWriter, ContainerCountAndOffsetTable) {
  // With a run container the offsets are written only from 4 containers on.
  for (uint32_t nc : {1u, 2u, 3u, 4u, 5u, 8u, 9u, 70u}) {
    std::vector<uint32_t> with_run, without_run;
    for (uint32_t k = 0; k < nc; ++k) {
      for (uint32_t i = 0; i < 10; ++i) with_run.push_back(k * 2 << 16 | (100 + i));
      without_run.push_back(k * 2 << 16 | 7);
      without_run.push_back(k * 2 << 16 | 9);
    }
    expect_same_as_croaring(with_run, "runs, containers: " + std::to_string(nc));
    expect_same_as_croaring(without_run, "no runs, containers: " + std::to_string(nc));
  }
  // A mix: the run flags span several bytes and only some are set.
  std::vector<uint32_t> mix;
  for (uint32_t k = 0; k < 20; ++k) {
    if (k % 3 == 0)
      for (uint32_t i = 0; i < 50; ++i) mix.push_back(k << 16 | i);
    else
      mix.push_back(k << 16 | (k * 17));
  }
  expect_same_as_croaring(mix, "mixed run and array containers");
}

TEST(RoaringWriter, RandomSetsOfMixedDensity) {
  std::mt19937_64 rng(20261125);
  for (int t = 0; t < 3000; ++t) {
    std::vector<uint32_t> v;
    const int containers = 1 + static_cast<int>(rng() % 6);
    for (int c = 0; c < containers; ++c) {
      // Mostly low keys (segment ordinals), sometimes anywhere.
      const uint32_t key =
          rng() % 4 == 0 ? static_cast<uint32_t>(rng() % 65536) : static_cast<uint32_t>(rng() % 40);
      const int kind = static_cast<int>(rng() % 8);
      const uint32_t n = kind < 3   ? 1 + rng() % 20
                         : kind < 6 ? 1 + rng() % 6000
                         : kind < 7 ? 1 + rng() % 65536
                                    : 4000 + rng() % 200;  // around the array limit
      // Random values, or runs of random lengths with random gaps.
      if (rng() % 2) {
        for (uint32_t i = 0; i < n; ++i) v.push_back(key << 16 | static_cast<uint32_t>(rng() % 65536));
      } else {
        uint32_t at = static_cast<uint32_t>(rng() % 1000), added = 0;
        while (added < n && at < 65536) {
          const uint32_t len = 1 + static_cast<uint32_t>(rng() % 12);
          for (uint32_t i = 0; i < len && at < 65536; ++i, ++at, ++added) v.push_back(key << 16 | at);
          at += 1 + static_cast<uint32_t>(rng() % 9);
        }
      }
    }
    expect_same_as_croaring(v, "random set " + std::to_string(t));
    if (testing::Test::HasFatalFailure()) return;
  }
}

// A container's end is found by binary search within the 65536 values it can hold, and its
// run breaks are counted four values at a time with a scalar tail: every length of a short
// container (tails of 0 to 3), and containers ending exactly at the search's limit.
TEST(RoaringWriter, ContainerEndsAndVectorTails) {
  for (uint32_t len = 1; len <= 13; ++len) {
    expect_same_as_croaring(range(65536 - len, len), "run ending at 65535, length " + std::to_string(len));
    expect_same_as_croaring(range(65536 - len, 2 * len),
                            "run across the boundary, length " + std::to_string(len));
    expect_same_as_croaring(range(5, len, 2), "spread, length " + std::to_string(len));
    auto v = range(5, len);
    v.back() += 1;  // a break in the last value (the scalar tail or the last vector)
    expect_same_as_croaring(v, "break at the end, length " + std::to_string(len));
  }
  // A full container (65536 values: the search's limit) then one more value or container.
  auto full = range(0, 65536);
  full.push_back(65536);
  expect_same_as_croaring(full, "full container, one value in the next");
  full.push_back(3 << 16);
  expect_same_as_croaring(full, "full container, then two more containers");
  // 65535 values (one missing) then the next container's first.
  auto holed = range(0, 65536);
  holed.erase(holed.begin() + 40000);
  holed.push_back(65536);
  expect_same_as_croaring(holed, "65535 values, then the next container");
}

// Bitsets are written a 64-bit word at a time: values at word edges (63, 64), the first and
// last word of the container, and words left empty between.
TEST(RoaringWriter, BitsetWordEdges) {
  std::vector<uint32_t> v;
  for (uint32_t w = 0; w < 1024; w += 1 + w % 3)
    for (uint32_t b : {0u, 1u, 31u, 32u, 62u, 63u}) v.push_back(w * 64 + b);
  expect_same_as_croaring(v, "word edges, key 0");
  for (uint32_t& x : v) x |= 9u << 16;
  expect_same_as_croaring(v, "word edges, key 9");
  // Dense with gaps, over two containers (the second's bitset starts at its own first word).
  std::vector<uint32_t> d;
  for (uint32_t x = 100; x < 3 * 65536; ++x)
    if (x % 7 != 0) d.push_back(x);
  expect_same_as_croaring(d, "six of seven, three containers");
}
