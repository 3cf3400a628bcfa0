// The daemon's HTTP/1.1 API (cpp-httplib): queries, flows, stats, metrics, health, dynamic
// classes and subscriptions over a store, recorded live (tm serve -i) or read-only.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "query/expr.h"
#include "server/http_common.h"
#include "store/catalog.h"

namespace httplib {
class Server;
}

namespace tmach::server {

struct ApiOptions {
  std::string store;
  std::string host = "127.0.0.1";
  int port = 8910;
  std::string token;                    // bearer token; empty: no authentication (loopback only)
  int max_queries = 4;                  // concurrent /query and /flows; beyond: 503
  int max_subscriptions = 8;            // concurrent /subscribe; beyond: 503
  double query_seconds = 300;           // a query running longer is cut off
  double subscription_seconds = 86400;  // a subscription lasting longer is ended
};

// One Prometheus exposition, built sample by sample (HELP and TYPE once per family).
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

// A packet handed to a subscription (copied: owned by the queue).
struct SubPacket {
  uint64_t ts_ns;
  uint32_t linktype, wirelen;
  std::string data;
};

// A live subscription: the writer thread offers every appended packet; the HTTP thread
// drains the queue. Bounded: overflow is counted, never blocks the writer.
class Subscriber;

// What tm serve adds when it captures. Every method is called from API threads.
class Backend {
 public:
  virtual ~Backend() = default;
  // Makes every packet captured so far visible on disk (rings drained, buffers flushed).
  virtual bool sync() = 0;
  virtual nlohmann::json stats() = 0;
  virtual void metrics(Metrics& m) = 0;
  // Dynamic classes. Throw ApiError for bad input.
  virtual nlohmann::json class_set(const std::string& host, const std::string& cls, uint64_t for_ns) = 0;
  virtual nlohmann::json class_list() = 0;
  virtual bool class_remove(const std::string& host) = 0;
  // Registers `s` in the writer thread right after a flush; returns the store as it was on
  // disk at that moment (open segments limited to their size then). Throws ApiError.
  virtual store::Catalog subscribe(const std::shared_ptr<Subscriber>& s) = 0;
  virtual void unsubscribe(const std::shared_ptr<Subscriber>& s) = 0;
  // Active connections matching `e`, largest first (top 0 = all); and per-connection
  // controls on them: suspend (1) or resume (0) the cutoff / the inactivity timeout, -1 = keep.
  virtual nlohmann::json connections(const query::Expr& e, size_t top) = 0;
  virtual nlohmann::json control(const query::Expr& e, int suspend_cutoff, int suspend_timeout) = 0;
};

class ApiServer {
 public:
  // `live` may be null: the store is served read-only.
  ApiServer(ApiOptions o, Backend* live);
  ~ApiServer();
  // Binds the listening socket (port 0: one the system picks); throws std::runtime_error when it cannot.
  void bind();
  int port() const { return o_.port; }  // after bind(): the port bound
  // Serves until stop() (blocking).
  void serve();
  // Stops listening, ends running queries and subscriptions soon.
  void stop();

 private:
  void routes();
  ApiOptions o_;
  Backend* live_;
  std::unique_ptr<httplib::Server> svr_;
  std::atomic<bool> stopping_{false};
  Admission queries_admit_{"concurrent queries", o_.max_queries};  // /query and /flows
  Admission subs_admit_{"subscriptions", o_.max_subscriptions};    // /subscribe
  std::atomic<uint64_t> queries_{0}, query_errors_{0}, flow_queries_{0};
  std::atomic<uint64_t> query_packets_{0}, query_bytes_{0}, subs_total_{0}, http_requests_{0};
  std::mutex lat_mu_;
  std::vector<double> lat_bounds_ = {0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30};
  std::vector<uint64_t> lat_buckets_ = std::vector<uint64_t>(8, 0);
  uint64_t lat_count_ = 0;
  double lat_sum_ = 0;
  void observe_latency(double s);
};

}  // namespace tmach::server
