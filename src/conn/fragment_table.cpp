#include "conn/fragment_table.h"

namespace tmach::conn {
namespace {

// The fragmented layer of `p`, or null.
const packet::IpLayer* fragmented(const packet::PacketInfo& p) {
  int i = packet::fragmented_layer(p);
  return i < 0 ? nullptr : &p.ip[i];
}

}  // namespace

FragmentTable::FragmentTable(size_t capacity, uint64_t ttl_ns) : memory_(capacity, ttl_ns) {}

void FragmentTable::note(const packet::PacketInfo& p, const KeyedPacket& k, uint64_t now_ns) {
  const packet::IpLayer* l = fragmented(p);
  if (!l || l->frag_offset != 0) return;
  memory_.remember(packet::FragmentId::of(*l), now_ns) = k;
}

std::optional<KeyedPacket> FragmentTable::lookup(const packet::PacketInfo& p, uint64_t now_ns) const {
  const packet::IpLayer* l = fragmented(p);
  if (!l || l->frag_offset == 0) return std::nullopt;
  if (const KeyedPacket* k = memory_.find(packet::FragmentId::of(*l), now_ns)) return *k;
  return std::nullopt;
}

std::optional<KeyedPacket> FragmentTable::key(const packet::PacketInfo& p, uint64_t now_ns) {
  const packet::IpLayer* l = fragmented(p);
  if (!l) return make_key(p);  // the common case: one test per layer
  if (l->frag_offset != 0) {
    if (auto k = lookup(p, now_ns)) {
      ++hits_;
      return k;
    }
    ++misses_;
    auto k = make_key(p);
    if (k) k->orphan_fragment = true;
    return k;
  }
  auto k = make_key(p);
  if (k) note(p, *k, now_ns);
  return k;
}

}  // namespace tmach::conn
