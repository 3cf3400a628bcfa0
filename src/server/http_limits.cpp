#include "server/http_limits.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <httplib.h>
#include <malloc.h>
#include <spdlog/spdlog.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <condition_variable>
#include <cstddef>
#include <functional>
#include <list>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>
#include <utility>

#include "server/http_common.h"
#include "util/json_text.h"

namespace {
// The socket the calling thread accepted last (see accept() below); -1 when unknown.
thread_local int t_accepted = -1;
// The socket httplib created last on this thread for listening (its socket_options hook).
thread_local int t_socket = -1;
}  // namespace

// cpp-httplib's accept loop calls accept() through the dynamic linker, so this definition is
// the one it gets: the same call (accept4 without flags is accept), and the accepting thread
// remembers the new socket, which the connection queue's enqueue() (called next, on the same
// thread, for this very socket) takes. Nothing else in tm accepts connections.
extern "C" int accept(int fd, struct sockaddr* addr, socklen_t* len) {
  int s = ::accept4(fd, addr, len, 0);
  t_accepted = s;
  return s;
}

namespace tmach::server {
namespace {

using clk = std::chrono::steady_clock;
constexpr clk::time_point kNever = clk::time_point::max();
constexpr double kKeepAliveSeconds = 5;  // httplib's CPPHTTPLIB_KEEPALIVE_TIMEOUT_SECOND
// At shutdown, answers still being written this long after it began are cut off (tm serve
// waits 5 s for its API thread before it ends without it).
constexpr auto kStopGrace = std::chrono::seconds(2);

// The kernel's struct tcp_info (linux/tcp.h, which clashes with glibc's netinet/tcp.h) up to
// tcpi_bytes_received; its layout only ever grows at the end.
struct TcpInfo {
  uint8_t u8[8];
  uint32_t rto, ato, snd_mss, rcv_mss, unacked, sacked, lost, retrans, fackets;
  uint32_t last_data_sent, last_ack_sent, last_data_recv, last_ack_recv;
  uint32_t pmtu, rcv_ssthresh, rtt, rttvar, snd_ssthresh, snd_cwnd, advmss, reordering;
  uint32_t rcv_rtt, rcv_space, total_retrans;
  uint64_t pacing_rate, max_pacing_rate, bytes_acked, bytes_received;
};
static_assert(offsetof(TcpInfo, last_data_recv) == 52 && offsetof(TcpInfo, bytes_received) == 128);

bool tcp_info(int fd, TcpInfo& ti) {
  ti = TcpInfo{};
  socklen_t n = sizeof ti;
  return getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &n) == 0 && n >= sizeof ti;
}

// Bytes the server has read from the socket: received minus what still waits in the kernel.
// Header size is counted in these, so that a legit body that arrived with the header and
// waits to be read does not count as header.
uint64_t bytes_read(int fd) {
  TcpInfo ti;
  if (fd < 0 || !tcp_info(fd, ti)) return 0;
  int queued = 0;
  if (ioctl(fd, FIONREAD, &queued) != 0 || queued < 0) queued = 0;
  return ti.bytes_received - std::min<uint64_t>(ti.bytes_received, static_cast<uint64_t>(queued));
}

enum class Phase { kHeader, kBody, kAnswer };

struct Conn {
  // The watchdog's own duplicate of the connection's socket (closed under State::mu when the
  // connection's thread ends): httplib closes its descriptor without that lock, and the number
  // may then be handed to the next socket opened; this one keeps naming this connection's.
  int fd = -1;
  Phase phase = Phase::kHeader;
  clk::time_point deadline = kNever;
  uint64_t rx0 = 0;  // bytes read (bytes_read) when the header phase began
  bool close_after = false, shut = false;
};

// What the queue, its connection threads and its watchdog share (the threads keep it alive).
struct State {
  explicit State(const HttpLimits& l) : lim(l) {}
  HttpLimits lim;
  std::mutex mu;
  std::condition_variable cv;
  std::list<Conn> conns;
  size_t live = 0;  // connection threads running
  bool stopping = false, watch_stop = false;
  clk::time_point stop_at;  // when stopping began
};

thread_local State* t_state = nullptr;
// A route asked for the allocator's free memory to be given back (trim_memory_after_connection).
std::atomic<bool> g_trim{false};
thread_local Conn* t_conn = nullptr;

HttpLimitCounters g_counters;
// Tests only (set_cut_hook_for_test): called by cut() just before it shuts a socket down.
std::function<void(int)> g_cut_hook;

clk::time_point after(double seconds) {
  seconds = std::min(seconds, 1e9);
  return clk::now() + std::chrono::duration_cast<clk::duration>(std::chrono::duration<double>(seconds));
}

// Shuts the connection's socket down (under State::mu), through the watchdog's own descriptor
// of it: its thread's reads and writes then fail at once. (Through httplib's descriptor, a cut
// could reach another connection: httplib closes it without this lock, and a socket accepted
// next may get the same number before the shutdown. Checking the inode first left that window
// open between the check and the shutdown.) Once httplib has closed its own, the shutdown of a
// connection that ended anyway does nothing more.
void cut(Conn& c, std::atomic<uint64_t>* counter, const char* why) {
  if (c.shut || c.fd < 0) return;
  c.shut = true;
  if (g_cut_hook) g_cut_hook(c.fd);
  ::shutdown(c.fd, SHUT_RDWR);
  if (counter) {
    uint64_t n = ++*counter;
    // At most a line a second: under a flood of slow clients, the count says how many.
    static std::atomic<int64_t> last{0};
    int64_t now = std::chrono::duration_cast<std::chrono::seconds>(clk::now().time_since_epoch()).count();
    if (last.exchange(now) != now) spdlog::info("http: closed a connection: {} ({} so far)", why, n);
  }
}

size_t open_conns(const State& s) {
  size_t n = 0;
  for (auto& c : s.conns) n += !c.shut;
  return n;
}

// Each connection on a thread of its own, up to the cap; a watchdog enforces the deadlines.
class ConnQueue : public httplib::TaskQueue {
 public:
  ConnQueue(const HttpLimits& l, bool tls) : st_(std::make_shared<State>(l)), tls_(tls) {
    watchdog_ = std::thread([st = st_] { watch(*st); });
  }
  ~ConnQueue() override { shutdown(); }

