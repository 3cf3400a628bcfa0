// One interface for what tm answers, whoever answers it: the local store, with the live
// capture's hooks under tm serve -i (LocalService), a running tm serve / tm frontend over HTTP
// (HttpService), or the workers of a cluster, fanned out and merged (cluster::ClusterService).
// Each CLI command has one code path over a Service; the HTTP routes (routes.h) are written
// once over it and serve both tm serve and tm frontend.
//
// Requests carry the user's text (filter, times, durations): the answerer parses them, so
// relative times ("15m ago") are relative to its clock and errors read as its own.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace tmach::server {

// A request the answerer refuses, with the HTTP status a transport answers it with (a 500
// for any other exception); `detail` adds fields to the JSON error (a front-end's per-worker
// results). The CLI prints a BadRequest's message alone and exits with 2.
struct ServiceError : std::runtime_error {
  ServiceError(int s, const std::string& m, nlohmann::json d = nlohmann::json::object())
      : std::runtime_error(m), status(s), detail(std::move(d)) {}
  int status;
  nlohmann::json detail;
};
struct BadRequest : ServiceError {  // malformed: a filter syntax error, a bad time (400)
  explicit BadRequest(const std::string& m, nlohmann::json d = nlohmann::json::object())
      : ServiceError(400, m, std::move(d)) {}
};
struct NotFound : ServiceError {  // no such dynamic class, no such query status (404)
  explicit NotFound(const std::string& m, nlohmann::json d = nlohmann::json::object())
      : ServiceError(404, m, std::move(d)) {}
};
struct Conflict : ServiceError {  // not in this state: a read-only store has no dynamic classes (409)
  explicit Conflict(const std::string& m, nlohmann::json d = nlohmann::json::object())
      : ServiceError(409, m, std::move(d)) {}
};
struct Unavailable : ServiceError {  // admission, a writer that does not answer, --require-all (503)
  explicit Unavailable(const std::string& m, nlohmann::json d = nlohmann::json::object())
      : ServiceError(503, m, std::move(d)) {}
};

// The ServiceError of an HTTP status: BadRequest for 400, NotFound for 404, Conflict for 409,
// Unavailable for 503, else a ServiceError of that status.
[[noreturn]] void throw_for_status(int status, const std::string& m,
                                   nlohmann::json detail = nlohmann::json::object());

// Receives an answer's bytes (a nanosecond pcap stream, or rendered text) as they come.
using ByteSink = std::function<void(const char* data, size_t n)>;
// Receives each warning (without the "tm CMD: warning: " prefix) as it is found.
using Warn = std::function<void(const std::string&)>;
// Asked while an answer streams: empty to go on, else why it must stop ("shutting down",
// "time limit"); the answer then ends with Cancelled.
using StopCheck = std::function<std::string()>;
// An answer ended because its StopCheck said so.
struct Cancelled : std::runtime_error {
  using std::runtime_error::runtime_error;
};
// The warnings that name a tm frontend's workers missing from an answer (what they hold is
// unknown, not absent): those missing when it began ("workers missing from the answer: URL:
// why; ..."), and each that failed during a packet answer ("worker URL failed during the
// answer: why"). Made by these functions and recognised by missing_workers_of() (tm evidence),
// so that the two cannot drift apart.
std::string missing_workers_warning(const std::string& reasons);
std::string worker_failed_warning(const std::string& url, const std::string& why);
// The workers (with why) a warning names missing, when it is one of the above; else nullopt.
std::optional<std::string> missing_workers_of(const std::string& warning);

// The plan of a filter, as Service::explain gives it: {"filter", "kind", "parsed", "plan",
// "unplanned", "libpcap" (a split filter's part libpcap answers)}. BadRequest for a filter that does not
// parse, or (`check_libpcap`) that libpcap cannot compile for Ethernet; an answerer that knows its link types
// checks it for those (LocalService), a tm frontend leaves it to its workers.
nlohmann::json filter_plan(const std::string& filter, bool check_libpcap = true);
// The members of explain's "figures" (what running the query touched), each a count but "ms";
// a tm frontend sums them over its workers.
inline constexpr const char* kExplainFigures[] = {
    "segments", "skipped_by_time", "through_sidecar", "no_candidate", "read_whole", "candidates", "matched"};

