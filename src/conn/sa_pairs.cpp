#include "conn/sa_pairs.h"

#include <cstring>

#include "packet/hash_mix.h"

namespace tmach::conn {

using packet::mix;
using packet::mix_addr;

SaPairTable::SaPairTable(size_t slots, uint64_t ttl_ns)
    : sas_(slots ? slots : 1), open_(slots ? slots : 1), ttl_(ttl_ns) {}

size_t SaPairTable::open_slot(const Dir& d) const {
  uint64_t h = mix_addr(mix_addr(0x9e3779b97f4a7c15ull, d.src), d.dst);
  h = mix(h, uint64_t{d.path} << 8 | d.proto);
  return static_cast<size_t>(h % open_.size());
}

size_t SaPairTable::sa_slot(const Dir& d, uint32_t spi) const {
  uint64_t h = mix_addr(mix_addr(0x7f4a7c159e3779b9ull, d.src), d.dst);
  h = mix(h, uint64_t{d.path} << 8 | d.proto);
  h = mix(h, spi);
  return static_cast<size_t>(h % sas_.size());
}

SaPairTable::Sa* SaPairTable::find_sa(const Dir& d, uint32_t spi, uint64_t now) {
  Sa& s = sas_[sa_slot(d, spi)];
  if (s.expires == 0 || now > s.expires || s.spi != spi || !(s.dir == d)) return nullptr;
  return &s;
}

uint32_t SaPairTable::pair_id(const packet::IpLayer& l, uint32_t path, uint64_t now) {
  const Dir d{l.src, l.dst, path, l.proto};
  const uint64_t expires = now + ttl_ ? now + ttl_ : 1;
  if (Sa* s = find_sa(d, l.spi, now)) {
    s->expires = expires;
    if (!s->paired) {  // still waiting for a partner: stay the direction's open SA
      Open& o = open_[open_slot(d)];
      if (o.dir == d && o.spi == l.spi) o.expires = expires;
    }
    return s->pair;
  }
  // A new SA: the reverse direction's open one, if any, is its partner.
  const Dir rev{l.dst, l.src, path, l.proto};
  Open& ro = open_[open_slot(rev)];
  Sa& s = sas_[sa_slot(d, l.spi)];
  s = Sa{d, l.spi, l.spi, false, expires};
  if (ro.expires != 0 && now <= ro.expires && ro.dir == rev) {
    if (Sa* partner = find_sa(rev, ro.spi, now)) {
      ro.expires = 0;  // taken
      partner->paired = true;
      s.pair = partner->pair;
      s.paired = true;
      ++paired_;
      return s.pair;
    }
  }
  Open& o = open_[open_slot(d)];
  o = Open{d, l.spi, expires};
  return s.pair;
}

}  // namespace tmach::conn
