// Limits of the HTTP servers (tm serve, tm frontend) against slow, stalled and greedy clients:
// each connection on a thread of its own up to a cap, a deadline for each request's header
// (and body), an optional deadline for an answer, request bodies capped before anything reads
// them. install_common_handlers (http_common.h) installs them; routes only opt in to an
// answer deadline (limit_answer_time).
//
// How: cpp-httplib 0.11.4 hands each accepted socket to a TaskQueue as an opaque task. tm's
// queue learns the socket from its own accept() (this file defines accept(), which the
// library calls through the dynamic linker; it calls accept4() and remembers the socket for
// the accepting thread), and a watchdog thread shuts down (shutdown(2)) the socket of a
// connection past its deadline: the connection's thread then sees its reads and writes fail
// and ends, which frees it (and a query's slot) at once. The watchdog holds a duplicate
// descriptor of each connection's socket (one more descriptor per connection), so that a cut
// never reaches a socket that took the number of one httplib has just closed.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace httplib {
class Server;
struct Request;
struct Response;
}  // namespace httplib

namespace tmach::server {

struct HttpLimits {
  // Connections open at once. At the cap, the connection that has waited longest for its
  // request header is closed to make room; when none waits (all are answering), the new
  // connection is answered 503 and closed.
  size_t max_connections = 256;
  // The request line and headers must arrive within this time of the connection (or of the
  // end of the previous answer plus httplib's 5 s keep-alive wait), and at most
  // max_header_bytes of them; a request body within this time too (plus 1 s per 64 KiB).
  double header_seconds = 10;
  size_t max_header_bytes = 64 << 10;
  // Request bodies (every method and route; checked before authentication): larger ones are
  // refused with 413, bodies without Content-Length (chunked) with 411.
  size_t max_body_bytes = 1 << 20;
  // httplib's per-recv timeout (no byte for this long ends the connection). A second past
  // header_seconds: a header that stalls is then the watcher's cut (closed without an answer,
  // counted in tm_http_header_timeouts_total), not httplib's read timeout, which answered it
  // "400 malformed request" and counted nothing.
  double read_seconds = 11;
};

// What the limits did, for /metrics and /stats.
struct HttpLimitCounters {
  std::atomic<uint64_t> connections{0};      // accepted
  std::atomic<uint64_t> rejected{0};         // answered 503: too many connections
  std::atomic<uint64_t> evicted{0};          // closed at the cap while waiting for a header
  std::atomic<uint64_t> header_timeouts{0};  // closed: header (or body) not complete in time
  std::atomic<uint64_t> answer_timeouts{0};  // closed: answer still being written at its deadline
  std::atomic<uint64_t> bodies_refused{0};   // 411/413
  std::atomic<uint64_t> bad_text{0};         // 400: NUL or invalid UTF-8 in a parameter
};
HttpLimitCounters& http_limit_counters();
// The same as Prometheus counters: tm_http_connections_total, tm_http_connections_rejected_total,
// ..._evicted_total, tm_http_header_timeouts_total, tm_http_answer_timeouts_total,
// tm_http_bodies_refused_total, tm_http_bad_text_total.
struct HttpLimitMetric {
  const char* name;
  const char* help;
  uint64_t value;
};
std::vector<HttpLimitMetric> http_limit_metrics();

// Installs the connection queue (svr.new_task_queue), timeouts and payload limit. The
// per-request checks are run by install_common_handlers' pre-routing handler through
// check_request_limits, and the end of each answer is reported by answer_written.
void install_connection_limits(httplib::Server& s, const HttpLimits& l);
// `wanted` connections, or fewer when the open-file limit (RLIMIT_NOFILE, its soft value) would
// not leave the process descriptors of its own past them (segments, flow files, sidecars, the
// queries' files): each connection holds one, and under `ulimit -n 16` idle connections took
// the writer's. At most half of what the limit leaves past kFdReserve, and at least 4; a
// warning in the log when it cuts.
inline constexpr size_t kFdReserve = 128;
size_t connections_within_fd_limit(size_t wanted);

// Binds `s` to host:port (0: any free port) as bind_to_port/bind_to_any_port do, then raises
// the listening backlog from httplib's 5 to SOMAXCONN, before any thread serves the socket.
// Needs install_connection_limits first. Returns the port bound, or -1.
int bind_listening(httplib::Server& s, const std::string& host, int port);

// The request's own limits, checked before authentication: its body (size, framing), its
// text (path and query parameters: no NUL byte, valid UTF-8). Fills `res` and returns true
// when the request is refused (the connection is then closed after the answer).
bool check_request_limits(const httplib::Request& req, httplib::Response& res, const HttpLimits& l);

// Called by the post-routing and logger handlers: the answer starts / was written.
void answer_starts(httplib::Response& res);
void answer_written();

// The current request's answer must be written by `seconds` from now: past that, a writer
// blocked on a client that does not read is cut off (its socket shut down; the write fails
// and the handler ends as if the client had gone). Call from the route's thread.
void limit_answer_time(double seconds);

// The allocator's free memory is given back to the system (malloc_trim) when the current
// connection ends: for answers that build large structures (flows), whose freed memory glibc
// would otherwise keep in the arenas of the threads that used it.
void trim_memory_after_connection();

// Closes the current connection once its answer is written (no further request on it).
void close_after_answer();

// Tests only: `hook` is called with the socket a connection is cut by (under the limits' lock,
// on the watchdog's or the connection's thread) just before it is shut down; empty: none. Set
// it while no server runs.
void set_cut_hook_for_test(std::function<void(int)> hook);

// A form body (application/x-www-form-urlencoded) is read by httplib as a plain body, under
// this Content-Type, which check_request_limits gives it: httplib 0.11.4 (a shared library:
// its CPPHTTPLIB_FORM_URL_ENCODED_PAYLOAD_MAX_LENGTH cannot be raised) refuses a form over
// 8 KiB with a bare 413, while the body limit here is max_body_bytes. The routes parse it
// (form_params, http_common.h).
inline constexpr const char* kDeferredFormType = "application/x-tm-deferred-form";
// A form body's parameters at most (every '&'-separated piece counts, empty ones too): a
// longer one is a 400 before it is parsed (1 MiB of "&" would be half a million entries). No
// route takes more than a few, but a class list may name every class (conn::kMaxClasses, 512),
// each a `class` parameter.
inline constexpr size_t kMaxFormParams = 1024;

// httplib's own limit on the request line (CPPHTTPLIB_REQUEST_URI_MAX_LENGTH in the shared
// library): a longer one is answered 414 before it is parsed. Each header line has the same
// limit (CPPHTTPLIB_HEADER_MAX_LENGTH): a longer one is a 400.
inline constexpr size_t kMaxRequestLine = 8192;
// Whether a GET of `target` (path?query) fits that limit ("GET " TARGET " HTTP/1.1", with room
// to spare); a client POSTs the parameters of one that does not (tm query --server, a front-end
// asking its workers).
inline bool get_fits(size_t target_bytes) { return target_bytes + 64 <= kMaxRequestLine; }
// The longest filter a subscription takes (routes.cpp): it is evaluated for every packet the
// writer appends, not once per query.
inline constexpr size_t kMaxSubscriptionFilter = 8192;

// The text checks: "" when `s` is valid UTF-8 without NUL bytes, else why not.
std::string text_problem(const std::string& s);

}  // namespace tmach::server
