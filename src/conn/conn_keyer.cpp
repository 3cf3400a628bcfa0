#include "conn/conn_keyer.h"

namespace tmach::conn {

std::optional<KeyedPacket> ConnKeyer::key(const packet::PacketInfo& p, uint64_t now_ns) {
  const packet::IpLayer* in = p.inner();
  if (in && in->has_spi && (in->proto == packet::kProtoEsp || in->proto == packet::kProtoAh)) {
    auto k = make_sa_key(p, sas_.pair_id(*in, path_hash(p), now_ns));
    frags_.note(p, *k, now_ns);  // a first fragment of a large ESP datagram: its later ones follow
    return k;
  }
  return frags_.key(p, now_ns);
}

}  // namespace tmach::conn
