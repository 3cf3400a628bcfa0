// The mixing step of the connection-side hashes (connection keys, SA pairs, fragment ids):
// xor a word in, multiply, fold the high bits down. Fixed: connection ids and flow ids
// derived from these hashes are stored on disk.
#pragma once

#include <cstdint>
#include <cstring>

#include "packet/packet_info.h"

namespace tmach::packet {

inline uint64_t mix(uint64_t h, uint64_t v) {
  h ^= v;
  h *= 0xbf58476d1ce4e5b9ull;
  h ^= h >> 31;
  return h;
}

inline uint64_t mix_addr(uint64_t h, const packet::IpAddr& a) {
  uint64_t w[2];
  std::memcpy(w, a.b.data(), 16);
  return mix(mix(h, w[0]), w[1]);
}

}  // namespace tmach::packet