  void enqueue(std::function<void()> fn) override {
    int fd = std::exchange(t_accepted, -1);
    g_counters.connections++;
    std::unique_lock lk(st_->mu);
    if (open_conns(*st_) >= st_->lim.max_connections) {
      Conn* oldest = nullptr;  // the earliest header deadline: waiting longest
      for (auto& c : st_->conns)
        if (!c.shut && c.phase == Phase::kHeader && c.fd >= 0 && (!oldest || c.deadline < oldest->deadline))
          oldest = &c;
      if (oldest) {
        cut(*oldest, nullptr, "");
        g_counters.evicted++;
      } else if (fd >= 0) {
        lk.unlock();
        reject(fd, tls_);
        return;
      }
    }
    Conn c;
    if (fd >= 0 && (c.fd = fcntl(fd, F_DUPFD_CLOEXEC, 0)) < 0) {  // out of descriptors
      lk.unlock();
      reject(fd, tls_);
      return;
    }
    c.deadline = after(st_->lim.header_seconds);
    auto it = st_->conns.insert(st_->conns.end(), c);
    st_->live++;
    try {
      std::thread([st = st_, it, fn = std::move(fn)] {
        t_state = st.get();
        t_conn = &*it;
        try {
          fn();
        } catch (...) {
        }
        t_conn = nullptr;
        t_state = nullptr;
        // (every request and answer of the connection is freed by now)
        if (g_trim.exchange(false, std::memory_order_relaxed)) malloc_trim(0);
        std::lock_guard g(st->mu);
        if (it->fd >= 0) ::close(it->fd);
        st->conns.erase(it);
        st->live--;
        st->cv.notify_all();
      }).detach();
    } catch (const std::system_error& e) {  // no thread to be had
      if (it->fd >= 0) ::close(it->fd);
      st_->conns.erase(it);
      st_->live--;
      lk.unlock();
      spdlog::warn("http: cannot start a connection thread: {}", e.what());
      if (fd >= 0) reject(fd, tls_);
    }
  }

