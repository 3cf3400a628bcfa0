#include "conn/fragment_layers.h"

#include <cstring>

namespace tmach::conn {

FragmentLayers::FragmentLayers(size_t slots, uint64_t ttl_ns) : table_(slots ? slots : 1), ttl_(ttl_ns) {}

int FragmentLayers::fragmented_layer(const packet::PacketInfo& p) {
  const int n = p.ip_count < packet::PacketInfo::kMaxIpLayers ? p.ip_count : packet::PacketInfo::kMaxIpLayers;
  for (int i = 0; i < n; ++i)
    if (p.ip[i].fragment) return i;
  return -1;
}

FragmentLayers::Id FragmentLayers::id_of(const packet::IpLayer& l) {
  Id id;
  id.src = l.src;
  id.dst = l.dst;
  id.frag_id = l.frag_id;
  id.proto = l.version == 4 ? l.header_proto : l.proto;
  return id;
}

size_t FragmentLayers::slot(const Id& id) const {
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

FragmentLayers::Outcome FragmentLayers::apply(packet::PacketInfo& p, uint64_t now_ns) {
  const int f = fragmented_layer(p);
  if (f < 0) return Outcome::kNone;
  const Id id = id_of(p.ip[f]);
  Entry& e = table_[slot(id)];
  if (p.ip[f].frag_offset == 0) {
    e.id = id;
    e.expires = now_ns + ttl_ ? now_ns + ttl_ : 1;
    const int n =
        p.ip_count < packet::PacketInfo::kMaxIpLayers ? p.ip_count : packet::PacketInfo::kMaxIpLayers;
    e.count = static_cast<uint8_t>(n - f);
    for (int i = f; i < n; ++i) e.layers[i - f] = p.ip[i];
    return Outcome::kFirst;
  }
  if (e.expires == 0 || now_ns > e.expires || !(e.id == id)) return Outcome::kOrphan;
  packet::IpLayer& l = p.ip[f];
  const packet::IpLayer& first = e.layers[0];
  l.has_ports = first.has_ports;
  l.sport = first.sport;
  l.dport = first.dport;
  l.has_spi = first.has_spi;
  l.spi = first.spi;
  // A later fragment stops the decoder, so nothing follows its fragmented layer.
  p.ip_count = static_cast<uint8_t>(f + 1);
  for (int i = 1; i < e.count && p.ip_count < packet::PacketInfo::kMaxIpLayers; ++i) {
    packet::IpLayer inner = e.layers[i];
    inner.has_l4 = false;
    p.ip[p.ip_count++] = inner;
  }
  return Outcome::kInherited;
}

}  // namespace tmach::conn
