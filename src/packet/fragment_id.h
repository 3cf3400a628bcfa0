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
};

// The index of the fragmented layer of `p`, or -1. A non-first fragment stops the decoder,
// so it is the innermost; a first fragment can have layers (a tunnel) behind it.
int fragmented_layer(const packet::PacketInfo& p);

}  // namespace tmach::packet
