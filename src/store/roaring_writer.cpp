#include "store/roaring_writer.h"

#include <bit>
#include <cstring>
#include <vector>

namespace tmach::store {
namespace {

static_assert(std::endian::native == std::endian::little, "the portable format is little-endian");

// roaring_array.h (SERIAL_COOKIE_NO_RUNCONTAINER, SERIAL_COOKIE, NO_OFFSET_THRESHOLD) and
// containers/array.h (DEFAULT_MAX_SIZE).
constexpr uint32_t kCookieNoRun = 12346, kCookieRun = 12347;
constexpr size_t kNoOffsetThreshold = 4;
constexpr uint32_t kMaxArray = 4096;
constexpr size_t kBitsetBytes = 8192;

enum class Kind : uint8_t { kArray, kBitset, kRun };

struct Container {
  uint32_t begin;  // index of its first value
  uint32_t card;
  uint32_t runs;
  uint16_t key;
  Kind kind;

  size_t bytes() const {
    switch (kind) {
      case Kind::kArray:
        return 2 * size_t{card};
      case Kind::kBitset:
        return kBitsetBytes;
      default:
        return 2 + 4 * size_t{runs};
    }
  }
};

// The values from v[b + 1] to v[e - 1] that do not continue a run (v[j] != v[j - 1] + 1): the
// container's runs less one. With kCheck, *ascending is cleared when some v[j] <= v[j - 1].
// Four values at a time (GCC/Clang vector extensions: SSE2 on x86-64, NEON on ARM): a
// segment's protocol and network lists hold nearly every packet, and every value is visited
// here once for the size and once again for the write.
template <bool kCheck>
inline uint32_t breaks(const uint32_t* v, size_t b, size_t e, bool* ascending) {
  using U4 = uint32_t __attribute__((vector_size(16)));
  using I4 = int32_t __attribute__((vector_size(16)));
  I4 acc{}, disorder{};
  size_t j = b + 1;
  for (; j + 4 <= e; j += 4) {
    U4 x, y;
    std::memcpy(&x, v + j, 16);
    std::memcpy(&y, v + j - 1, 16);
    acc += (x != y + 1);  // -1 in each lane that breaks a run
    if constexpr (kCheck) disorder |= (x <= y);
  }
  uint32_t n = static_cast<uint32_t>(-(acc[0] + acc[1] + acc[2] + acc[3]));
  bool bad = false;
  for (; j < e; ++j) {
    n += v[j] != v[j - 1] + 1;
    if constexpr (kCheck) bad |= v[j] <= v[j - 1];
  }
  if constexpr (kCheck)
    if (bad || (disorder[0] | disorder[1] | disorder[2] | disorder[3])) *ascending = false;
  return n;
}

// The container starting at vals[i]: how far it reaches, its runs, and the type
// runOptimize leaves it as. addMany makes an array up to 4096 values and a bitset beyond;
// convert_run_optimize turns an array into runs when 2 + 4 * runs < 2 + 2 * card
// (run_container_serialized_size_in_bytes against array_container_serialized_size_in_bytes)
// and a bitset when 2 + 4 * runs < 8192 (bitset_container_serialized_size_in_bytes).
// With kCheck, values not strictly ascending clear *ascending (the container is then garbage).
template <bool kCheck = false>
inline Container scan(const uint32_t* v, size_t n, size_t i, bool* ascending = nullptr) {
  const uint32_t key = v[i] >> 16;
  const uint32_t last = key << 16 | 0xffff;  // the container's largest possible value
  // Its end: ascending values put at most 65536 in a container, so a binary search within
  // those (the first index whose value is above `last`) rather than a test per value. When
  // the values are not ascending, it still ends at an index whose value is above `last` or
  // at the search's limit: the check of the values within it then sees the disorder, or the
  // limit's value (a 65537th value for the key) does.
  const size_t limit = n - i > 65536 ? i + 65536 : n;
  size_t e = limit;
  if (v[limit - 1] > last) {
    size_t lo = i + 1, hi = limit - 1;  // the end is in [lo, hi]; v[hi] > last
    while (lo < hi) {
      const size_t mid = lo + (hi - lo) / 2;
      if (v[mid] <= last)
        lo = mid + 1;
      else
        hi = mid;
    }
    e = lo;
  }
  if constexpr (kCheck)
    if (e < n && v[e] <= last) *ascending = false;
  const uint32_t runs = 1 + breaks<kCheck>(v, i, e, ascending);
  Container c{static_cast<uint32_t>(i), static_cast<uint32_t>(e - i), runs, static_cast<uint16_t>(key),
              Kind::kArray};
  const size_t as_run = 2 + 4 * size_t{runs};
  if (c.card <= kMaxArray)
    c.kind = as_run < 2 + 2 * size_t{c.card} ? Kind::kRun : Kind::kArray;
  else
    c.kind = as_run < kBitsetBytes ? Kind::kRun : Kind::kBitset;
  return c;
}

size_t header_bytes(size_t containers, bool has_run) {
  if (!has_run) return 8 + 8 * containers;  // cookie, count, (key, card - 1) and offset each
  // cookie with the count, run-container bitmap, (key, card - 1) each, offsets only from 4 on
  return 4 + (containers + 7) / 8 + 4 * containers + (containers >= kNoOffsetThreshold ? 4 * containers : 0);
}

inline uint8_t* put16(uint8_t* p, uint32_t v) {
  const uint16_t x = static_cast<uint16_t>(v);
  std::memcpy(p, &x, 2);
  return p + 2;
}
inline uint8_t* put32(uint8_t* p, uint32_t v) {
  std::memcpy(p, &v, 4);
  return p + 4;
}

uint8_t* write_container(const uint32_t* v, const Container& c, uint8_t* p) {
  const uint32_t* b = v + c.begin;
  const uint32_t* e = b + c.card;
  switch (c.kind) {
    case Kind::kArray:
      for (; b != e; ++b) p = put16(p, *b);
      return p;
    case Kind::kBitset: {
      // A 64-bit word at a time (the values ascend: each word is stored once, when the next
      // value leaves it), rather than a byte read and written back per value.
      std::memset(p, 0, kBitsetBytes);
      uint32_t at = (*b & 0xffff) >> 6;
      uint64_t w = 0;
      for (; b != e; ++b) {
        const uint32_t lo = *b & 0xffff;
        if (lo >> 6 != at) {
          std::memcpy(p + 8 * size_t{at}, &w, 8);
          at = lo >> 6;
          w = 0;
        }
        w |= uint64_t{1} << (lo & 63);
      }
      std::memcpy(p + 8 * size_t{at}, &w, 8);
      return p + kBitsetBytes;
    }
    default: {
      p = put16(p, c.runs);
      uint32_t start = *b, prev = *b;
      for (++b; b != e; ++b) {
        if (*b != prev + 1) {
          p = put16(put16(p, start), prev - start);  // (first value, length - 1)
          start = *b;
        }
        prev = *b;
      }
      return put16(put16(p, start), prev - start);
    }
  }
}

}  // namespace

size_t roaring_portable_size(const uint32_t* vals, size_t n) {
  size_t containers = 0, data = 0;
  bool has_run = false;
  for (size_t i = 0; i < n;) {
    const Container c = scan(vals, n, i);
    ++containers;
    data += c.bytes();
    has_run |= c.kind == Kind::kRun;
    i += c.card;
  }
  return header_bytes(containers, has_run) + data;
}

size_t roaring_portable_size_if_ascending(const uint32_t* vals, size_t n) {
  size_t containers = 0, data = 0;
  bool has_run = false, ascending = true;
  for (size_t i = 0; i < n;) {
    // (a container's first value is above the last one's largest possible value: only the
    // values within a container need the check)
    const Container c = scan<true>(vals, n, i, &ascending);
    if (!ascending) return 0;
    ++containers;
    data += c.bytes();
    has_run |= c.kind == Kind::kRun;
    i += c.card;
  }
  return header_bytes(containers, has_run) + data;
}

size_t roaring_portable_write(const uint32_t* vals, size_t n, uint8_t* out) {
  // The containers are described first (the header needs their count, types and sizes),
  // on the stack for any bitmap of up to kLocal * 65536 values.
  constexpr size_t kLocal = 64;
  Container local[kLocal];
  std::vector<Container> more;  // the containers from kLocal on
  size_t nc = 0;
  bool has_run = false;
  for (size_t i = 0; i < n; ++nc) {
    const Container c = scan(vals, n, i);
    if (nc < kLocal)
      local[nc] = c;
    else
      more.push_back(c);
    has_run |= c.kind == Kind::kRun;
    i += c.card;
  }
  auto cs = [&](size_t k) -> const Container& { return k < kLocal ? local[k] : more[k - kLocal]; };

  uint8_t* p = out;
  if (has_run) {
    p = put32(p, kCookieRun | static_cast<uint32_t>(nc - 1) << 16);
    const size_t flag_bytes = (nc + 7) / 8;
    std::memset(p, 0, flag_bytes);
    for (size_t k = 0; k < nc; ++k)
      if (cs(k).kind == Kind::kRun) p[k / 8] |= static_cast<uint8_t>(1u << (k % 8));
    p += flag_bytes;
  } else {
    p = put32(put32(p, kCookieNoRun), static_cast<uint32_t>(nc));
  }
  for (size_t k = 0; k < nc; ++k) p = put16(put16(p, cs(k).key), cs(k).card - 1);
  if (!has_run || nc >= kNoOffsetThreshold) {
    uint32_t at = static_cast<uint32_t>(header_bytes(nc, has_run));  // offsets from the start
    for (size_t k = 0; k < nc; ++k) {
      p = put32(p, at);
      at += static_cast<uint32_t>(cs(k).bytes());
    }
  }
  for (size_t k = 0; k < nc; ++k) p = write_container(vals, cs(k), p);
  return static_cast<size_t>(p - out);
}

}  // namespace tmach::store
