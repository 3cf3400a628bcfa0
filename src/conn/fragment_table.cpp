#include "conn/fragment_table.h"

#include <cstring>

namespace tmach::conn {
namespace {

// The layer of `p` that is fragmented, or null. A non-first fragment stops the decoder, so
// it is the innermost; a first fragment can have layers (a tunnel) behind it.
const packet::IpLayer* fragmented(const packet::PacketInfo& p) {
  const int n = p.ip_count < packet::PacketInfo::kMaxIpLayers ? p.ip_count : packet::PacketInfo::kMaxIpLayers;
  for (int i = 0; i < n; ++i)
    if (p.ip[i].fragment) return &p.ip[i];
  return nullptr;
}

}  // namespace

FragmentTable::FragmentTable(size_t slots, uint64_t ttl_ns) : table_(slots ? slots : 1), ttl_(ttl_ns) {}

FragmentTable::Id FragmentTable::id_of(const packet::IpLayer& l) {
  Id id;
  id.src = l.src;
  id.dst = l.dst;
  id.frag_id = l.frag_id;
  id.proto = l.version == 4 ? l.header_proto : l.proto;
  return id;
}

size_t FragmentTable::slot(const Id& id) const {
  uint64_t w[4];
  std::memcpy(w, id.src.b.data(), 16);
  std::memcpy(w + 2, id.dst.b.data(), 16);
  uint64_t h = (uint64_t{id.frag_id} << 8 | id.proto) * 0x9e3779b97f4a7c15ull;
  for (uint64_t v : w) {
    h ^= v;
    h *= 0xbf58476d1ce4e5b9ull;
    h ^= h >> 31;
  }
  return static_cast<size_t>(h % table_.size());
}

void FragmentTable::note(const packet::PacketInfo& p, const KeyedPacket& k, uint64_t now_ns) {
  const packet::IpLayer* l = fragmented(p);
  if (!l || l->frag_offset != 0) return;
  Id id = id_of(*l);
  Entry& e = table_[slot(id)];
  e.id = id;
  e.expires = now_ns + ttl_;
  if (e.expires == 0) e.expires = 1;
  e.key = k;
}

std::optional<KeyedPacket> FragmentTable::lookup(const packet::PacketInfo& p, uint64_t now_ns) const {
  const packet::IpLayer* l = fragmented(p);
  if (!l || l->frag_offset == 0) return std::nullopt;
  Id id = id_of(*l);
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
