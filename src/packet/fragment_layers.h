// Lets a later fragment of an IP datagram be indexed and queried as its datagram: it
// inherits the transport protocol's ports (and an ESP/AH SPI) and the layers inside the
// fragmented one (a tunnel fragmented outside) from the first fragment of the same datagram.
//
// Why: a later fragment carries no transport header, so tcpdump's `port 53` never matches
// it; an analyst asking for a connection wants all of its packets. The connection table has
// its own memory for this (FragmentTable: keys only); this one keeps the decoded layers,
// for the index builder (store/index.h) and the query re-check (query/packet_filter.h).
//
// Keyed by the fragmented layer's (src, dst, protocol, fragment id). Bounded: up to
// `capacity` datagrams are remembered at once, whatever their ids (the oldest first fragment
// is forgotten first), each for `ttl_ns` after its first fragment; so a later fragment finds
// its first whenever fewer than `capacity` other datagrams began since. (A direct-mapped
// table, as this was, lost datagrams to collisions: 6 of 100 outstanding at once, 362 of
// 1000.) Memory grows with the datagrams remembered (~0.4 KB each). Not thread-safe.
#pragma once

#include <cstdint>
#include <deque>
#include <unordered_map>
#include <utility>

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
  struct Entry {
    uint64_t expires = 0;
    uint64_t seq = 0;   // when it was (last) a first fragment: its place in order_
    uint8_t count = 0;  // layers[0] is the fragmented layer itself, then those inside it
    packet::IpLayer layers[packet::PacketInfo::kMaxIpLayers];
  };
  struct Hash {
    size_t operator()(const FragmentId& id) const { return static_cast<size_t>(id.hash()); }
  };

  size_t capacity_;
  uint64_t ttl_;
  uint64_t seq_ = 0;
  std::unordered_map<FragmentId, Entry, Hash> map_;
  std::deque<std::pair<FragmentId, uint64_t>> order_;  // first fragments, oldest first (with their seq)
};

}  // namespace tmach::packet
