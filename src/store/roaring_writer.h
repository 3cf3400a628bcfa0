// CRoaring's portable serialization written straight from a sorted set of values, without
// building a Roaring bitmap: the sealer writes hundreds of thousands of small bitmaps per
// segment, and making, sizing, serialising and freeing a Roaring object for each cost more
// than the rest of its work.
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

namespace tmach::store {

// `vals`: strictly ascending (sorted, no duplicates); n may be 0.
// The size in bytes of the serialization (what Roaring::getSizeInBytes(true) returns).
size_t roaring_portable_size(const uint32_t* vals, size_t n);
// The same for values that may not be strictly ascending, checked while sizing (one pass
// where a check and the size were two): 0 when some value is not greater than the one
// before it (no serialization is that small), and the caller sorts and de-duplicates.
size_t roaring_portable_size_if_ascending(const uint32_t* vals, size_t n);
// Writes the serialization to `out`, which must hold roaring_portable_size(vals, n) bytes.
// Returns the bytes written (that size).
size_t roaring_portable_write(const uint32_t* vals, size_t n, uint8_t* out);

}  // namespace tmach::store
