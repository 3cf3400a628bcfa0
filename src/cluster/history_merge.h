// A front-end's rate history (GET /api/v1/history on tm frontend): its workers' histories
// (server/rate_history.h) summed on one time grid.
#pragma once

#include <nlohmann/json.hpp>
#include <vector>

namespace tmach::cluster {

// `parts`: the /api/v1/history documents of the workers that answered. Each sample is placed
// in the cell of the grid of `interval_s` (the largest of the parts'; the cell's start is its
// t_ns, a multiple of the interval since the epoch); a worker's samples that fall into one cell
// are averaged, and the cells summed over the workers: every rate of every class, ring_used and
// kernel_dropped_pps. Each merged sample says how many workers it holds ("workers"). The cells
// after the earliest of the workers' newest cells are left out (a worker that has not taken its
// sample there yet would show as a dip). interval_s 0 and no samples when no part records.
// An interval outside (0, 1 day] or a capacity outside [0, 1e7] is not believed (that part
// counts as not recording; its capacity as none).
nlohmann::json merge_histories(const std::vector<nlohmann::json>& parts);

}  // namespace tmach::cluster
