#include "cluster/worker_fetch.h"

#include <fmt/format.h>

#include <algorithm>
#include <thread>

#include "server/http_client.h"
#include "server/http_common.h"
#include "server/http_limits.h"
#include "server/service.h"

namespace tmach::cluster {

using clk = std::chrono::steady_clock;
using nlohmann::json;

// A header value on one line.
std::string one_line(std::string s) {
  for (char& c : s)
    if (c == '\r' || c == '\n') c = ' ';
  return s;
}

std::unique_ptr<httplib::Client> make_client(const WorkerConfig& w, const std::string& via) {
  // An https:// URL gives an SSLClient (Debian's cpp-httplib is built with OpenSSL): the
  // worker's certificate is verified, against w.ca or the system's CAs, and its host name.
  auto cl = w.cert.empty() ? std::make_unique<httplib::Client>(w.url)
                           : std::make_unique<httplib::Client>(w.url, w.cert, w.key);
  if (w.url.rfind("https://", 0) == 0) {
    cl->enable_server_certificate_verification(true);
    if (!w.ca.empty()) cl->set_ca_cert_path(w.ca.c_str());
  }
  auto whole = static_cast<time_t>(w.timeout_s);
  auto usec = static_cast<time_t>((w.timeout_s - static_cast<double>(whole)) * 1e6);
  cl->set_connection_timeout(whole, usec);
  cl->set_read_timeout(whole, usec);
  cl->set_write_timeout(whole, usec);
  cl->set_keep_alive(false);
  if (!w.token.empty()) cl->set_bearer_token_auth(w.token);
  cl->set_default_headers({{server::kViaHeader, via}});
  return cl;
}

// httplib's error, with what to check for the TLS ones.
static std::string error_name(httplib::Error e) {
  switch (e) {
    case httplib::Error::SSLServerVerification:
      return "its TLS certificate was not accepted: not signed by the CA given (ca / worker_ca in the "
             "cluster config, else the system's), expired, or not for its host name";
    case httplib::Error::SSLConnection:
      return "TLS handshake failed (not an https:// server, or it requires a client certificate: cert/key)";
    case httplib::Error::SSLLoadingCerts:
      return "cannot load the TLS CA or client certificate files";
    case httplib::Error::Connection:
      return "cannot connect: refused, or nothing answers at that address (or its name does not resolve): "
             "the "
             "worker is down?";
    case httplib::Error::ConnectionTimeout:
      return "cannot connect: no connection within its timeout";
    case httplib::Error::Read:
      return "the connection failed, or went silent past the time limit, while its answer was read";
    case httplib::Error::Write:
      return "the connection failed while the request was sent";
    default:
      return httplib::to_string(e);
  }
}

// The error text of a worker's non-2xx answer ({"error": ...} or the raw body).
std::string error_text(int status, const std::string& body) {
  auto j = json::parse(body, nullptr, false);
  if (j.is_object() && j.contains("error") && j["error"].is_string()) return j["error"].get<std::string>();
  return body.empty() ? fmt::format("HTTP {}", status) : one_line(body.substr(0, 200));
}

// Runs `req` on each worker of `which` at once (a thread each) and waits for all; each
// bounded by its worker's time limit.
std::vector<Reply> fan_out(const ClusterConfig& cfg, std::vector<std::unique_ptr<WorkerCounters>>& wc,
                           const std::vector<size_t>& which, const Request& req) {
  std::vector<Reply> out(which.size());
  std::vector<std::thread> th;
  const std::string via = server::via_chain();
  for (size_t k = 0; k < which.size(); ++k)
    th.emplace_back([&, k] {
      size_t i = which[k];
      Reply& r = out[k];
      try {
        auto cl = make_client(cfg.workers[i], via);
        auto res = req(*cl);
        if (!res) {
          r.error = fmt::format("no answer ({})", error_name(res.error()));
        } else {
          r.status = res->status;
          r.body = res->body;
          r.warnings = server::warnings_of_header(res->get_header_value(server::kWarningsHeader));
          if (!r.ok()) r.error = fmt::format("HTTP {}: {}", r.status, error_text(r.status, r.body));
        }
      } catch (const std::exception& e) {
        r.error = e.what();
      }
      wc[i]->requests++;
      wc[i]->up = r.status != 0;
      if (!r.ok()) wc[i]->failures++;
    });
  for (auto& t : th) t.join();
  return out;
}

void Fetch::run(const httplib::Request& request) {
  PcapStreamParser parser;
  httplib::Request req = request;
  req.response_handler = [&](const httplib::Response& r) {
    std::lock_guard lk(mu);
    status = r.status;
    if (status == 200) {
      link_types = r.get_header_value(server::kLinkTypesHeader);
      answer_id = r.get_header_value(server::kAnswerIdHeader);
      started = true;
      state = State::kStreaming;
      cv.notify_all();
    }
    return true;
  };
  req.content_receiver = [&](const char* d, size_t n, uint64_t, uint64_t) {
    if (status != 200) {
      if (error_body.size() < 65536) error_body.append(d, n);
      return true;
    }
    bool ok = parser.feed(d, n, [&](MergePacket&& m) {
      if (cancelled || !q->push(std::move(m))) {
        cancelled = true;
        return;
      }
      ++packets;
    });
    if (!ok) {
      std::lock_guard lk(mu);
      reason = parser.error();
    }
    return ok && !cancelled;
  };
  auto res = cl->send(req);
  std::lock_guard lk(mu);
  if (cancelled) {
    if (reason.empty()) reason = "given up by the front-end";
    state = State::kFailed;
  } else if (!res) {
    if (reason.empty())
      reason = started ? fmt::format("answer cut after {} packets ({})", packets, error_name(res.error()))
                       : fmt::format("no answer ({})", error_name(res.error()));
    state = State::kFailed;
  } else if (status != 200) {
    reason = fmt::format("HTTP {}: {}", status, error_text(status, error_body));
    state = State::kFailed;
  } else if (!parser.has_header() || parser.pending()) {
    reason = "answer ended inside a pcap record or pcapng block";
    state = State::kFailed;
  } else {
    state = State::kDone;
  }
  cv.notify_all();
  if (close_queue) q->close();
}

// Waits until the worker has sent its answer's status (or failed), at most until `deadline`.
bool Fetch::wait_started(clk::time_point deadline) {
  std::unique_lock lk(mu);
  if (cv.wait_until(lk, deadline, [&] { return state != State::kWaiting; })) return true;
  reason = fmt::format("no answer within {} s", timeout_s);
  lk.unlock();
  give_up();
  return false;
}

void Fetch::give_up() {
  cancelled = true;
  if (close_queue) q->cancel();  // a shared queue is the owner's to cancel
  cl->stop();
}

bool Fetch::failed() {
  std::lock_guard lk(mu);
  return state == State::kFailed || (cancelled && state != State::kDone);
}

// Gives up the fetches still running and waits for every thread.
void FetchSet::end() {
  for (auto& x : f) {
    if (!x->th.joinable()) continue;
    bool running;
    {
      std::lock_guard lk(x->mu);
      running = x->state == Fetch::State::kWaiting || x->state == Fetch::State::kStreaming;
    }
    if (running) x->give_up();
    x->th.join();
  }
}

// Starts one fetch per worker of `which` for `path`.
void FetchSet::wait_started(clk::time_point t0) {
  for (auto& x : f)
    x->wait_started(t0 +
                    std::chrono::duration_cast<clk::duration>(std::chrono::duration<double>(x->timeout_s)));
}

httplib::Request worker_request(const std::string& path, const httplib::Params& params, bool post_if_long) {
  httplib::Request r;
  r.method = "GET";
  r.path = httplib::append_query_params(path, params);
  if (post_if_long && !server::get_fits(r.path.size())) {
    r.method = "POST";
    r.path = path;
    r.body = server::form_body(params);
    r.set_header("Content-Type", "application/x-www-form-urlencoded");
    // (A worker would refuse it, 413, read by the front-end as a worker that did not answer.)
    if (const uint64_t limit = server::HttpLimits{}.max_body_bytes; r.body.size() > limit)
      throw server::ServiceError(413, fmt::format("request too large for the workers: its parameters take {} "
                                                  "bytes as a form, a worker takes at most {}",
                                                  r.body.size(), limit));
  }
  return r;
}

std::shared_ptr<FetchSet> start_fetches(const ClusterConfig& cfg, const std::vector<size_t>& which,
                                        const httplib::Request& req, size_t queue_bytes,
                                        std::shared_ptr<PacketQueue> shared, double read_timeout_s) {
  auto fs = std::make_shared<FetchSet>();
  for (size_t i : which) {
    auto f = std::make_unique<Fetch>();
    f->idx = i;
    f->url = cfg.workers[i].url;
    f->timeout_s = cfg.workers[i].timeout_s;
    f->cl = make_client(cfg.workers[i], server::via_chain());
    // The front-end's own waits decide and name the cause: Fetch::wait_started until the
    // answer starts (the worker's timeout), merge_next after (the query's time limit); the
    // socket's limit is a second line, a little after the longer of the two.
    double t =
        read_timeout_s > 0 ? read_timeout_s : std::max(cfg.workers[i].timeout_s, cfg.query_timeout_s) + 1;
    f->cl->set_read_timeout(static_cast<time_t>(t),
                            static_cast<time_t>((t - static_cast<double>(static_cast<time_t>(t))) * 1e6));
    if (shared) {
      f->q = shared;
      f->close_queue = false;
    } else {
      f->q = std::make_shared<PacketQueue>(queue_bytes);
    }
    fs->f.push_back(std::move(f));
  }
  for (auto& f : fs->f) f->th = std::thread([p = f.get(), req] { p->run(req); });
  return fs;
}

// The missing workers of a fetch set, as {url: reason}.
json missing_of(FetchSet& fs) {
  json m = json::object();
  for (auto& f : fs.f)
    if (f->failed()) {
      std::lock_guard lk(f->mu);
      m[f->url] = f->reason;
    }
  return m;
}

AnswerWarnings answer_warnings(const ClusterConfig& cfg, FetchSet& fs) {
  AnswerWarnings a;
  std::vector<std::vector<std::string>> per(fs.f.size());
  std::vector<std::string> none(fs.f.size());                     // each worker's no_connection
  std::vector<std::vector<std::string>> none_notes(fs.f.size());  // and its notes
  std::vector<char> known(fs.f.size(), 0);                        // its warnings were had
  std::vector<std::thread> th;
  for (size_t k = 0; k < fs.f.size(); ++k) {
    Fetch& f = *fs.f[k];
    std::string id;
    {
      std::lock_guard lk(f.mu);
      // Only an answer that ended in full: the worker keeps its warnings when it ends it (one
      // given up may still be running there; one cut is named missing already).
      if (f.state != Fetch::State::kDone) continue;
      id = f.answer_id;
    }
    ++a.ended;
    if (id.empty()) continue;  // an older tm serve keeps none
    th.emplace_back([&cfg, &f, &out = per[k], &no = none[k], &notes = none_notes[k], &had = known[k], id,
                     via = server::via_chain()] {
      std::string why;
      try {
        // The answer is complete already: its warnings are a small, quick request, which must not
        // hold the client's last chunk (and the query's slot) for a worker's whole timeout.
        WorkerConfig w = cfg.workers[f.idx];
        w.timeout_s = std::min(w.timeout_s, 5.0);
        auto cl = make_client(w, via);
        auto res = cl->Get("/api/v1/answers/" + id);
        if (!res) {
          why = fmt::format("no answer ({})", error_name(res.error()));
        } else if (res->status != 200) {
          why = fmt::format("HTTP {}: {}", res->status, error_text(res->status, res->body));
        } else {
          json j = json::parse(res->body, nullptr, false);
          if (!j.is_object() || !j.contains("warnings") || !j["warnings"].is_array()) {
            why = "not {\"warnings\": [...]}";
          } else {
            had = 1;
            if (j.value("no_connection", json()).is_string()) no = j["no_connection"].get<std::string>();
            if (j.value("no_connection_notes", json()).is_array())
              for (auto& n : j["no_connection_notes"])
                if (n.is_string()) notes.push_back(n.get<std::string>());
            for (auto& w : j["warnings"]) {
              if (!w.is_string()) continue;
              const std::string& s = w.get_ref<const std::string&>();
              if (!no.empty() && (s == no || std::find(notes.begin(), notes.end(), s) != notes.end()))
                continue;
              out.push_back(fmt::format("worker {}: {}", f.url, s));
            }
          }
        }
      } catch (const std::exception& e) {
        why = e.what();
      }
      if (!why.empty())
        out.push_back(fmt::format("worker {}: its warnings of this answer are unknown ({})", f.url, why));
    });
  }
  for (auto& t : th) t.join();
  for (auto& v : per) a.warnings.insert(a.warnings.end(), v.begin(), v.end());
  // Said when every worker whose warnings are known said it (those that failed are named as
  // missing: they may have had it), as the front-end's plan says it.
  a.answered = static_cast<size_t>(std::count(known.begin(), known.end(), 1));
  for (size_t k = 0; k < none.size(); ++k)
    if (!none[k].empty()) {
      if (a.without++ == 0) a.no_connection = none[k];
      for (auto& n : none_notes[k])
        a.no_connection_notes.push_back(fmt::format("worker {}: {}", fs.f[k]->url, n));
    }
  return a;
}

json missing_of(const ClusterConfig& cfg, const std::vector<size_t>& which,
                const std::vector<Reply>& replies) {
  json m = json::object();
  for (size_t k = 0; k < which.size(); ++k)
    if (!replies[k].ok()) m[cfg.workers[which[k]].url] = replies[k].error;
  return m;
}

void add_missing_headers(server::Headers& h, const json& missing) {
  std::string urls;
  for (auto& [u, r] : missing.items()) urls += (urls.empty() ? "" : " ") + u;
  if (!urls.empty()) {
    h.emplace_back("X-TM-Missing-Workers", urls);
    h.emplace_back("X-TM-Missing-Reasons", one_line(reasons_of(missing)));
  }
}

std::string reasons_of(const json& missing) {
  std::string m;
  for (auto& [u, r] : missing.items())
    m += fmt::format("{}{}: {}", m.empty() ? "" : "; ", u, r.get<std::string>());
  return m;
}

}  // namespace tmach::cluster
