#include "conn/conn_keyer.h"

#include "packet/fragment_id.h"

namespace tmach::conn {

bool ConnKeyer::key_rare(const packet::PacketInfo& p, uint64_t now_ns, KeyedPacket& out) {
  const packet::IpLayer* in = p.inner();
  if (in && has_sa(*in)) {
    const uint32_t pair = sas_.pair_id(*in, path_hash(p), now_ns);
    out = *make_sa_key(p, pair);
    out.sa_partner = in->spi != pair ? in->spi : 0;
    frags_.note(p, out, now_ns);  // a first fragment of a large ESP datagram: its later ones follow
    return true;
  }
  // Not a fragment (most packets): make_key(), which FragmentTable::key() would call too.
  if (packet::fragmented_layer(p) < 0) return make_key(p, out);
  const std::optional<KeyedPacket> k = frags_.key(p, now_ns);
  if (k) out = *k;
  return k.has_value();
}

std::optional<KeyedPacket> ConnKeyer::key(const packet::PacketInfo& p, uint64_t now_ns) {
  KeyedPacket k;
  if (!key(p, now_ns, k)) return std::nullopt;
  return k;
}

}  // namespace tmach::conn