  void shutdown() override {
    if (!watchdog_.joinable()) return;
    {
      std::unique_lock lk(st_->mu);
      st_->stopping = true;
      st_->stop_at = clk::now();
      for (auto& c : st_->conns)
        if (c.phase == Phase::kHeader) cut(c, nullptr, "");
      // Answers in progress end on their own (the servers' stop flags), or are cut by the
      // watchdog after kStopGrace: one blocked on a client that does not read would otherwise
      // wait for httplib's write timeout.
      st_->cv.wait(lk, [&] { return st_->live == 0; });
      st_->watch_stop = true;
      st_->cv.notify_all();
    }
    watchdog_.join();
  }

 private:
  // Beyond the cap with every connection busy answering: a short 503, never blocking (over
  // TLS, closed without one: the answer would need a handshake first).
  static void reject(int fd, bool tls) {
    g_counters.rejected++;
    static std::atomic<int64_t> last_log{0};
    int64_t now = std::chrono::duration_cast<std::chrono::seconds>(clk::now().time_since_epoch()).count();
    if (now - last_log.exchange(now) >= 10)
      spdlog::warn("http: too many connections; new ones are answered 503 (every connection is busy)");
    std::string body = R"({"error": "too many connections; try again later"})"
                       "\n";
    std::string msg = fmt::format(
        "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nContent-Length: "
        "{}\r\nRetry-After: 1\r\nConnection: close\r\n\r\n{}",
        body.size(), body);
    if (!tls) (void)!::send(fd, msg.data(), msg.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
    ::shutdown(fd, SHUT_WR);
    ::close(fd);
  }

  static void watch(State& s) {
    std::unique_lock lk(s.mu);
    while (!s.watch_stop) {
      // A tick every 100 ms (cv also tells shutdown() of each connection's end: not a tick).
      s.cv.wait_until(lk, clk::now() + std::chrono::milliseconds(100), [&] { return s.watch_stop; });
      auto now = clk::now();
      for (auto& c : s.conns) {
        if (c.shut || c.fd < 0) continue;
        if (s.stopping && (c.phase != Phase::kAnswer || now - s.stop_at > kStopGrace)) {
          if (c.phase == Phase::kAnswer)
            spdlog::warn("http: shutting down: an answer's client does not read; cut");
          cut(c, nullptr, "");
          continue;
        }
        if (c.phase == Phase::kHeader && bytes_read(c.fd) - c.rx0 > s.lim.max_header_bytes) {
          cut(c, &g_counters.header_timeouts,
              fmt::format("request header larger than {} bytes", s.lim.max_header_bytes).c_str());
          continue;
        }
        if (now < c.deadline) continue;
        switch (c.phase) {
          case Phase::kHeader:
            cut(c, &g_counters.header_timeouts,
                fmt::format("request header not complete within {} s", s.lim.header_seconds).c_str());
            break;
          case Phase::kBody: {
            // Past the deadline and data came in the last moments (2 s): the client is
            // still sending its body, trickling. Else it sent nothing lately: the body came
            // whole and the handler is slow; look again a second later (a client that sends
            // nothing at all is ended by httplib's read timeout; one that trickles a byte
            // just within it is caught on one of these looks).
            TcpInfo ti;
            double recent_ms = std::min(2000.0, s.lim.header_seconds * 500);
            if (tcp_info(c.fd, ti) && ti.last_data_recv < recent_ms)
              cut(c, &g_counters.header_timeouts, "request body not complete in time");
            else
              c.deadline = now + std::chrono::seconds(1);
            break;
          }
          case Phase::kAnswer:
            cut(c, &g_counters.answer_timeouts,
                "answer not written by its deadline (the client does not read)");
            break;
        }
      }
    }
  }

  std::shared_ptr<State> st_;
  bool tls_;
  std::thread watchdog_;
};

bool is_method(const httplib::Request& req, std::initializer_list<const char*> ms) {
  for (auto m : ms)
    if (req.method == m) return true;
  return false;
}

void refuse(httplib::Response& res, int status, const std::string& msg) {
  res.status = status;
  res.set_content(util::json_text(nlohmann::json{{"error", msg}}) + "\n", "application/json");
}

}  // namespace

HttpLimitCounters& http_limit_counters() { return g_counters; }

std::vector<HttpLimitMetric> http_limit_metrics() {
  auto& c = g_counters;
  return {
      {"tm_http_connections_total", "HTTP connections accepted.", c.connections.load()},
      {"tm_http_connections_rejected_total", "HTTP connections answered 503: every connection busy.",
       c.rejected.load()},
      {"tm_http_connections_evicted_total",
       "HTTP connections closed at the connection cap while waiting for their request header.",
       c.evicted.load()},
      {"tm_http_header_timeouts_total",
       "HTTP connections closed: request header or body not complete in time.", c.header_timeouts.load()},
      {"tm_http_answer_timeouts_total",
       "HTTP answers cut off: the client did not read them by their deadline.", c.answer_timeouts.load()},
      {"tm_http_bodies_refused_total", "HTTP requests refused for their body (411, 413).",
       c.bodies_refused.load()},
      {"tm_http_bad_text_total",
       "HTTP requests refused: NUL byte or invalid UTF-8 in the path or a parameter.", c.bad_text.load()},
  };
}

int bind_listening(httplib::Server& s, const std::string& host, int port) {
  t_socket = -1;
  int got = port == 0 ? s.bind_to_any_port(host) : s.bind_to_port(host, port) ? port : -1;
  // httplib has listened with a backlog of 5: a burst of connections (slowloris, or many
  // clients at once) would have further SYNs dropped and retried after a second. Raised here,
  // before any thread serves the socket (raising it later, from the serving thread, raced
  // with Server::stop()'s close of the socket).
  int on = 0;
  socklen_t n = sizeof on;
  if (got > 0 && t_socket >= 0 && getsockopt(t_socket, SOL_SOCKET, SO_ACCEPTCONN, &on, &n) == 0 && on)
    ::listen(t_socket, SOMAXCONN);
  t_socket = -1;
  return got;
}

void set_cut_hook_for_test(std::function<void(int)> hook) { g_cut_hook = std::move(hook); }

void trim_memory_after_connection() { g_trim.store(true, std::memory_order_relaxed); }

size_t connections_within_fd_limit(size_t wanted) {
  struct rlimit r {};
  if (getrlimit(RLIMIT_NOFILE, &r) != 0 || r.rlim_cur == RLIM_INFINITY) return wanted;
  const auto limit = static_cast<uint64_t>(r.rlim_cur);
  const size_t fit = std::max<size_t>(4, limit > kFdReserve ? (limit - kFdReserve) / 2 : 0);
  if (fit >= wanted) return wanted;
  spdlog::warn(
      "HTTP: at most {} connections at once (not {}): the open-file limit (ulimit -n) is {}, "
      "and the recorder keeps about {} descriptors for its own files; "
      "raise the limit to {} or more for the full number",
      fit, wanted, limit, kFdReserve, kFdReserve + 2 * wanted);
  return fit;
}

void install_connection_limits(httplib::Server& s, const HttpLimits& l) {
  auto read_us = static_cast<int64_t>(l.read_seconds * 1e6);
  s.set_read_timeout(read_us / 1000000, read_us % 1000000);
  s.set_payload_max_length(l.max_body_bytes);
  s.set_socket_options([](int fd) {
    // SO_REUSEADDR only: a restart binds again while the old connections linger in TIME_WAIT.
    // Not httplib's default SO_REUSEPORT, with which a second tm serve or frontend bound the
    // same address and port, and the kernel split the requests between the two at random (two
    // stores answering for one).
    int yes = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
    t_socket = fd;
  });
  // Over TLS (httplib::SSLServer) the handshake runs on the connection's thread, in the
  // header phase: its deadline and size limit hold for the handshake too.
  bool tls = dynamic_cast<httplib::SSLServer*>(&s) != nullptr;
  s.new_task_queue = [l, tls] { return new ConnQueue(l, tls); };
  // A client that asks before sending its body (Expect: 100-continue) is refused before it
  // sends a byte of a body too large (httplib would answer 100 Continue to anything).
  s.set_expect_100_continue_handler([l](const httplib::Request& req, httplib::Response& res) {
    std::string v = req.get_header_value("Content-Length");
    if (req.has_header("Transfer-Encoding") ||
        (!v.empty() && (v.size() > 19 || v.find_first_not_of("0123456789") != std::string::npos ||
                        std::stoull(v) > l.max_body_bytes))) {
      check_request_limits(req, res, l);  // fills the 411/413/400 answer
      return res.status;
    }
    return 100;
  });
  s.set_post_routing_handler([](const httplib::Request&, httplib::Response& res) {
    // (Ranges are not served: httplib says "bytes" to a HEAD.)
    res.headers.erase("Accept-Ranges");
    res.set_header("Accept-Ranges", "none");
    answer_starts(res);
  });
  s.set_logger([](const httplib::Request&, const httplib::Response&) { answer_written(); });
}

std::string text_problem(const std::string& s) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  size_t n = s.size();
  for (size_t i = 0; i < n;) {
    unsigned c = p[i];
    if (c == 0) return "contains a NUL byte";
    if (c < 0x80) {
      i++;
      continue;
    }
    size_t len = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : c >= 0xc0 ? 2 : 0;
    if (len == 0 || c > 0xf4 || c == 0xc0 || c == 0xc1 || i + len > n) return "not valid UTF-8";
    uint32_t cp = c & (0xff >> (len + 1));
    for (size_t k = 1; k < len; ++k) {
      if ((p[i + k] & 0xc0) != 0x80) return "not valid UTF-8";
      cp = (cp << 6) | (p[i + k] & 0x3f);
    }
    if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
        (cp >= 0xd800 && cp <= 0xdfff))
      return "not valid UTF-8";
    i += len;
  }
  return "";
}

