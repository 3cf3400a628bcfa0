// libFuzzer target: the query lexer and parser on arbitrary text (filters arrive over the
// HTTP API from remote users), and the printing of what they produce.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "query/parser.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  tmach::query::ParseResult r = tmach::query::parse_expr(text);
  switch (r.kind) {
    case tmach::query::ParseResult::Kind::kIndexed: {
      // The canonical form must parse again, to the same tree.
      std::string canon = r.expr.str();
      tmach::query::ParseResult again = tmach::query::parse_expr(canon);
      if (again.kind != tmach::query::ParseResult::Kind::kIndexed || !(again.expr == r.expr)) std::abort();
      break;
    }
    case tmach::query::ParseResult::Kind::kError:
      if (r.error_pos > text.size()) std::abort();
      (void)tmach::query::format_error(text, r);
      break;
    case tmach::query::ParseResult::Kind::kBpfOnly:
      break;
  }
  return 0;
}
