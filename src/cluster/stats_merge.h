// A front-end's stats (GET /api/v1/stats on tm frontend): its workers' store, capture and flow
// sections put together.
#pragma once

#include <nlohmann/json.hpp>

namespace tmach::cluster {

// Adds a worker's stats object `from` into `into` (null at first: a copy): counts add up,
// first_ns/last_ns take min/max (with their ISO-8601 twins), arrays are concatenated but for
// "interfaces", whose names are listed once (two workers on one host capture the same one),
// index_ratio is recomputed, anything else keeps the first value.
void add_stats(nlohmann::json& into, const nlohmann::json& from);

}  // namespace tmach::cluster