bool check_request_limits(const httplib::Request& req, httplib::Response& res, const HttpLimits& l) {
  // The request line and headers: the watcher cuts a header still coming past the limit, on
  // its next tick; one that came whole before it is refused here.
  size_t header_bytes = req.method.size() + req.target.size() + req.version.size() + 4;
  for (auto& [k, v] : req.headers)
    if (k != "REMOTE_ADDR" && k != "REMOTE_PORT" && k != "LOCAL_ADDR" &&
        k != "LOCAL_PORT")  // (httplib's own)
      header_bytes += k.size() + v.size() + 4;
  if (header_bytes > l.max_header_bytes) {
    g_counters.header_timeouts++;  // (as the watcher counts a header cut for its size)
    close_after_answer();
    refuse(res, 431,
           fmt::format("request header too large: {} bytes (limit {})", header_bytes, l.max_header_bytes));
    return true;
  }
  // The body: refused before anything reads it. httplib 0.11.4 reads a chunked body and one
  // without Content-Length (until the client closes) without any limit, and leaves a GET's
  // body unread to be parsed as the next request.
  if (req.has_header("Transfer-Encoding")) {
    g_counters.bodies_refused++;
    close_after_answer();
    refuse(res, 411, "a request body needs a Content-Length (Transfer-Encoding is not accepted)");
    return true;
  }
  uint64_t length = 0;
  if (req.has_header("Content-Length")) {
    std::string v = req.get_header_value("Content-Length");
    // Lengths that differ (RFC 9112 6.3: an error): a proxy in front may frame the request by
    // another one than this server (request smuggling).
    for (size_t i = 1, n = req.get_header_value_count("Content-Length"); i < n; ++i)
      if (req.get_header_value("Content-Length", i) != v) {
        g_counters.bodies_refused++;
        close_after_answer();
        refuse(res, 400, "Content-Length: given more than once, with different values");
        return true;
      }
    bool ok = !v.empty() && v.size() <= 19 && v.find_first_not_of("0123456789") == std::string::npos;
    if (ok) length = std::stoull(v);
    if (!ok || length > l.max_body_bytes) {
      g_counters.bodies_refused++;
      close_after_answer();
      if (!ok)
        refuse(res, 400, "Content-Length: not a number");
      else
        refuse(res, 413,
               fmt::format("request body too large: {} bytes (limit {})", length, l.max_body_bytes));
      return true;
    }
  } else if (is_method(req, {"POST", "PUT", "PATCH"})) {
    // No Content-Length, no Transfer-Encoding: no body (RFC 9112 6.3), where httplib would
    // read until the client closes.
    const_cast<httplib::Request&>(req).headers.emplace("Content-Length", "0");
  }
  bool reads_body = is_method(req, {"POST", "PUT", "PATCH", "DELETE"});
  if (length > 0 && !reads_body) close_after_answer();  // a GET's body: never read, never parsed
  // A form body: read by httplib as a plain one (its own form limit is 8 KiB, answered with a
  // bare 413), parsed by the route (form_params): forms are taken up to max_body_bytes too.
  if (reads_body) {
    auto ct = const_cast<httplib::Request&>(req).headers.find("Content-Type");
    if (ct != req.headers.end()) {
      std::string v = ct->second.substr(0, 33);
      std::transform(v.begin(), v.end(), v.begin(), [](unsigned char c) { return std::tolower(c); });
      if (v == "application/x-www-form-urlencoded") ct->second = kDeferredFormType;
    }
  }

  // The query string's parameters, as tm reads them (parse_params: httplib's parser split a
  // value's '=' off).
  auto& params = const_cast<httplib::Request&>(req).params;
  params.clear();
  parse_params(query_string(req.target), params);
  // A Range is ignored (the whole answer, 200): an answer is made as it is sent, its length
  // unknown, and httplib marked it 206 without a Content-Range, its whole body (curl -C, wget
  // -c failed on it).
  const_cast<httplib::Request&>(req).ranges.clear();
  const_cast<httplib::Request&>(req).headers.erase("Range");
  // Text: the path (decoded) and every query parameter.
  auto bad = [&](const std::string& what, const std::string& why) {
    g_counters.bad_text++;
    refuse(res, 400, fmt::format("{}: {}", what, why));
    return true;
  };
  if (std::string why = text_problem(req.path); !why.empty()) return bad("path", why);
  for (auto& [k, v] : req.params) {
    if (std::string why = text_problem(k); !why.empty()) return bad("parameter name", why);
    if (std::string why = text_problem(v); !why.empty()) return bad(k, why);
  }

  if (t_state && t_conn) {
    std::lock_guard g(t_state->mu);
    if (length > 0 && reads_body) {
      t_conn->phase = Phase::kBody;
      t_conn->deadline = after(l.header_seconds + static_cast<double>(length) / (64 << 10));
    } else {
      t_conn->phase = Phase::kAnswer;
      t_conn->deadline = kNever;
    }
  }
  return false;
}

