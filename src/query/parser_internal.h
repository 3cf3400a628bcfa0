// Internal to the filter parser (src/query/parser*.cpp): the qualifiers an id is read with,
// the names a filter may use (parser_names.cpp) and the predicates a qualifier and a value
// give (parser_qualifiers.cpp). The grammar that drives them is parser.cpp.
//
// Conventions shared by every function here:
// - A filter tm refuses ends the parse by a throw: fail(pos, message) for a syntax error
//   (ParseResult::Kind::kError), bpf_only(what, pos) for valid tcpdump syntax tm does not
//   plan (kBpfOnly, the caller hands the text to libpcap). `pos` is the byte offset of the
//   offending token in the filter text. parse_expr() alone catches Abort.
// - Names and messages follow libpcap (grammar.y, gencode.c, nametoaddr.c); where tm differs
//   (an extension, or a construct it does not plan) the comment at the definition says so.
#pragma once

#include <cstdint>
#include <string>
#include <utility>

#include "query/expr.h"
#include "query/lexer.h"
#include "query/parser.h"

namespace tmach::query::detail {

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

// Thrown inside the parser; parse_expr() turns it into the ParseResult.
struct Abort {
  ParseResult::Kind kind;
  std::string msg;  // kError: the message; kBpfOnly: the unplanned keyword
  size_t pos;
};

[[noreturn]] inline void fail(size_t pos, std::string msg) {
  throw Abort{ParseResult::Kind::kError, std::move(msg), pos};
}
[[noreturn]] inline void bpf_only(std::string what, size_t pos) {
  throw Abort{ParseResult::Kind::kBpfOnly, std::move(what), pos};
}

// --- parser_names.cpp: names and literals. Each returns false (or "") for a name it does
// not know and never throws.

// Tunnel names of `tunnel NAME` and of the bare selectors (`vxlan`, `gtp`, ...).
bool tunnel_of(const std::string& s, uint8_t* kind);
// The keyword of a protocol qualifier ("" for kDefault), for messages.
const char* pq_name(PQ p);
// The protocol qualifier a keyword is, if it is one.
bool pq_of(lex::Kw k, PQ* out);
// An IP protocol name or alias as in /etc/protocols (case-sensitive, like getprotobyname).
bool ip_proto_of(const std::string& s, uint8_t* num);
// libpcap's __pcap_atoin(): 2 to 4 decimal parts of at most 255; *bits = 8 per part.
bool atoin(const std::string& s, uint32_t* v, int* bits);
// A port number (up to 9 digits, not range-checked) or name: the port, and the protocol the
// name is limited to (0 = tcp, udp or sctp; 6; 17), after libpcap's pcap_nametoport().
bool lookup_port(const std::string& s, uint32_t* port, uint8_t* real);

// --- parser_qualifiers.cpp: predicates from qualifiers and values. Each fails (throws) with
// libpcap's message on a combination libpcap rejects.

// Restricts every layer-aware predicate of `e` to one layer (`inner`/`outer`).
void apply_layer(Expr& e, Predicate::Layer layer);
// not e.
Expr negate(Expr e);
// a and b, flattening nested and's (or or's): the tree has one node per run of equal ops.
Expr combine(Expr::Op op, Expr l, Expr r);
// Transport protocol `proto` over IP version `family` (0: either).
Predicate proto_pred(uint8_t proto, uint8_t family);
// What a bare protocol keyword means (gencode.c gen_proto_abbrev()).
Expr abbrev(PQ pq);
// Combinations libpcap rejects whatever value follows (gencode.c's messages).
void check_qualifiers(const Qual& q, size_t pos);
// What the value after `q` should be ("a port number or name"), for messages.
const char* expected(const Qual& q);
// The qualifiers of `host`: what an address with nothing to reuse is read with.
Qual host_qual();
// A v4 address/network already shifted into place, with its mask (gencode.c gen_ncode()).
Expr v4_expr(uint32_t v, uint32_t mask, const Qual& q, size_t pos);
// Applies ip/ip6/arp to a host or net predicate.
Expr with_family(Predicate p, const Qual& q, bool v6, size_t pos);
// port or portrange lo..hi (swapped if lo > hi; both <= 65535) of transport `l4` (0: any).
Expr port_value(const Qual& q, uint32_t lo, uint32_t hi, uint8_t l4);
// `[ip|ip6] proto num`.
Expr proto_value(const Qual& q, uint8_t num);
// A number under `q`: an IPv4 address or short net, a port, or a protocol number.
Expr num_value(const Qual& q, const lex::Token& t);
// Fails when `q` is port, portrange or proto: `what` (an address) cannot follow them.
void reject_addr_for(const Qual& q, size_t pos, const char* what);
// gencode.c: a name that is tcp-only (udp-only) cannot be used with `udp` (`tcp`). Returns
// the transport the port predicate is limited to.
uint8_t restrict_proto(uint8_t real, PQ pq, size_t pos, const std::string& what);

}  // namespace tmach::query::detail
