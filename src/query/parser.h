// Parser for tcpdump filter syntax into Expr (expr.h).
#pragma once

#include <string>
#include <string_view>

#include "query/expr.h"

namespace tmach::query {

struct ParseResult {
  enum class Kind : uint8_t {
    kIndexed,  // `expr` holds the whole filter; the indexes can plan it
    kBpfOnly,  // valid-looking tcpdump syntax that uses a keyword this parser does not plan
               // (e.g. `tcp[13] & 2 != 0`, `ether host ..`, `greater 100`): the caller
               // compiles the text with libpcap and scans
    kError,    // a syntax error in a construct this parser owns
  };
  Kind kind = Kind::kError;
  Expr expr;              // kIndexed
  std::string error;      // kError: message naming the offending token
  size_t error_pos = 0;   // kError: byte offset of the offending token in the input
  std::string unplanned;  // kBpfOnly: the first keyword/token that forced the fallback
  // kBpfOnly: a filter that is a conjunction at its top level (`host A and greater 100`) is
  // split: the conjuncts tm plans (`planned`: indexed, and judged by tm as a planned filter is:
  // VLANs, tunnels, fragments) and the rest for libpcap (`libpcap`: "(greater 100)"). When it
  // cannot be split (no conjunct planned, a top-level `or`, a conjunct taking the qualifiers of
  // the one before it: `port 80 and 443`) `planned` is Expr::truth() and `libpcap` the whole.
  Expr planned;
  std::string libpcap;
  bool split() const { return kind == Kind::kBpfOnly && planned.op != Expr::Op::kTrue; }
};

// An empty (or all-whitespace) filter is kIndexed with Expr::truth().
ParseResult parse_expr(std::string_view text);

// "filter: unexpected token 'foo' at 12\n  host 1.2.3.4 foo\n              ^" style message.
std::string format_error(std::string_view text, const ParseResult& r);

}  // namespace tmach::query
