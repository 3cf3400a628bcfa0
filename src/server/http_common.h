// What the recorder's API (tm serve) and the cluster front-end (tm frontend) answer alike:
// errors as JSON, the bearer-token check, request parameters, pcap answers.
#pragma once

#include <atomic>
#include <cstdint>
#include <ctime>
#include <functional>
#include <initializer_list>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <regex>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "server/service.h"

namespace httplib {
class Server;
struct Request;
struct Response;
class DataSink;
}  // namespace httplib

namespace tmach::server {

// A request the API could not honour: HTTP status and message (service.h).
using ApiError = ServiceError;

// Content types of the answers.
inline constexpr const char* kJsonType = "application/json";
inline constexpr const char* kPcapType = "application/vnd.tcpdump.pcap";
inline constexpr const char* kMetricsType = "text/plain; version=0.0.4";

// Admission control: at most `limit` requests of a kind at once; beyond, 503.
class Admission {
 public:
  Admission(std::string what, int limit) : what_(std::move(what)), limit_(limit) {}
  // One more running, or Unavailable (503) "too many <what> (limit N); try again later".
  void admit();
  void release() { active_--; }
  int active() const { return active_.load(); }
  uint64_t rejected() const { return rejected_.load(); }

 private:
  std::string what_;
  int limit_;
  std::atomic<int> active_{0};
  std::atomic<uint64_t> rejected_{0};
};

// The flow answer's parameters: format (json, csv, text; default json), by (bytes, packets,
// duration; default bytes), top (a number; 0 = all). BadRequest when one is bad.
struct FlowParams {
  std::string format = "json", by = "bytes";
  size_t top = 0;
};
FlowParams flow_params(const httplib::Request& req);

// Answers {"error": msg, ...extra} with `status`.
void json_error(httplib::Response& res, int status, const std::string& msg,
                nlohmann::json extra = nlohmann::json::object());

// Compares without an early exit (the length is not secret, the content is).
bool const_time_equal(const std::string& a, const std::string& b);

// A query (or form) parameter, or "" when absent. ApiError(400) "NAME: contains a NUL byte" /
// "NAME: not valid UTF-8", and "NAME: given N times (it takes one value)": a second value is
// not silently dropped (only `class` takes several: each route reads those itself).
std::string param(const httplib::Request& req, const char* name);
// A true/false parameter: 1, true, yes / 0, false, no; nullopt when absent or empty; else
// ApiError(400) "NAME: expected true or false (1, 0, true, false, yes, no)".
std::optional<bool> bool_param(const httplib::Request& req, const char* name);
bool flag_param(const httplib::Request& req, const char* name);  // bool_param, false when absent

// A form body's parameters (application/x-www-form-urlencoded, which http_limits.cpp has
// httplib read as a plain body: up to the body limit, not httplib's 8 KiB) join the query
// string's in req.params. Every POST route calls it first (routes.cpp: post()).
void form_params(const httplib::Request& req);
// A query string's or a form body's parameters: NAME=VALUE joined by '&', each split at its
// first '=' (`filter=tcp[13]=2` is the filter `tcp[13]=2`; httplib's own parser kept what
// follows the last, `2`), percent-decoded, '+' a space. http_limits.cpp parses the query
// string with it in place of httplib's.
void parse_params(std::string_view text, std::multimap<std::string, std::string>& out);  // (httplib::Params)
std::string_view query_string(std::string_view target);  // what follows the '?' of a request target

// Refuses a parameter the route does not take (ApiError 400 "unknown parameter 'X' for GET
// PATH (it takes: ...)"), not ignoring it: an ignored `flow=` once streamed the whole TCP
// traffic. Every route calls it, with the names it takes.
void only_params(const httplib::Request& req, std::initializer_list<std::string_view> known);

// A whole-number parameter: `def` when absent, else a decimal number from 0 to `max`, or
// ApiError(400) "NAME: expected a number from 0 to MAX".
uint64_t param_u64(const httplib::Request& req, const char* name, uint64_t max, uint64_t def = 0);

// The request body as a JSON object, every string in it (keys included) checked for NUL bytes
// and valid UTF-8: ApiError(400) "body: not a JSON object" / "KEY: contains a NUL byte".
nlohmann::json json_body(const httplib::Request& req);
// Members of a JSON object: `def` when absent (or null), else the value of the expected type,
// or ApiError(400) "KEY: expected a string" / "KEY: expected true or false".
std::string json_string(const nlohmann::json& j, const char* key, const std::string& def = "");
std::optional<bool> json_bool(const nlohmann::json& j, const char* key);

// Writes into a chunked response; throws std::runtime_error("client went away") when the
// client is gone.
ByteSink chunk_sink(httplib::DataSink& sink);

// Connection limits and timeouts (http_limits.h: a thread per connection up to a cap,
// header and answer deadlines, request bodies capped before authentication, NUL bytes and
// invalid UTF-8 in the path and query parameters refused), bearer token (`token`,
// "Authorization: Bearer" in any case of the scheme, compared in constant time; /health stays
// open, and so do the web page and GET /api/v1/download/TICKET, whose ticket is its credential;
// none when empty), JSON answers for unknown endpoints and for exceptions (ApiError's
// status; 400 for std::invalid_argument, std::out_of_range and JSON errors, which only a
// client's input can raise in a route; else 500); counts every request in `requests`.
// It owns the server's new_task_queue, socket options, pre- and post-routing handlers, logger
// and Expect: 100-continue handler: set none of them after it (the limits depend on them).
// `routes`: a request none takes whose path one takes with another method is a 405 naming
// the methods (Allow), not a 404.
class Routes;
// X-TM-Via: the tm frontends a request has passed through, each one's instance_id(), the first
// first, separated by ", ". A frontend's requests to its workers carry the chain of the request
// it is serving with its own id added (via_chain()). A request whose chain has this process's id
// came back to it: a frontend listed among its own workers (its listen address in its worker
// list), or front-ends that list each other. It is refused (508) rather than answered again and
// again, each time counting the workers' packets once more. So is one that has passed
// kMaxViaHops front-ends: deeper than any tree of front-ends needs, it bounds the header. (A
// frontend older than the chain passes on its own id alone: a loop through one is not found.)
inline constexpr const char* kViaHeader = "X-TM-Via";
inline constexpr size_t kMaxViaHops = 8;
const std::string& instance_id();  // random, one per process
// The X-TM-Via value for this thread's requests to workers: the chain of the request the thread
// is serving (kept by install_common_handlers's pre-routing handler; none on a thread serving
// no request) and this process's id. Read it on the serving thread, before starting others.
std::string via_chain();
// Why a request with this X-TM-Via chain is refused (508), empty when it is not.
std::string via_loop(std::string_view chain);
void install_common_handlers(httplib::Server& s, const std::string& token, std::atomic<uint64_t>& requests,
                             time_t write_timeout_s, const Routes& routes);

// A server's routes, registered through here with the methods each takes, so that a wrong
// method on an existing path is answered 405 with an Allow header (RFC 9110), as curl -X and
// API clients expect, not 404 "no such endpoint". Filled before the server listens, then only
// read (by its error handler).
class Routes {
 public:
  using Handler = std::function<void(const httplib::Request&, httplib::Response&)>;
  explicit Routes(httplib::Server& s) : s_(s) {}
  void get(const std::string& pattern, Handler h);  // (HEAD too, as httplib answers it)
  void post(const std::string& pattern, Handler h);
  void del(const std::string& pattern, Handler h);
  // The methods some route takes `path` with, as an Allow header lists them ("GET, HEAD,
  // POST"); empty when no route takes it.
  std::string allowed(const std::string& path) const;

 private:
  void add(const char* method, const std::string& pattern);
  httplib::Server& s_;
  std::vector<std::pair<const char*, std::regex>> routes_;  // (method, pattern as httplib matches it)
};

}  // namespace tmach::server
