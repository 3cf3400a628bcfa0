// What the planner asks of a segment's indexes. Implemented by an in-memory SegmentIndex
// (segment being written, flow files) and by SidecarView, which reads from the sidecar file
// only the keys and bitmaps a query needs.
#pragma once

#include <cstdint>
#include <roaring/roaring.hh>

#include "packet/packet_info.h"
#include "store/index.h"

namespace tmach::store {

class IndexLookup {
 public:
  virtual ~IndexLookup() = default;
  virtual Roaring addr(const AddrKey& key) const = 0;
  // Union over every address in the prefix (bits counted in the 128-bit form).
  virtual Roaring addr_prefix(const packet::IpAddr& net, unsigned bits) const = 0;
  // Union over keys lo..hi inclusive of a scalar field (port, proto, net, vlan).
  virtual Roaring scalar(Field f, uint32_t lo, uint32_t hi) const = 0;

  // What each lookup above would cost, in bytes of bitmap read (serialised size): lets the
  // planner read cheap lookups first and leave a costly one to the exact re-check when the
  // others already left few candidates. Estimates only: nothing is checked.
  virtual uint64_t addr_cost(const AddrKey& key) const = 0;
  virtual uint64_t addr_prefix_cost(const packet::IpAddr& net, unsigned bits) const = 0;
  virtual uint64_t scalar_cost(Field f, uint32_t lo, uint32_t hi) const = 0;
};

class MemoryIndexLookup : public IndexLookup {
 public:
  explicit MemoryIndexLookup(const SegmentIndex& ix) : ix_(ix) {}
  Roaring addr(const AddrKey& key) const override;
  Roaring addr_prefix(const packet::IpAddr& net, unsigned bits) const override;
  Roaring scalar(Field f, uint32_t lo, uint32_t hi) const override;
  uint64_t addr_cost(const AddrKey& key) const override;
  uint64_t addr_prefix_cost(const packet::IpAddr& net, unsigned bits) const override;
  uint64_t scalar_cost(Field f, uint32_t lo, uint32_t hi) const override;

 private:
  const SegmentIndex& ix_;
};

}  // namespace tmach::store
