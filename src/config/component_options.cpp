#include "config/component_options.h"

namespace tmach::config {

store::StoreOptions store_options(const Config& cfg) {
  store::StoreOptions o;
  o.dir = cfg.store;
  o.segment_size = cfg.segment_size;
  o.disk_budget = cfg.disk_budget;
  o.directory_every = cfg.directory_every;
  o.directory_bytes = cfg.directory_bytes;
  o.fsync_interval_ns = cfg.fsync_interval_ns;
  o.fsync_bytes = cfg.fsync_bytes;
  for (const auto& c : cfg.classes)
    o.classes.push_back(store::ClassOptions{c.name, c.ram_budget, c.disk_budget});
  return o;
}

flow::FlowOptions flow_options(const Config& cfg) {
  flow::FlowOptions o;
  o.store = cfg.store;
  o.disk_budget = cfg.flow_disk_budget;
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
