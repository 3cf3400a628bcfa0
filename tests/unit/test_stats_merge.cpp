// A front-end's stats: its workers' sections put together (stats_merge.h).
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "cluster/stats_merge.h"

namespace tmach::cluster {
namespace {

using nlohmann::json;

TEST(StatsMerge, CountsAddUpAndAnInterfaceIsListedOnce) {
  // Two workers on one host sharing eth0 (a fanout), one of them capturing eth1 as well.
  json a = {{"interfaces", {"eth0"}}, {"packets", 10u}, {"memory", {{"rss", 100u}}}};
  json b = {{"interfaces", {"eth0", "eth1"}}, {"packets", 5u}, {"memory", {{"rss", 50u}}}};
  json into;
  add_stats(into, a);
  add_stats(into, b);
  EXPECT_EQ(into["interfaces"], json({"eth0", "eth1"}));
  EXPECT_EQ(into["packets"], 15u);
  EXPECT_EQ(into["memory"]["rss"], 150u);
  // Other arrays are still concatenated as they are.
  json s;
  add_stats(s, json{{"warnings", {"w"}}});
  add_stats(s, json{{"warnings", {"w"}}});
  EXPECT_EQ(s["warnings"], json({"w", "w"}));
}

TEST(StatsMerge, TimesTakeTheirBoundsAndTheRatioIsRecomputed) {
  json into;
  add_stats(
      into,
      json{{"first_ns", 2000000000u}, {"last_ns", 3000000000u}, {"pcap_bytes", 100u}, {"index_bytes", 10u}});
  add_stats(
      into,
      json{{"first_ns", 1000000000u}, {"last_ns", 4000000000u}, {"pcap_bytes", 100u}, {"index_bytes", 30u}});
  EXPECT_EQ(into["first_ns"], 1000000000u);
  EXPECT_EQ(into["last_ns"], 4000000000u);
  EXPECT_DOUBLE_EQ(into["index_ratio"].get<double>(), 0.2);
  // A worker's index_bytes that is no number is not used (and throws nothing).
  json odd;
  add_stats(odd, json{{"pcap_bytes", 100u}, {"index_bytes", "x"}});
  EXPECT_NO_THROW(add_stats(odd, json{{"pcap_bytes", 1u}}));
  EXPECT_FALSE(odd.contains("index_ratio"));
}

}  // namespace
}  // namespace tmach::cluster