void answer_starts(httplib::Response& res) {
  if (!t_state || !t_conn) return;
  std::lock_guard g(t_state->mu);
  if (t_conn->close_after || t_state->stopping) {
    t_conn->close_after = true;
    res.set_header("Connection", "close");
    res.headers.erase("Keep-Alive");
  }
  if (t_conn->phase != Phase::kAnswer) {
    t_conn->phase = Phase::kAnswer;
    t_conn->deadline = kNever;
  }
}

void answer_written() {
  if (!t_state || !t_conn) return;
  std::lock_guard g(t_state->mu);
  Conn& c = *t_conn;
  if (c.close_after || t_state->stopping) {
    cut(c, nullptr, "");
    return;
  }
  c.phase = Phase::kHeader;
  c.deadline = after(kKeepAliveSeconds + t_state->lim.header_seconds);
  c.rx0 = bytes_read(c.fd);
}

void limit_answer_time(double seconds) {
  if (!t_state || !t_conn) return;
  std::lock_guard g(t_state->mu);
  t_conn->phase = Phase::kAnswer;
  t_conn->deadline = seconds > 0 ? after(seconds) : kNever;
}

void close_after_answer() {
  if (!t_state || !t_conn) return;
  std::lock_guard g(t_state->mu);
  t_conn->close_after = true;
}

}  // namespace tmach::server
