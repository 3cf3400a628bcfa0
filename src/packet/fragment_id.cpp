#include "packet/fragment_id.h"

#include <random>

#include "packet/hash_mix.h"

namespace tmach::packet {

FragmentId FragmentId::of(const packet::IpLayer& l) {
  FragmentId id;
  id.src = l.src;
  id.dst = l.dst;
  id.frag_id = l.frag_id;
  id.proto = l.version == 4 ? l.header_proto : l.proto;
  return id;
}

uint64_t FragmentId::hash() const {
  return mix_addr(mix_addr((uint64_t{frag_id} << 8 | proto) * 0x9e3779b97f4a7c15ull, src), dst);
}

uint64_t FragmentId::seeded_hash() const {
  static const uint64_t seed = [] {
    std::random_device rd;
    return (uint64_t{rd()} << 32 | rd()) | 1;
  }();
  uint64_t h = (hash() ^ seed) * 0x9e3779b97f4a7c15ull;
  return h ^ (h >> 29);
}

}  // namespace tmach::packet
