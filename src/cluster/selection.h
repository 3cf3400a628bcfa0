// Worker selection: which workers of a cluster can hold the answer to a query, given how
// the traffic was balanced (balance.h). Pure: an expression tree in, a set of workers out.
//
// Only the top-level conjunction counts: a conjunct that is a single predicate may pin an
// endpoint; any other conjunct (an `or`, a `not`, a parenthesised group) only narrows the
// answer and is ignored, which keeps the selection sound. So `host A and host B and (port 1
// or port 2)` pins the pair, `(host A or host C) and host B` does not.
//  - pair:   two distinct addresses pinned by `host` (any direction) -> one worker.
//  - 5tuple: the pair and both ports (two distinct `port` values, or one value as both `src
//    port` and `dst port`) -> the worker of (A, B, p, q) for each protocol the query allows (a
//    `tcp`/`udp`/`sctp`/`proto N` pin or the port's qualifier; tcp, udp, sctp otherwise) and of the same pair
//    with ports 0 (fragments, tunnelled packets).
// Layers: the hash is of the outermost IP layer, and tm's `host X` matches X in ANY layer,
// so with `tunnels` (the default: the link may carry tunnels) only `outer`-qualified pins
// count; a tunnelled packet naming A and B in an inner layer may sit at any worker. When
// the operator states the link carries no tunnels (tunnels = false), every packet has one
// IP layer and plain (and `inner`) pins count as well.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "cluster/balance.h"
#include "query/parser.h"

namespace tmach::cluster {

struct Selection {
  bool all = true;                // every worker
  std::vector<uint32_t> workers;  // when !all: sorted, distinct
  std::string why;                // one line for --explain
};

struct BalanceInfo {
  bool known = false;  // the configuration states the scheme (and the worker order)
  Scheme scheme = Scheme::kPair;
  uint32_t workers = 0;
  bool tunnels = true;  // the link may carry tunnels (see above)
};

Selection select_workers(const query::ParseResult& parsed, const BalanceInfo& b);

}  // namespace tmach::cluster
