// Exact evaluation of a query on one decoded packet, with libpcap's semantics (gencode.c)
// on the IP layers of the packet. Every IP-level predicate holds when ANY IP layer
// satisfies it, so tunnelled packets match on outer and inner headers alike.
//
// Where tm deliberately differs from tcpdump (see docs/USAGE.md "Query language and its semantics"):
//  - IPv6 extension headers: libpcap's `ip6 proto N` (and `tcp`, `udp`, `port`, ...)
//    looks only at the fixed header's next-header field and at one fragment header, so
//    TCP behind a hop-by-hop or routing header is not `tcp` to tcpdump. tm follows the
//    whole extension-header chain (IpLayer::proto), so it is; and `ip6 proto 0` (43, 44,
//    60: the extension headers themselves) never match.
//  - VLAN: libpcap's `vlan` shifts the offsets of what follows it and only untagged
//    frames match `host`, `tcp`, ... without it; tm decodes through VLAN tags always, and
//    `vlan N` matches any of the frame's tags rather than the next one.
//  - `arp` also matches RARP frames; `rarp` only RARP frames (EtherType 0x8035).
//  - Layers: `inner`/`outer` restrict host/net/port/proto/ip/ip6 to the innermost or the
//    outermost IP layer; tunnel selectors look at how each layer was reached.
//  - Fragments: the caller may let a later fragment inherit its first fragment's ports and
//    inner layers (packet/fragment_layers.h) before evaluating; then `port` matches it.
//  - Malformed IP headers (impossible version or IPv4 header length): the decoder gives the
//    layer its addresses and protocol byte only, so `host`, `net`, `ip proto` match as
//    libpcap's, but `port` never does (libpcap reads ports where the bad header length puts them).
#include "query/eval.h"

#include <algorithm>

