// tcpdump filter syntax -> Expr, after libpcap's grammar.y and gencode.c.
//
// The grammar, as libpcap has it (only the parts tm plans):
//   expr  : term | expr and term | expr and id | expr or term | expr or id
//   term  : not term | head id | '(' expr ')' | pname | vlan [num]
//   head  : [pname] dqual aqual | [pname] dqual | [pname] aqual | [pname] proto
//   id    : address | number | name | not id | '(' id {and|or id} ')'
// `and` and `or` have the same precedence and associate to the left; `not` binds to the
// term after it. An id that follows and/or with no keyword reuses the qualifiers of the
// term before it ("host A or B", "tcp port 80 or 443"); after a bare protocol keyword or
// `vlan` there is nothing to reuse. tm adds one rule: an address with nothing to reuse
// means `host` ("10.0.0.1" alone, which libpcap rejects).
//
// Whatever libpcap accepts but tm does not plan (ether, greater, tcp[13], ...) makes the
// whole filter kBpfOnly; the caller compiles the text with libpcap.
#include "query/parser.h"

#include <arpa/inet.h>
#include <netdb.h>

#include <algorithm>
#include <bit>
#include <cstring>
#include <exception>
#include <utility>
#include <vector>

#include "query/lexer.h"

namespace tmach::query {
namespace {

using lex::Kw;
using lex::Tok;
using lex::Token;
using packet::IpAddr;
using Kind = Predicate::Kind;

constexpr int kMaxDepth = 200;

// Protocol qualifier (libpcap's pqual), as far as tm plans them.
enum class PQ : uint8_t {
  kDefault,
  kIp,
  kIp6,
  kArp,
  kRarp,
  kTcp,
  kUdp,
  kSctp,
  kIcmp,
  kIcmp6,
  kIgmp,
  kEsp,
  kAh
};
// Address qualifier (libpcap's aqual, plus `proto`).
enum class AQ : uint8_t { kDefault, kHost, kNet, kPort, kPortRange, kProto };

// The qualifiers an id is read with. valid == false is libpcap's `qerr`: nothing to reuse.
struct Qual {
  bool valid = false;
  PQ proto = PQ::kDefault;
  Dir dir = Dir::kAny;
  AQ addr = AQ::kDefault;
  Predicate::Layer layer = Predicate::Layer::kAny;  // tm: inner/outer, reused like the others
};

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

// Tunnel names of `tunnel NAME` and of the bare selectors (`vxlan`, `gtp`, ...).
bool tunnel_of(const std::string& s, uint8_t* kind) {
  for (uint8_t k = 1; k < packet::kTunnelKinds; ++k) {
    if (s == packet::tunnel_name(k)) {
      *kind = k;
      return true;
    }
  }
  if (s == "geneve" || s == "vxlan-gpe") {
    *kind = s == "geneve" ? packet::kTunnelGeneve : packet::kTunnelVxlan;
    return true;
  }
  return false;
}

const char* pq_name(PQ p) {
  switch (p) {
    case PQ::kDefault:
      return "";
    case PQ::kIp:
      return "ip";
    case PQ::kIp6:
      return "ip6";
    case PQ::kArp:
      return "arp";
    case PQ::kRarp:
      return "rarp";
    case PQ::kTcp:
      return "tcp";
    case PQ::kUdp:
      return "udp";
    case PQ::kSctp:
      return "sctp";
    case PQ::kIcmp:
      return "icmp";
    case PQ::kIcmp6:
      return "icmp6";
    case PQ::kIgmp:
      return "igmp";
    case PQ::kEsp:
      return "esp";
    case PQ::kAh:
      return "ah";
  }
  return "";
}

bool pq_of(Kw k, PQ* out) {
  switch (k) {
    case Kw::kIp:
      *out = PQ::kIp;
      return true;
    case Kw::kIp6:
      *out = PQ::kIp6;
      return true;
    case Kw::kArp:
      *out = PQ::kArp;
      return true;
    case Kw::kRarp:
      *out = PQ::kRarp;
      return true;
    case Kw::kTcp:
      *out = PQ::kTcp;
      return true;
    case Kw::kUdp:
      *out = PQ::kUdp;
      return true;
    case Kw::kSctp:
      *out = PQ::kSctp;
      return true;
    case Kw::kIcmp:
      *out = PQ::kIcmp;
      return true;
    case Kw::kIcmp6:
      *out = PQ::kIcmp6;
      return true;
    case Kw::kIgmp:
      *out = PQ::kIgmp;
      return true;
    case Kw::kEsp:
      *out = PQ::kEsp;
      return true;
    case Kw::kAh:
      *out = PQ::kAh;
      return true;
    default:
      return false;
  }
}

// Port names are resolved through the system's services database, as libpcap's
// pcap_nametoport() does: a name listed for only one of tcp/udp then means that protocol only
// (`port http` is `tcp port 80`, `udp port http` is an error). "dhcp" is tm's own alias of
// bootps (not in Debian's netbase; libpcap rejects it).
int service_port(const std::string& name, const char* proto) {
  servent se, *res = nullptr;
  char buf[4096];
  if (getservbyname_r(name.c_str(), proto, &se, buf, sizeof buf, &res) != 0 || !res) return -1;
  return ntohs(static_cast<uint16_t>(res->s_port));
}

// IP protocol names and aliases as in /etc/protocols (case-sensitive, like getprotobyname).
struct ProtoName {
  const char* name;
  uint8_t num;
};
constexpr ProtoName kProtoNames[] = {
    {"ip", 0},
    {"IP", 0},
    {"hopopt", 0},
    {"HOPOPT", 0},
    {"icmp", 1},
    {"ICMP", 1},
    {"igmp", 2},
    {"IGMP", 2},
    {"ggp", 3},
    {"GGP", 3},
    {"ipencap", 4},
    {"IP-ENCAP", 4},
    {"st", 5},
    {"ST", 5},
    {"tcp", 6},
    {"TCP", 6},
    {"egp", 8},
    {"EGP", 8},
    {"igp", 9},
    {"IGP", 9},
    {"pup", 12},
    {"PUP", 12},
    {"udp", 17},
    {"UDP", 17},
    {"hmp", 20},
    {"HMP", 20},
    {"xns-idp", 22},
    {"XNS-IDP", 22},
    {"rdp", 27},
    {"RDP", 27},
    {"iso-tp4", 29},
    {"ISO-TP4", 29},
    {"dccp", 33},
    {"DCCP", 33},
    {"xtp", 36},
    {"XTP", 36},
    {"ddp", 37},
    {"DDP", 37},
    {"idpr-cmtp", 38},
    {"IDPR-CMTP", 38},
    {"ipv6", 41},
    {"IPv6", 41},
    {"ipv6-route", 43},
    {"IPv6-Route", 43},
    {"ipv6-frag", 44},
    {"IPv6-Frag", 44},
    {"idrp", 45},
    {"IDRP", 45},
    {"rsvp", 46},
    {"RSVP", 46},
    {"gre", 47},
    {"GRE", 47},
    {"esp", 50},
    {"IPSEC-ESP", 50},
    {"ah", 51},
    {"IPSEC-AH", 51},
    {"skip", 57},
    {"SKIP", 57},
    {"ipv6-icmp", 58},
    {"IPv6-ICMP", 58},
    {"ipv6-nonxt", 59},
    {"IPv6-NoNxt", 59},
    {"ipv6-opts", 60},
    {"IPv6-Opts", 60},
    {"rspf", 73},
    {"RSPF", 73},
    {"CPHB", 73},
    {"vmtp", 81},
    {"VMTP", 81},
    {"eigrp", 88},
    {"EIGRP", 88},
    {"ospf", 89},
    {"OSPFIGP", 89},
    {"ax.25", 93},
    {"AX.25", 93},
    {"ipip", 94},
    {"IPIP", 94},
    {"etherip", 97},
    {"ETHERIP", 97},
    {"encap", 98},
    {"ENCAP", 98},
    {"pim", 103},
    {"PIM", 103},
    {"ipcomp", 108},
    {"IPCOMP", 108},
    {"vrrp", 112},
    {"VRRP", 112},
    {"l2tp", 115},
    {"L2TP", 115},
    {"isis", 124},
    {"ISIS", 124},
    {"sctp", 132},
    {"SCTP", 132},
    {"fc", 133},
    {"FC", 133},
    {"mobility-header", 135},
    {"Mobility-Header", 135},
    {"udplite", 136},
    {"UDPLite", 136},
    {"mpls-in-ip", 137},
    {"MPLS-in-IP", 137},
    {"manet", 138},
    {"hip", 139},
    {"HIP", 139},
    {"shim6", 140},
    {"Shim6", 140},
    {"wesp", 141},
    {"WESP", 141},
    {"rohc", 142},
    {"ROHC", 142},
    {"ethernet", 143},
    {"Ethernet", 143},
};

// Thrown inside the parser; parse_expr() turns it into the ParseResult.
struct Abort {
  ParseResult::Kind kind;
  std::string msg;  // kError: the message; kBpfOnly: the unplanned keyword
  size_t pos;
};

[[noreturn]] void fail(size_t pos, std::string msg) {
  throw Abort{ParseResult::Kind::kError, std::move(msg), pos};
}
[[noreturn]] void bpf_only(std::string what, size_t pos) {
  throw Abort{ParseResult::Kind::kBpfOnly, std::move(what), pos};
}

std::string describe(const Token& t) {
  if (t.kind == Tok::kEnd) return "end of filter";
  std::string s = "'";  // built step by step: GCC 12 warns (falsely, -Wrestrict) on "'" + std::string
  if (t.escaped) s += '\\';
  s += t.text;
  s += '\'';
  return s;
}

// libpcap's __pcap_atoin(): 2 to 4 decimal parts of at most 255; *bits = 8 per part.
bool atoin(const std::string& s, uint32_t* v, int* bits) {
  uint32_t a = 0;
  int len = 0;
  size_t i = 0;
  for (;;) {
    uint32_t n = 0;
    size_t digits = 0;
    while (i < s.size() && s[i] != '.') {
      if (s[i] < '0' || s[i] > '9') return false;
      n = n * 10 + uint32_t(s[i] - '0');
      if (n > 255) return false;
      ++i;
      ++digits;
    }
    if (digits == 0) return false;
    a = (a << 8) | n;
    len += 8;
    if (i == s.size()) break;
    ++i;
  }
  *v = a;
  *bits = len;
  return true;
}

IpAddr v4addr(uint32_t v) {
  uint8_t b[4] = {uint8_t(v >> 24), uint8_t(v >> 16), uint8_t(v >> 8), uint8_t(v)};
  return IpAddr::v4(b);
}

Expr negate(Expr e) {
  Expr n;
  n.op = Expr::Op::kNot;
  n.kids.push_back(std::move(e));
  return n;
}

// a and b, flattening nested and's (or or's): the tree has one node per run of equal ops.
Expr combine(Expr::Op op, Expr l, Expr r) {
  Expr e;
  e.op = op;
  for (Expr* x : {&l, &r}) {
    if (x->op == op) {
      for (Expr& k : x->kids) e.kids.push_back(std::move(k));
    } else {
      e.kids.push_back(std::move(*x));
    }
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
    case PQ::kRarp:  // tm does not tell RARP from ARP
      p.kind = Kind::kArp;
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

class Parser {
 public:
  explicit Parser(std::vector<Token> toks) : t_(std::move(toks)) {}

  Expr parse() {
    auto [e, q] = expr_level(Qual{}, 0);
    const Token& t = peek();
    if (t.kind == Tok::kRParen) fail(t.pos, "unbalanced ')': no '(' to close");
    if (t.kind != Tok::kEnd) fail(t.pos, "unexpected " + describe(t));
    return std::move(e);
  }

 private:
  std::vector<Token> t_;  // ends with kEnd
  size_t i_ = 0;

  const Token& peek(size_t k = 0) const { return t_[std::min(i_ + k, t_.size() - 1)]; }
  const Token& take() {
    const Token& t = t_[i_];
    if (i_ + 1 < t_.size()) ++i_;
    return t;
  }
  static bool is_kw(const Token& t, Kw k) { return t.kind == Tok::kKeyword && t.kw == k; }
  static bool is_bool_op(const Token& t) { return t.kind == Tok::kAnd || t.kind == Tok::kOr; }
  static Expr::Op op_of(const Token& t) { return t.kind == Tok::kAnd ? Expr::Op::kAnd : Expr::Op::kOr; }

  // An id (address, number, name) starts here, possibly behind `not`s and `(`s. This is
  // how yacc picks `expr and id` over `expr and term`: by the token after the operator.
  bool starts_id() const {
    size_t k = 0;
    while (peek(k).kind == Tok::kNot || peek(k).kind == Tok::kLParen) ++k;
    switch (peek(k).kind) {
      case Tok::kNum:
      case Tok::kHid:
      case Tok::kHid6:
      case Tok::kId:
      case Tok::kEid:
      case Tok::kAid:
        return true;
      default:
        return false;
    }
  }

  std::pair<Expr, Qual> expr_level(Qual qb, int depth) {
    auto [e, q] = term(qb, depth);
    while (is_bool_op(peek())) {
      const Token& op = take();
      if (peek().kind == Tok::kEnd) fail(peek().pos, "expected an expression after '" + op.text + "'");
      auto [r, q2] = starts_id() ? id(q, depth) : term(q, depth);
      e = combine(op_of(op), std::move(e), std::move(r));
      q = q2;
    }
    return {std::move(e), q};
  }

  std::pair<Expr, Qual> term(Qual qb, int depth) {
    if (++depth > kMaxDepth) fail(peek().pos, "filter nested too deeply");
    if (starts_id()) return id(qb, depth);
    const Token& t = peek();
    switch (t.kind) {
      case Tok::kNot: {
        take();
        if (peek().kind == Tok::kEnd) fail(peek().pos, "expected an expression after '" + t.text + "'");
        auto [e, q] = term(qb, depth);
        return {negate(std::move(e)), q};
      }
      case Tok::kLParen: {
        size_t open = t.pos;
        take();
        if (peek().kind == Tok::kRParen) fail(peek().pos, "empty parentheses");
        auto [e, q] = expr_level(qb, depth);
        close_paren(open);
        return {std::move(e), qb};  // libpcap: "(expr)" passes on what preceded the '('
      }
      case Tok::kKeyword:
        return keyword_term(depth);
      case Tok::kEnd:
        fail(t.pos, "unexpected end of filter");
      case Tok::kRParen:
        fail(t.pos, "unexpected ')'");
      default:
        fail(t.pos, "unexpected " + describe(t));
    }
  }

  void close_paren(size_t open) {
    const Token& t = peek();
    if (t.kind == Tok::kRParen) {
      take();
      return;
    }
    if (t.kind == Tok::kEnd) fail(open, "unbalanced '(': no matching ')'");
    fail(t.pos, "expected ')' instead of " + describe(t));
  }

  std::pair<Expr, Qual> keyword_term(int depth) {
    const Token& t = peek();
    PQ pq;
    if (pq_of(t.kw, &pq)) {
      take();
      const Token& n = peek();
      if (is_kw(n, Kw::kSrc) || is_kw(n, Kw::kDst) || is_kw(n, Kw::kHost) || is_kw(n, Kw::kNet) ||
          is_kw(n, Kw::kPort) || is_kw(n, Kw::kPortRange) || is_kw(n, Kw::kProto))
        return head(pq, t.pos, depth);
      return {abbrev(pq), Qual{}};
    }
    switch (t.kw) {
      case Kw::kSrc:
      case Kw::kDst:
      case Kw::kHost:
      case Kw::kNet:
      case Kw::kPort:
      case Kw::kPortRange:
      case Kw::kProto:
        return head(PQ::kDefault, t.pos, depth);
      case Kw::kVlan:
        return vlan();
      case Kw::kInner:
      case Kw::kOuter: {
        take();
        const Predicate::Layer layer =
            t.kw == Kw::kInner ? Predicate::Layer::kInner : Predicate::Layer::kOuter;
        if (peek().kind == Tok::kEnd)
          fail(peek().pos, "expected a host, net, port or protocol after '" + t.text + "'");
        auto [e, q] = term(Qual{}, depth);
        apply_layer(e, layer);
        if (q.valid) q.layer = layer;
        return {std::move(e), q};
      }
      case Kw::kTunnel: {
        take();
        Predicate p;
        p.kind = Kind::kTunnel;
        if (peek().kind == Tok::kId && !peek().escaped && tunnel_of(peek().text, &p.tunnel)) {
          take();
          tunnel_id(p);
        }
        return {Expr::leaf(p), Qual{}};
      }
      case Kw::kSpi: {
        take();
        if (peek().kind != Tok::kNum) fail(peek().pos, "expected an SPI number after 'spi'");
        Predicate p;
        p.kind = Kind::kSpi;
        p.spi = take().num;
        return {Expr::leaf(p), Qual{}};
      }
      case Kw::kUnplanned:
        bpf_only(t.text, t.pos);
      default:
        fail(t.pos, "unexpected " + describe(t));
    }
  }

  // [pname] [src|dst|src or dst|src and dst] [host|net|port|portrange] id, or [pname] proto id.
  std::pair<Expr, Qual> head(PQ pq, size_t first_pos, int depth) {
    Qual q;
    q.valid = true;
    q.proto = pq;
    bool has_dir = false;
    if (is_kw(peek(), Kw::kSrc) || is_kw(peek(), Kw::kDst)) {
      has_dir = true;
      const Token& d = take();
      bool src = d.kw == Kw::kSrc;
      q.dir = src ? Dir::kSrc : Dir::kDst;
      if (is_bool_op(peek())) {
        const Token& op = take();
        const Token& other = peek();
        if (!is_kw(other, src ? Kw::kDst : Kw::kSrc))
          fail(other.pos, "expected '" + std::string(src ? "dst" : "src") + "' after '" + d.text + " " +
                              op.text + "' instead of " + describe(other));
        take();
        q.dir = op.kind == Tok::kAnd ? Dir::kSrcAndDst : Dir::kAny;
      }
    }
    const Token& a = peek();
    if (is_kw(a, Kw::kHost) || is_kw(a, Kw::kNet) || is_kw(a, Kw::kPort) || is_kw(a, Kw::kPortRange)) {
      q.addr = a.kw == Kw::kHost   ? AQ::kHost
               : a.kw == Kw::kNet  ? AQ::kNet
               : a.kw == Kw::kPort ? AQ::kPort
                                   : AQ::kPortRange;
      take();
    } else if (is_kw(a, Kw::kProto)) {
      if (has_dir) fail(a.pos, "'proto' cannot take 'src' or 'dst'");
      q.addr = AQ::kProto;
      take();
    }
    check_qualifiers(q, first_pos);
    return id(q, depth);
  }

  // Combinations libpcap rejects whatever value follows (gencode.c's messages).
  static void check_qualifiers(const Qual& q, size_t pos) {
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

  // An optional id after a tunnel name: VNI, TEID, GRE key (`vxlan 123`).
  void tunnel_id(Predicate& p) {
    if (peek().kind == Tok::kNum) p.tunnel_id = take().num;
  }

  // vlan [num], where num may sit in parentheses.
  std::pair<Expr, Qual> vlan() {
    take();
    Predicate p;
    p.kind = Kind::kVlan;
    size_t k = 0;
    while (peek(k).kind == Tok::kLParen) ++k;
    if (peek(k).kind == Tok::kNum) {
      bool closed = true;
      for (size_t j = 1; j <= k; ++j) closed = closed && peek(k + j).kind == Tok::kRParen;
      if (closed) {
        const Token& n = peek(k);
        if (n.num > 4095) fail(n.pos, "VLAN tag " + std::to_string(n.num) + " greater than maximum 4095");
        p.vlan = int32_t(n.num);
        for (size_t j = 0; j < 2 * k + 1; ++j) take();
      }
    }
    return {Expr::leaf(p), Qual{}};
  }

  // id: not id | '(' id {and|or id} ')' | value. Returns the qualifiers for the next id.
  std::pair<Expr, Qual> id(Qual q, int depth) {
    if (++depth > kMaxDepth) fail(peek().pos, "filter nested too deeply");
    const Token& t = peek();
    if (t.kind == Tok::kNot) {
      take();
      auto [e, q2] = id(q, depth);
      return {negate(std::move(e)), q2};
    }
    if (t.kind == Tok::kLParen) {
      size_t open = t.pos;
      take();
      auto [e, q2] = id(q, depth);
      while (is_bool_op(peek())) {
        const Token& op = take();
        auto [r, q3] = id(q2, depth);
        e = combine(op_of(op), std::move(e), std::move(r));
        q2 = q3;
      }
      close_paren(open);
      return {std::move(e), q2};
    }
    auto r = value(q);
    apply_layer(r.first, q.layer);
    return r;
  }

  static const char* expected(const Qual& q) {
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

  static Qual host_qual() {
    Qual q;
    q.valid = true;
    q.addr = AQ::kHost;
    return q;
  }

  std::pair<Expr, Qual> value(const Qual& q) {
    const Token& t = peek();
    switch (t.kind) {
      case Tok::kNum:
        take();
        return {num_value(q, t), q};
      case Tok::kHid:
        take();
        return {hid_value(q.valid ? q : host_qual(), t), q};
      case Tok::kHid6:
        take();
        return {hid6_value(q.valid ? q : host_qual(), t), q};
      case Tok::kId:
        take();
        return id_value(q, t);
      case Tok::kKeyword:
        if (q.valid && q.addr == AQ::kProto) {
          // tm extension: `ip proto tcp` without libpcap's backslash.
          static constexpr std::pair<Kw, uint8_t> kNamed[] = {
              {Kw::kTcp, packet::kProtoTcp},     {Kw::kUdp, packet::kProtoUdp},
              {Kw::kSctp, packet::kProtoSctp},   {Kw::kIcmp, packet::kProtoIcmp},
              {Kw::kIcmp6, packet::kProtoIcmp6}, {Kw::kIgmp, packet::kProtoIgmp},
              {Kw::kEsp, packet::kProtoEsp},     {Kw::kAh, packet::kProtoAh}};
          for (auto [kw, num] : kNamed) {
            if (t.kw == kw) {
              take();
              return {proto_value(q, num), q};
            }
          }
        }
        if (t.kw == Kw::kUnplanned) bpf_only(t.text, t.pos);
        fail(t.pos, std::string("expected ") + expected(q) + " instead of " + describe(t));
      case Tok::kEid:
        fail(t.pos, "Ethernet address used in non-ether expression");
      case Tok::kAid:
        fail(t.pos, "ARCnet address used in non-link expression");
      case Tok::kEnd:
        fail(t.pos, std::string("expected ") + expected(q) + " at end of filter");
      default:
        fail(t.pos, std::string("expected ") + expected(q) + " instead of " + describe(t));
    }
  }

  // A v4 address/network already shifted into place, with its mask (gencode.c gen_ncode()).
  static Expr v4_expr(uint32_t v, uint32_t mask, const Qual& q, size_t pos) {
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
  static Expr with_family(Predicate p, const Qual& q, bool v6, size_t pos) {
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
        // `arp host A` is exactly `arp and host A`: an ARP frame has no IP layer.
        p.family = 0;
        Predicate arp;
        arp.kind = Kind::kArp;
        return combine(Expr::Op::kAnd, Expr::leaf(arp), Expr::leaf(p));
      }
      default:
        fail(pos, std::string("'") + pq_name(q.proto) + "' modifier applied to host");
    }
  }

  static uint8_t l4_of(PQ pq) {
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

  static Expr port_value(const Qual& q, uint32_t lo, uint32_t hi, uint8_t l4) {
    Predicate p;
    p.kind = q.addr == AQ::kPort ? Kind::kPort : Kind::kPortRange;
    p.dir = q.dir;
    if (lo > hi) std::swap(lo, hi);
    p.port_lo = uint16_t(lo);
    p.port_hi = uint16_t(hi);
    p.l4 = l4;
    return Expr::leaf(p);
  }

  static Expr proto_value(const Qual& q, uint8_t num) {
    return Expr::leaf(proto_pred(num, q.proto == PQ::kIp ? 4 : q.proto == PQ::kIp6 ? 6 : 0));
  }

  static Expr num_value(const Qual& q, const Token& t) {
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

  static void reject_addr_for(const Qual& q, size_t pos, const char* what) {
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

  Expr hid_value(const Qual& q, const Token& t) {
    uint32_t v;
    int bits;
    if (!atoin(t.text, &v, &bits)) fail(t.pos, "invalid IPv4 address '" + t.text + "'");
    const uint32_t full = v << (32 - bits);  // "10.0.0" -> 10.0.0.0 (bits >= 16)
    if (peek().kind == Tok::kSlash) {        // net A/len
      take();
      reject_addr_for(q, t.pos, "IP address and prefix length");
      if (peek().kind != Tok::kNum) fail(peek().pos, "expected a prefix length after '/'");
      const Token& n = take();
      if (q.addr != AQ::kNet)
        fail(t.pos, "mask syntax for networks only: write 'net " + t.text + "/" + n.text + "'");
      if (n.num > 32) fail(n.pos, "mask length must be <= 32");
      uint32_t m = n.num == 0 ? 0 : 0xffffffffu << (32 - n.num);
      if (full & ~m) fail(t.pos, "non-network bits set in \"" + t.text + "/" + n.text + "\"");
      return v4_expr(full, m, q, t.pos);
    }
    if (is_kw(peek(), Kw::kMask)) {  // net A mask M
      take();
      reject_addr_for(q, t.pos, "IP address and netmask");
      if (peek().kind != Tok::kHid) fail(peek().pos, "expected a netmask like 255.255.0.0 after 'mask'");
      const Token& mt = take();
      if (q.addr != AQ::kNet)
        fail(t.pos, "mask syntax for networks only: write 'net " + t.text + " mask ...'");
      uint32_t m;
      int mbits;
      if (!atoin(mt.text, &m, &mbits)) fail(mt.pos, "invalid netmask '" + mt.text + "'");
      m <<= 32 - mbits;
      if (full & ~m) fail(t.pos, "non-network bits set in \"" + t.text + " mask " + mt.text + "\"");
      if ((~m & (~m + 1)) != 0) bpf_only("mask", mt.pos);  // non-contiguous: valid, but not a prefix
      return v4_expr(full, m, q, t.pos);
    }
    reject_addr_for(q, t.pos, "IP address");
    // A short form ("host 10.0.0", "net 10.0.0") covers the missing bytes, as in libpcap.
    return v4_expr(full, 0xffffffffu << (32 - bits), q, t.pos);
  }

  Expr hid6_value(const Qual& q, const Token& t) {
    IpAddr a;
    if (inet_pton(AF_INET6, t.text.c_str(), a.b.data()) != 1) fail(t.pos, "bogus IPv6 address " + t.text);
    unsigned len = 128;
    std::string shown = t.text;
    if (peek().kind == Tok::kSlash) {
      take();
      reject_addr_for(q, t.pos, "IP address and prefix length");
      if (peek().kind != Tok::kNum) fail(peek().pos, "expected a prefix length after '/'");
      const Token& n = take();
      if (n.num > 128) fail(n.pos, "mask length must be <= 128");
      len = n.num;
      shown += "/" + n.text;
    } else {
      reject_addr_for(q, t.pos, "IP address");
    }
    IpAddr masked = a;
    for (unsigned bit = len; bit < 128; ++bit) masked.b[bit / 8] &= uint8_t(~(0x80u >> (bit % 8)));
    if (masked != a) fail(t.pos, "non-network bits set in \"" + shown + "\"");
    if (q.addr != AQ::kNet && len != 128)
      fail(t.pos, "mask syntax for networks only: write 'net " + shown + "'");
    Predicate p;
    p.dir = q.dir;
    p.addr = a;
    if (q.addr == AQ::kNet) {
      p.kind = Kind::kNet;
      p.prefix_bits = uint8_t(len);
    } else {
      p.kind = Kind::kHost;
    }
    return with_family(p, q, true, t.pos);
  }

  // (port, real protocol: 0 = tcp, udp or sctp; 6; 17), after libpcap's pcap_nametoport().
  static bool lookup_port(const std::string& s, uint32_t* port, uint8_t* real) {
    if (!s.empty() && s.size() <= 9 &&
        std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; })) {
      *port = uint32_t(std::stoul(s));
      *real = 0;
      return true;
    }
    if (s == "dhcp") {
      *port = 67;
      *real = packet::kProtoUdp;
      return true;
    }
    int tcp = service_port(s, "tcp"), udp = service_port(s, "udp");
    if (tcp >= 0) {  // (as libpcap: the tcp port wins when the two differ)
      *port = uint32_t(tcp);
      *real = udp == tcp ? 0 : packet::kProtoTcp;
      return true;
    }
    if (udp >= 0) {
      *port = uint32_t(udp);
      *real = packet::kProtoUdp;
      return true;
    }
    return false;
  }

  // gencode.c: a name that is tcp-only (udp-only) cannot be used with `udp` (`tcp`).
  static uint8_t restrict_proto(uint8_t real, PQ pq, size_t pos, const std::string& what) {
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

  std::pair<Expr, Qual> id_value(const Qual& q, const Token& t) {
    const std::string& s = t.text;
    if (q.valid && q.addr == AQ::kPort) {
      uint32_t port;
      uint8_t real;
      if (!lookup_port(s, &port, &real)) fail(t.pos, "unknown port '" + s + "'");
      if (port > 65535) fail(t.pos, "illegal port number " + std::to_string(port) + " > 65535");
      real = restrict_proto(real, q.proto, t.pos, "port '" + s + "'");
      return {port_value(q, port, port, real), q};
    }
    if (q.valid && q.addr == AQ::kPortRange) {
      size_t dash = s.find('-');
      uint32_t lo, hi;
      uint8_t r1, r2;
      if (dash == std::string::npos || !lookup_port(s.substr(0, dash), &lo, &r1) ||
          !lookup_port(s.substr(dash + 1), &hi, &r2))
        fail(t.pos, "unknown port in range '" + s + "'");
      for (uint32_t p : {lo, hi})
        if (p > 65535) fail(t.pos, "illegal port number " + std::to_string(p) + " > 65535");
      uint8_t real = restrict_proto(r1 == r2 ? r1 : 0, q.proto, t.pos, "port in range '" + s + "'");
      return {port_value(q, lo, hi, real), q};
    }
    if (q.valid && q.addr == AQ::kProto) {
      for (const auto& p : kProtoNames)
        if (s == p.name) return {proto_value(q, p.num), q};
      fail(t.pos, "unknown ip proto '" + s + "'");
    }
    // tm extension: `gre` as a protocol keyword (libpcap has none; it means ip or ip6 proto 47).
    // `tunnel gre` also finds GRE-in-UDP.
    if (!t.escaped && s == "gre") return {Expr::leaf(proto_pred(packet::kProtoGre, 0)), Qual{}};
    // tm extension: tunnel selectors, `vxlan [VNI]`, `geneve [VNI]`, `gtp [TEID]`, `teredo`, ...
    uint8_t kind;
    if (!t.escaped && !q.valid && tunnel_of(s, &kind)) {
      Predicate tp;
      tp.kind = Kind::kTunnel;
      tp.tunnel = kind;
      tunnel_id(tp);
      return {Expr::leaf(tp), Qual{}};
    }
    fail(t.pos, "'" + s + "' is not an address or a keyword: tm takes addresses, not host names");
  }
};

}  // namespace

ParseResult parse_expr(std::string_view text) {
  ParseResult r;
  try {
    lex::LexResult lx = lex::tokenize(text);
    if (!lx.ok) {
      r.kind = ParseResult::Kind::kError;
      r.error = lx.error;
      r.error_pos = lx.error_pos;
      return r;
    }
    // Constructs tm does not plan: the caller hands the whole text to libpcap. Packet-data
    // expressions (tcp[13] & 2 != 0, len > 100) are recognized by their operators.
    for (size_t k = 0; k < lx.toks.size(); ++k) {
      const lex::Token& t = lx.toks[k];
      if (t.kind == Tok::kKeyword && t.kw == Kw::kUnplanned) bpf_only(t.text, t.pos);
      if (t.kind == Tok::kOp && t.text != ":") {
        if (t.text == "[" && k > 0 && lx.toks[k - 1].kind == Tok::kKeyword)
          bpf_only(lx.toks[k - 1].text + "[", t.pos);
        bpf_only(t.text, t.pos);
      }
    }
    if (lx.toks.size() == 1) {  // empty filter
      r.kind = ParseResult::Kind::kIndexed;
      r.expr = Expr::truth();
      return r;
    }
    Parser p(std::move(lx.toks));
    r.expr = p.parse();
    r.kind = ParseResult::Kind::kIndexed;
  } catch (const Abort& a) {
    r = ParseResult{};
    r.kind = a.kind;
    if (a.kind == ParseResult::Kind::kBpfOnly) {
      r.unplanned = a.msg;
    } else {
      r.error = a.msg;
      r.error_pos = a.pos;
    }
  } catch (const std::exception& e) {
    r = ParseResult{};
    r.kind = ParseResult::Kind::kError;
    r.error = std::string("internal error: ") + e.what();
  }
  return r;
}

std::string format_error(std::string_view text, const ParseResult& r) {
  if (r.kind != ParseResult::Kind::kError) return {};
  size_t pos = std::min(r.error_pos, text.size());
  std::string line(text);
  for (char& c : line)
    if (c == '\t' || c == '\n' || c == '\r') c = ' ';
  // The caret goes under the character, counting UTF-8 sequences as one column.
  size_t col = 0;
  for (size_t k = 0; k < pos; ++k)
    if ((static_cast<unsigned char>(text[k]) & 0xc0) != 0x80) ++col;
  return "filter: " + r.error + " at " + std::to_string(pos) + "\n  " + line + "\n  " +
         std::string(col, ' ') + "^";
}

}  // namespace tmach::query
