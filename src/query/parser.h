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
};

// An empty (or all-whitespace) filter is kIndexed with Expr::truth().
ParseResult parse_expr(std::string_view text);

// "filter: unexpected token 'foo' at 12\n  host 1.2.3.4 foo\n              ^" style message.
std::string format_error(std::string_view text, const ParseResult& r);

}  // namespace tmach::query
