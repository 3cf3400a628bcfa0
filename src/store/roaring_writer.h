// CRoaring's portable serialization written straight from sorted values, without building a
// Roaring bitmap: the index builder writes millions of small containers per segment, and
// making, sizing, serialising and freeing a Roaring object for each key cost more than the
// rest of its work.
//
// The bytes are exactly those CRoaring 0.2.66 writes for
//   Roaring r; r.addMany(n, vals); r.runOptimize(); r.write(out, true);
// (the portable format of the RoaringFormatSpec): per 16-bit high key an array container
// when it holds at most 4096 values, a bitset otherwise, each turned into a run container
// where runOptimize would (when that is strictly smaller serialized); the cookie 12347 with
// a run-container bitmap when any container is a run, 12346 otherwise; container offsets
// unless runs are present and there are fewer than 4 containers. tests/unit/test_roaring_writer.cpp
// holds this to CRoaring itself, so a CRoaring upgrade that changed its choices would show there.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

namespace tmach::store {

// `vals`: strictly ascending (sorted, no duplicates); n may be 0. The whole bitmap at once, made
// through the container functions below (what tests/unit/test_roaring_writer.cpp holds to
// CRoaring).
// The size in bytes of the serialization (what Roaring::getSizeInBytes(true) returns).
size_t roaring_portable_size(const uint32_t* vals, size_t n);
// Writes the serialization to `out`, which must hold roaring_portable_size(vals, n) bytes.
// Returns the bytes written (that size).
size_t roaring_portable_write(const uint32_t* vals, size_t n, uint8_t* out);

// The same bitmaps made one container at a time (IndexBuilder: a key's container for each
// 65536 ordinals is final once they are past, so it is written then, from ordinals still in
// the caches, and the seal only puts a header before the key's containers).
struct RoaringContainer {
  enum Kind : uint8_t { kArray, kBitset, kRun };
  uint16_t key;           // the values' high 16 bits
  uint16_t card_minus_1;  // the values' count less one
  uint16_t bytes;         // its serialized size (at most 8192)
  Kind kind;              // as runOptimize leaves it
};
// `vals`: n (1 to 65536) strictly ascending values sharing their high 16 bits.
RoaringContainer roaring_container_shape(const uint32_t* vals, size_t n);
// Writes its `bytes` bytes (the portable format's container data) to `out`.
void roaring_container_write(const uint32_t* vals, size_t n, const RoaringContainer& c, uint8_t* out);
// Its values from its data, in ascending order, into `out` (room for card_minus_1 + 1).
void roaring_container_decode(const RoaringContainer& c, const uint8_t* data, uint32_t* out);
// The header before containers `cs` (ascending keys): its size, and writing it (returns its end).
size_t roaring_header_size(size_t containers, bool has_run);
uint8_t* roaring_header_write(std::span<const RoaringContainer> cs, bool has_run, uint8_t* out);

}  // namespace tmach::store
