#include "store/index_lookup.h"

namespace tmach::store {

Roaring MemoryIndexLookup::addr(const AddrKey& key) const {
  auto it = ix_.addr.find(key);
  return it == ix_.addr.end() ? Roaring() : it->second;
}

Roaring MemoryIndexLookup::addr_prefix(const packet::IpAddr& net, unsigned bits) const {
  Roaring r;
  for (auto it = ix_.addr.lower_bound(net.b); it != ix_.addr.end(); ++it) {
    packet::IpAddr a;
    a.b = it->first;
    if (!a.in_prefix(net, bits)) break;
    r |= it->second;
  }
  return r;
}

Roaring MemoryIndexLookup::scalar(Field f, uint32_t lo, uint32_t hi) const {
  Roaring r;
  const auto& m = ix_.scalar(f);
  for (auto it = m.lower_bound(lo); it != m.end() && it->first <= hi; ++it) r |= it->second;
  return r;
}

// In memory a lookup copies its bitmaps: their size is what it costs.
uint64_t MemoryIndexLookup::addr_cost(const AddrKey& key) const {
  auto it = ix_.addr.find(key);
  return it == ix_.addr.end() ? 0 : it->second.getSizeInBytes(true);
}

uint64_t MemoryIndexLookup::addr_prefix_cost(const packet::IpAddr& net, unsigned bits) const {
  uint64_t n = 0;
  for (auto it = ix_.addr.lower_bound(net.b); it != ix_.addr.end(); ++it) {
    packet::IpAddr a;
    a.b = it->first;
    if (!a.in_prefix(net, bits)) break;
    n += it->second.getSizeInBytes(true);
  }
  return n;
}

uint64_t MemoryIndexLookup::scalar_cost(Field f, uint32_t lo, uint32_t hi) const {
  uint64_t n = 0;
  const auto& m = ix_.scalar(f);
  for (auto it = m.lower_bound(lo); it != m.end() && it->first <= hi; ++it)
    n += it->second.getSizeInBytes(true);
  return n;
}

}  // namespace tmach::store
