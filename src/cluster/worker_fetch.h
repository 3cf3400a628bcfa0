// The front-end's side of talking to workers: a client per request with the worker's time
// limits and token, plain requests fanned out to several workers at once, and streamed
// answers (packet queries, subscriptions) fetched by a thread per worker into a bounded queue
// (pcap_merge.h), with the outcome of each kept for the answer's report of missing workers.
#pragma once

#include <httplib.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "cluster/cluster_config.h"
#include "cluster/pcap_merge.h"
#include "server/service.h"

namespace tmach::cluster {

// Per worker, as /metrics and /stats show them.
struct WorkerCounters {
  std::atomic<bool> up{true};
  std::atomic<uint64_t> requests{0}, failures{0}, packets{0};
};

// A header value on one line.
std::string one_line(std::string s);
// A client for one request to `w`: its timeout for connecting, reading and writing; its token;
// `via` as its X-TM-Via (server::via_chain() of the thread serving the request that asks).
std::unique_ptr<httplib::Client> make_client(const WorkerConfig& w, const std::string& via);
// The error text of a worker's non-2xx answer ({"error": ...} or the raw body).
std::string error_text(int status, const std::string& body);

// A plain (not streamed) request to one worker.
struct Reply {
  int status = 0;  // 0: no answer
  std::string body;
  std::vector<std::string> warnings;  // its server::kWarningsHeader
  std::string error;                  // empty when 2xx
  bool ok() const { return status >= 200 && status < 300; }
};

using Request = std::function<httplib::Result(httplib::Client&)>;

// Runs `req` on each worker of `which` at once (a thread each) and waits for all; each
// bounded by its worker's time limit. Counts requests and failures in `wc`.
std::vector<Reply> fan_out(const ClusterConfig& cfg, std::vector<std::unique_ptr<WorkerCounters>>& wc,
                           const std::vector<size_t>& which, const Request& req);

// One worker's streamed answer (a packet query or a subscription), fetched by a thread of
// its own into a bounded queue.
struct Fetch {
  enum class State { kWaiting, kStreaming, kFailed, kDone };
  size_t idx = 0;
  std::string url;
  double timeout_s = 0;
  std::unique_ptr<httplib::Client> cl;
  std::shared_ptr<PacketQueue> q;
  std::mutex mu;
  std::condition_variable cv;
  State state = State::kWaiting;  // mu
  bool started = false;           // mu: answer headers were 200 (a later failure is mid-stream)
  int status = 0;                 // mu
  std::string reason;             // mu: why it failed
  std::string error_body;         // non-200 body
  std::string link_types;         // mu: the answer's X-TM-Link-Types ("1,113"; server/service.h)
  std::string answer_id;          // mu: the answer's X-TM-Answer-Id (its warnings, answer_warnings())
  std::atomic<bool> cancelled{false};
  bool close_queue = true;  // false when several fetches share one queue (subscriptions)
  uint64_t packets = 0;
  std::thread th;

  // The thread's body: sends `req` (worker_request()), packets into `q`, the outcome into
  // state/reason.
  void run(const httplib::Request& req);
  // Waits until the worker has sent its answer's status (or failed), at most until
  // `deadline`. Returns false (and gives the worker up) when it has not.
  bool wait_started(std::chrono::steady_clock::time_point deadline);
  // Stops the fetch soon: its pushes fail, its connection is shut down.
  void give_up();
  bool failed();
};

// The fetches of one request; the destructor gives up those still running and joins all.
struct FetchSet {
  std::vector<std::unique_ptr<Fetch>> f;
  ~FetchSet() { end(); }
  void end();
  // Waits for every fetch's answer to start, each until `t0` plus its worker's timeout.
  void wait_started(std::chrono::steady_clock::time_point t0);
};

// A request to a worker: GET path?params, or, with `post_if_long` when that request line would
// be longer than a worker takes (kMaxRequestLine, server/http_limits.h: a long filter), a POST
// of the parameters as a form body, which the routes taking a filter (/api/v1/query, /count,
// /explain, /flows, /subscribe) take as their GET's.
httplib::Request worker_request(const std::string& path, const httplib::Params& params, bool post_if_long);

// Starts one fetch per worker of `which` for `req`, each with a queue of `queue_bytes` —
// or, with `shared`, all into that one queue (a subscription: packets interleave as they
// come; the queue is then its owner's to close). `read_timeout_s` > 0 sets the socket's
// read limit; 0: a little after the longer of the worker's timeout and the query's.
std::shared_ptr<FetchSet> start_fetches(const ClusterConfig& cfg, const std::vector<size_t>& which,
                                        const httplib::Request& req, size_t queue_bytes,
                                        std::shared_ptr<PacketQueue> shared = nullptr,
                                        double read_timeout_s = 0);
// Which workers answered: those that did not, as {url: reason} (empty when all did). One
// definition for every route that asks several workers: a fetch set's (packet queries), or
// the plain replies to the workers of `which` (flows, stats, history).
nlohmann::json missing_of(FetchSet& fs);
nlohmann::json missing_of(const ClusterConfig& cfg, const std::vector<size_t>& which,
                          const std::vector<Reply>& replies);
// The warnings each worker whose answer ended in full found while writing it (a missing or
// damaged segment; GET /api/v1/answers/ID on the worker, asked of all at once), in worker order,
// each as "worker URL: warning"; a worker whose warnings cannot be had is named as such. The
// fetches must have ended (FetchSet::end).
// A flow or Community ID is on one worker (or a few): the others say they have no record of
// it (their answer's no_connection). That is no warning of the front-end's answer: it is left
// out, and counted: `without` of the `answered` workers (whose warnings were had) said it, the
// first one's text in `no_connection`; `ended` workers' answers ended in full (those of an
// older tm, or whose warnings could not be had, among them).
struct AnswerWarnings {
  std::vector<std::string> warnings;
  size_t ended = 0, answered = 0, without = 0;
  std::string no_connection;
  // Those workers' warnings about the missing connection alone (its record may be in a damaged
  // flow file: server::Stream::no_connection_notes), each naming its worker; left out of
  // `warnings`, said only when no worker has the connection.
  std::vector<std::string> no_connection_notes;
};
AnswerWarnings answer_warnings(const ClusterConfig& cfg, FetchSet& fs);
// "url: why; url: why" of missing_of()'s answer.
std::string reasons_of(const nlohmann::json& missing);
// An answer's X-TM-Missing-Workers ("url url") and X-TM-Missing-Reasons (reasons_of()) headers,
// when any is missing: what tm query/flows --server warn of.
void add_missing_headers(server::Headers& h, const nlohmann::json& missing);

}  // namespace tmach::cluster
