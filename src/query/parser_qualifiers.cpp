// Qualifiers and values to predicates, after libpcap's gencode.c: which combinations of
// qualifiers are legal, what a bare protocol keyword means, and the Expr a number, address,
// port or protocol gives under a qualifier; plus the Expr tree helpers the grammar uses.
// Contracts in parser_internal.h.
#include <bit>
#include <string>
#include <utility>

#include "query/parser_internal.h"

namespace tmach::query::detail {
namespace {

using lex::Token;
using packet::IpAddr;
using Kind = Predicate::Kind;

IpAddr v4addr(uint32_t v) {
  uint8_t b[4] = {uint8_t(v >> 24), uint8_t(v >> 16), uint8_t(v >> 8), uint8_t(v)};
  return IpAddr::v4(b);
}

uint8_t l4_of(PQ pq) {
  switch (pq) {
    case PQ::kTcp:
      return packet::kProtoTcp;
    case PQ::kUdp:
      return packet::kProtoUdp;
    case PQ::kSctp:
      return packet::kProtoSctp;
    default:
      return 0;
  }
}

}  // namespace

// Restricts every layer-aware predicate of `e` to one layer (`inner`/`outer`).
void apply_layer(Expr& e, Predicate::Layer layer) {
  if (layer == Predicate::Layer::kAny) return;
  if (e.op == Expr::Op::kPred) {
    switch (e.pred.kind) {
      case Kind::kHost:
      case Kind::kNet:
      case Kind::kPort:
      case Kind::kPortRange:
      case Kind::kProto:
      case Kind::kFamily:
        if (e.pred.layer == Predicate::Layer::kAny) e.pred.layer = layer;
        break;
      default:
        break;
    }
  }
  for (Expr& k : e.kids) apply_layer(k, layer);
}

Expr negate(Expr e) {
  Expr n;
  n.op = Expr::Op::kNot;
  n.kids.push_back(std::move(e));
  return n;
}

// a and b, flattening nested and's (or or's): the tree has one node per run of equal ops.
// The left side's run is extended where it is (the parser folds `a and b and c ...` from the
// left: copying it each time made a filter of n terms take n^2 / 2 moves, 26 s for 40k).
Expr combine(Expr::Op op, Expr l, Expr r) {
  Expr e;
  if (l.op == op) {
    e = std::move(l);
  } else {
    e.op = op;
    e.kids.push_back(std::move(l));
  }
  if (r.op == op) {
    for (Expr& k : r.kids) e.kids.push_back(std::move(k));
  } else {
    e.kids.push_back(std::move(r));
  }
  return e;
}

Predicate proto_pred(uint8_t proto, uint8_t family) {
  Predicate p;
  p.kind = Kind::kProto;
  p.proto = proto;
  p.family = family;
  return p;
}

// What a bare protocol keyword means (gencode.c gen_proto_abbrev()).
Expr abbrev(PQ pq) {
  Predicate p;
  switch (pq) {
    case PQ::kIp:
    case PQ::kIp6:
      p.kind = Kind::kFamily;
      p.family = pq == PQ::kIp ? 4 : 6;
      return Expr::leaf(p);
    case PQ::kArp:
    case PQ::kRarp:  // `arp` is every ARP or RARP frame, `rarp` only RARP (libpcap's two EtherTypes)
      p.kind = Kind::kArp;
      p.rarp = pq == PQ::kRarp;
      return Expr::leaf(p);
    case PQ::kTcp:
      return Expr::leaf(proto_pred(packet::kProtoTcp, 0));
    case PQ::kUdp:
      return Expr::leaf(proto_pred(packet::kProtoUdp, 0));
    case PQ::kSctp:
      return Expr::leaf(proto_pred(packet::kProtoSctp, 0));
    case PQ::kIcmp:
      return Expr::leaf(proto_pred(packet::kProtoIcmp, 4));
    case PQ::kIcmp6:
      return Expr::leaf(proto_pred(packet::kProtoIcmp6, 6));
    case PQ::kIgmp:
      return Expr::leaf(proto_pred(packet::kProtoIgmp, 4));
    case PQ::kEsp:
      return Expr::leaf(proto_pred(packet::kProtoEsp, 0));
    case PQ::kAh:
      return Expr::leaf(proto_pred(packet::kProtoAh, 0));
    case PQ::kDefault:
      break;
  }
  return Expr::truth();
}

// Combinations libpcap rejects whatever value follows (gencode.c's messages).
void check_qualifiers(const Qual& q, size_t pos) {
  const std::string name = pq_name(q.proto);
  switch (q.addr) {
    case AQ::kDefault:
    case AQ::kHost:
    case AQ::kNet:
      switch (q.proto) {
        case PQ::kDefault:
        case PQ::kIp:
        case PQ::kIp6:
        case PQ::kArp:
        case PQ::kRarp:
          return;
        default:
          fail(pos, "'" + name + "' modifier applied to " + (q.addr == AQ::kNet ? "net" : "host"));
      }
    case AQ::kPort:
    case AQ::kPortRange:
      if (q.proto == PQ::kDefault || q.proto == PQ::kTcp || q.proto == PQ::kUdp || q.proto == PQ::kSctp)
        return;
      fail(pos, std::string("illegal qualifier of '") + (q.addr == AQ::kPort ? "port" : "portrange") + "'");
    case AQ::kProto:
      if (q.proto == PQ::kDefault || q.proto == PQ::kIp || q.proto == PQ::kIp6) return;
      if (q.proto == PQ::kArp || q.proto == PQ::kRarp)
        fail(pos, name + " does not encapsulate another protocol");
      fail(pos, "'" + name + " proto' is bogus");
  }
}

const char* expected(const Qual& q) {
  if (!q.valid) return "an address";
  switch (q.addr) {
    case AQ::kNet:
      return "a network address";
    case AQ::kPort:
      return "a port number or name";
    case AQ::kPortRange:
      return "a port range like 1024-65535";
    case AQ::kProto:
      return "a protocol number or name";
    default:
      return "an address";
  }
}

Qual host_qual() {
  Qual q;
  q.valid = true;
  q.addr = AQ::kHost;
  return q;
}

// A v4 address/network already shifted into place, with its mask (gencode.c gen_ncode()).
Expr v4_expr(uint32_t v, uint32_t mask, const Qual& q, size_t pos) {
  Predicate p;
  p.dir = q.dir;
  p.addr = v4addr(v & mask);
  if (mask == 0xffffffffu && q.addr != AQ::kNet) {
    p.kind = Kind::kHost;
  } else {
    p.kind = Kind::kNet;
    p.prefix_bits = uint8_t(96 + std::popcount(mask));
  }
  return with_family(p, q, false, pos);
}

// Applies ip/ip6/arp to a host or net predicate.
Expr with_family(Predicate p, const Qual& q, bool v6, size_t pos) {
  switch (q.proto) {
    case PQ::kDefault:
      p.family = v6 ? 6 : 0;
      return Expr::leaf(p);
    case PQ::kIp:
      if (v6) fail(pos, "'ip' modifier applied to an IPv6 address");
      p.family = 4;
      return Expr::leaf(p);
    case PQ::kIp6:
      if (!v6) fail(pos, "'ip6' modifier applied to an IPv4 address");
      p.family = 6;
      return Expr::leaf(p);
    case PQ::kArp:
    case PQ::kRarp: {
      if (v6) fail(pos, std::string("'") + pq_name(q.proto) + "' modifier applied to an IPv6 address");
      // `arp host A` is exactly `arp and host A`: an ARP frame has no IP layer (`rarp host A`
      // likewise).
      p.family = 0;
      Predicate arp;
      arp.kind = Kind::kArp;
      arp.rarp = q.proto == PQ::kRarp;
      return combine(Expr::Op::kAnd, Expr::leaf(arp), Expr::leaf(p));
    }
    default:
      fail(pos, std::string("'") + pq_name(q.proto) + "' modifier applied to host");
  }
}

Expr port_value(const Qual& q, uint32_t lo, uint32_t hi, uint8_t l4) {
  Predicate p;
  p.kind = q.addr == AQ::kPort ? Kind::kPort : Kind::kPortRange;
  p.dir = q.dir;
  if (lo > hi) std::swap(lo, hi);
  p.port_lo = uint16_t(lo);
  p.port_hi = uint16_t(hi);
  p.l4 = l4;
  return Expr::leaf(p);
}

Expr proto_value(const Qual& q, uint8_t num) {
  return Expr::leaf(proto_pred(num, q.proto == PQ::kIp ? 4 : q.proto == PQ::kIp6 ? 6 : 0));
}

Expr num_value(const Qual& q, const Token& t) {
  uint32_t v = t.num;
  if (!q.valid) fail(t.pos, "a number needs a keyword before it (host, net, port, portrange, proto)");
  switch (q.addr) {
    case AQ::kDefault:
    case AQ::kHost:  // a 32-bit IPv4 address written as one number
      return v4_expr(v, 0xffffffffu, q, t.pos);
    case AQ::kNet: {  // libpcap's short net number: "net 10" is 10.0.0.0/8
      uint32_t m = 0xffffffffu;
      while (v && (v & 0xff000000u) == 0) {
        v <<= 8;
        m <<= 8;
      }
      return v4_expr(v, m, q, t.pos);
    }
    case AQ::kPort:
    case AQ::kPortRange:
      if (v > 65535) fail(t.pos, "illegal port number " + std::to_string(v) + " > 65535");
      return port_value(q, v, v, l4_of(q.proto));
    case AQ::kProto:
      // libpcap accepts any number here (and then never matches above 255).
      if (v > 255) fail(t.pos, "protocol number " + std::to_string(v) + " > 255");
      return proto_value(q, uint8_t(v));
  }
  return Expr::truth();
}

void reject_addr_for(const Qual& q, size_t pos, const char* what) {
  switch (q.addr) {
    case AQ::kPort:
      fail(pos, std::string("'port' modifier applied to ") + what);
    case AQ::kPortRange:
      fail(pos, std::string("'portrange' modifier applied to ") + what);
    case AQ::kProto:
      fail(pos, std::string("'proto' modifier applied to ") + what);
    default:
      return;
  }
}

// gencode.c: a name that is tcp-only (udp-only) cannot be used with `udp` (`tcp`).
uint8_t restrict_proto(uint8_t real, PQ pq, size_t pos, const std::string& what) {
  switch (pq) {
    case PQ::kTcp:
      if (real == packet::kProtoUdp) fail(pos, what + " is udp");
      return packet::kProtoTcp;
    case PQ::kUdp:
      if (real == packet::kProtoTcp) fail(pos, what + " is tcp");
      return packet::kProtoUdp;
    case PQ::kSctp:
      if (real == packet::kProtoTcp) fail(pos, what + " is tcp");
      if (real == packet::kProtoUdp) fail(pos, what + " is udp");
      return packet::kProtoSctp;
    default:
      return real;
  }
}

}  // namespace tmach::query::detail
