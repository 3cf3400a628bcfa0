// tm evidence's run counts: the summary JSON and the Prometheus text file (ids/report.h).

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "ids/report.h"

namespace tmach::ids {
namespace {

TEST(RunReport, SummaryJsonAndPrometheusTextGiveTheSameCounts) {
  RunReport r;
  r.logs = {{"/var/log/eve.json", "eve", ReadCounts{.lines = 12, .alerts = 9, .ignored = 2, .skipped = 1}},
            {"/logs/a \"b\".log", "zeek", ReadCounts{.lines = 3, .alerts = 1}}};
  r.outside = 1;
  r.evidence = EvidenceStats{
      .alerts = 9, .written = 7, .pcaps = 5, .packets = 123, .not_found = 2, .alerts_without_packets = 3};
  r.waiting = 4;
  r.errors = 1;
  nlohmann::json j = report_json(r);
  EXPECT_EQ(j["alerts_read"], 10u);
  EXPECT_EQ(j["alerts_skipped"], 1u);
  EXPECT_EQ(j["alerts_without_packets"], 3u);
  EXPECT_EQ(j["logs"][1]["file"], "/logs/a \"b\".log");
  EXPECT_FALSE(j.contains("keep"));
  std::string t = report_prometheus(r);
  EXPECT_NE(t.find("# TYPE tm_evidence_alerts_read_total counter\n"
                   "tm_evidence_alerts_read_total{log=\"/var/log/eve.json\",format=\"eve\"} 9\n"
                   "tm_evidence_alerts_read_total{log=\"/logs/a \\\"b\\\".log\",format=\"zeek\"} 1\n"),
            std::string::npos)
      << t;
  EXPECT_NE(t.find("\ntm_evidence_alerts_without_packets_total 3\n"), std::string::npos) << t;
  EXPECT_NE(t.find("# TYPE tm_evidence_waiting gauge\ntm_evidence_waiting 4\n"), std::string::npos) << t;
  EXPECT_EQ(t.find("keep"), std::string::npos);
  r.keep = KeepStats{};
  r.keep->hosts_raised = 2;
  r.keep_class = "suspect";
  EXPECT_EQ(report_json(r)["keep"]["hosts_raised"], 2u);
  EXPECT_EQ(report_json(r)["keep"]["class"], "suspect");
  EXPECT_NE(report_prometheus(r).find("\ntm_evidence_keep_hosts_raised_total 2\n"), std::string::npos);
}

}  // namespace
}  // namespace tmach::ids
