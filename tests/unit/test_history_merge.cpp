// A front-end's rate history: its workers' histories summed on the 10 s grid (history_merge.h).
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "cluster/history_merge.h"

namespace tmach::cluster {
namespace {

using nlohmann::json;

constexpr uint64_t kS = 1000000000ull;
constexpr uint64_t kT0 = 1764700000ull * kS;  // a multiple of 10 s

json sample(uint64_t t_ns, double stored_pps, double kernel = 0) {
  return {{"t_ns", t_ns},
          {"classes", {{"web", {{"stored_pps", stored_pps}, {"cut_pps", 1.0}, {"ring_used", 100}}}}},
          {"kernel_dropped_pps", kernel}};
}

json history(std::vector<json> samples) {
  return {{"interval_s", 10}, {"capacity", 1080}, {"samples", samples}};
}

TEST(HistoryMerge, SumsOnTheGrid) {
  // Worker a samples at :03, b at :07 of each 10 s; b has also a class of its own.
  json a = history({sample(kT0 + 3 * kS, 10), sample(kT0 + 13 * kS, 20, 1), sample(kT0 + 23 * kS, 30)});
  json b = history({sample(kT0 + 7 * kS, 1), sample(kT0 + 17 * kS, 2, 2)});
  b["samples"][1]["classes"]["dns"] = {{"stored_pps", 5.0}};
  json m = merge_histories({a, b});
  EXPECT_EQ(m["interval_s"], 10.0);
  ASSERT_EQ(m["samples"].size(), 2u);  // a's third cell: b has not sampled there yet
  auto& s0 = m["samples"][0];
  EXPECT_EQ(s0["t_ns"], kT0);
  EXPECT_EQ(s0["workers"], 2);
  EXPECT_DOUBLE_EQ(s0["classes"]["web"]["stored_pps"].get<double>(), 11);
  EXPECT_DOUBLE_EQ(s0["classes"]["web"]["cut_pps"].get<double>(), 2);
  EXPECT_DOUBLE_EQ(s0["classes"]["web"]["ring_used"].get<double>(), 200);
  auto& s1 = m["samples"][1];
  EXPECT_EQ(s1["t_ns"], kT0 + 10 * kS);
  EXPECT_DOUBLE_EQ(s1["classes"]["web"]["stored_pps"].get<double>(), 22);
  EXPECT_DOUBLE_EQ(s1["classes"]["dns"]["stored_pps"].get<double>(), 5);
  EXPECT_DOUBLE_EQ(s1["kernel_dropped_pps"].get<double>(), 3);
}

TEST(HistoryMerge, TwoSamplesOfOneWorkerInACellAveraged) {
  json a = history({sample(kT0 + 1 * kS, 10), sample(kT0 + 9 * kS, 30), sample(kT0 + 12 * kS, 5)});
  json m = merge_histories({a});
  ASSERT_EQ(m["samples"].size(), 2u);
  EXPECT_EQ(m["samples"][0]["workers"], 1);
  EXPECT_DOUBLE_EQ(m["samples"][0]["classes"]["web"]["stored_pps"].get<double>(), 20);
  EXPECT_DOUBLE_EQ(m["samples"][1]["classes"]["web"]["stored_pps"].get<double>(), 5);
}

TEST(HistoryMerge, WorkersThatDoNotRecord) {
  json ro = {{"interval_s", 0}, {"samples", json::array()}};
  json m = merge_histories({ro, ro});
  EXPECT_EQ(m["interval_s"], 0.0);
  EXPECT_TRUE(m["samples"].empty());
  // One recording, one read-only: the recording one's samples; a worker without samples yet
  // does not hold the others back.
  json a = history({sample(kT0 + 3 * kS, 10), sample(kT0 + 13 * kS, 20)});
  m = merge_histories({a, ro, history({})});
  ASSERT_EQ(m["samples"].size(), 2u);
  EXPECT_DOUBLE_EQ(m["samples"][1]["classes"]["web"]["stored_pps"].get<double>(), 20);
  // Garbage from a worker is skipped, not trusted.
  m = merge_histories({a, json("x"), json{{"interval_s", 10}, {"samples", {1, {{"t_ns", -5}}}}}});
  EXPECT_EQ(m["samples"].size(), 2u);
}

TEST(HistoryMerge, ImplausibleNumbersFromAWorkerAreNotTrusted) {
  // A worker's interval or capacity that is no sane number (negative, huge, not finite) is
  // not the grid nor the bound: the other workers' history is merged as if it were not there.
  json a = history({sample(kT0 + 3 * kS, 10), sample(kT0 + 13 * kS, 20)});
  for (json bad : {json(1e30), json(-10), json(1e300 * 1e300)}) {
    json h = {{"interval_s", bad}, {"capacity", bad}, {"samples", {sample(kT0 + 5 * kS, 1000)}}};
    json m = merge_histories({a, h});
    EXPECT_EQ(m["interval_s"], 10.0) << bad;
    EXPECT_EQ(m["capacity"], 1080) << bad;
    ASSERT_EQ(m["samples"].size(), 2u) << bad;
    EXPECT_EQ(m["samples"][1]["t_ns"], kT0 + 10 * kS) << bad;
    EXPECT_DOUBLE_EQ(m["samples"][1]["classes"]["web"]["stored_pps"].get<double>(), 20) << bad;
  }
  // A capacity below the samples keeps the newest ones.
  json small = a;
  small["capacity"] = 1;
  json m = merge_histories({small});
  ASSERT_EQ(m["samples"].size(), 1u);
  EXPECT_EQ(m["samples"][0]["t_ns"], kT0 + 10 * kS);
}

}  // namespace
}  // namespace tmach::cluster
