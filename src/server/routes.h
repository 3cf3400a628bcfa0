// The HTTP API, written once over a Service (service.h): tm serve gives it a LocalService,
// tm frontend a cluster::ClusterService. Here is all that is HTTP: parameters and JSON bodies
// into requests, admission control (503), content types, the bearer token, ServiceError into
// status codes and JSON errors, streamed answers as chunked responses with the query time
// limit and the cut at shutdown, the request counters and the latency histogram (which the
// Service places in its stats and metrics).
#pragma once

#include <atomic>
#include <cstdint>
#include <ctime>
#include <deque>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <vector>

#include "server/download_tickets.h"
#include "server/http_common.h"
#include "server/listen.h"
#include "server/service.h"

namespace httplib {
class Server;
}

namespace tmach::server {

struct RouteOptions {
  std::string token;                    // bearer token; empty: no authentication
  int max_queries = 4;                  // concurrent /query and /flows; beyond: 503
  int max_subscriptions = 8;            // concurrent /subscribe; beyond: 503
  double query_seconds = 300;           // a packet query running longer is cut off
  double subscription_seconds = 86400;  // a subscription lasting longer is ended
  time_t write_timeout_s = 60;          // how long a client may stop reading
  TlsFiles tls;                         // HTTPS when tls.on() (tls_server.h)
};

class HttpApi {
 public:
  HttpApi(Service& svc, RouteOptions o);
  ~HttpApi();
  // The server's routes, for those of one kind of server only (the front-end's /api/v1/cluster).
  Routes& routes() { return routes_; }
  httplib::Server& server() { return *svr_; }  // (tests bind it themselves)
  // Binds the listening socket; throws std::runtime_error naming `as_written` when it cannot.
  // Returns the port bound (the system's choice for port 0).
  int bind(const std::string& host, int port, const std::string& as_written);
  void serve();  // blocks until stop()
  void stop();   // stops listening, ends running queries and subscriptions soon
  ApiCounters counters();

 private:
  void query_routes();
  void download_routes();
  // The answer to a packet query, streamed; a HEAD's headers only, from the query's plan.
  void stream_query(httplib::Response& res, QueryRequest q, bool head = false);
  // A packet answer's warnings, kept for its client to ask for (GET /api/v1/answers/ID).
  // `no_connection`: the stream's (Stream::no_connection), given with them.
  void keep_warnings(uint64_t id, std::vector<std::string> warnings, const Stream* stream);
  void state_routes();
  void subscribe_routes();
  void web_routes();
  void observe_latency(double s);
  // A whole answer that runs a query (a count, a measured plan): in a query slot, with the
  // query time limit and shutdown asked as it runs (`run`'s StopCheck), its latency observed.
  Reply run_admitted(const std::function<Reply(const StopCheck&)>& run);
  Service& svc_;
  RouteOptions o_;
  std::unique_ptr<httplib::Server> svr_;
  Routes routes_{*svr_};  // (every route is registered through it: a wrong method is a 405)
  std::atomic<bool> stopping_{false};
  Admission queries_admit_{"concurrent queries", o_.max_queries};  // /query and /flows
  DownloadTickets tickets_;                                        // /api/v1/download
  Admission subs_admit_{"subscriptions", o_.max_subscriptions};    // /subscribe
  std::atomic<uint64_t> queries_{0}, query_errors_{0}, flow_queries_{0};
  // The warnings of the last packet answers (a pcap answer has no room for them, and httplib
  // 0.11.4 sends no trailer): the answer's X-TM-Answer-Id names them, for the client to fetch
  // once the answer has ended (tm query --server -w prints them as --store does).
  static constexpr size_t kKeptAnswers = 1024;
  // An answer's id is drawn at random (63 bits, never 0): another client cannot guess the ids
  // of answers it did not ask for, as it could count them.
  std::mutex answers_mu_;
  std::mt19937_64 answer_ids_{std::random_device{}()};
  struct KeptAnswer {
    uint64_t id;
    std::vector<std::string> warnings;
    std::string no_connection;
    std::vector<std::string> no_connection_notes;
  };
  std::deque<KeptAnswer> answers_;  // oldest first
  std::atomic<uint64_t> query_packets_{0}, subs_total_{0}, http_requests_{0};
  std::mutex lat_mu_;
  std::vector<double> lat_bounds_ = {0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30};
  std::vector<uint64_t> lat_buckets_ = std::vector<uint64_t>(8, 0);
  uint64_t lat_count_ = 0;
  double lat_sum_ = 0;
};

}  // namespace tmach::server
