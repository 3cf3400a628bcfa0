#include "cluster/balance.h"

#include <cstring>

#include "packet/decoder.h"

namespace tmach::cluster {
namespace {

// splitmix64's finaliser: every input bit affects every output bit.
uint64_t mix(uint64_t h, uint64_t v) {
  h ^= v + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2);
  h ^= h >> 30;
  h *= 0xbf58476d1ce4e5b9ull;
  h ^= h >> 27;
  h *= 0x94d049bb133111ebull;
  h ^= h >> 31;
  return h;
}

uint64_t mix_bytes(uint64_t h, const uint8_t* p, size_t n) {
  for (size_t i = 0; i < n; i += 8) {
    uint64_t w = 0;
    std::memcpy(&w, p + i, std::min<size_t>(8, n - i));
    h = mix(h, w);
  }
  return h;
}

bool endpoint_less(const Endpoint& a, const Endpoint& b) {
  if (a.addr != b.addr) return a.addr < b.addr;
  return a.port < b.port;
}

}  // namespace

std::optional<Scheme> parse_scheme(const std::string& s) {
  if (s == "pair") return Scheme::kPair;
  if (s == "5tuple" || s == "5-tuple" || s == "five-tuple") return Scheme::kFiveTuple;
  return std::nullopt;
}

const char* scheme_name(Scheme s) { return s == Scheme::kPair ? "pair" : "5tuple"; }

uint64_t endpoint_hash(const Endpoint& a, const Endpoint& b, uint8_t proto) {
  const Endpoint& lo = endpoint_less(b, a) ? b : a;
  const Endpoint& hi = &lo == &a ? b : a;
  uint64_t h = 0x74696d656d616368ull;  // "timemach"
  h = mix_bytes(h, lo.addr.b.data(), 16);
  h = mix(h, lo.port);
  h = mix_bytes(h, hi.addr.b.data(), 16);
  h = mix(h, hi.port);
  return mix(h, proto);
}

uint64_t packet_hash(Scheme scheme, const packet::PacketInfo& p, const uint8_t* frame, uint32_t caplen) {
  if (p.ip_count > 0) {
    const packet::IpLayer& l = p.ip[0];
    Endpoint a{l.src, 0}, b{l.dst, 0};
    if (scheme == Scheme::kPair) return endpoint_hash(a, b, 0);
    if (l.has_ports && !l.fragment && p.ip_count == 1) {
      a.port = l.sport;
      b.port = l.dport;
    }
    return endpoint_hash(a, b, l.proto);
  }
  if (p.arp) return endpoint_hash({p.arp_spa, 0}, {p.arp_tpa, 0}, 0);
  if (p.has_eth && static_cast<uint32_t>(p.eth_offset) + 12 <= caplen) {
    // MACs in the 16-byte address form (zero-padded): another value space than IP's
    // v4-mapped and v6 addresses, hashed the same way.
    Endpoint a, b;
    std::memcpy(a.addr.b.data(), frame + p.eth_offset, 6);
    std::memcpy(b.addr.b.data(), frame + p.eth_offset + 6, 6);
    return endpoint_hash(a, b, 0);
  }
  return 0;
}

ShareFilter::ShareFilter(uint32_t worker_id, uint32_t workers, Scheme scheme)
    : id_(worker_id), n_(workers), scheme_(scheme) {}

size_t ShareFilter::keep(capture::RawPacket* pkts, size_t n) {
  size_t out = 0;
  for (size_t i = 0; i < n; ++i) {
    const capture::RawPacket& r = pkts[i];
    packet::decode(r.linktype, r.data, r.caplen, info_);
    uint64_t h = packet_hash(scheme_, info_, r.data, r.caplen);
    if (worker_of(h, n_) == id_) {
      pkts[out++] = r;
      ++kept_;
    } else {
      ++other_;
      other_bytes_ += r.wirelen;
    }
  }
  return out;
}

}  // namespace tmach::cluster
