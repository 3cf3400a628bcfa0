// query::and_filters: a selector and a user filter into one filter text whose meaning is "both",
// whatever `or`, `not` and parentheses either side holds; unbalanced parentheses refused.
#include <gtest/gtest.h>

#include <stdexcept>
#include <string>

#include "query/combine.h"
#include "query/parser.h"

namespace tmach::query {
namespace {

Expr E(std::string_view s) {
  ParseResult r = parse_expr(s);
  EXPECT_EQ(r.kind, ParseResult::Kind::kIndexed) << "'" << s << "': " << r.error << r.unplanned;
  return r.expr;
}

// The expression "a and b" as a tree: an `and` node over each side's own tree (the parser
// flattens an `and` side into the node's children).
Expr both(std::string_view a, std::string_view b) {
  Expr e;
  e.op = Expr::Op::kAnd;
  for (Expr side : {E(a), E(b)}) {
    if (side.op == Expr::Op::kAnd)
      for (auto& k : side.kids) e.kids.push_back(k);
    else
      e.kids.push_back(side);
  }
  return e;
}

TEST(AndFilters, AnEmptySideGivesTheOtherUnchanged) {
  EXPECT_EQ(and_filters("", "port 53"), "port 53");
  EXPECT_EQ(and_filters("host 10.0.0.1", ""), "host 10.0.0.1");
  EXPECT_EQ(and_filters(" \t", "port 53"), "port 53");
  EXPECT_EQ(and_filters("port 53", "  \n"), "port 53");
  EXPECT_EQ(and_filters("", ""), "");
}

TEST(AndFilters, OrOnEitherSideKeepsItsPrecedence) {
  const std::string sel = "host 10.0.0.1 and host 10.0.0.2 and port 80 and port 40000";
  const std::string user = "host 10.0.0.9 or port 53";
  std::string f = and_filters(sel, user);
  EXPECT_EQ(f, "(" + sel + ") and (" + user + ")");
  EXPECT_EQ(E(f), both(sel, user));
  // What plain concatenation would mean instead: a wider filter.
  EXPECT_NE(E(f), E(sel + " and " + user));
  EXPECT_EQ(E(f).str(),
            "(host 10.0.0.1 and host 10.0.0.2 and port 80 and port 40000 and (host 10.0.0.9 or port 53))");

  const std::string alts = "(src host 10.0.0.1 and src port 1) or (src host 10.0.0.2 and src port 2)";
  EXPECT_EQ(E(and_filters(alts, "udp or icmp")), both(alts, "udp or icmp"));
  EXPECT_NE(E(and_filters(alts, "udp or icmp")), E(alts + " and udp or icmp"));
}

TEST(AndFilters, NotAndParenthesesOnEitherSide) {
  for (auto [a, b] : std::initializer_list<std::pair<std::string, std::string>>{
           {"port 53", "not host 10.0.0.1 or host 10.0.0.2"},
           {"not (host 10.0.0.1 or host 10.0.0.2)", "tcp"},
           {"(host 10.0.0.1 or host 10.0.0.2) and (port 1 or port 2)", "not (udp and port 53) or icmp"},
           {"((tcp))", "not not port 7"},
       }) {
    EXPECT_EQ(E(and_filters(a, b)), both(a, b)) << a << " | " << b;
  }
}

TEST(AndFilters, LibpcapOnlyFiltersAreCombinedAsText) {
  std::string f = and_filters("host 10.0.0.1", "tcp[(tcp[12] >> 4) * 4] = 0x47 or udp");
  EXPECT_EQ(f, "(host 10.0.0.1) and (tcp[(tcp[12] >> 4) * 4] = 0x47 or udp)");
  EXPECT_EQ(parse_expr(f).kind, ParseResult::Kind::kBpfOnly);
}

TEST(AndFilters, UnbalancedParenthesesAreRefusedNamingTheSide) {
  // "(sel) and (port 53) or (host 10.0.0.9)" would be a valid and wider filter.
  try {
    and_filters("host 10.0.0.1", "port 53) or (host 10.0.0.9", "flow", "filter");
    FAIL() << "no throw";
  } catch (const std::invalid_argument& e) {
    EXPECT_STREQ(e.what(), "filter: ')' at 7 closes no '(' (in \"port 53) or (host 10.0.0.9\")");
  }
  try {
    and_filters("(host 10.0.0.1", "port 53", "flow", "filter");
    FAIL() << "no throw";
  } catch (const std::invalid_argument& e) {
    EXPECT_STREQ(e.what(), "flow: '(' at 0 is not closed (in \"(host 10.0.0.1\")");
  }
  EXPECT_THROW(and_filters("tcp", ")("), std::invalid_argument);
  EXPECT_THROW(and_filters("tcp", "((udp)"), std::invalid_argument);
}

}  // namespace
}  // namespace tmach::query
