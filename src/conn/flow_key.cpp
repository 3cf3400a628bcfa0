#include "conn/flow_key.h"

namespace tmach::conn {

std::optional<KeyedPacket> make_key(const packet::PacketInfo& p) {
  const packet::IpLayer* l = p.inner();
  if (!l) return std::nullopt;
  KeyedPacket kp;
  FlowKey& k = kp.key;
  uint16_t sp = 0, dp = 0;
  if (l->has_ports) {
    sp = l->sport;
    dp = l->dport;
  }
  k.proto = l->proto;
  // Order the endpoints so both directions give the same key.
  bool src_first = l->src < l->dst || (l->src == l->dst && sp <= dp);
  if (src_first) {
    k.a = l->src;
    k.b = l->dst;
    k.port_a = sp;
    k.port_b = dp;
  } else {
    k.a = l->dst;
    k.b = l->src;
    k.port_a = dp;
    k.port_b = sp;
  }
  kp.src_is_a = src_first;
  kp.hash = hash_key(k);
  return kp;
}

}  // namespace tmach::conn
