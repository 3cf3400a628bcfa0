// The query expression: a tree of predicates the indexes can answer, joined by
// and/or/not. Produced by parse_expr() (parser.h) from tcpdump filter syntax; evaluated
// exactly on one decoded packet by matches() (eval.h); turned into bitmap algebra over a
// segment's indexes by the planner.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "packet/packet_info.h"

namespace tmach::query {

enum class Dir : uint8_t { kAny, kSrc, kDst, kSrcAndDst };  // "src or dst" is kAny

struct Predicate {
  enum class Kind : uint8_t {
    kHost,       // addr, dir, family (4/6/0)           host / src host / ip6 host ...
    kNet,        // addr + prefix_bits (128-bit form), dir, family
    kPort,       // port_lo == port_hi, dir, l4 (0 = tcp|udp|sctp, else that proto)
    kPortRange,  // port_lo..port_hi inclusive, dir, l4
    kProto,      // transport protocol number `proto`, family (0 = ip or ip6, 4, 6)
    kFamily,     // family 4 (ip) or 6 (ip6): the packet has an IP layer of that version
    kArp,        // ARP or RARP frame (`rarp`: RARP only)
    kVlan,       // vlan id `vlan` (or any VLAN tag when vlan < 0)
    kTunnel,     // a layer reached through tunnel kind `tunnel` (0: any), with id `tunnel_id` (>= 0)
    kSpi,        // an ESP or AH header with SPI `spi`
  };
  // Which IP layers host/net/port/portrange/proto/family look at: any (tcpdump's default
  // and tm's), the outermost only (`outer host X`) or the innermost only (`inner host X`).
  enum class Layer : uint8_t { kAny, kOuter, kInner };
  // The parser sets family 6 on every host/net with an IPv6 literal (also ::ffff:a.b.c.d),
  // 4 for `ip host`/`ip net`, and 0 for a plain IPv4 host/net (which also matches ARP/RARP
  // sender/target addresses, as libpcap's does). `arp host A` is parsed as `arp and host A`.
  Kind kind = Kind::kHost;
  Dir dir = Dir::kAny;
  uint8_t family = 0;         // 0 either, 4 IPv4 only, 6 IPv6 only
  packet::IpAddr addr;        // kHost, kNet (network address, host bits zero)
  uint8_t prefix_bits = 128;  // kNet: bits in the 128-bit form (IPv4 /24 -> 120)
  uint16_t port_lo = 0, port_hi = 0;
  uint8_t l4 = 0;             // kPort/kPortRange: 0 = tcp, udp or sctp; else protocol
  uint8_t proto = 0;          // kProto
  int32_t vlan = -1;          // kVlan
  Layer layer = Layer::kAny;  // kHost, kNet, kPort, kPortRange, kProto, kFamily
  uint8_t tunnel = 0;         // kTunnel: packet::TunnelKind, 0 = any tunnel
  int64_t tunnel_id = -1;     // kTunnel: VNI (vxlan/geneve), TEID (gtp), key (gre); -1 any
  uint32_t spi = 0;           // kSpi
  bool rarp = false;          // kArp: RARP frames only (EtherType 0x8035); `arp` is both

  std::string str() const;  // canonical text, for --explain

  bool operator==(const Predicate&) const = default;
};

struct Expr {
  enum class Op : uint8_t { kAnd, kOr, kNot, kPred, kTrue };
  Op op = Op::kTrue;
  std::vector<Expr> kids;  // kAnd/kOr: 2 or more; kNot: 1
  Predicate pred;          // kPred

  static Expr truth() { return Expr{}; }
  static Expr leaf(const Predicate& p) {
    Expr e;
    e.op = Op::kPred;
    e.pred = p;
    return e;
  }
  std::string str() const;  // canonical text with parentheses, for --explain and tests

  bool operator==(const Expr&) const = default;  // structural
};

}  // namespace tmach::query
