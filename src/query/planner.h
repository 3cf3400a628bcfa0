// Turns an expression into bitmap algebra over one segment's indexes (store/index.h).
// The result is a superset of the matching packets (exactly the set when `exact`); the
// executor re-checks every candidate on its decoded bytes, so the answer never
// over-approximates.
#pragma once

#include <roaring/roaring.hh>
#include <string>

#include "query/expr.h"
#include "store/index.h"
#include "store/index_lookup.h"

namespace tmach::query {

struct Candidates {
  Roaring set;
  bool exact = true;  // the index answered precisely (no re-check would drop anything)
};

// `packets`: the number of packets in the segment (the universe for `not` and `true`).
Candidates plan_segment(const Expr& e, const store::IndexLookup& ix, uint32_t packets);
inline Candidates plan_segment(const Expr& e, const store::SegmentIndex& ix, uint32_t packets) {
  return plan_segment(e, store::MemoryIndexLookup(ix), packets);
}

// How the planner treats an expression, for --explain: one line per predicate.
std::string explain_plan(const Expr& e);

}  // namespace tmach::query
