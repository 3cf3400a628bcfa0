// CRC-32 (IEEE) for sidecar integrity checks: catches truncation and bit flips.
#pragma once

#include <cstddef>
#include <cstdint>

namespace tmach::util {
// Carry-less multiplication (PCLMULQDQ) where the CPU has it, tables otherwise.
uint32_t crc32(const void* data, size_t len, uint32_t crc = 0);
// Tables only: the reference the fast path is tested against.
uint32_t crc32_portable(const void* data, size_t len, uint32_t crc = 0);
// The CRC of A followed by B from crc32(A), crc32(B) and B's length (as zlib's
// crc32_combine): for a checksum over bytes written in another order than they are stored.
uint32_t crc32_combine(uint32_t crc_a, uint32_t crc_b, uint64_t len_b);
}  // namespace tmach::util
