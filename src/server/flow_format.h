// Renders flow query answers (tm flows and GET /api/v1/flows share it, so both give the same text).
#pragma once

#include <string>
#include <vector>

#include "flow/flow_query.h"

namespace tmach::server {

// Keeps the `top` largest rows by `by` (bytes, packets, duration) when top > 0.
void top_flows(std::vector<flow::FlowRow>& rows, size_t top, const std::string& by);
// format: "text" (a table), "json" (one object a line) or "csv" (with a header line).
std::string render_flows(const std::vector<flow::FlowRow>& rows, const std::string& format);

}  // namespace tmach::server
