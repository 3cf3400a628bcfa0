// Remembers, for a short time, the connection of the first fragment of each fragmented IP
// datagram, so that its later fragments (no transport header: no ports, and for a tunnel
// fragmented outside, no inner layers at all) join the same connection.
//
// Keyed by the fragmented layer's (src, dst, protocol, fragment id), in a DatagramMemory
// (packet/datagram_memory.h): the `capacity` datagrams begun last, each for `ttl_ns`.
// Not thread-safe: one per packet-processing thread.
//
// Use per packet, in capture order:
//   auto k = frags.key(info, ts_ns);   // instead of conn::make_key(info)
#pragma once

#include <cstdint>
#include <optional>

#include "conn/flow_key.h"
#include "packet/datagram_memory.h"
#include "packet/fragment_id.h"
#include "packet/packet_info.h"

namespace tmach::conn {

class FragmentTable {
 public:
  explicit FragmentTable(size_t capacity = 4096, uint64_t ttl_ns = 30'000'000'000ull);

  // The packet's connection key: make_key(p), except for a non-first fragment whose first
  // fragment was noted within the ttl, which gets that first fragment's key. A first
  // fragment is noted. nullopt for frames without IP.
  std::optional<KeyedPacket> key(const packet::PacketInfo& p, uint64_t now_ns);

  // The two halves of key(), for callers that build keys themselves.
  void note(const packet::PacketInfo& p, const KeyedPacket& k, uint64_t now_ns);
  std::optional<KeyedPacket> lookup(const packet::PacketInfo& p, uint64_t now_ns) const;

  uint64_t hits() const { return hits_; }      // later fragments given their first's key
  uint64_t misses() const { return misses_; }  // later fragments without (ports 0)

 private:
  packet::DatagramMemory<KeyedPacket> memory_;
  uint64_t hits_ = 0, misses_ = 0;
};

}  // namespace tmach::conn
