// CRC-32 (IEEE) for sidecar integrity checks: catches truncation and bit flips.
#pragma once

#include <cstddef>
#include <cstdint>

namespace tmach::util {
uint32_t crc32(const void* data, size_t len, uint32_t crc = 0);
}