// What a transport sends with an answer (HTTP headers: a front-end names its workers there).
using Headers = std::vector<std::pair<std::string, std::string>>;
// A packet answer's header: the link types of the segments it may hold ("1,113"), so that a
// tm frontend knows before the first packet whether the merged answer needs pcapng.
inline constexpr const char* kLinkTypesHeader = "X-TM-Link-Types";
// A packet answer's header: its number, under which the server keeps the warnings it found
// while writing it once it has ended (GET /api/v1/answers/ID).
inline constexpr const char* kAnswerIdHeader = "X-TM-Answer-Id";
// A whole answer's header (flows: its body is made before it is sent): the warnings found
// while making it, as a JSON array of strings on one line, at most about 4 KiB (the rest said
// as "... and N more (in the server's log)"). warnings_header() makes it, warnings_of_header()
// reads it back (nothing from a value that is not such an array).
inline constexpr const char* kWarningsHeader = "X-TM-Warnings";
std::string warnings_header(const std::vector<std::string>& warnings);
std::vector<std::string> warnings_of_header(const std::string& value);

struct QueryRequest {
  std::string filter, from, to;  // as given; empty: all packets, no bound
  std::vector<std::string> classes;
  bool require_all = false;  // a tm frontend: fail unless every worker answers in full
  // A Community ID ("1:..."): only the packets of the connections whose flow records have it
  // (and match `filter`). Empty: no such restriction.
  std::string community_id;
  // A flow's id (tm flows' "id", decimal): only the packets of its connection, from its first
  // packet to its last unless `from`/`to` say otherwise. Empty: no such restriction. A worker
  // without that flow (every one but the flow's, in a cluster) answers empty, as for an
  // unknown Community ID.
  std::string flow_id;
  // The answer's format: "pcap", "pcapng", or empty (auto): pcapng when the segments the query
  // may read hold more than one link type, else pcap (util/pcapng_writer.h).
  std::string format;
  // > 0: only the first `limit` matching packets, in time order (tcpdump -c).
  uint64_t limit = 0;
  // Service::explain only: also run the query, writing nothing, for what it touched (the
  // store's figures: segments, candidates, matches), as tm query --explain shows them.
  bool measure = false;
};

struct FlowRequest {
  std::string filter, from, to;
  std::string format = "text", by = "bytes";  // text, json, csv; bytes, packets, duration
  size_t top = 0;                             // 0: all
  bool require_all = false;
  std::string community_id;  // only the flows with this Community ID; empty: all
};

// New packets as they are recorded; with `history`, first the stored ones since history_from.
struct SubscribeRequest {
  std::string filter, history_from, to;
  std::vector<std::string> classes;
  bool history = false;
};

// A dynamic class: `host` into class `cls`, for a duration (`for_text`, "30m"; empty: for good).
struct ClassRequest {
  std::string host, cls, for_text;
};

// Active connections matching `filter`, largest first; top 0 = all.
struct ConnectionsRequest {
  std::string filter;
  size_t top = 0;
};

// Per-connection controls on the connections matching `filter`: suspend (1) or resume (0)
// the cutoff / the inactivity timeout; -1 = leave as it is.
struct ControlRequest {
  std::string filter;
  int suspend_cutoff = -1, suspend_timeout = -1;
};

// What a transport counted (routes.h), for the answerer to place in its stats and metrics.
struct ApiCounters {
  uint64_t queries = 0, flow_queries = 0, queries_failed = 0, queries_rejected = 0;
  uint64_t subscriptions_rejected = 0, query_packets = 0, subscriptions = 0, http_requests = 0;
  int active_queries = 0, active_subscriptions = 0;
  // Query latency (packet and flow queries): cumulative counts at each bound, count, sum.
  std::vector<double> latency_bounds;
  std::vector<uint64_t> latency_buckets;
  uint64_t latency_count = 0;
  double latency_sum = 0;
};

// A JSON answer and what goes with it.
struct Reply {
  nlohmann::json body;
  Headers headers;
  // A tm frontend's answer without some workers (X-TM-Missing-Reasons, else -Workers): the
  // warning to print (missing_workers_warning), empty when every worker answered.
  std::string missing_warning() const;
};

