// What identifies an IP datagram's fragments (RFC 791/8200): source, destination, fragment
// id and protocol — shared by the connection table's fragment memory (FragmentTable: keys)
// and the index's (FragmentLayers: decoded layers).
#pragma once

#include <cstddef>
#include <cstdint>

#include "packet/packet_info.h"

namespace tmach::packet {

struct FragmentId {
  packet::IpAddr src, dst;
  uint32_t frag_id = 0;
  uint8_t proto = 0;
  bool operator==(const FragmentId&) const = default;

  static FragmentId of(const packet::IpLayer& l);
  uint64_t hash() const;
  // hash() mixed with a seed drawn once per process: for hash tables keyed by fragment ids,
  // which a sender chooses (fixed, colliding ids could make their chains long).
  uint64_t seeded_hash() const;
};

// The index of the fragmented layer of `p`, or -1. A non-first fragment stops the decoder,
// so it is the innermost; a first fragment can have layers (a tunnel) behind it. Inline:
// every captured packet asks (the connection keyer, the recorder).
inline int fragmented_layer(const packet::PacketInfo& p) {
  const int n = p.ip_count < packet::PacketInfo::kMaxIpLayers ? p.ip_count : packet::PacketInfo::kMaxIpLayers;
  for (int i = 0; i < n; ++i)
    if (p.ip[i].fragment) return i;
  return -1;
}

}  // namespace tmach::packet
