// The Service of a cluster (tm frontend): the same answers as one worker's, from several tm
// serve workers. Packet queries fan out concurrently and are merged by timestamp as the
// answers stream in (pcap_merge.h); flows are merged and ranked over the union (flow_merge.h);
// stats, metrics, dynamic classes, connections and subscriptions go to every worker. Workers
// that do not answer are named in the answer (headers, and a query status for failures after
// the answer has started) instead of hanging it. Worker selection (selection.h) asks only the
// workers that can hold a query's packets.
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
#include "cluster/selection.h"
#include "server/service.h"

namespace tmach::cluster {

struct WorkerCounters;

class ClusterService : public server::Service {
 public:
  explicit ClusterService(ClusterConfig cfg);
  ~ClusterService() override;
  const ClusterConfig& config() const { return cfg_; }

  std::string query(const server::QueryRequest& q, const server::ByteSink& out,
                    const server::Warn& warn) override;
  std::string flows(const server::FlowRequest& q, const server::ByteSink& out,
                    const server::Warn& warn) override;
  // A packet query's headers: X-TM-Query-Id (its status, query_status(), once it ended),
  // X-TM-Workers (those asked), X-TM-Missing-Workers and X-TM-Missing-Reasons.
  std::unique_ptr<server::Stream> open_query(const server::QueryRequest& q) override;
  std::unique_ptr<server::Stream> open_flows(const server::FlowRequest& q) override;
  // Every worker's live stream, interleaved as packets arrive (each worker's own order is
  // kept; across workers, arrival order at the front-end).
  std::unique_ptr<server::Stream> open_subscription(const server::SubscribeRequest& q) override;
  server::Reply health() override;
  server::Reply stats(const server::ApiCounters& api) override;
  std::string metrics(const server::ApiCounters& api) override;
  server::Reply class_set(const server::ClassRequest& r) override;
  server::Reply class_list() override;
  server::Reply class_remove(const std::string& host) override;
  server::Reply connections(const server::ConnectionsRequest& r) override;
  server::Reply control(const server::ControlRequest& r) override;

  // What only a front-end answers: the cluster as configured (with each worker's last state),
  // the outcome of a recent packet query (NotFound when running or forgotten), and which
  // workers a filter asks and why.
  nlohmann::json cluster_json() const;
  nlohmann::json query_status(uint64_t id);
  // The plan (Service::explain) and which workers the query would ask; with q.measure, their
  // figures summed ("figures", "ms" the front-end's own) and their warnings.
  server::Reply explain(const server::QueryRequest& q, const server::StopCheck& stop) override;
  // The workers' rate histories summed (history_merge.h), with "workers" (the URLs that
  // answered) and "missing" ({URL: why}; also as X-TM-Missing-Workers/-Reasons headers); 502
  // when no worker answers.
  server::Reply history() override;

 private:
  class QueryStream;
  class SubscriptionStream;
  // select_workers(), unless a worker reports a share (tm serve --worker-id) other than the
  // configuration gives it: then every worker, and why.
  Selection select(const query::ParseResult& pr, const BalanceInfo& b);
  std::string share_mismatch();  // "" when every worker that reports its share agrees
  void remember(uint64_t id, nlohmann::json status);
  // What an answer does about its workers that did not answer, `missing` ({url: why} of
  // missing_of()) of `asked`: throws when none did (502) or when all were required (503).
  void check_answered(const nlohmann::json& missing, size_t asked, bool require_all);
  std::vector<size_t> all_workers() const;
  ClusterConfig cfg_;
  std::vector<std::unique_ptr<WorkerCounters>> wc_;
  std::atomic<uint64_t> partial_{0}, next_id_{1};
  std::mutex status_mu_;
  std::map<uint64_t, nlohmann::json> status_;  // the last query answers' outcome, by id
  std::deque<uint64_t> status_order_;
  std::mutex share_mu_;
  std::vector<int8_t> share_checked_;  // per worker: 0 not yet (down), 1 agrees or does not say
  std::vector<std::chrono::steady_clock::time_point> share_retry_;  // a down worker: not before
  std::string share_why_;                                           // the first disagreement found
};

}  // namespace tmach::cluster
