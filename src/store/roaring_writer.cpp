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

// The container starting at vals[i]: how far it reaches, its runs, and the type
// runOptimize leaves it as. addMany makes an array up to 4096 values and a bitset beyond;
// convert_run_optimize turns an array into runs when 2 + 4 * runs < 2 + 2 * card
// (run_container_serialized_size_in_bytes against array_container_serialized_size_in_bytes)
// and a bitset when 2 + 4 * runs < 8192 (bitset_container_serialized_size_in_bytes).
// With kCheck, a value not greater than the one before it stops the scan (ascending = false).
template <bool kCheck = false>
inline Container scan(const uint32_t* v, size_t n, size_t i, bool* ascending = nullptr) {
  const uint32_t key = v[i] >> 16;
  const uint32_t last = key << 16 | 0xffff;  // the container's largest possible value
  size_t j = i + 1;
  uint32_t runs = 1;
  for (; j < n && v[j] <= last; ++j) {
    if constexpr (kCheck) {
      if (v[j] <= v[j - 1]) [[unlikely]] {
        *ascending = false;
        break;
      }
    }
    runs += v[j] != v[j - 1] + 1;
  }
  Container c{static_cast<uint32_t>(i), static_cast<uint32_t>(j - i), runs, static_cast<uint16_t>(key),
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
    case Kind::kBitset:
      std::memset(p, 0, kBitsetBytes);
      for (; b != e; ++b) {
        const uint32_t lo = *b & 0xffff;
        p[lo >> 3] |= static_cast<uint8_t>(1u << (lo & 7));
      }
      return p + kBitsetBytes;
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
