// Lets a later fragment of an IP datagram be indexed and queried as its datagram: it
// inherits the transport protocol's ports (and an ESP/AH SPI) and the layers inside the
// fragmented one (a tunnel fragmented outside) from the first fragment of the same datagram.
//
// Why: a later fragment carries no transport header, so tcpdump's `port 53` never matches
// it; an analyst asking for a connection wants all of its packets. The connection table has
// its own memory for this (FragmentTable: keys only); this one keeps the decoded layers,
// for the index builder (store/index.h) and the query re-check (query/packet_filter.h).
//
// Keyed by the fragmented layer's (src, dst, protocol, fragment id), in a DatagramMemory
// (packet/datagram_memory.h): the `capacity` datagrams begun last, each for `ttl_ns`.
#pragma once

#include <cstdint>

#include "packet/datagram_memory.h"
#include "packet/fragment_id.h"
#include "packet/packet_info.h"

namespace tmach::packet {

class FragmentLayers {
 public:
  static constexpr size_t kDefaultCapacity = 4096;
  explicit FragmentLayers(size_t capacity = kDefaultCapacity, uint64_t ttl_ns = 30'000'000'000ull);

  enum class Outcome : uint8_t {
    kNone,       // not a fragment (or an atomic one): nothing to do
    kFirst,      // a first fragment: remembered
    kInherited,  // a later fragment whose first was remembered: `p` now carries its layers
    kOrphan,     // a later fragment whose first was not seen (yet): `p` unchanged
  };
  // Per packet, in capture order. For kInherited, the fragmented layer of `p` gets the first
  // fragment's has_ports/sport/dport and has_spi/spi (has_l4 stays false: no header is in
  // this packet), and the first fragment's inner layers are appended (with has_l4 false).
  Outcome apply(packet::PacketInfo& p, uint64_t now_ns);

 private:
  struct Layers {
    uint8_t count = 0;  // layers[0] is the fragmented layer itself, then those inside it
    packet::IpLayer layers[packet::PacketInfo::kMaxIpLayers];
  };
  DatagramMemory<Layers> memory_;
};

}  // namespace tmach::packet
