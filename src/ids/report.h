// What a tm evidence run counted, in one place: the logs' lines and alerts, the evidence
// written, what --keep asked of the server. Shown as the run's summary (JSON, `--json`) and as
// Prometheus text (`--metrics-file`, for node_exporter's textfile collector).
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "ids/alert.h"
#include "ids/evidence.h"
#include "ids/keep.h"

namespace tmach::ids {

struct RunReport {
  struct Log {
    std::string file;
    const char* format;  // "eve" or "zeek"
    ReadCounts counts;
  };
  std::vector<Log> logs;
  uint64_t outside = 0;  // alerts outside --from/--to: read, not handled
  EvidenceStats evidence;
  uint64_t waiting = 0;  // alerts whose connection has no flow record yet (following)
  uint64_t errors = 0;   // alerts whose evidence could not be written (the Service failed)
  std::optional<KeepStats> keep;
  std::string keep_class;
};

// {"logs": [{"file", "format", "lines", "alerts", "ignored", "skipped"}], "alerts_read",
//  "alerts_skipped", "alerts_outside_range", "alerts", "evidence_written", "pcaps", "packets",
//  "evidence_without_packets", "alerts_without_packets", "kept_earlier", "waiting", "errors",
//  "keep": {"class", "hosts_raised", "class_requests", "controls", "failed"} (with --keep)}.
nlohmann::json report_json(const RunReport& r);

// The same as Prometheus text exposition: tm_evidence_* counters (per log where read from a
// log, labelled log="FILE"), tm_evidence_waiting as a gauge.
std::string report_prometheus(const RunReport& r);

}  // namespace tmach::ids
