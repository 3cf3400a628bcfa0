#include "store/index.h"

#include "conn/fragment_layers.h"

namespace tmach::store {

const std::map<uint32_t, Roaring>& SegmentIndex::scalar(Field f) const {
  switch (f) {
    case Field::kPort:
      return port;
    case Field::kProto:
      return proto;
    case Field::kNet:
      return net;
    default:
      return vlan;
  }
}

size_t SegmentIndex::memory_bytes() const {
  size_t n = 0;
  for (auto& [k, b] : addr) n += 16 + b.getSizeInBytes();
  for (auto* m : {&port, &proto, &net, &vlan})
    for (auto& [k, b] : *m) n += 4 + b.getSizeInBytes();
  return n;
}

IndexBuilder::IndexBuilder() { clear(); }

int32_t& IndexBuilder::addr_slot(const AddrKey& k) {
  if (addr_used_ * 2 >= addr_.size()) {
    std::vector<AddrSlot> old(addr_.size() * 2, AddrSlot{{}, -1});
    old.swap(addr_);
    size_t m = addr_.size() - 1;
    for (const auto& s : old)
      if (s.slot >= 0)
        for (size_t i = AddrKeyHash{}(s.key) & m;; i = (i + 1) & m)
          if (addr_[i].slot < 0) {
            addr_[i] = s;
            break;
          }
  }
  size_t m = addr_.size() - 1;
  for (size_t i = AddrKeyHash{}(k)&m;; i = (i + 1) & m) {
    AddrSlot& s = addr_[i];
    if (s.slot < 0) {
      s.key = k;
      ++addr_used_;
      addr_keys_.push_back(k);
      ensure(s.slot);
      return s.slot;
    }
    if (same_key(s.key, k)) return s.slot;
  }
}

int32_t& IndexBuilder::scalar_slot(std::vector<std::pair<uint32_t, int32_t>>& small, uint32_t key) {
  for (auto& [k, v] : small)
    if (k == key) return v;
  small.emplace_back(key, -1);
  return small.back().second;
}

template <class F>
void IndexBuilder::for_each_key(const packet::PacketInfo& p, F&& f) {
  for (int i = 0; i < p.ip_count; ++i) {
    const packet::IpLayer& l = p.ip[i];
    f(addr_slot(l.src.b));
    f(addr_slot(l.dst.b));
    f(proto_[l.proto]);
    f(scalar_slot(net_, l.version == 4 ? kNetV4 : kNetV6));
    if (l.tunnel) f(scalar_slot(net_, kNetTunnel + l.tunnel));
    if (l.has_ports &&
        (l.proto == packet::kProtoTcp || l.proto == packet::kProtoUdp || l.proto == packet::kProtoSctp)) {
      f(port_[l.sport]);
      f(port_[l.dport]);
    }
  }
  if (p.arp) {
    f(addr_slot(p.arp_spa.b));
    f(addr_slot(p.arp_tpa.b));
    f(scalar_slot(net_, kNetArp));
  }
  if (p.ip_count == 0 && !p.arp) f(scalar_slot(net_, p.ethertype));  // 0 when nothing was decoded
  int nv = p.vlan_count < packet::PacketInfo::kMaxVlans ? p.vlan_count : packet::PacketInfo::kMaxVlans;
  for (int i = 0; i < nv; ++i) f(vlan_[p.vlans[i] & 0xfff]);
  if (p.vlan_count) f(vlan_[4096]);
}

void IndexBuilder::add_keys(uint32_t ord, const packet::PacketInfo& p) {
  for_each_key(p, [&](int32_t& slot) { add(slot, ord); });
}

void IndexBuilder::add_packet(uint32_t ord, const packet::PacketInfo& p, conn::FragmentLayers* frags,
                              uint64_t ts_ns) {
  if (!frags || conn::FragmentLayers::fragmented_layer(p) < 0) return add_keys(ord, p);  // the common case
  packet::PacketInfo full = p;
  switch (frags->apply(full, ts_ns)) {
    case conn::FragmentLayers::Outcome::kOrphan:
      if (orphans_.size() == kMaxOrphans) orphans_.erase(orphans_.begin());
      orphans_.push_back(Orphan{ord, p});
      break;
    case conn::FragmentLayers::Outcome::kFirst:
      // Later fragments of this datagram that came first: index them as the datagram now.
      for (size_t i = 0; i < orphans_.size();) {
        packet::PacketInfo o = orphans_[i].info;
        if (frags->apply(o, ts_ns) == conn::FragmentLayers::Outcome::kInherited) {
          add_keys(orphans_[i].ordinal, o);
          orphans_.erase(orphans_.begin() + static_cast<std::ptrdiff_t>(i));
        } else {
          ++i;
        }
      }
      break;
    default:
      break;
  }
  add_keys(ord, full);
}

SegmentIndex IndexBuilder::build() const {
  // Group the log by slot: count, prefix sums, scatter. Ordinals stay ascending per slot
  // (but for a fragment indexed again when its first arrived: addMany takes any order).
  std::vector<uint32_t> start(nslots_ + 1, 0);
  for (const Entry& e : log_) ++start[e.slot + 1];
  for (size_t i = 1; i <= nslots_; ++i) start[i] += start[i - 1];
  std::vector<uint32_t> ords(log_.size());
  std::vector<uint32_t> fill(start.begin(), start.end() - 1);
  for (const Entry& e : log_) ords[fill[e.slot]++] = e.ord;
  std::vector<Roaring> bm(nslots_);
  for (size_t i = 0; i < nslots_; ++i) {
    bm[i].addMany(start[i + 1] - start[i], ords.data() + start[i]);
    bm[i].runOptimize();
  }
  auto take = [&](int32_t slot) -> Roaring { return std::move(bm[static_cast<size_t>(slot)]); };
  SegmentIndex s;
  for (const auto& k : addr_keys_) {
    size_t m = addr_.size() - 1;
    for (size_t i = AddrKeyHash{}(k)&m;; i = (i + 1) & m)
      if (same_key(addr_[i].key, k)) {
        s.addr.emplace(k, take(addr_[i].slot));
        break;
      }
  }
  for (uint32_t k = 0; k < port_.size(); ++k)
    if (port_[k] >= 0) s.port.emplace(k, take(port_[k]));
  for (uint32_t k = 0; k < proto_.size(); ++k)
    if (proto_[k] >= 0) s.proto.emplace(k, take(proto_[k]));
  for (uint32_t k = 0; k < 4096; ++k)
    if (vlan_[k] >= 0) s.vlan.emplace(k, take(vlan_[k]));
  if (vlan_[4096] >= 0) s.vlan.emplace(kAnyVlan, take(vlan_[4096]));
  for (auto& [k, v] : net_)
    if (v >= 0) s.net.emplace(k, take(v));
  return s;
}

SegmentIndex IndexBuilder::finish() {
  SegmentIndex s = build();
  clear();
  return s;
}

SegmentIndex IndexBuilder::snapshot() const { return build(); }

void IndexBuilder::clear() {
  orphans_.clear();
  log_.clear();
  nslots_ = 0;
  port_.assign(65536, -1);
  proto_.assign(256, -1);
  vlan_.assign(4097, -1);
  net_.clear();
  addr_.assign(1024, AddrSlot{{}, -1});
  addr_used_ = 0;
  addr_keys_.clear();
}

}  // namespace tmach::store
