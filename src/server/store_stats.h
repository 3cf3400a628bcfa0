// What a store holds, from its catalog: shared by tm stats --json and GET /api/v1/stats.
#pragma once

#include <nlohmann/json.hpp>

#include "store/catalog.h"

namespace tmach::server {

nlohmann::json catalog_json(const store::Catalog& cat);

}  // namespace tmach::server
