#include "ids/report.h"

#include "server/metrics.h"

namespace tmach::ids {

nlohmann::json report_json(const RunReport& r) {
  nlohmann::json logs = nlohmann::json::array();
  uint64_t read = 0, skipped = 0;
  for (auto& l : r.logs) {
    logs.push_back({{"file", l.file},
                    {"format", l.format},
                    {"lines", l.counts.lines},
                    {"alerts", l.counts.alerts},
                    {"ignored", l.counts.ignored},
                    {"skipped", l.counts.skipped}});
    read += l.counts.alerts;
    skipped += l.counts.skipped;
  }
  const EvidenceStats& e = r.evidence;
  nlohmann::json j = {{"logs", logs},
                      {"alerts_read", read},
                      {"alerts_skipped", skipped},
                      {"alerts_outside_range", r.outside},
                      {"alerts", e.alerts},
                      {"evidence_written", e.written},
                      {"pcaps", e.pcaps},
                      {"packets", e.packets},
                      {"evidence_without_packets", e.not_found},
                      {"alerts_without_packets", e.alerts_without_packets},
                      {"evidence_unknown", e.unknown},
                      {"kept_earlier", e.kept_earlier},
                      {"waiting", r.waiting},
                      {"errors", r.errors}};
  if (r.keep)
    j["keep"] = {{"class", r.keep_class.empty() ? nlohmann::json(nullptr) : nlohmann::json(r.keep_class)},
                 {"hosts_raised", r.keep->hosts_raised},
                 {"class_requests", r.keep->class_requests},
                 {"controls", r.keep->controls},
                 {"failed", r.keep->failed}};
  return j;
}

std::string report_prometheus(const RunReport& r) {
  server::Metrics m;
  auto d = [](uint64_t v) { return static_cast<double>(v); };
  for (auto& l : r.logs) {
    std::vector<std::pair<std::string, std::string>> lab = {{"log", l.file}, {"format", l.format}};
    m.add("tm_evidence_log_lines_total", "counter", "Lines read from the log.", d(l.counts.lines), lab);
    m.add("tm_evidence_alerts_read_total", "counter", "Alerts read from the log.", d(l.counts.alerts), lab);
    m.add("tm_evidence_lines_ignored_total", "counter",
          "Lines that are no alert: comments, headers, other event types.", d(l.counts.ignored), lab);
    m.add("tm_evidence_alerts_skipped_total", "counter",
          "Lines skipped with a warning: malformed, or naming no connection nor host.", d(l.counts.skipped),
          lab);
  }
  const EvidenceStats& e = r.evidence;
  m.add("tm_evidence_alerts_outside_range_total", "counter", "Alerts read outside --from/--to: not handled.",
        d(r.outside));
  m.add("tm_evidence_alerts_total", "counter", "Alerts whose evidence was looked for.", d(e.alerts));
  m.add("tm_evidence_written_total", "counter", "Evidence JSON files written (new or updated).",
        d(e.written));
  m.add("tm_evidence_pcaps_total", "counter", "Evidence pcaps written.", d(e.pcaps));
  m.add("tm_evidence_packets_total", "counter", "Packets in the evidence pcaps written.", d(e.packets));
  m.add("tm_evidence_without_packets_total", "counter",
        "Evidence written without packets (the JSON says why).", d(e.not_found));
  m.add("tm_evidence_unknown_total", "counter",
        "Evidence without packets because a tm frontend's worker that may hold them did not answer.",
        d(e.unknown));
  m.add("tm_evidence_alerts_without_packets_total", "counter", "Alerts whose evidence has no packets.",
        d(e.alerts_without_packets));
  m.add("tm_evidence_kept_earlier_total", "counter",
        "Earlier evidence kept: it holds more packets than the store has now.", d(e.kept_earlier));
  m.add("tm_evidence_errors_total", "counter", "Alerts whose evidence could not be written.", d(r.errors));
  m.add("tm_evidence_waiting", "gauge", "Alerts waiting for their connection's flow record.", d(r.waiting));
  if (r.keep) {
    m.add("tm_evidence_keep_hosts_raised_total", "counter",
          "Hosts put into the --keep class (refreshes not counted).", d(r.keep->hosts_raised));
    m.add("tm_evidence_keep_class_requests_total", "counter",
          "Requests that put a host into the --keep class or refreshed its expiry.",
          d(r.keep->class_requests));
    m.add("tm_evidence_keep_controls_total", "counter", "Live connections' cutoffs suspended (requests).",
          d(r.keep->controls));
    m.add("tm_evidence_keep_failed_total", "counter", "--keep requests that failed.", d(r.keep->failed));
  }
  return m.text();
}

}  // namespace tmach::ids
