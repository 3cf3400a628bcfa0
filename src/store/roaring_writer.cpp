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

using Kind = RoaringContainer::Kind;  // (kArray, kBitset, kRun)

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
// container's runs less one. Four values at a time (GCC/Clang vector extensions: SSE2 on
// x86-64, NEON on ARM): a protocol's or network kind's container holds nearly every packet of
// its window.
inline uint32_t breaks(const uint32_t* v, size_t b, size_t e) {
  using U4 = uint32_t __attribute__((vector_size(16)));
  using I4 = int32_t __attribute__((vector_size(16)));
  I4 acc{};
  size_t j = b + 1;
  for (; j + 4 <= e; j += 4) {
    U4 x, y;
    std::memcpy(&x, v + j, 16);
    std::memcpy(&y, v + j - 1, 16);
    acc += (x != y + 1);  // -1 in each lane that breaks a run
  }
  uint32_t n = static_cast<uint32_t>(-(acc[0] + acc[1] + acc[2] + acc[3]));
  for (; j < e; ++j) n += v[j] != v[j - 1] + 1;
  return n;
}

// The container starting at vals[i]: how far it reaches, its runs, and the type
// runOptimize leaves it as. addMany makes an array up to 4096 values and a bitset beyond;
// convert_run_optimize turns an array into runs when 2 + 4 * runs < 2 + 2 * card
// (run_container_serialized_size_in_bytes against array_container_serialized_size_in_bytes)
// and a bitset when 2 + 4 * runs < 8192 (bitset_container_serialized_size_in_bytes).
inline Container scan(const uint32_t* v, size_t n, size_t i) {
  const uint32_t key = v[i] >> 16;
  const uint32_t last = key << 16 | 0xffff;  // the container's largest possible value
  // Its end: ascending values put at most 65536 in a container, so a binary search within
  // those (the first index whose value is above `last`) rather than a test per value.
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
  const uint32_t runs = 1 + breaks(v, i, e);
  Container c{static_cast<uint32_t>(i), static_cast<uint32_t>(e - i), runs, static_cast<uint16_t>(key),
              Kind::kArray};
  const size_t as_run = 2 + 4 * size_t{runs};
  if (c.card <= kMaxArray)
    c.kind = as_run < 2 + 2 * size_t{c.card} ? Kind::kRun : Kind::kArray;
  else
    c.kind = as_run < kBitsetBytes ? Kind::kRun : Kind::kBitset;
  return c;
}

RoaringContainer shape_of(const Container& c) {
  return RoaringContainer{c.key, static_cast<uint16_t>(c.card - 1), static_cast<uint16_t>(c.bytes()), c.kind};
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

size_t roaring_portable_write(const uint32_t* vals, size_t n, uint8_t* out) {
  // Container by container, as IndexBuilder writes them: their shapes (the header needs their
  // count, types and sizes), the header, then each container's data.
  std::vector<Container> cs;
  std::vector<RoaringContainer> shapes;
  bool has_run = false;
  for (size_t i = 0; i < n; i += cs.back().card) {
    cs.push_back(scan(vals, n, i));
    shapes.push_back(shape_of(cs.back()));
    has_run |= cs.back().kind == Kind::kRun;
  }
  uint8_t* p = roaring_header_write(shapes, has_run, out);
  for (const Container& c : cs) p = write_container(vals, c, p);
  return static_cast<size_t>(p - out);
}

RoaringContainer roaring_container_shape(const uint32_t* vals, size_t n) {
  return shape_of(scan(vals, n, 0));
}

void roaring_container_write(const uint32_t* vals, size_t n, const RoaringContainer& rc, uint8_t* out) {
  // (runs: what a run container's data begins with, 2 + 4 * runs bytes)
  const Container c{0, static_cast<uint32_t>(n), rc.kind == Kind::kRun ? (rc.bytes - 2u) / 4u : 0u, rc.key,
                    rc.kind};
  write_container(vals, c, out);
}

void roaring_container_decode(const RoaringContainer& c, const uint8_t* data, uint32_t* out) {
  const uint32_t high = uint32_t{c.key} << 16;
  switch (c.kind) {
    case RoaringContainer::kArray:
      for (size_t i = 0; i <= c.card_minus_1; ++i) {
        uint16_t v;
        std::memcpy(&v, data + 2 * i, 2);
        *out++ = high | v;
      }
      return;
    case RoaringContainer::kBitset:
      for (uint32_t w = 0; w < kBitsetBytes / 8; ++w) {
        uint64_t bits;
        std::memcpy(&bits, data + 8 * w, 8);
        for (; bits; bits &= bits - 1)
          *out++ = high | (w << 6) | static_cast<uint32_t>(std::countr_zero(bits));
      }
      return;
    default: {
      uint16_t runs;
      std::memcpy(&runs, data, 2);
      for (size_t r = 0; r < runs; ++r) {
        uint16_t start, len;
        std::memcpy(&start, data + 2 + 4 * r, 2);
        std::memcpy(&len, data + 4 + 4 * r, 2);
        for (uint32_t v = start; v <= uint32_t{start} + len; ++v) *out++ = high | v;
      }
    }
  }
}

size_t roaring_header_size(size_t containers, bool has_run) { return header_bytes(containers, has_run); }

uint8_t* roaring_header_write(std::span<const RoaringContainer> cs, bool has_run, uint8_t* p) {
  const size_t nc = cs.size();
  if (has_run) {
    p = put32(p, kCookieRun | static_cast<uint32_t>(nc - 1) << 16);
    const size_t flag_bytes = (nc + 7) / 8;
    std::memset(p, 0, flag_bytes);
    for (size_t k = 0; k < nc; ++k)
      if (cs[k].kind == RoaringContainer::kRun) p[k / 8] |= static_cast<uint8_t>(1u << (k % 8));
    p += flag_bytes;
  } else {
    p = put32(put32(p, kCookieNoRun), static_cast<uint32_t>(nc));
  }
  for (const RoaringContainer& c : cs) p = put16(put16(p, c.key), c.card_minus_1);
  if (!has_run || nc >= kNoOffsetThreshold) {
    uint32_t at = static_cast<uint32_t>(header_bytes(nc, has_run));
    for (const RoaringContainer& c : cs) {
      p = put32(p, at);
      at += c.bytes;
    }
  }
  return p;
}

}  // namespace tmach::store
