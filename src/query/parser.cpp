// tcpdump filter syntax -> Expr: the recursive-descent grammar, after libpcap's grammar.y.
// What each construct means is built by parser_qualifiers.cpp (after gencode.c); the names
// a filter may use are looked up by parser_names.cpp; both declared in parser_internal.h.
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

#include <algorithm>
#include <cctype>
#include <cstring>
#include <exception>
#include <utility>
#include <vector>

#include "query/lexer.h"
#include "query/parser_internal.h"

namespace tmach::query {
namespace {

using namespace detail;
using lex::Kw;
using lex::Tok;
using lex::Token;
using packet::IpAddr;
using Kind = Predicate::Kind;

constexpr int kMaxDepth = 200;

std::string describe(const Token& t) {
  if (t.kind == Tok::kEnd) return "end of filter";
  std::string s = "'";  // built step by step: GCC 12 warns (falsely, -Wrestrict) on "'" + std::string
  if (t.escaped) s += '\\';
  s += t.text;
  s += '\'';
  return s;
}

class Parser {
 public:
  // `toks` (ending with kEnd) outlives the parser: parse_expr keeps it for split_for_libpcap.
  explicit Parser(const std::vector<Token>& toks) : t_(toks) {}

  Expr parse() {
    auto [e, q] = expr_level(Qual{}, 0);
    const Token& t = peek();
    if (t.kind == Tok::kRParen) fail(t.pos, "unbalanced ')': no '(' to close");
    if (t.kind != Tok::kEnd) fail(t.pos, "unexpected " + describe(t));
    return std::move(e);
  }

 private:
  const std::vector<Token>& t_;  // ends with kEnd
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

  // An optional id after a tunnel name: VNI, TEID, GRE key (`vxlan 123`).
  void tunnel_id(Predicate& p) {
    if (peek().kind != Tok::kNum) return;
    const Token& n = peek();
    const std::string name = packet::tunnel_name(p.tunnel);
    switch (p.tunnel) {
      case packet::kTunnelVxlan:
      case packet::kTunnelGeneve:  // a 24-bit VNI
        if (n.num > 0xffffff)
          fail(n.pos, name + " VNI " + std::to_string(n.num) + " greater than maximum 16777215");
        break;
      case packet::kTunnelGre:  // key or PPTP call id; TEID; tunnel << 16 | session or session
      case packet::kTunnelGtp:
      case packet::kTunnelL2tp:
        break;
      default:
        fail(n.pos, "'" + name + "' takes no identifier (only vxlan, geneve, gtp, gre and l2tp have one)");
    }
    p.tunnel_id = take().num;
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
      uint8_t num;
      if (ip_proto_of(s, &num)) return {proto_value(q, num), q};
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

// The byte ranges of a filter's top-level conjuncts (`A and B and C`), when it is one and each
// conjunct means alone what it means in the whole: none begins with a bare id, which would take
// the qualifiers of the term before it (`host A and B`), and no term moves where libpcap reads
// the terms after it (`vlan`, `mpls`, `pppoes`, `geneve`, `batadv`, `lane`: `vlan and tcp[13] =
// 2` reads the TCP header behind the tag). Empty otherwise (one term, a top-level `or`, ...).
// A named constant (`tcp-syn`, `icmp-echo`, `icmptype`, `tcpflags`, ...) is a number to libpcap's
// scanner: first in a conjunct, it takes the term before it's qualifiers (`port 80 and tcp-syn`
// is `port 80 and port 2`), as a bare number does.
bool named_constant(const std::string& w) {
  return w.starts_with("tcp-") || w.starts_with("icmp-") || w.starts_with("icmp6-") || w == "icmptype" ||
         w == "icmpcode" || w == "icmp6type" || w == "icmp6code" || w == "tcpflags";
}

std::vector<std::pair<size_t, size_t>> conjuncts(const std::vector<lex::Token>& toks) {
  for (const lex::Token& t : toks)
    if (t.kind == Tok::kKeyword || t.kind == Tok::kId)
      for (const char* shift : {"vlan", "mpls", "pppoes", "geneve", "batadv", "lane"})
        if (t.text == shift) return {};
  std::vector<std::pair<size_t, size_t>> out;
  int depth = 0;
  size_t from = 0;
  bool at_start = true;  // before the first primitive of a conjunct (past `not` and `(`)
  for (const lex::Token& t : toks) {
    if (at_start && t.kind != Tok::kNot && t.kind != Tok::kLParen) {
      if (t.kind != Tok::kKeyword || (t.kw == Kw::kUnplanned && named_constant(t.text))) return {};
      at_start = false;
    }
    if (t.kind == Tok::kLParen) ++depth;
    if (t.kind == Tok::kRParen) --depth;
    if (depth != 0) continue;
    if (t.kind == Tok::kOr) return {};
    if (t.kind == Tok::kAnd || t.kind == Tok::kEnd) {
      out.emplace_back(from, t.pos);
      from = t.pos + t.text.size();
      at_start = true;
    }
  }
  if (out.size() < 2) return {};
  return out;
}

// A filter libpcap must read (kBpfOnly) split where it can be: the conjuncts tm plans and the
// rest, as libpcap text.
void split_for_libpcap(std::string_view text, const std::vector<lex::Token>& toks, ParseResult& r) {
  r.planned = Expr::truth();
  r.libpcap = std::string(text);
  std::vector<Expr> planned;
  std::string rest;
  for (auto [b, e] : conjuncts(toks)) {
    std::string_view part = text.substr(b, e - b);
    while (!part.empty() && std::isspace(static_cast<unsigned char>(part.front()))) part.remove_prefix(1);
    while (!part.empty() && std::isspace(static_cast<unsigned char>(part.back()))) part.remove_suffix(1);
    ParseResult pr = parse_expr(part);
    if (pr.kind == ParseResult::Kind::kError) return;  // (read otherwise alone: the whole to libpcap)
    if (pr.kind == ParseResult::Kind::kIndexed)
      planned.push_back(std::move(pr.expr));
    else
      rest += (rest.empty() ? "(" : " and (") + std::string(part) + ")";
  }
  if (planned.empty()) return;
  if (planned.size() == 1) {
    r.planned = std::move(planned[0]);
  } else {
    r.planned.op = Expr::Op::kAnd;
    r.planned.kids = std::move(planned);
  }
  r.libpcap = std::move(rest);
}

}  // namespace

ParseResult parse_expr(std::string_view text) {
  ParseResult r;
  lex::LexResult lx;  // (its tokens kept for split_for_libpcap)
  try {
    lx = lex::tokenize(text);
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
    Parser p(lx.toks);
    r.expr = p.parse();
    r.kind = ParseResult::Kind::kIndexed;
  } catch (const Abort& a) {
    r = ParseResult{};
    r.kind = a.kind;
    if (a.kind == ParseResult::Kind::kBpfOnly) {
      r.unplanned = a.msg;
      split_for_libpcap(text, lx.toks, r);
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
