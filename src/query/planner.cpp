#include "query/planner.h"

#include <fmt/format.h>

#include <algorithm>
#include <utility>
#include <vector>

namespace tmach::query {
namespace {

using packet::IpAddr;
using store::AddrKey;

Roaring universe(uint32_t n) {
  Roaring r;
  if (n) r.addRange(0, n);
  return r;
}

// UDP ports and IP protocols whose packets can carry a tunnel of `kind` (0: any). A packet
// with a layer reached through it has one of these on its outer layer: a superset.
Roaring tunnel_candidates(const store::IndexLookup& ix, uint8_t kind) {
  using namespace packet;
  struct Way {
    uint8_t kind;
    bool port;
    uint32_t key;
  };
  static constexpr Way kWays[] = {
      {kTunnelIpIp, false, kProtoIpIp}, {kTunnelIpIp, false, kProtoIpv6}, {kTunnelGre, false, kProtoGre},
      {kTunnelGre, true, 4754},         {kTunnelVxlan, true, 4789},       {kTunnelVxlan, true, 4790},
      {kTunnelGeneve, true, 6081},      {kTunnelGtp, true, 2152},         {kTunnelTeredo, true, 3544},
      {kTunnelAyiya, true, 5072},       {kTunnelL2tp, true, 1701},        {kTunnelMplsUdp, true, 6635},
      {kTunnelL2tp, false, kProtoL2tp},  // L2TPv3 over IP
  };
  Roaring r;
  for (const Way& w : kWays)
    if (kind == 0 || w.kind == kind)
      r |= ix.scalar(w.port ? store::Field::kPort : store::Field::kProto, w.key, w.key);
  return r;
}

Candidates plan_pred(const Predicate& p, const store::IndexLookup& ix, uint32_t n) {
  Candidates c;
  using K = Predicate::Kind;
  switch (p.kind) {
    case K::kTunnel:
      c.set = tunnel_candidates(ix, p.tunnel);
      c.exact = false;
      return c;
    case K::kSpi:
      c.set = ix.scalar(store::Field::kProto, packet::kProtoEsp, packet::kProtoEsp);
      c.set |= ix.scalar(store::Field::kProto, packet::kProtoAh, packet::kProtoAh);
      c.set |= ix.scalar(store::Field::kPort, 4500, 4500);  // ESP in UDP (NAT traversal)
      c.exact = false;
      return c;
    default:
      break;
  }
  // An IPv4 address's key also holds the IPv6 layers carrying it v4-mapped (::ffff:a.b.c.d: one
  // key for both forms, index_keys.cpp), which `host a.b.c.d` does not match: exact only where
  // the segment has no IPv6 layer (else its complement under a `not` would lose those packets).
  const auto no_ipv6 = [&] { return ix.scalar_cost(store::Field::kNet, store::kNetV6, store::kNetV6) == 0; };
  switch (p.kind) {
    case K::kHost: {
      c.set = ix.addr(p.addr.b);
      c.exact = p.dir == Dir::kAny && p.family == 0 && no_ipv6();
      break;
    }
    case K::kNet:
      c.set = ix.addr_prefix(p.addr, p.prefix_bits);
      c.exact = p.dir == Dir::kAny && p.family == 0 && no_ipv6();
      break;
    case K::kPort:
    case K::kPortRange:
      c.set = ix.scalar(store::Field::kPort, p.port_lo, p.port_hi);
      c.exact = p.dir == Dir::kAny && p.l4 == 0;
      break;
    case K::kProto:
      c.set = ix.scalar(store::Field::kProto, p.proto, p.proto);
      c.exact = p.family == 0;
      // An IPv6 extension header (`ip6 proto 44`) is matched in the fixed header's next header
      // (eval.cpp), which the index does not hold (its key is the chain's end): every IPv6
      // packet is a candidate.
      if (p.family != 4 && packet::is_ipv6_extension_header(p.proto)) {
        c.set |= ix.scalar(store::Field::kNet, store::kNetV6, store::kNetV6);
        c.exact = false;
      }
      break;
    case K::kFamily:
      c.set = ix.scalar(store::Field::kNet, p.family == 6 ? store::kNetV6 : store::kNetV4,
                        p.family == 6 ? store::kNetV6 : store::kNetV4);
      break;
    case K::kArp:
      c.set = ix.scalar(store::Field::kNet, store::kNetArp, store::kNetArp);
      // Exact for `arp`: the index key and `arp` are both every ARP/RARP frame (index_keys.cpp,
      // eval.cpp); `rarp` is re-checked for its EtherType.
      c.exact = !p.rarp;
      break;
    case K::kVlan: {
      uint32_t key = p.vlan < 0 ? store::kAnyVlan : static_cast<uint32_t>(p.vlan);
      c.set = ix.scalar(store::Field::kVlan, key, key);
      break;
    }
    case K::kTunnel:
    case K::kSpi:
      break;
  }
  // The indexes hold every layer's values: for one layer only they are a superset.
  if (p.layer != Predicate::Layer::kAny) c.exact = false;
  (void)n;
  return c;
}

// Bytes of bitmap the lookups of `p` read (IndexLookup's estimate).
uint64_t pred_cost(const Predicate& p, const store::IndexLookup& ix) {
  using K = Predicate::Kind;
  using store::Field;
  switch (p.kind) {
    case K::kHost:
      return ix.addr_cost(p.addr.b);
    case K::kNet:
      return ix.addr_prefix_cost(p.addr, p.prefix_bits);
    case K::kPort:
    case K::kPortRange:
      return ix.scalar_cost(Field::kPort, p.port_lo, p.port_hi);
    case K::kProto:
      return ix.scalar_cost(Field::kProto, p.proto, p.proto) +
             (p.family != 4 && packet::is_ipv6_extension_header(p.proto)
                  ? ix.scalar_cost(Field::kNet, store::kNetV6, store::kNetV6)
                  : 0);
    case K::kFamily: {
      uint32_t key = p.family == 6 ? store::kNetV6 : store::kNetV4;
      return ix.scalar_cost(Field::kNet, key, key);
    }
    case K::kArp:
      return ix.scalar_cost(Field::kNet, store::kNetArp, store::kNetArp);
    case K::kVlan: {
      uint32_t key = p.vlan < 0 ? store::kAnyVlan : static_cast<uint32_t>(p.vlan);
      return ix.scalar_cost(Field::kVlan, key, key);
    }
    case K::kTunnel:  // a handful of ports and protocols: rare, read them
    case K::kSpi:
      return 0;
  }
  return 0;
}

uint64_t universe_cost(uint32_t n) { return n / 8 + 8; }

uint64_t plan_cost(const Expr& e, const store::IndexLookup& ix, uint32_t n) {
  switch (e.op) {
    case Expr::Op::kTrue:
      return universe_cost(n);
    case Expr::Op::kPred:
      return pred_cost(e.pred, ix);
    case Expr::Op::kNot:
      return universe_cost(n) + plan_cost(e.kids[0], ix, n);
    case Expr::Op::kAnd:
    case Expr::Op::kOr: {
      uint64_t c = 0;
      for (const Expr& k : e.kids) c += plan_cost(k, ix, n);
      return c;
    }
  }
  return 0;
}

// `widen`: a superset is acceptable here (not under a `not`), so an AND may stop before
// its costly terms once the cheap ones left few candidates: re-checking a candidate on its
// bytes costs about as much as reading kBitmapBytesPerCandidate bytes of bitmap.
// (Measured on the bench store: `port 80` and `tcp` are ~100 KB bitmaps per 256 MiB
// segment; after `host A and host B and port P` a segment has a handful of candidates.)
constexpr uint64_t kBitmapBytesPerCandidate = 4096;

Candidates plan(const Expr& e, const store::IndexLookup& ix, uint32_t n, bool widen) {
  switch (e.op) {
    case Expr::Op::kTrue: {
      Candidates c;
      c.set = universe(n);
      return c;
    }
    case Expr::Op::kPred:
      return plan_pred(e.pred, ix, n);
    case Expr::Op::kAnd: {
      // Cheapest terms first: the running intersection only shrinks.
      std::vector<std::pair<uint64_t, const Expr*>> terms;
      terms.reserve(e.kids.size());
      for (const Expr& k : e.kids) terms.emplace_back(plan_cost(k, ix, n), &k);
      std::stable_sort(terms.begin(), terms.end(),
                       [](const auto& a, const auto& b) { return a.first < b.first; });
      Candidates c = plan(*terms[0].second, ix, n, widen);
      for (size_t i = 1; i < terms.size() && !c.set.isEmpty(); ++i) {
        if (widen && terms[i].first > kBitmapBytesPerCandidate * c.set.cardinality()) {
          c.exact = false;  // this term and the costlier ones are left to the re-check
          break;
        }
        Candidates k = plan(*terms[i].second, ix, n, widen);
        c.set &= k.set;
        c.exact = c.exact && k.exact;
      }
      return c;
    }
    case Expr::Op::kOr: {
      Candidates c = plan(e.kids[0], ix, n, widen);
      for (size_t i = 1; i < e.kids.size(); ++i) {
        Candidates k = plan(e.kids[i], ix, n, widen);
        c.set |= k.set;
        c.exact = c.exact && k.exact;
      }
      return c;
    }
    case Expr::Op::kNot: {
      // The complement needs the exact set: nothing under a `not` is widened.
      Candidates k = plan(e.kids[0], ix, n, false);
      Candidates c;
      c.set = universe(n);
      if (k.exact) {
        c.set -= k.set;  // exact complement
        // ... of the index, whose keys of a later fragment are its datagram's, which the re-check
        // gives it only when it reads the first fragment too (not when a time window leaves that
        // out: then no ports, as tcpdump reads it, and `not port 21` matches it). So every
        // fragment is a candidate, the first ones to seed the re-check's memory.
        const Roaring frags = ix.scalar(store::Field::kNet, store::kNetFragment, store::kNetFragment);
        if (!frags.isEmpty()) {
          c.set |= frags;
          c.exact = false;
        }
      } else {
        c.exact = false;  // the complement of a superset is not a superset: keep every packet
      }
      return c;
    }
  }
  return {};
}

}  // namespace

Candidates plan_segment(const Expr& e, const store::IndexLookup& ix, uint32_t n) {
  return plan(e, ix, n, true);
}

namespace {
void explain_rec(const Expr& e, int depth, std::string& out) {
  std::string pad(static_cast<size_t>(depth) * 2, ' ');
  switch (e.op) {
    case Expr::Op::kTrue:
      out += pad + "all packets in the time range\n";
      return;
    case Expr::Op::kAnd:
    case Expr::Op::kOr:
      out += pad + (e.op == Expr::Op::kAnd ? "AND (bitmap intersection)\n" : "OR (bitmap union)\n");
      for (auto& k : e.kids) explain_rec(k, depth + 1, out);
      return;
    case Expr::Op::kNot:
      out += pad + "NOT (complement within the segment)\n";
      explain_rec(e.kids[0], depth + 1, out);
      return;
    case Expr::Op::kPred: {
      const Predicate& p = e.pred;
      using K = Predicate::Kind;
      const char* index = p.kind == K::kHost || p.kind == K::kNet         ? "address index"
                          : p.kind == K::kPort || p.kind == K::kPortRange ? "port index"
                          : p.kind == K::kProto                           ? "protocol index"
                          : p.kind == K::kVlan                            ? "vlan index"
                          : p.kind == K::kTunnel ? "tunnel ports/protocols (port and protocol indexes)"
                          : p.kind == K::kSpi    ? "protocol and port index (esp, ah, udp port 4500)"
                                                 : "network-layer index";
      std::string how;
      if (p.kind == K::kNet) how = " (key range)";
      if (p.kind == K::kPortRange) how = " (key range)";
      bool exact = true;
      if ((p.kind == K::kHost || p.kind == K::kNet) && (p.dir != Dir::kAny || p.family)) exact = false;
      if ((p.kind == K::kPort || p.kind == K::kPortRange) && (p.dir != Dir::kAny || p.l4)) exact = false;
      if (p.kind == K::kProto && p.family) exact = false;
      if (p.kind == K::kTunnel || p.kind == K::kSpi) exact = false;
      if (p.kind == K::kArp && p.rarp) exact = false;
      if (p.kind == K::kProto && p.family != 4 && packet::is_ipv6_extension_header(p.proto)) exact = false;
      if (p.layer != Predicate::Layer::kAny) exact = false;
      out += fmt::format("{}{}: {}{}{}\n", pad, p.str(), index, how, exact ? "" : ", re-checked per packet");
      return;
    }
  }
}
}  // namespace

std::string explain_plan(const Expr& e) {
  std::string out;
  explain_rec(e, 1, out);
  return out;
}

}  // namespace tmach::query
