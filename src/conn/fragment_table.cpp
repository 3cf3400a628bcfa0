#include "conn/fragment_table.h"

namespace tmach::conn {
namespace {

// The fragmented layer of `p`, or null.
const packet::IpLayer* fragmented(const packet::PacketInfo& p) {
  int i = packet::fragmented_layer(p);
  return i < 0 ? nullptr : &p.ip[i];
}

}  // namespace

FragmentTable::FragmentTable(size_t slots, uint64_t ttl_ns) : table_(slots ? slots : 1), ttl_(ttl_ns) {}

void FragmentTable::note(const packet::PacketInfo& p, const KeyedPacket& k, uint64_t now_ns) {
  const packet::IpLayer* l = fragmented(p);
  if (!l || l->frag_offset != 0) return;
  packet::FragmentId id = packet::FragmentId::of(*l);
  Entry& e = table_[slot(id)];
  e.id = id;
  e.expires = now_ns + ttl_;
  if (e.expires == 0) e.expires = 1;
  e.key = k;
}

std::optional<KeyedPacket> FragmentTable::lookup(const packet::PacketInfo& p, uint64_t now_ns) const {
  const packet::IpLayer* l = fragmented(p);
  if (!l || l->frag_offset == 0) return std::nullopt;
  packet::FragmentId id = packet::FragmentId::of(*l);
  const Entry& e = table_[slot(id)];
  if (e.expires == 0 || now_ns > e.expires || !(e.id == id)) return std::nullopt;
  return e.key;
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
    return make_key(p);
  }
  auto k = make_key(p);
  if (k) note(p, *k, now_ns);
  return k;
}

}  // namespace tmach::conn
