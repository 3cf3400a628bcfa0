#include "store/index.h"

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

void IndexBuilder::add_packet(uint32_t ord, const packet::PacketInfo& p) {
  for (int i = 0; i < p.ip_count; ++i) {
    const packet::IpLayer& l = p.ip[i];
    addr_[l.src.b].add(ord);
    if (l.dst != l.src) addr_[l.dst.b].add(ord);
    proto_[l.proto].add(ord);
    net_[l.version == 4 ? kNetV4 : kNetV6].add(ord);
    if (l.has_ports && (l.proto == packet::kProtoTcp || l.proto == packet::kProtoUdp ||
                        l.proto == packet::kProtoSctp)) {
      port_[l.sport].add(ord);
      if (l.dport != l.sport) port_[l.dport].add(ord);
    }
  }
  if (p.arp) {
    addr_[p.arp_spa.b].add(ord);
    if (p.arp_tpa != p.arp_spa) addr_[p.arp_tpa.b].add(ord);
    net_[kNetArp].add(ord);
  }
  if (p.ip_count == 0 && !p.arp) net_[p.ethertype].add(ord);  // 0 when nothing was decoded
  int nv = p.vlan_count < packet::PacketInfo::kMaxVlans ? p.vlan_count : packet::PacketInfo::kMaxVlans;
  for (int i = 0; i < nv; ++i) vlan_[p.vlans[i]].add(ord);
  if (p.vlan_count) vlan_[kAnyVlan].add(ord);
}

SegmentIndex IndexBuilder::finish() {
  SegmentIndex s;
  for (auto& [k, b] : addr_) {
    b.runOptimize();
    s.addr.emplace(k, std::move(b));
  }
  auto move_into = [](auto& from, auto& to) {
    for (auto& [k, b] : from) {
      b.runOptimize();
      to.emplace(k, std::move(b));
    }
  };
  move_into(port_, s.port);
  move_into(proto_, s.proto);
  move_into(net_, s.net);
  move_into(vlan_, s.vlan);
  clear();
  return s;
}

SegmentIndex IndexBuilder::snapshot() const {
  SegmentIndex s;
  for (auto& [k, b] : addr_) s.addr.emplace(k, b);
  for (auto& [k, b] : port_) s.port.emplace(k, b);
  for (auto& [k, b] : proto_) s.proto.emplace(k, b);
  for (auto& [k, b] : net_) s.net.emplace(k, b);
  for (auto& [k, b] : vlan_) s.vlan.emplace(k, b);
  return s;
}

void IndexBuilder::clear() {
  addr_.clear();
  port_.clear();
  proto_.clear();
  net_.clear();
  vlan_.clear();
}

}  // namespace tmach::store
