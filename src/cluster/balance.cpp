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

}  // namespace

std::optional<Scheme> parse_scheme(const std::string& s) {
  if (s == "pair") return Scheme::kPair;
  if (s == "5tuple" || s == "5-tuple" || s == "five-tuple") return Scheme::kFiveTuple;
  return std::nullopt;
}

const char* scheme_name(Scheme s) { return s == Scheme::kPair ? "pair" : "5tuple"; }

uint64_t flow_hash(const packet::IpAddr& a, const packet::IpAddr& b, uint16_t port_a, uint16_t port_b,
                   uint8_t proto) {
  const packet::IpAddr& lo = b < a ? b : a;
  const packet::IpAddr& hi = b < a ? a : b;
  uint64_t h = 0x74696d656d616368ull;  // "timemach"
  h = mix_bytes(h, lo.b.data(), 16);
  h = mix_bytes(h, hi.b.data(), 16);
  h = mix(h, std::min(port_a, port_b));
  h = mix(h, std::max(port_a, port_b));
  return mix(h, proto);
}

uint64_t packet_hash(Scheme scheme, const packet::PacketInfo& p, const uint8_t* frame, uint32_t caplen) {
  if (p.ip_count > 0) {
    const packet::IpLayer& l = p.ip[0];
    if (scheme == Scheme::kPair) return flow_hash(l.src, l.dst, 0, 0, 0);
    // Fragments and tunnelled packets hash without ports and protocol: a later IPv6 fragment's
    // protocol is whatever header follows the fragment header (not always the first
    // fragment's), and a tunnel's outer protocol says nothing of what a query pins inside.
    if (l.fragment || p.ip_count > 1 || !l.has_ports) return flow_hash(l.src, l.dst, 0, 0, 0);
    return flow_hash(l.src, l.dst, l.sport, l.dport, l.proto);
  }
  if (p.arp_addrs) return flow_hash(p.arp_spa, p.arp_tpa, 0, 0, 0);
  if (p.has_eth && static_cast<uint32_t>(p.eth_offset) + 12 <= caplen) {
    // MACs in the 16-byte address form (zero-padded): another value space than IP's
    // v4-mapped and v6 addresses, hashed the same way.
    packet::IpAddr a, b;
    std::memcpy(a.b.data(), frame + p.eth_offset, 6);
    std::memcpy(b.b.data(), frame + p.eth_offset + 6, 6);
    return flow_hash(a, b, 0, 0, 0);
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
