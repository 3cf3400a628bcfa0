// Canonical text of predicates and expressions: valid tcpdump syntax that parse_expr()
// turns back into the same tree (parse(e.str()) == e).
#include "query/expr.h"

#include <arpa/inet.h>

#include <string>

namespace tmach::query {
namespace {

std::string addr_text(const packet::IpAddr& a, bool as_v4) {
  char buf[INET6_ADDRSTRLEN] = {};
  if (as_v4) {
    inet_ntop(AF_INET, &a.b[12], buf, sizeof buf);
  } else {
    inet_ntop(AF_INET6, a.b.data(), buf, sizeof buf);
  }
  return buf;
}

const char* dir_text(Dir d) {
  switch (d) {
    case Dir::kSrc:
      return "src ";
    case Dir::kDst:
      return "dst ";
    case Dir::kSrcAndDst:
      return "src and dst ";
    case Dir::kAny:
      break;
  }
  return "";
}

const char* l4_text(uint8_t l4) {
  switch (l4) {
    case packet::kProtoTcp:
      return "tcp ";
    case packet::kProtoUdp:
      return "udp ";
    case packet::kProtoSctp:
      return "sctp ";
    default:
      return "";
  }
}

}  // namespace

std::string Predicate::str() const {
  const char* lp = layer == Layer::kOuter ? "outer " : layer == Layer::kInner ? "inner " : "";
  switch (kind) {
    case Kind::kTunnel: {
      std::string s("tunnel");
      if (tunnel != 0) s.append(" ").append(packet::tunnel_name(tunnel));
      if (tunnel_id >= 0) s.append(" ").append(std::to_string(tunnel_id));
      return s;
    }
    case Kind::kSpi: {
      std::string s("spi ");
      return s.append(std::to_string(spi));
    }
    default:
      break;
  }
  if (layer != Layer::kAny) {
    Predicate p = *this;
    p.layer = Layer::kAny;
    std::string s = p.str();
    std::string out(lp);
    if (s[0] != '(') return out.append(s);
    // "(ip or ip6)" is the only text with a parenthesis
    std::string both("(");
    both.append(out).append("ip or ").append(out).append("ip6)");
    return both;
  }
  switch (kind) {
    case Kind::kHost:
    case Kind::kNet: {
      // IPv6 literals (family 6) keep their IPv6 spelling even when v4-mapped.
      const bool v4 = family != 6 && addr.is_v4() && (kind == Kind::kHost || prefix_bits >= 96);
      std::string s = family == 4 ? "ip " : "";
      s += dir_text(dir);
      s += kind == Kind::kHost ? "host " : "net ";
      s += addr_text(addr, v4);
      if (kind == Kind::kNet) {
        s += '/';  // appended apart: GCC 12 warns (falsely, -Wrestrict) about "/" + std::string
        s += std::to_string(v4 ? prefix_bits - 96 : prefix_bits);
      }
      return s;
    }
    case Kind::kPort:
      return std::string(l4_text(l4)) + dir_text(dir) + "port " + std::to_string(port_lo);
    case Kind::kPortRange:
      return std::string(l4_text(l4)) + dir_text(dir) + "portrange " + std::to_string(port_lo) + "-" +
             std::to_string(port_hi);
    case Kind::kProto:
      // The protocol keywords, where they mean exactly this predicate.
      if (family == 0 && proto == packet::kProtoTcp) return "tcp";
      if (family == 0 && proto == packet::kProtoUdp) return "udp";
      if (family == 0 && proto == packet::kProtoSctp) return "sctp";
      if (family == 0 && proto == packet::kProtoEsp) return "esp";
      if (family == 0 && proto == packet::kProtoAh) return "ah";
      if (family == 4 && proto == packet::kProtoIcmp) return "icmp";
      if (family == 4 && proto == packet::kProtoIgmp) return "igmp";
      if (family == 6 && proto == packet::kProtoIcmp6) return "icmp6";
      return std::string(family == 4 ? "ip " : family == 6 ? "ip6 " : "") + "proto " + std::to_string(proto);
    case Kind::kFamily:
      return family == 4 ? "ip" : family == 6 ? "ip6" : "(ip or ip6)";
    case Kind::kArp:
      return rarp ? "rarp" : "arp";
    case Kind::kVlan:
      return vlan < 0 ? "vlan" : "vlan " + std::to_string(vlan);
    case Kind::kTunnel:
    case Kind::kSpi:
      break;
  }
  return "";
}

std::string Expr::str() const {
  switch (op) {
    case Op::kTrue:
      return "";  // the empty filter
    case Op::kPred:
      return pred.str();
    case Op::kNot:
      return kids.empty() ? "" : "not " + kids[0].str();
    case Op::kAnd:
    case Op::kOr: {
      std::string s = "(";
      for (size_t i = 0; i < kids.size(); ++i) {
        if (i) s += op == Op::kAnd ? " and " : " or ";
        s += kids[i].str();
      }
      return s + ")";
    }
  }
  return "";
}

}  // namespace tmach::query
