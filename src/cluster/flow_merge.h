// Flow answers of several workers made into one, as a single worker would give it: the
// rows read back from the workers' JSON lines (server::parse_flow_lines), sorted as query_flows() sorts
// (first time, then id), ranked by top_flows() and rendered by render_flows() (server/flow_format.h).
//
// --top N over the union asks each worker for its own top N only. That is exact because a
// flow record lives at one worker and is ranked by its own value (bytes, packets,
// duration), never by a sum over workers: a record outside its worker's top N has N
// records ahead of it there (ties broken by first time and id, the same order everywhere),
// so it is outside the union's top N too. A ranking that added up values across workers
// (say, bytes per host) would need every worker's full set instead.
#pragma once

#include <string>
#include <vector>

#include "flow/flow_query.h"

namespace tmach::cluster {

// The union, in query_flows() order, then top_flows(top, by).
std::vector<flow::FlowRow> merge_flows(std::vector<std::vector<flow::FlowRow>> parts, size_t top,
                                       const std::string& by);

}  // namespace tmach::cluster
