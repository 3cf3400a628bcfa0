#include "cluster/flow_merge.h"

#include <algorithm>

#include "server/flow_format.h"

namespace tmach::cluster {
std::vector<flow::FlowRow> merge_flows(std::vector<std::vector<flow::FlowRow>> parts, size_t top,
                                       const std::string& by) {
  std::vector<flow::FlowRow> all;
  for (auto& p : parts)
    all.insert(all.end(), std::make_move_iterator(p.begin()), std::make_move_iterator(p.end()));
  std::sort(all.begin(), all.end(), [](const flow::FlowRow& a, const flow::FlowRow& b) {
    return a.rec.first_ts != b.rec.first_ts ? a.rec.first_ts < b.rec.first_ts : a.rec.id < b.rec.id;
  });
  server::top_flows(all, top, by);
  return all;
}

}  // namespace tmach::cluster
