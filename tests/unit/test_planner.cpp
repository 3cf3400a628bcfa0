// The planner's bitmap algebra over a hand-built index: an AND reads its cheap terms first
// and may leave a costly one to the re-check (a superset), but never under a `not`, where
// the complement needs the exact set.
#include <gtest/gtest.h>

#include "query/parser.h"
#include "query/planner.h"
#include "store/index.h"
#include "test_addr.h"

namespace tmach::query {
namespace {

using tmtest::A;

constexpr uint32_t kPackets = 200000;

// Packets 0..kPackets-1; every even one is TCP; 10.0.0.1 is in packets 10, 11 and 12;
// 10.0.0.2 in packets 0..99999.
store::SegmentIndex make_index() {
  store::SegmentIndex ix;
  Roaring tcp, udp;
  for (uint32_t i = 0; i < kPackets; ++i) (i % 2 ? udp : tcp).add(i);
  ix.proto.emplace(6, tcp);
  ix.proto.emplace(17, udp);
  Roaring few, many;
  few.addMany(3, std::array<uint32_t, 3>{10, 11, 12}.data());
  many.addRange(0, 100000);
  ix.addr.emplace(A("10.0.0.1").b, few);
  ix.addr.emplace(A("10.0.0.2").b, many);
  return ix;
}

Candidates plan(const store::SegmentIndex& ix, const char* filter) {
  ParseResult r = parse_expr(filter);
  EXPECT_EQ(r.kind, ParseResult::Kind::kIndexed) << filter;
  return plan_segment(r.expr, ix, kPackets);
}

Roaring of(std::initializer_list<uint32_t> v) {
  Roaring r;
  for (uint32_t x : v) r.add(x);
  return r;
}

TEST(Planner, CostlyAndTermLeftToTheRecheckWhenFewCandidatesRemain) {
  store::SegmentIndex ix = make_index();
  // The TCP bitmap is far costlier than re-checking three packets: left out, so the
  // candidates are a superset (packet 11 is UDP) and the result says it is not exact.
  Candidates c = plan(ix, "tcp and host 10.0.0.1");
  EXPECT_EQ(c.set, of({10, 11, 12}));
  EXPECT_FALSE(c.exact);
  // The order of the terms does not matter.
  EXPECT_EQ(plan(ix, "host 10.0.0.1 and tcp").set, of({10, 11, 12}));
}

TEST(Planner, AndOfCheapTermsIsIntersectedExactly) {
  store::SegmentIndex ix = make_index();
  Candidates c = plan(ix, "host 10.0.0.1 and host 10.0.0.2");
  EXPECT_EQ(c.set, of({10, 11, 12}));
  EXPECT_TRUE(c.exact);
  // Many candidates: every term is worth reading.
  Candidates d = plan(ix, "host 10.0.0.2 and udp");
  Roaring want;
  for (uint32_t i = 1; i < 100000; i += 2) want.add(i);
  EXPECT_EQ(d.set, want);
  EXPECT_TRUE(d.exact);
}

TEST(Planner, NothingUnderANotIsWidened) {
  store::SegmentIndex ix = make_index();
  // not (tcp and host 10.0.0.1) = everything but packets 10 and 12: a widened inner set
  // would wrongly drop packet 11 from the complement.
  Candidates c = plan(ix, "not (tcp and host 10.0.0.1)");
  Roaring want;
  want.addRange(0, kPackets);
  want.remove(10);
  want.remove(12);
  EXPECT_EQ(c.set, want);
  EXPECT_TRUE(c.exact);
  // Inside an OR (not negated) widening is still allowed: a superset of the union.
  Candidates d = plan(ix, "(tcp and host 10.0.0.1) or host 10.0.0.9");
  EXPECT_TRUE(d.set.contains(10) && d.set.contains(12));
}

TEST(Planner, AnIpv4HostIsNotExactWhereTheSegmentHasIpv6) {
  // The key of 10.0.0.1 also holds IPv6 layers carrying ::ffff:10.0.0.1, which `host 10.0.0.1`
  // does not match: with IPv6 in the segment, `not host 10.0.0.1` must keep them for the
  // re-check (it dropped them from the complement: a wrong answer).
  store::SegmentIndex ix = make_index();
  EXPECT_TRUE(plan(ix, "host 10.0.0.1").exact);  // no IPv6 layer at all: the key is exact
  EXPECT_TRUE(plan(ix, "not net 10.0.0.0/24").exact);
  ix.net.emplace(store::kNetV6, of({11}));
  EXPECT_FALSE(plan(ix, "host 10.0.0.1").exact);
  EXPECT_FALSE(plan(ix, "net 10.0.0.0/24").exact);
  Candidates c = plan(ix, "not host 10.0.0.1");
  EXPECT_FALSE(c.exact);
  EXPECT_TRUE(c.set.contains(11)) << "an IPv6 packet with ::ffff:10.0.0.1 left out of the complement";
}

}  // namespace
}  // namespace tmach::query
