#include "packet/fragment_layers.h"

namespace tmach::packet {

FragmentLayers::FragmentLayers(size_t capacity, uint64_t ttl_ns)
    : capacity_(capacity ? capacity : 1), ttl_(ttl_ns) {}

FragmentLayers::Outcome FragmentLayers::apply(packet::PacketInfo& p, uint64_t now_ns) {
  const int f = fragmented_layer(p);
  if (f < 0) return Outcome::kNone;
  const FragmentId id = FragmentId::of(p.ip[f]);
  if (p.ip[f].frag_offset == 0) {
    // Room first: the oldest first fragments go (entries since made first again are skipped:
    // their seq moved on), down to capacity - 1 datagrams besides this one.
    // (A first fragment sent again takes no more room: nothing goes for it.)
    while (map_.size() >= capacity_ && !order_.empty() && !map_.contains(id)) {
      auto [old, seq] = order_.front();
      order_.pop_front();
      if (auto it = map_.find(old); it != map_.end() && it->second.seq == seq && !(old == id)) map_.erase(it);
    }
    Entry& e = map_[id];
    e.expires = now_ns + ttl_ ? now_ns + ttl_ : 1;
    e.seq = ++seq_;
    order_.emplace_back(id, e.seq);
    const int n =
        p.ip_count < packet::PacketInfo::kMaxIpLayers ? p.ip_count : packet::PacketInfo::kMaxIpLayers;
    e.count = static_cast<uint8_t>(n - f);
    for (int i = f; i < n; ++i) e.layers[i - f] = p.ip[i];
    // (order_ holds an entry per first fragment seen: bounded by pruning what no longer counts)
    if (order_.size() > 2 * capacity_ + 16)
      std::erase_if(order_, [&](const auto& o) {
        auto it = map_.find(o.first);
        return it == map_.end() || it->second.seq != o.second;
      });
    return Outcome::kFirst;
  }
  auto it = map_.find(id);
  if (it == map_.end() || now_ns > it->second.expires) return Outcome::kOrphan;
  const Entry& e = it->second;
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