// A streamed answer whose request was accepted: the request's errors were thrown when it was
// opened (before a transport commits to a status), what remains is to write it.
class Stream {
 public:
  virtual ~Stream() = default;
  // Writes the answer into `out`, asking `stop` every few packets. Returns the summary line.
  // Throws Cancelled when `stop` ended it, or std::runtime_error when it failed midway.
  virtual std::string run(const ByteSink& out, const Warn& warn, const StopCheck& stop) = 0;
  Headers headers;           // known once opened: sent ahead of the data
  std::string content_type;  // of a packet answer, known once opened; empty: classic pcap
  uint64_t packets = 0;      // after run(): packets written (packet answers)
  // After run() (a local store's: once opened): the flow or Community ID asked for is in no
  // flow record here, so the answer is empty (the text is also among its warnings). A
  // front-end drops it from the workers that lack a connection another worker has.
  std::string no_connection;
  // Warnings (also among its warnings) that are about the missing connection alone (a flow
  // record that may be in a damaged flow file): dropped with no_connection.
  std::vector<std::string> no_connection_notes;
};

class Service {
 public:
  virtual ~Service() = default;
  // The matching packets, in time order, as one nanosecond pcap (or pcapng: q.format) stream
  // into `out`. Returns the summary line, which names the format. Throws BadRequest, or
  // std::runtime_error.
  virtual std::string query(const QueryRequest& q, const ByteSink& out, const Warn& warn) = 0;
  // The matching flow records, rendered in q.format into `out`. Returns the summary line
  // (empty when there is none to give).
  virtual std::string flows(const FlowRequest& q, const ByteSink& out, const Warn& warn) = 0;

  // The same in two steps, for a transport that must know the outcome before it answers:
  // open checks the request (and throws its errors), the stream writes. By default the
  // stream makes the one-step call when it runs (its errors then come while writing).
  virtual std::unique_ptr<Stream> open_query(const QueryRequest& q);
  virtual std::unique_ptr<Stream> open_flows(const FlowRequest& q);
  // Live packets (and the history first): runs until `stop` says stop, or the source ends.
  virtual std::unique_ptr<Stream> open_subscription(const SubscribeRequest& q) = 0;

  virtual Reply health() = 0;
  // The stats document / the Prometheus exposition, with the transport's counters in them.
  virtual Reply stats(const ApiCounters& api) = 0;
  virtual std::string metrics(const ApiCounters& api) = 0;
  // Dynamic classes: Conflict where nothing captures.
  virtual Reply class_set(const ClassRequest& r) = 0;
  virtual Reply class_list() = 0;
  virtual Reply class_remove(const std::string& host) = 0;  // NotFound when it has none
  virtual Reply connections(const ConnectionsRequest& r) = 0;
  virtual Reply control(const ControlRequest& r) = 0;

  // What tm query --explain shows of a filter, without running it: {"filter", "kind"
  // ("all", "indexed", "indexed+libpcap" or "scan"), "parsed", "plan" (the planner's lines),
  // "unplanned", "libpcap"}.
  // BadRequest with the parser's caret message for a syntax error. An answerer that holds a
  // store (LocalService) checks the request as a query does, plans the filter the query would
  // run (with --flow/--community-id's connections: "query_filter") and gives its time range
  // ("from_ns", "to_ns": null for no end); with q.measure it also runs the query, writing
  // nothing, and adds "figures" (explain_figures) and "warnings"; `stop` is asked as the
  // query runs. (A tm frontend adds which workers it would ask, and their figures summed.)
  virtual Reply explain(const QueryRequest& q, const StopCheck& stop);
  // {"packets": N, "summary", "warnings": [...]}: how many packets query(q) answers (every link
  // type: pcapng unless q.format says pcap), counted as they stream (none sent), with the
  // answer's warnings and headers (a front-end's missing workers). Throws as open_query and
  // Stream::run do. The default needs open_query's stream to count its packets (`packets`).
  virtual Reply count(const QueryRequest& q, const StopCheck& stop);
  // Recent rates, one sample per interval (history.h): {"interval_s", "samples": [...]};
  // no samples where nothing records (a read-only store, a tm frontend).
  virtual Reply history();
};

}  // namespace tmach::server
