#include "config/component_options.h"

#include <algorithm>

namespace tmach::config {

store::StoreOptions store_options(const Config& cfg) {
  store::StoreOptions o;
  o.dir = cfg.store;
  o.segment_size = cfg.segment_size;
  // "80%" budgets become bytes here, once, when the recorder starts (disk_budget_bytes).
  o.disk_budget = disk_budget_bytes(cfg.disk_budget, cfg.disk_budget_percent, cfg.store);
  o.directory_every = cfg.directory_every;
  o.directory_bytes = cfg.directory_bytes;
  o.fsync_interval_ns = cfg.fsync_interval_ns;
  o.fsync_bytes = cfg.fsync_bytes;
  for (const auto& c : cfg.classes) {
    // Both ages apply, as both budgets do: the shorter one wins.
    uint64_t age = c.max_age_ns && cfg.max_age_ns ? std::min(c.max_age_ns, cfg.max_age_ns)
                                                  : std::max(c.max_age_ns, cfg.max_age_ns);
    o.classes.push_back(store::ClassOptions{
        c.name, c.ram_budget, disk_budget_bytes(c.disk_budget, c.disk_budget_percent, cfg.store), age});
  }
  return o;
}

flow::FlowOptions flow_options(const Config& cfg) {
  flow::FlowOptions o;
  o.store = cfg.store;
  o.disk_budget = disk_budget_bytes(cfg.flow_disk_budget, cfg.flow_disk_budget_percent, cfg.store);
  o.max_age_ns = cfg.flow_max_age_ns;
  o.file_size = cfg.flow_file_size;
  return o;
}

std::vector<std::string> class_names(const Config& cfg) {
  std::vector<std::string> names;
  for (const auto& c : cfg.classes) names.push_back(c.name);
  return names;
}

}  // namespace tmach::config
