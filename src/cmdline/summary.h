// The end-of-run summary of tm record: every packet accounted for, per class (its class JSON,
// record/class_stats.h, is tm serve's stats too).
#pragma once

#include <nlohmann/json.hpp>
#include <ostream>
#include <vector>

#include "capture/source.h"
#include "cluster/balance.h"
#include "record/recorder.h"
#include "record/session.h"
#include "store/import_session.h"
#include "store/store_writer.h"

namespace tmach::cli {

// The flow records' side of a recording (record::Session, after its finish()).
struct FlowOutcome {
  uint64_t files_unsealed = 0;  // flow files left without a sidecar
  uint64_t records_lost = 0;    // records of ended connections not written (a failed write)
  std::string error;            // the flow writer's failure, when it failed
};
// "lost: N flow records of ended connections were not written (why)", or "" when none were.
std::string flow_records_lost_line(const FlowOutcome& flows);

// `input`: for a file import, what was skipped and whether a signal cut the run short.
// `rec`: every capture thread's counters added up (record::Session::totals).
void print_record_summary(std::ostream& os, const record::RecorderTotals& rec,
                          const std::vector<config::ClassConfig>& classes, const store::StoreWriter& writer,
                          const std::vector<capture::SourceStats>& kernel, double seconds, double capture_cpu,
                          bool json, const cluster::ShareFilter* share = nullptr,
                          const store::ImportReport* input = nullptr,
                          const record::MemoryReport* memory = nullptr, const FlowOutcome& flows = {});

// "interrupted by SIGINT after N packets: X of Y bytes of input read, k of n inputs complete; ...".
std::string interrupted_line(const store::ImportReport& input);

// What a worker of an N-way split kept and left to the others (JSON), for the summary and stats.
nlohmann::json share_json(const cluster::ShareFilter& share);

}  // namespace tmach::cli
