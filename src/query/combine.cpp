#include "query/combine.h"

#include <fmt/format.h>

#include <stdexcept>

namespace tmach::query {
namespace {

bool blank(std::string_view s) { return s.find_first_not_of(" \t\r\n") == std::string_view::npos; }

// Throws when `s`'s parentheses do not balance: a ')' without its '(' or a '(' left open.
void check_balanced(std::string_view s, std::string_view name) {
  size_t depth = 0, open_at = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '(') {
      if (depth++ == 0) open_at = i;
    } else if (s[i] == ')') {
      if (depth == 0)
        throw std::invalid_argument(
            fmt::format("{}: ')' at {} closes no '(' (in \"{}\")", name, i, std::string(s)));
      --depth;
    }
  }
  if (depth > 0)
    throw std::invalid_argument(
        fmt::format("{}: '(' at {} is not closed (in \"{}\")", name, open_at, std::string(s)));
}

}  // namespace

std::string and_filters(std::string_view a, std::string_view b, std::string_view a_name,
                        std::string_view b_name) {
  if (blank(a)) return std::string(b);
  if (blank(b)) return std::string(a);
  check_balanced(a, a_name);
  check_balanced(b, b_name);
  return fmt::format("({}) and ({})", a, b);
}

}  // namespace tmach::query
