// Exact evaluation of an Expr on one decoded packet. Pure; no I/O.
#pragma once

#include "packet/packet_info.h"
#include "query/expr.h"

namespace tmach::query {

// True when the packet satisfies the expression, with tcpdump's semantics for packets
// tcpdump understands (see docs/USAGE.md "Query language and its semantics"), extended to every IP layer: a
// host/net/port/proto predicate holds when any IP layer of the packet satisfies it.
bool matches(const Expr& e, const packet::PacketInfo& p);
bool matches(const Predicate& pr, const packet::PacketInfo& p);

}  // namespace tmach::query