namespace tmach::query {
namespace {

using packet::IpAddr;
using packet::IpLayer;
using packet::PacketInfo;
using Kind = Predicate::Kind;

constexpr uint16_t kEtherTypeRarp = 0x8035;

bool by_dir(Dir d, bool src, bool dst) {
  switch (d) {
    case Dir::kSrc:
      return src;
    case Dir::kDst:
      return dst;
    case Dir::kSrcAndDst:
      return src && dst;
    case Dir::kAny:
      break;
  }
  return src || dst;
}

int layers(const PacketInfo& p) { return std::min<int>(p.ip_count, PacketInfo::kMaxIpLayers); }

// The layers [lo, hi) a predicate looks at.
struct Range {
  int lo, hi;
};
Range range(const Predicate& pr, const PacketInfo& p) {
  const int n = layers(p);
  switch (pr.layer) {
    case Predicate::Layer::kOuter:
      return {0, n ? 1 : 0};
    case Predicate::Layer::kInner:
      return {n ? n - 1 : 0, n};
    case Predicate::Layer::kAny:
      break;
  }
  return {0, n};
}

// host / net. An IPv4 one without `ip` (family 0) also tests the sender and target
// protocol addresses of ARP and RARP frames, as libpcap's does (those the decoder read:
// PacketInfo::arp_addrs).
bool addr_matches(const Predicate& pr, const PacketInfo& p) {
  const bool net = pr.kind == Kind::kNet;
  auto hit = [&](const IpAddr& a) { return net ? a.in_prefix(pr.addr, pr.prefix_bits) : a == pr.addr; };
  const bool v4 = pr.family == 4 || (pr.family == 0 && pr.addr.is_v4() && (!net || pr.prefix_bits >= 96));
  const uint8_t version = v4 ? 4 : 6;
  const Range r = range(pr, p);
  for (int i = r.lo; i < r.hi; ++i) {
    const IpLayer& l = p.ip[i];
    if (l.version == version && by_dir(pr.dir, hit(l.src), hit(l.dst))) return true;
  }
  return v4 && pr.family == 0 && pr.layer == Predicate::Layer::kAny && p.arp_addrs &&
         by_dir(pr.dir, hit(p.arp_spa), hit(p.arp_tpa));
}

// port / portrange: TCP, UDP or SCTP only (never DCCP, as in libpcap). A fragment other
// than the first has no ports from the decoder (libpcap tests the IPv4 fragment offset is
// 0); it has them only when they were inherited from its first fragment (FragmentLayers,
// which the query re-check and the index builder apply: docs/USAGE.md "Fragments").
bool port_matches(const Predicate& pr, const PacketInfo& p) {
  auto in = [&](uint16_t port) { return port >= pr.port_lo && port <= pr.port_hi; };
  const Range r = range(pr, p);
  for (int i = r.lo; i < r.hi; ++i) {
    const IpLayer& l = p.ip[i];
    if (!l.has_ports) continue;
    const uint8_t proto = l.version == 4 ? l.header_proto : l.proto;
    const bool ok = pr.l4 == 0 ? packet::port_protocol(proto) : proto == pr.l4;
    if (ok && by_dir(pr.dir, in(l.sport), in(l.dport))) return true;
  }
  return false;
}

// ip proto N: the IPv4 protocol field (fragments included). ip6 proto N: the protocol
// after the extension-header chain (see the note at the top).
bool proto_matches(const Predicate& pr, const PacketInfo& p) {
  const Range r = range(pr, p);
  for (int i = r.lo; i < r.hi; ++i) {
    const IpLayer& l = p.ip[i];
    if (l.version == 4 && pr.family != 6 && l.header_proto == pr.proto) return true;
    // IPv6: the protocol after the extension headers (tm follows the chain), or the fixed
    // header's next header (libpcap's `ip6 proto N`: `ip6 proto 44` is its fragment test, which
    // the chain's end alone never matched).
    if (l.version == 6 && pr.family != 4 && (l.proto == pr.proto || l.header_proto == pr.proto)) return true;
  }
  return false;
}

}  // namespace

bool matches(const Predicate& pr, const PacketInfo& p) {
  switch (pr.kind) {
    case Kind::kHost:
    case Kind::kNet:
      return addr_matches(pr, p);
    case Kind::kPort:
    case Kind::kPortRange:
      return port_matches(pr, p);
    case Kind::kProto:
      return proto_matches(pr, p);
    case Kind::kFamily: {
      const Range r = range(pr, p);
      for (int i = r.lo; i < r.hi; ++i)
        if (p.ip[i].version == pr.family) return true;
      return false;
    }
    case Kind::kTunnel:
      for (int i = 1; i < layers(p); ++i) {
        const IpLayer& l = p.ip[i];
        if ((pr.tunnel == 0 || l.tunnel == pr.tunnel) && (pr.tunnel_id < 0 || l.tunnel_id == pr.tunnel_id))
          return true;
      }
      return false;
    case Kind::kSpi:
      for (int i = 0; i < layers(p); ++i)
        if (p.ip[i].has_spi && p.ip[i].spi == pr.spi) return true;
      return false;
    case Kind::kArp:  // every ARP/RARP frame, as libpcap's `arp` (EtherType 0x0806) is every one
      return p.arp && (!pr.rarp || p.ethertype == kEtherTypeRarp);
    case Kind::kVlan: {
      const int n = std::min<int>(p.vlan_count, PacketInfo::kMaxVlans);
      if (pr.vlan < 0) return p.vlan_count > 0;
      for (int i = 0; i < n; ++i)
        if (p.vlans[i] == pr.vlan) return true;
      return false;
    }
  }
  return false;
}

bool matches(const Expr& e, const PacketInfo& p) {
  switch (e.op) {
    case Expr::Op::kTrue:
      return true;
    case Expr::Op::kPred:
      return matches(e.pred, p);
    case Expr::Op::kNot:
      return e.kids.empty() || !matches(e.kids[0], p);
    case Expr::Op::kAnd:
      return std::all_of(e.kids.begin(), e.kids.end(), [&](const Expr& k) { return matches(k, p); });
    case Expr::Op::kOr:
      return std::any_of(e.kids.begin(), e.kids.end(), [&](const Expr& k) { return matches(k, p); });
  }
  return false;
}

}  // namespace tmach::query
