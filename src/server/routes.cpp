#include "server/routes.h"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <httplib.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <initializer_list>
#include <optional>
#include <string_view>
#include <vector>

#include "server/flow_format.h"
#include "server/http_common.h"
#include "server/http_limits.h"
#include "server/metrics.h"
#include "server/tls_server.h"
#include "server/web_assets.h"
#include "util/json_text.h"
#include "util/pcapng_writer.h"

namespace tmach::server {
namespace {

using clk = std::chrono::steady_clock;
using nlohmann::json;

void reply(httplib::Response& res, const Reply& r, int indent) {
  for (auto& [k, v] : r.headers) res.set_header(k, v);
  res.set_content(util::json_text(r.body, indent) + "\n", kJsonType);
}

std::vector<std::string> classes_of(const httplib::Request& req) {
  std::vector<std::string> v;
  for (size_t i = 0; i < req.get_param_value_count("class"); ++i)
    v.push_back(req.get_param_value("class", i));
  return v;
}

// Whether a POST's body is a JSON object (its first character but white space is '{').
bool json_object_body(const httplib::Request& req) {
  const size_t at = req.body.find_first_not_of(" \t\r\n");
  return at != std::string::npos && req.body[at] == '{';
}

// A POST's JSON body ({...}, every string checked: http_common.h), or null when it has none
// (the parameters are in the query string).
json body_object(const httplib::Request& req) {
  if (!json_object_body(req)) return nullptr;
  return json_body(req);
}

// true/false parameters (bool_param): 1, 0, or -1 when absent.
int flag(const httplib::Request& req, const char* name) {
  std::optional<bool> b = bool_param(req, name);
  return b ? (*b ? 1 : 0) : -1;
}

// A POST route: its form body's parameters first join the query string's (form_params). A
// body the route would not read — not a form, nor a JSON object where the route reads one
// (`json`) — is refused (415) rather than ignored: the request would be answered without its
// parameters (no filter: every packet or flow, every connection).
void post(Routes& s, const std::string& pattern, httplib::Server::Handler h, bool json = true) {
  s.post(pattern, [h = std::move(h), json](const httplib::Request& req, httplib::Response& res) {
    // (A multipart form's parts are in req.files, its body empty: refused as well, as no route
    // reads them.)
    if ((!req.body.empty() || req.is_multipart_form_data()) &&
        req.get_header_value("Content-Type") != kDeferredFormType && !(json && json_object_body(req))) {
      std::string type = req.get_header_value("Content-Type");
      if (json && type.rfind("application/json", 0) == 0) {  // JSON, but no object: say that
        const size_t at = req.body.find_first_not_of(" \t\r\n");
        json_error(res, 415,
                   fmt::format("request body: {} takes a JSON object (or a form); this JSON begins with '{}'",
                               req.path, at == std::string::npos ? std::string() : req.body.substr(at, 1)));
        return;
      }
      json_error(res, 415,
                 fmt::format("request body: {} takes a form (application/x-www-form-urlencoded){}; this one "
                             "is {}",
                             req.path, json ? " or a JSON object" : "",
                             type.empty() ? "without a Content-Type" : "'" + type + "'"));
      return;
    }
    form_params(req);
    h(req, res);
  });
}

// A route taking a filter, as GET and as POST (its parameters in a form body, or a JSON one
// where the handler reads it: a filter longer than the request line's limit).
void get_and_post(Routes& s, const std::string& pattern, const httplib::Server::Handler& h) {
  s.get(pattern, h);
  post(s, pattern, h);
}
// The same for a route that reads no JSON body (a form only).
void get_and_post_form(Routes& s, const std::string& pattern, const httplib::Server::Handler& h) {
  s.get(pattern, h);
  post(s, pattern, h, false);
}

// Admits a request of `a`'s kind and opens its answer (when refused: released, rethrown); the
// answer's headers go into `res`. The caller releases `a` once the answer has ended.
template <typename Open>
std::unique_ptr<Stream> open_admitted(Admission& a, httplib::Response& res, Open&& open) {
  a.admit();
  std::unique_ptr<Stream> s;
  try {
    s = open();
  } catch (...) {
    a.release();
    throw;
  }
  for (auto& [k, v] : s->headers) res.set_header(k, v);
  return s;
}

// A download's file name: "tm-FILTER-FROM-TO.pcap" (".pcapng" for a pcapng answer; a flow's:
// "tm-flow_ID-..." with its filter after the id), every character but letters, digits, '.' and
// '-' as '_' (no quoting issue, no path), the filter cut to 80 characters.
std::string download_name(const QueryRequest& q, bool pcapng) {
  const std::string filter = q.flow_id.empty() ? q.filter : "flow " + q.flow_id + " " + q.filter;
  const std::string &from = q.from, &to = q.to;
  auto clean = [](const std::string& t, size_t max) {
    std::string o;
    for (unsigned char c : t) {
      if (o.size() >= max) break;
      bool keep = std::isalnum(c) || c == '.' || c == '-';
      if (keep)
        o += static_cast<char>(c);
      else if (o.empty() || o.back() != '_')
        o += '_';
    }
    while (!o.empty() && o.back() == '_') o.pop_back();
    return o;
  };
  std::string n = "tm-";
  n.append(filter.empty() ? std::string("all") : clean(filter, 80));
  n.append("-");
  n.append(from.empty() ? std::string("start") : clean(from, 40));
  n.append("-");
  n.append(to.empty() ? std::string("end") : clean(to, 40));
  n.append(pcapng ? ".pcapng" : ".pcap");
  return n;
}

// A parameter given empty (community_id=, from=, a JSON ""; a script's unset variable):
// refused, as any other value that is none is, rather than taken for its absence (every
// connection, no bound, no limit). (A JSON null is absence, as for every member. The web page
// leaves empty fields out.)
void refuse_empty(const httplib::Request& req, const json& body, const char* name, const char* absence) {
  bool empty = req.has_param(name) && req.get_param_value(name).empty();
  if (auto it = body.is_object() ? body.find(name) : body.end(); body.is_object() && it != body.end())
    empty |= it->is_string() && it->get_ref<const std::string&>().empty();
  if (empty) throw BadRequest(fmt::format("{}: given empty (leave it out for {})", name, absence));
}

// A packet query's parameters (query, count, explain, download: each route checks which it
// takes, only_params): the query string's and a form body's, then a JSON body's members.
QueryRequest query_request(const httplib::Request& req) {
  QueryRequest q{param(req, "filter"),
                 param(req, "from"),
                 param(req, "to"),
                 classes_of(req),
                 flag_param(req, "require_all"),
                 param(req, "community_id"),
                 param(req, "flow_id"),
                 param(req, "format"),
                 param_u64(req, "limit", UINT64_MAX),
                 flag_param(req, "measure")};
  json j = body_object(req);
  refuse_empty(req, j, "community_id", "every connection");
  refuse_empty(req, j, "flow_id", "every connection");
  refuse_empty(req, j, "from", "no bound");
  refuse_empty(req, j, "to", "no bound");
  refuse_empty(req, j, "limit", "no limit");
  refuse_empty(req, j, "format", "the answer's own choice");
  refuse_empty(req, j, "require_all", "false");
  refuse_empty(req, j, "measure", "false");
  if (!j.is_null()) {
    for (auto [key, dst] :
         {std::pair{"filter", &q.filter}, std::pair{"from", &q.from}, std::pair{"to", &q.to},
          std::pair{"community_id", &q.community_id}, std::pair{"format", &q.format}})
      *dst = json_string(j, key, *dst);
    // (a flow's id as tm flows' JSON gives it, a number, or as a string)
    if (auto it = j.find("flow_id"); it != j.end() && it->is_number_unsigned())
      q.flow_id = std::to_string(it->get<uint64_t>());
    else
      q.flow_id = json_string(j, "flow_id", q.flow_id);
    if (std::optional<bool> b = json_bool(j, "require_all")) q.require_all = *b;
    if (std::optional<bool> b = json_bool(j, "measure")) q.measure = *b;
    if (auto it = j.find("limit"); it != j.end() && !it->is_null()) {
      if (!it->is_number_unsigned()) throw BadRequest("limit: expected a whole number from 0 (no limit)");
      q.limit = it->get<uint64_t>();
    }
    if (auto it = j.find("class"); it != j.end() && !it->is_null()) {
      json list = it->is_array() ? *it : json::array({*it});
      for (auto& c : list) {
        if (!c.is_string()) throw BadRequest("class: expected a string or an array of strings");
        q.classes.push_back(c.get<std::string>());
      }
    }
  }
  return q;
}

}  // namespace

HttpApi::HttpApi(Service& svc, RouteOptions o) : svc_(svc), o_(std::move(o)), svr_(make_http_server(o_.tls)) {
  install_common_handlers(*svr_, o_.token, http_requests_, o_.write_timeout_s, routes_);
  auto& s = routes_;
  s.get("/health", [this](const httplib::Request& req, httplib::Response& res) {
    only_params(req, {});
    reply(res, svc_.health(), -1);
  });
  s.get("/api/v1/stats", [this](const httplib::Request& req, httplib::Response& res) {
    only_params(req, {});
    reply(res, svc_.stats(counters()), 2);
  });
  s.get("/metrics", [this](const httplib::Request& req, httplib::Response& res) {
    only_params(req, {});
    Metrics limits;  // what the connection limits did (http_limits.h), process-wide
    for (auto& x : http_limit_metrics()) limits.add(x.name, "counter", x.help, static_cast<double>(x.value));
    res.set_content(svc_.metrics(counters()) + limits.text(), kMetricsType);
  });
  query_routes();
  state_routes();
  subscribe_routes();
  web_routes();
}

HttpApi::~HttpApi() = default;

int HttpApi::bind(const std::string& host, int port, const std::string& as_written) {
  if (!o_.tls.on() && !is_loopback(host))
    spdlog::warn(
        "the API listens on {} without TLS: its bearer token and every answer travel in clear (give a TLS "
        "certificate: --tls-cert/--tls-key, or tls_cert/tls_key in the config)",
        as_written);
  int got = port < 0 ? -1 : bind_listening(*svr_, host, port);
  if (got <= 0)
    throw std::runtime_error(fmt::format("cannot listen on {} (address in use, or not local)", as_written));
  return got;
}

void HttpApi::serve() { svr_->listen_after_bind(); }

void HttpApi::stop() {
  stopping_ = true;
  svr_->stop();
}

Reply HttpApi::run_admitted(const std::function<Reply(const StopCheck&)>& run) {
  limit_answer_time(o_.query_seconds + 1);
  auto t0 = clk::now();
  queries_admit_.admit();
  struct Release {
    Admission& a;
    ~Release() { a.release(); }
  } release{queries_admit_};
  auto limit = std::chrono::duration<double>(o_.query_seconds);
  Reply r = run([&]() -> std::string {
    if (stopping_) return "shutting down";
    if (clk::now() - t0 > limit) return "time limit";
    return "";
  });
  observe_latency(std::chrono::duration<double>(clk::now() - t0).count());
  return r;
}

void HttpApi::observe_latency(double s) {
  std::lock_guard lk(lat_mu_);
  for (size_t i = 0; i < lat_bounds_.size(); ++i)
    if (s <= lat_bounds_[i]) lat_buckets_[i]++;
  lat_count_++;
  lat_sum_ += s;
}

ApiCounters HttpApi::counters() {
  ApiCounters c;
  c.queries = queries_;
  c.flow_queries = flow_queries_;
  c.queries_failed = query_errors_;
  c.queries_rejected = queries_admit_.rejected();
  c.subscriptions_rejected = subs_admit_.rejected();
  c.query_packets = query_packets_;
  c.subscriptions = subs_total_;
  c.http_requests = http_requests_;
  c.active_queries = queries_admit_.active();
  c.active_subscriptions = subs_admit_.active();
  std::lock_guard lk(lat_mu_);
  c.latency_bounds = lat_bounds_;
  c.latency_buckets = lat_buckets_;
  c.latency_count = lat_count_;
  c.latency_sum = lat_sum_;
  return c;
}

// A packet query's answer: opened (its errors answered) before it starts, then streamed, cut
// at the time limit or at shutdown; named for a browser's download.
void HttpApi::stream_query(httplib::Response& res, QueryRequest q, bool head) {
  if (head) {
    // The headers the answer would have, from its plan (the request checked as a query's): no
    // query is run, no slot taken (a link previewer's HEAD of a download cost one, counted failed).
    Reply plan = svc_.explain(q, [] { return std::string(); });
    const bool pcapng = plan.body.value("format", "") == "pcapng";
    if (json l = plan.body.value("link_types", json()); l.is_array()) {
      std::vector<uint64_t> links;
      for (auto& t : l)
        if (t.is_number_unsigned()) links.push_back(t.get<uint64_t>());
      res.set_header(kLinkTypesHeader, fmt::format("{}", fmt::join(links, ",")));
    }
    res.set_header("Content-Disposition",
                   fmt::format("attachment; filename=\"{}\"", download_name(q, pcapng)));
    // (A provider, as the GET's, for its headers — chunked, no length —; a HEAD's is not called.)
    res.set_chunked_content_provider(
        util::pcap::output_content_type(pcapng ? util::pcap::Output::kPcapng : util::pcap::Output::kPcap),
        [](size_t, httplib::DataSink& sink) {
          sink.done();
          return true;
        });
    return;
  }
  limit_answer_time(o_.query_seconds + 1);  // a client that stops reading is cut off, its slot freed
  struct Ctx {
    std::unique_ptr<Stream> stream;
    std::string filter;
    clk::time_point t0 = clk::now();
    bool ok = false;
    uint64_t id = 0;                    // kAnswerIdHeader
    std::vector<std::string> warnings;  // kept for GET /api/v1/answers/ID
  };
  auto ctx = std::make_shared<Ctx>();
  ctx->filter = q.filter;
  ctx->stream = open_admitted(queries_admit_, res, [&] { return svc_.open_query(q); });
  {
    std::lock_guard lk(answers_mu_);
    while (ctx->id == 0) ctx->id = answer_ids_() >> 1;  // (19 digits at most, as the route reads)
  }
  res.set_header(kAnswerIdHeader, std::to_string(ctx->id));
  const bool pcapng =
      ctx->stream->content_type == util::pcap::output_content_type(util::pcap::Output::kPcapng);
  res.set_header("Content-Disposition", fmt::format("attachment; filename=\"{}\"", download_name(q, pcapng)));
  queries_++;
  res.set_chunked_content_provider(
      ctx->stream->content_type.empty() ? kPcapType : ctx->stream->content_type.c_str(),
      [this, ctx](size_t, httplib::DataSink& sink) {
        auto limit = std::chrono::duration<double>(o_.query_seconds);
        auto stop = [this, ctx, limit]() -> std::string {
          if (stopping_) return "shutting down";
          if (clk::now() - ctx->t0 > limit) return "time limit";
          return "";
        };
        auto warn = [ctx](const std::string& w) {
          spdlog::warn("query '{}': {}", ctx->filter, w);
          ctx->warnings.push_back(w);
        };
        try {
          ctx->stream->run(chunk_sink(sink), warn, stop);
          query_packets_ += ctx->stream->packets;
          ctx->ok = true;
          // before the last chunk: the client asks next
          keep_warnings(ctx->id, std::move(ctx->warnings), ctx->stream.get());
          sink.done();
          return true;
        } catch (const Cancelled& e) {
          spdlog::warn("query '{}' cut off ({})", ctx->filter, e.what());
        } catch (const std::exception& e) {
          spdlog::info("query '{}' ended: {}", ctx->filter, e.what());
        }
        return false;  // the client sees an incomplete answer
      },
      [this, ctx](bool) {
        if (!ctx->ok) keep_warnings(ctx->id, std::move(ctx->warnings), ctx->stream.get());
        ctx->stream.reset();
        queries_admit_.release();
        if (!ctx->ok) query_errors_++;
        observe_latency(std::chrono::duration<double>(clk::now() - ctx->t0).count());
      });
}

void HttpApi::keep_warnings(uint64_t id, std::vector<std::string> warnings, const Stream* stream) {
  constexpr size_t kMax = 100;  // per answer (one per damaged segment could be thousands)
  if (warnings.size() > kMax) {
    size_t more = warnings.size() - kMax;
    warnings.resize(kMax);
    warnings.push_back(fmt::format("... and {} more warnings (in the server's log)", more));
  }
  std::lock_guard lk(answers_mu_);
  answers_.push_back(KeptAnswer{id, std::move(warnings), stream ? stream->no_connection : "",
                                stream ? stream->no_connection_notes : std::vector<std::string>{}});
  while (answers_.size() > kKeptAnswers) answers_.pop_front();
}

void HttpApi::query_routes() {
  auto& s = routes_;
  // Packet queries: the request is checked (and its errors answered) before the answer
  // starts; then it streams, cut at the time limit or at shutdown.
  get_and_post(s, "/api/v1/query", [this](const httplib::Request& req, httplib::Response& res) {
    only_params(
        req, {"filter", "from", "to", "class", "require_all", "community_id", "flow_id", "format", "limit"});
    stream_query(res, query_request(req), req.method == "HEAD");
  });
  download_routes();
  // The warnings of a packet answer (its X-TM-Answer-Id), once it has ended.
  s.get(R"(/api/v1/answers/(\d{1,19}))", [this](const httplib::Request& req, httplib::Response& res) {
    only_params(req, {});
    uint64_t id = std::stoull(req.matches[1].str());
    std::lock_guard lk(answers_mu_);
    for (auto& a : answers_)
      if (a.id == id) {
        json j{{"id", id}, {"warnings", a.warnings}};
        if (!a.no_connection.empty()) j["no_connection"] = a.no_connection;
        if (!a.no_connection_notes.empty()) j["no_connection_notes"] = a.no_connection_notes;
        return reply(res, {std::move(j), {}}, -1);
      }
    throw NotFound(fmt::format("no answer {} (still being written, or forgotten: the last {} are kept)", id,
                               kKeptAnswers));
  });

  // The plan of a filter (tm query --explain's, without running it; with measure=1 run as a
  // count is, admitted and time-limited, for the store's figures), and a query's count.
  get_and_post(s, "/api/v1/explain", [this](const httplib::Request& req, httplib::Response& res) {
    only_params(req, {"filter", "from", "to", "class", "community_id", "flow_id", "measure", "require_all"});
    QueryRequest q = query_request(req);
    if (!q.measure) return reply(res, svc_.explain(q, [] { return std::string(); }), 2);
    reply(res, run_admitted([&](const StopCheck& stop) { return svc_.explain(q, stop); }), 2);
  });
  get_and_post(s, "/api/v1/count", [this](const httplib::Request& req, httplib::Response& res) {
    only_params(
        req, {"filter", "from", "to", "class", "require_all", "community_id", "flow_id", "limit", "format"});
    QueryRequest q = query_request(req);
    reply(res, run_admitted([&](const StopCheck& stop) { return svc_.count(q, stop); }), -1);
  });
  s.get("/api/v1/history", [this](const httplib::Request& req, httplib::Response& res) {
    only_params(req, {});
    reply(res, svc_.history(), -1);
  });

  // Flows: answered whole (the answerer ranks them before the first is sent). As GET and as POST
  // (a form body: a filter longer than the request line's limit).
  get_and_post_form(s, "/api/v1/flows", [this](const httplib::Request& req, httplib::Response& res) {
    only_params(req, {"filter", "from", "to", "format", "by", "top", "require_all", "community_id"});
    FlowParams fp = flow_params(req);
    for (auto [name, absence] : {std::pair{"community_id", "every connection"}, std::pair{"from", "no bound"},
                                 std::pair{"to", "no bound"}, std::pair{"top", "every flow"}})
      refuse_empty(req, json(), name, absence);
    FlowRequest q{
        param(req, "filter"),           param(req, "from"),        param(req, "to"), fp.format, fp.by, fp.top,
        flag_param(req, "require_all"), param(req, "community_id")};
    auto t0 = clk::now();
    auto stream = open_admitted(queries_admit_, res, [&] { return svc_.open_flows(q); });
    struct Release {
      Admission& a;
      ~Release() { a.release(); }
    } release{queries_admit_};
    std::string text;
    std::vector<std::string> warnings;  // (the client's too: kWarningsHeader)
    stream->run([&](const char* d, size_t n) { text.append(d, n); },
                [&](const std::string& w) {
                  spdlog::warn("flows: {}", w);
                  warnings.push_back(w);
                },
                [] { return std::string(); });
    if (!warnings.empty()) res.set_header(kWarningsHeader, warnings_header(warnings));
    res.set_content(std::move(text), flow_content_type(fp.format));
    trim_memory_after_connection();  // what ranking the flows took is given back
    flow_queries_++;
    observe_latency(std::chrono::duration<double>(clk::now() - t0).count());
  });
}

// Downloads a browser streams to disk itself (download_tickets.h): POST /api/v1/download, with
// the token, takes a packet query's parameters (query string, form or JSON body) and answers a
// one-time ticket bound to them; GET /api/v1/download/TICKET (no token: the ticket is the
// credential, exempted in http_common.cpp) streams that query's answer as /api/v1/query would.
void HttpApi::download_routes() {
  auto& s = routes_;
  post(s, "/api/v1/download", [this](const httplib::Request& req, httplib::Response& res) {
    only_params(
        req, {"filter", "from", "to", "class", "require_all", "community_id", "flow_id", "format", "limit"});
    QueryRequest q = query_request(req);
    // A bad filter is refused now, not when the browser fetches the ticket; the plan says the
    // format the answer will be written in (the Content-Disposition name of the download).
    Reply plan = svc_.explain(q, [] { return std::string(); });
    std::string name = download_name(q, plan.body.value("format", "") == "pcapng");
    std::string t = tickets_.issue(std::move(q));
    auto ttl = std::chrono::duration_cast<std::chrono::seconds>(tickets_.ttl()).count();
    res.set_header("Cache-Control", "no-store");
    reply(res,
          {json{{"ticket", t}, {"url", "/api/v1/download/" + t}, {"expires_s", ttl}, {"name", name}}, {}},
          -1);
  });
  s.get(R"(/api/v1/download/([^/]*))", [this](const httplib::Request& req, httplib::Response& res) {
    only_params(req, {});
    const std::string ticket = req.matches[1].str();
    const bool head = req.method == "HEAD";  // (the headers of the answer; the ticket stays good)
    QueryRequest q = tickets_.redeem(ticket, !head);
    res.set_header("Cache-Control", "no-store");
    try {
      stream_query(res, std::move(q), head);
    } catch (...) {
      if (!head) tickets_.give_back(ticket);  // the answer did not start: nothing was downloaded
      throw;
    }
  });
}

// Dynamic classes and per-connection controls (as an IDS needs them). Parameters in the query
// string or, for POST, as a JSON body: {"host": ..., "class": ..., "for": "2h"};
// {"filter": ..., "suspend_cutoff": true, "suspend_timeout": false}.
void HttpApi::state_routes() {
  auto& s = routes_;
  post(s, "/api/v1/classes", [this](const httplib::Request& req, httplib::Response& res) {
    only_params(req, {"host", "class", "for"});
    ClassRequest r{param(req, "host"), param(req, "class"), param(req, "for")};
    json j = body_object(req);
    refuse_empty(req, j, "for", "no end");
    if (!j.is_null()) {
      r.host = json_string(j, "host", r.host);
      r.cls = json_string(j, "class", r.cls);
      r.for_text = json_string(j, "for", r.for_text);
    }
    reply(res, svc_.class_set(r), -1);
  });
  s.get("/api/v1/classes", [this](const httplib::Request& req, httplib::Response& res) {
    only_params(req, {});
    reply(res, svc_.class_list(), 2);
  });
  s.del("/api/v1/classes", [this](const httplib::Request& req, httplib::Response& res) {
    only_params(req, {"host"});
    reply(res, svc_.class_remove(param(req, "host")), -1);
  });
  s.del(R"(/api/v1/classes/([^/]+))", [this](const httplib::Request& req, httplib::Response& res) {
    only_params(req, {});
    reply(res, svc_.class_remove(req.matches[1].str()), -1);
  });

  s.get("/api/v1/connections", [this](const httplib::Request& req, httplib::Response& res) {
    only_params(req, {"filter", "top"});
    refuse_empty(req, json(), "top", "every connection");  // (as /api/v1/flows)
    ConnectionsRequest r{param(req, "filter"), param_u64(req, "top", SIZE_MAX)};
    reply(res, svc_.connections(r), 2);
  });
  post(s, "/api/v1/connections/control", [this](const httplib::Request& req, httplib::Response& res) {
    only_params(req, {"filter", "suspend_cutoff", "suspend_timeout"});
    ControlRequest r{param(req, "filter"), flag(req, "suspend_cutoff"), flag(req, "suspend_timeout")};
    if (json j = body_object(req); !j.is_null()) {
      r.filter = json_string(j, "filter", r.filter);
      for (auto [key, dst] :
           {std::pair{"suspend_cutoff", &r.suspend_cutoff}, std::pair{"suspend_timeout", &r.suspend_timeout}})
        if (std::optional<bool> b = json_bool(j, key)) *dst = *b ? 1 : 0;
    }
    reply(res, svc_.control(r), -1);
  });
}

// Subscriptions: optional history, then new packets as they are recorded, until the client
// goes, the time limit, or shutdown.
// As GET and as POST (a form body: a filter longer than the request line's limit).
void HttpApi::subscribe_routes() {
  get_and_post_form(
      routes_, "/api/v1/subscribe", [this](const httplib::Request& req, httplib::Response& res) {
        only_params(req, {"filter", "history_from", "to", "class"});
        // (history_from= empty streamed the whole store: taken for "from the start")
        refuse_empty(req, json(), "history_from", "new packets only");
        refuse_empty(req, json(), "to", "no end");
        SubscribeRequest q{param(req, "filter"), param(req, "history_from"), param(req, "to"),
                           classes_of(req), req.has_param("history_from")};
        // A subscription's filter runs on every packet recorded, on the writer thread, for as long
        // as it lasts: kept to what a GET's URI held (a POST takes up to 1 MiB).
        if (q.filter.size() > kMaxSubscriptionFilter)
          throw BadRequest(
              fmt::format("filter: {} bytes; a subscription's filter runs on every packet recorded and "
                          "is limited to {} bytes",
                          q.filter.size(), kMaxSubscriptionFilter));
        struct Ctx {
          std::unique_ptr<Stream> stream;
          std::string filter;
        };
        auto ctx = std::make_shared<Ctx>();
        ctx->filter = q.filter;
        ctx->stream = open_admitted(subs_admit_, res, [&] { return svc_.open_subscription(q); });
        subs_total_++;
        res.set_chunked_content_provider(
            kPcapType,
            [this, ctx](size_t, httplib::DataSink& sink) {
              auto t0 = clk::now();
              auto limit = std::chrono::duration<double>(o_.subscription_seconds);
              auto stop = [&]() -> std::string {
                if (stopping_) return "shutting down";
                if (clk::now() - t0 >= limit) return "time limit";
                if (!sink.is_writable()) return "client went away";
                return "";
              };
              try {
                ctx->stream->run(
                    chunk_sink(sink),
                    [ctx](const std::string& w) { spdlog::warn("subscription '{}': {}", ctx->filter, w); },
                    stop);
                sink.done();
                return true;
              } catch (const Cancelled&) {
              } catch (const std::exception& e) {
                spdlog::info("subscription '{}' ended: {}", ctx->filter, e.what());
              }
              return false;
            },
            [this, ctx](bool) {
              ctx->stream.reset();  // unsubscribes
              subs_admit_.release();
            });
      });
}

// The web page (web_assets.h: embedded at build time): "/" and "/static/NAME", open without
// the token (the page asks for it and sends it with every API request). Revalidated by ETag
// at each load, so that a new tm-daemon is never shown with an old page.
void HttpApi::web_routes() {
  auto serve = [](const httplib::Request& req, httplib::Response& res, const WebAsset* a) {
    if (!a) {
      json_error(res, 404, "no such file: " + req.path);
      return;
    }
    res.set_header("Cache-Control", "no-cache");
    res.set_header("ETag", a->etag);
    res.set_header("X-Content-Type-Options", "nosniff");
    res.set_header("Referrer-Policy", "no-referrer");
    res.set_header("X-Frame-Options", "DENY");
    res.set_header("Content-Security-Policy",
                   "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; "
                   "frame-ancestors 'none'");
    if (req.get_header_value("If-None-Match") == a->etag) {
      res.status = 304;
      return;
    }
    res.set_content(reinterpret_cast<const char*>(a->data), a->size, a->type);
  };
  routes_.get("/", [serve](const httplib::Request& req, httplib::Response& res) {
    serve(req, res, find_web_asset("index.html"));
  });
  routes_.get(R"(/static/([A-Za-z0-9._-]+))", [serve](const httplib::Request& req, httplib::Response& res) {
    serve(req, res, find_web_asset(req.matches[1].str()));
  });
}

}  // namespace tmach::server
