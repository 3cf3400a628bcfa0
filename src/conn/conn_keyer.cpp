#include "conn/conn_keyer.h"

#include "packet/fragment_id.h"

namespace tmach::conn {

bool ConnKeyer::key(const packet::PacketInfo& p, uint64_t now_ns, KeyedPacket& out) {
  // Not a fragment, not ESP/AH (most packets): make_key(), which FragmentTable::key() would
  // call too.
  const packet::IpLayer* in = p.inner();
  const bool sa = in && in->has_spi && (in->proto == packet::kProtoEsp || in->proto == packet::kProtoAh);
  if (!sa && packet::fragmented_layer(p) < 0) return make_key(p, out);
  const std::optional<KeyedPacket> k = key(p, now_ns);
  if (k) out = *k;
  return k.has_value();
}

std::optional<KeyedPacket> ConnKeyer::key(const packet::PacketInfo& p, uint64_t now_ns) {
  const packet::IpLayer* in = p.inner();
  if (in && in->has_spi && (in->proto == packet::kProtoEsp || in->proto == packet::kProtoAh)) {
    auto k = make_sa_key(p, sas_.pair_id(*in, path_hash(p), now_ns));
    frags_.note(p, *k, now_ns);  // a first fragment of a large ESP datagram: its later ones follow
    return k;
  }
  // Not a fragment (most packets): make_key(), which FragmentTable::key() would call too.
  if (packet::fragmented_layer(p) < 0) return make_key(p);
  return frags_.key(p, now_ns);
}

}  // namespace tmach::conn
