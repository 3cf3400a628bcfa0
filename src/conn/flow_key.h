// The direction-free key of a connection: both directions of a 5-tuple map to one key.
#pragma once

#include <cstdint>
#include <cstring>
#include <optional>

#include "packet/packet_info.h"

namespace tmach::conn {

struct FlowKey {
  packet::IpAddr a, b;     // a <= b (ordered with their ports, so the key is symmetric)
  uint16_t port_a = 0, port_b = 0;
  uint8_t proto = 0;
  uint8_t pad[3] = {0, 0, 0};
  uint32_t tunnel = 0;     // hash of the outer layers' path; 0 when not tunnelled (seam for tunnels)

  bool operator==(const FlowKey& o) const { return std::memcmp(this, &o, sizeof(FlowKey)) == 0; }
};
static_assert(sizeof(FlowKey) == 44);

struct KeyedPacket {
  FlowKey key;
  uint64_t hash;
  bool src_is_a;  // the packet travels from side a to side b
};

// Builds the key of the innermost IP layer. Returns nullopt for frames without IP.
// Non-first fragments carry no ports: they get ports 0 (fragment tracking comes with tunnels).
std::optional<KeyedPacket> make_key(const packet::PacketInfo& p);

inline uint64_t hash_key(const FlowKey& k) {
  uint64_t w[6];
  std::memcpy(w, &k, 40);
  uint32_t t;
  std::memcpy(&t, reinterpret_cast<const uint8_t*>(&k) + 40, 4);
  w[5] = t;
  uint64_t h = 0x9e3779b97f4a7c15ull;
  for (uint64_t v : w) {
    h ^= v;
    h *= 0xbf58476d1ce4e5b9ull;
    h ^= h >> 31;
  }
  return h;
}

}  // namespace tmach::conn
