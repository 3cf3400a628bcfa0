// Answers a filter over the flow records of a store: prunes files by time, plans through
// their indexes, re-checks each record exactly, keeps the newest record of each connection
// (interim records are superseded by later ones).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "flow/flow_record.h"
#include "query/parser.h"

namespace tmach::flow {

struct FlowRow {
  FlowRecord rec;
  std::string cls;
  enum class Packets : uint8_t { kNone, kSome, kAll } packets = Packets::kNone;  // still on disk
};

struct FlowQueryStats {
  size_t files = 0, files_skipped = 0, files_indexed = 0, files_scanned = 0;
  uint64_t candidates = 0, matched = 0;
  std::vector<std::string> warnings;
};

// Records overlapping [from, to) that match `parsed` (kIndexed or kBpfOnly is refused: the
// flow index knows addresses, ports and protocols only). Sorted by first timestamp.
std::vector<FlowRow> query_flows(const std::string& store, const query::ParseResult& parsed, uint64_t from,
                                 uint64_t to, FlowQueryStats& st);
// The record with this id, if any flow file still has it.
bool find_flow(const std::string& store, uint64_t id, FlowRow& out);

// Keeps the rows whose Community ID (seed 0) is `id`.
void keep_community_id(std::vector<FlowRow>& rows, const std::string& id);
// A filter (tcpdump syntax) for the packets of these rows' connections: their protocol,
// addresses and ports, or'ed. Empty when `rows` is.
std::string connections_filter(const std::vector<FlowRow>& rows);
// connections_filter() of every flow record of `store` with Community ID `id` (whenever it
// was seen: the ID names a 5-tuple); empty when none has it.
std::string community_filter(const std::string& store, const std::string& id);

}  // namespace tmach::flow
