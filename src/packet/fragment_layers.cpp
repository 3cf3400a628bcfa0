#include "packet/fragment_layers.h"

namespace tmach::packet {

FragmentLayers::FragmentLayers(size_t capacity, uint64_t ttl_ns) : memory_(capacity, ttl_ns) {}

FragmentLayers::Outcome FragmentLayers::apply(packet::PacketInfo& p, uint64_t now_ns) {
  const int f = fragmented_layer(p);
  if (f < 0) return Outcome::kNone;
  const FragmentId id = FragmentId::of(p.ip[f]);
  if (p.ip[f].frag_offset == 0) {
    Layers& e = memory_.remember(id, now_ns);
    const int n =
        p.ip_count < packet::PacketInfo::kMaxIpLayers ? p.ip_count : packet::PacketInfo::kMaxIpLayers;
    e.count = static_cast<uint8_t>(n - f);
    for (int i = f; i < n; ++i) e.layers[i - f] = p.ip[i];
    return Outcome::kFirst;
  }
  const Layers* found = memory_.find(id, now_ns);
  if (!found) return Outcome::kOrphan;
  const Layers& e = *found;
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

}  // namespace tmach::packet
