// One class's counters as JSON: the record summary's classes and the daemon's stats.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>

#include "config/config.h"
#include "record/recorder.h"
#include "record/session.h"
#include "store/store_writer.h"

namespace tmach::record {

// `cls` is the class's index in the writer.
nlohmann::json class_json(const config::ClassConfig& cfg, const ClassCounters& c,
                          const store::StoreWriter& writer, uint16_t cls);

// The memory report (Session::memory) as JSON: bytes by part, and the process's own figures.
nlohmann::json memory_json(const MemoryReport& m);

}  // namespace tmach::record
