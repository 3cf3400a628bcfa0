// One Prometheus exposition, built sample by sample (HELP and TYPE once per family); and the
// samples of what a transport counts (ApiCounters), which tm serve and tm frontend both show.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "server/service.h"

namespace tmach::server {

class Metrics {
 public:
  void add(const std::string& name, const std::string& type, const std::string& help, double value,
           const std::vector<std::pair<std::string, std::string>>& labels = {},
           const std::string& suffix = "");
  std::string text() const;

 private:
  struct Family {
    std::string name, type, help;
    std::vector<std::string> samples;
  };
  std::vector<Family> fam_;
};

// tm_queries_total, tm_flow_queries_total, tm_queries_failed_total, tm_queries_rejected_total
// (`rejected`), tm_queries_active, tm_query_packets_total, tm_query_duration_seconds,
// tm_subscriptions_active, tm_subscriptions_total, tm_http_requests_total.
void add_api_metrics(Metrics& m, const ApiCounters& c, uint64_t rejected);

}  // namespace tmach::server
