// Per-segment indexes: one per field, each mapping a value to the set of packet ordinals
// (position of the packet in its segment, 0-based) as a CRoaring bitmap.
//
// What goes in each field is defined once here (add_packet), and the planner relies on it:
// - kAddr:  every IP layer's source and destination, and ARP sender/target addresses
//           (16-byte v4-mapped form);
// - kPort:  every IP layer's source and destination port, for TCP, UDP and SCTP only;
// - kProto: every IP layer's transport protocol (after IPv6 extension headers);
// - kNet:   the kind of network layer: 4 (an IPv4 layer), 6 (an IPv6 layer), 0x0806 (ARP),
//           another EtherType for other frames, 0 for frames that could not be decoded;
// - kVlan:  every VLAN id, plus kAnyVlan for tagged frames.
#pragma once

#include <roaring/roaring.hh>

#include <array>
#include <cstdint>
#include <map>
#include <string>
#include <unordered_map>
#include <vector>

#include "packet/packet_info.h"

namespace tmach::store {

enum class Field : uint8_t { kAddr = 1, kPort = 2, kProto = 3, kNet = 4, kVlan = 5 };
inline constexpr uint32_t kAnyVlan = 0x10000;
inline constexpr uint32_t kNetV4 = 4, kNetV6 = 6, kNetArp = 0x0806, kNetUndecoded = 0;

using AddrKey = std::array<uint8_t, 16>;

struct AddrKeyHash {
  size_t operator()(const AddrKey& k) const {
    uint64_t a, b;
    std::memcpy(&a, k.data(), 8);
    std::memcpy(&b, k.data() + 8, 8);
    uint64_t h = (a ^ (b * 0x9e3779b97f4a7c15ull)) * 0xbf58476d1ce4e5b9ull;
    return static_cast<size_t>(h ^ (h >> 29));
  }
};

// A finished, queryable index (from a sidecar, or a snapshot of the builder).
struct SegmentIndex {
  // Sorted by key, so a CIDR is a contiguous key range and a port range too.
  std::map<AddrKey, Roaring> addr;
  std::map<uint32_t, Roaring> port, proto, net, vlan;

  const std::map<uint32_t, Roaring>& scalar(Field f) const;
  size_t memory_bytes() const;
};

class IndexBuilder {
 public:
  void add_packet(uint32_t ordinal, const packet::PacketInfo& p);
  SegmentIndex finish();  // run-optimizes and moves the bitmaps out; the builder is empty after
  SegmentIndex snapshot() const;  // a copy, for searching the segment being written
  void clear();

 private:
  std::unordered_map<AddrKey, Roaring, AddrKeyHash> addr_;
  std::unordered_map<uint32_t, Roaring> port_, proto_, net_, vlan_;
  // Last ordinal added per key avoids duplicate adds (src == dst, several layers).
};

}  // namespace tmach::store
