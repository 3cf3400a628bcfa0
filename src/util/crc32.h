// CRC-32 (IEEE) for sidecar integrity checks: catches truncation and bit flips.
#pragma once

#include <cstddef>
#include <cstdint>

namespace tmach::util {
// Carry-less multiplication (PCLMULQDQ) where the CPU has it, tables otherwise.
uint32_t crc32(const void* data, size_t len, uint32_t crc = 0);
// Tables only: the reference the fast path is tested against.
uint32_t crc32_portable(const void* data, size_t len, uint32_t crc = 0);
}  // namespace tmach::util
