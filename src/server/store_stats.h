// What a store holds, from its catalog: shared by tm stats --json and GET /api/v1/stats.
#pragma once

#include <nlohmann/json.hpp>

#include "store/catalog.h"

namespace tmach::server {

nlohmann::json catalog_json(const store::Catalog& cat);
// Packets per layer type over the sealed segments, from their network-layer index:
// {"ipv4": n, "ipv6": n, "arp": n, "undecoded": n, "ethertype 0x88cc": n, "tunnel gre": n, ...}.
nlohmann::json layers_json(const store::Catalog& cat);

}  // namespace tmach::server
