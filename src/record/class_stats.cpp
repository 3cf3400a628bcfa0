#include "record/class_stats.h"

#include <fmt/format.h>

#include "util/units.h"

namespace tmach::record {

nlohmann::json class_json(const config::ClassConfig& cfg, const ClassCounters& c,
                          const store::StoreWriter& writer, uint16_t cls) {
  const store::ClassWriteStats& w = writer.stats(cls);
  return {
      {"cutoff", cfg.cutoff == util::kUnlimited ? nlohmann::json("none") : nlohmann::json(cfg.cutoff)},
      {"seen_packets", c.seen_packets},
      {"seen_bytes", c.seen_bytes},
      {"stored_packets", c.stored_packets},
      {"stored_bytes", c.stored_bytes},
      {"cut_packets", c.cut_packets},
      {"cut_bytes", c.cut_bytes},
      {"dropped_ring_full", c.dropped_ring_full},
      {"dropped_too_large", c.dropped_too_large},
      {"tcp_control_kept", c.control_kept},
      {"connections", c.connections},
      {"written_packets", w.written_packets.load()},
      {"lost_packets", w.lost_packets.load()},
      {"segments", w.segments.load()},
      {"segments_evicted", w.segments_evicted.load()},
      {"segments_unsealed", w.segments_unsealed.load()},
      {"disk_bytes", w.disk_bytes.load()},
      {"ring_used", writer.ram_used(cls)},
      {"ring_capacity", writer.ram_capacity(cls)},
      {"ring_high_water", writer.ram_high_water(cls)},
      {"disk_budget", cfg.disk_budget_percent > 0
                          ? nlohmann::json(fmt::format("{}%", cfg.disk_budget_percent))
                      : cfg.disk_budget == UINT64_MAX ? nlohmann::json("none")
                                                      : nlohmann::json(cfg.disk_budget)},
  };
}

nlohmann::json memory_json(const MemoryReport& m) {
  return {
      {"peak_rss", m.process.peak_rss},
      {"rss", m.process.rss},
      {"rss_anon", m.process.rss_anon},
      {"rss_file", m.process.rss_file},
      {"rss_shmem", m.process.rss_shmem},
      {"ram_buffers", m.ram_buffers},
      {"ram_budget", m.ram_budget},
      {"connection_tables", m.connection_tables},
      {"connection_tables_max", m.connection_tables_max},
      {"index_building", m.index_building},
      {"index_building_peak", m.index_building_peak},
      {"flow_index", m.flow_index},
      {"flow_index_peak", m.flow_index_peak},
      {"kernel_rings", m.kernel_rings},
  };
}

}  // namespace tmach::record
