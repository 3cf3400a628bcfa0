// Runs a query over a store: prunes segments by time, plans each through its indexes (or
// scans it when it has no usable sidecar), re-checks every candidate exactly, and merges
// the matches of all segments and classes in time order.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "packet/packet_info.h"
#include "query/parser.h"
#include "store/catalog.h"

namespace tmach::query {

struct QuerySpec {
  std::string text;                  // the filter as given
  ParseResult parsed;                // parse_expr(text)
  uint64_t from_ns = 0;              // inclusive
  uint64_t to_ns = UINT64_MAX;       // exclusive
  std::vector<std::string> classes;  // empty: all
  uint64_t limit = 0;                // > 0: only the first `limit` matches in time order (tcpdump -c)
  // When given, a packet the filter matched is an answer only if this says so too, of the packet
  // as decoded (a later fragment with its datagram's layers where the query knew them): the
  // exact test of a flow's connection (flow::of_connections), which its filter alone cannot make.
  std::function<bool(const packet::PacketInfo&)> connection;
};

struct QueryStats {
  size_t segments_total = 0;
  size_t segments_skipped_time = 0;  // pruned by their time range alone
  size_t segments_indexed = 0;       // answered through their sidecar indexes
  size_t segments_scanned = 0;       // no usable sidecar (being written, crashed, damaged): scanned
  size_t segments_empty = 0;         // indexes said no candidate
  uint64_t candidates = 0;           // packets read and re-checked
  uint64_t matched = 0;
  std::vector<std::string> warnings;  // damaged sidecars, vanished files, ...
};

// One matching packet; `data` is valid only during the callback.
struct OutPacket {
  uint64_t ts_ns;
  uint32_t linktype;
  uint32_t caplen;
  uint32_t wirelen;
  const uint8_t* data;
};

// Calls `out` for every match in time order (ties: segment order, then file order), or for
// the first q.limit of them (no later segment is opened once it is reached).
// `before_segment`, when given, is called before each segment is opened (a transport's time
// limit: it may throw to end the query, which a query of few matches would otherwise not
// give `out` the chance to do). Throws std::runtime_error for a filter libpcap cannot
// compile (BPF fallback).
QueryStats run_query(const store::Catalog& cat, const QuerySpec& q,
                     const std::function<void(const OutPacket&)>& out,
                     const std::function<void()>& before_segment = nullptr);

}  // namespace tmach::query
