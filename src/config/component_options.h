// The configuration handed down: each component below config/ takes its own options struct
// (as LevelDB's Options) and knows nothing of TOML or of config::Config; these map one in.
#pragma once

#include <string>
#include <vector>

#include "config/config.h"
#include "flow/flow_store.h"
#include "store/store_writer.h"

namespace tmach::config {

// The store writer's options: the store, segments, budgets, durability, and the classes
// (`cfg.classes`, after finalize_classes) with their rings and budgets.
store::StoreOptions store_options(const Config& cfg);

// The flow writer's options (the [flows] section).
flow::FlowOptions flow_options(const Config& cfg);

// The class names, in precedence order (the flow files name a record's class by index).
std::vector<std::string> class_names(const Config& cfg);

}  // namespace tmach::config
