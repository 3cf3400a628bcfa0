// Evidence for IDS alerts (tm evidence): for each alert, the packets of its connection as tm
// stored them, OUT/<name>.pcap, and OUT/<name>.json with the alerts, tm's flow record and what
// was found. Everything goes through a server::Service, so a store on this machine and a
// running tm serve / tm frontend are asked the same way.
//
// The join: the alert's tuple and tm's flow records meet by Community ID (computed from the
// alert's tuple, compared with each record's); ICMP records have none (tm keeps one connection
// for every ICMP type between two hosts), they meet by hosts and protocol. Of the records near
// the alert (±window), the one whose time span is closest to the alert's time is taken; the
// pcap holds the packets of that connection over that record's span. A host (a Zeek notice
// with `src` only) gets its packets within ±window of the alert.
//
// Idempotent: files are replaced atomically (util::replace_file_atomic); the alerts of an
// existing OUT/<name>.json are kept and a new alert is added once; evidence that held more
// packets than the store holds now (evicted since) is kept rather than overwritten.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "ids/alert.h"
#include "server/service.h"

namespace tmach::ids {

struct EvidenceOptions {
  std::string out_dir;
  uint64_t window_ns = 300ull * 1000000000ull;  // search the flow records (a host's packets) ±this
  uint16_t seed = 0;                            // Community ID seed (Suricata's community-id-seed)
};

struct EvidenceStats {
  uint64_t alerts = 0;                  // alerts handled
  uint64_t written = 0;                 // evidence JSON files written (new or updated)
  uint64_t pcaps = 0;                   // pcaps written
  uint64_t packets = 0;                 // packets in them
  uint64_t not_found = 0;               // evidence without packets (the JSON says why)
  uint64_t alerts_without_packets = 0;  // the alerts of that evidence
  uint64_t unknown = 0;                 // of not_found: a tm frontend's worker did not answer
  uint64_t kept_earlier = 0;            // earlier evidence with more packets kept
};

class EvidenceWriter {
 public:
  enum class Outcome { kWritten, kNotFound, kWaiting };
  EvidenceWriter(server::Service& svc, EvidenceOptions o, server::Warn warn);

  // Writes or updates the evidence `name` for these alerts (all of one connection or host);
  // when OUT/name.json is another connection's, as ID-2, ID-3, ... (the first free or of this
  // connection), with a warning.
  // When `give_up` is false and the connection has no flow record (yet), nothing is written
  // and kWaiting is returned. `extra`: fields set in the JSON as they are (what the alerts'
  // actions did: "kept"), replacing an earlier evidence's. Throws on a failing Service or file
  // system.
  Outcome write(const std::string& name, const std::vector<Alert>& alerts, bool give_up,
                const nlohmann::json& extra = nlohmann::json::object());
  const EvidenceStats& stats() const { return stats_; }

 private:
  std::string path_of(const std::string& name) const;  // OUT/name, without extension
  server::Service& svc_;
  EvidenceOptions o_;
  server::Warn warn_;
  EvidenceStats stats_;
};

// Done once for each alert as it is read, before its evidence is looked for: the one place for
// an action on the live recorder (`--keep`: the alert's hosts into a class without cutoff).
// Returns fields for the evidence JSON (an object: {"kept": ...}; null: none), a later alert's
// replacing an earlier one's.
using AlertAction = std::function<nlohmann::json(const Alert&)>;

// Groups the alerts read by evidence name and connection (repeated alerts of one connection:
// one evidence pair listing them all; an id given to two connections: two) and writes their evidence;
// following a log, an alert whose connection has no flow record yet waits for up to `wait`, asked again with
// a growing pause.
class EvidenceRun {
 public:
  using Clock = std::chrono::steady_clock;
  // `warn`: an alert whose evidence could not be asked for (the Service failed): it is asked
  // again while it may wait, else counted in errors().
  EvidenceRun(EvidenceWriter& w, Clock::duration wait, server::Warn warn)
      : w_(w), wait_(wait), warn_(std::move(warn)) {}
  void add_action(AlertAction a) { actions_.push_back(std::move(a)); }
  // Asked before each connection's evidence: true ends process() early (an interrupted run).
  void set_stop(std::function<bool()> stop) { stop_ = std::move(stop); }
  // A new alert: its actions run now, its evidence at the next process().
  void add(Alert a);
  enum class Pass {
    kFollow,  // an alert without its flow record yet waits for it up to `wait` (asked again with a growing
              // pause)
    // The end of a single pass: an alert's evidence is written with what there is now, except
    // where an action put its live connection under a control (--keep): that connection's
    // interim flow record is on its way, and is waited for up to kRecordComing (within `wait`).
    kOnce,
    kFinal,  // nothing is left waiting (the end of a run)
  };
  static constexpr std::chrono::seconds kRecordComing{5};
  // Writes the evidence of what was added, as `pass` says. Returns how many alerts still wait.
  size_t process(Pass pass);
  size_t waiting() const { return pending_.size(); }  // connections (evidence names)
  uint64_t waiting_alerts() const;                    // their alerts
  uint64_t errors() const { return errors_; }

 private:
  struct Pending {
    std::string name;  // the evidence name (the map's key adds the connection)
    std::vector<Alert> alerts;
    nlohmann::json extra = nlohmann::json::object();  // the actions' fields
    Clock::time_point first_seen, next_try;
    Clock::duration pause{};
    bool record_coming = false;  // an action made the server write an interim flow record (Pass::kOnce)
  };
  EvidenceWriter& w_;
  Clock::duration wait_;
  server::Warn warn_;
  uint64_t errors_ = 0;
  std::vector<AlertAction> actions_;
  std::function<bool()> stop_;
  std::map<std::string, Pending> pending_;  // by evidence name and connection
};

}  // namespace tmach::ids
