// tm frontend: one HTTP API (the same as a worker's, see server/api.h) in front of several
// tm serve workers. Packet queries fan out concurrently and are merged by timestamp as the
// answers stream in (pcap_merge.h); flows are merged and ranked over the union; stats,
// metrics, dynamic classes, connections and subscriptions go to every worker. Workers that
// do not answer are named in the answer (headers, and a status endpoint for failures
// after the answer has started) instead of hanging it.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "cluster/cluster_config.h"
#include "cluster/worker_fetch.h"
#include "server/http_common.h"

namespace httplib {
class Server;
}

namespace tmach::cluster {

class Frontend {
 public:
  explicit Frontend(ClusterConfig cfg);
  ~Frontend();
  void bind();   // throws std::runtime_error when the address cannot be bound
  void serve();  // blocks until stop()
  void stop();

 private:
  void routes();  // authentication and error handling, then the groups below
  void report_routes();
  void query_routes();
  void flow_routes();
  void stats_routes();
  void state_routes();
  void subscribe_routes();
  // select_workers(), unless a worker reports a share (tm serve --worker-id) other than the
  // configuration gives it: then every worker, and why.
  Selection select(const query::ParseResult& pr, const BalanceInfo& b);
  std::string share_mismatch();  // "" when every worker that reports its share agrees
  void remember(uint64_t id, nlohmann::json status);
  ClusterConfig cfg_;
  std::unique_ptr<httplib::Server> svr_;
  std::vector<std::unique_ptr<WorkerCounters>> wc_;
  std::atomic<bool> stopping_{false};
  server::Admission queries_admit_{"concurrent queries", cfg_.max_queries};  // packet and flow queries
  server::Admission subs_admit_{"subscriptions", cfg_.max_subscriptions};
  std::atomic<uint64_t> queries_{0}, flow_queries_{0}, partial_{0}, http_requests_{0}, next_id_{1};
  std::mutex status_mu_;
  std::map<uint64_t, nlohmann::json> status_;  // the last query answers' outcome, by id
  std::deque<uint64_t> status_order_;
  std::mutex share_mu_;
  std::vector<int8_t> share_checked_;  // per worker: 0 not yet (down), 1 agrees or does not say
  std::vector<std::chrono::steady_clock::time_point> share_retry_;  // a down worker: not before
  std::string share_why_;                                           // the first disagreement found
};

}  // namespace tmach::cluster
