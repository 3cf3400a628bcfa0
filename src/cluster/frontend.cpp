#include "cluster/frontend.h"

#include <fmt/format.h>
#include <httplib.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>

#include "cluster/flow_merge.h"
#include "cluster/pcap_merge.h"
#include "cluster/selection.h"
#include "cluster/worker_fetch.h"
#include "query/parser.h"
#include "server/api.h"
#include "server/flow_format.h"
#include "server/listen.h"

namespace tmach::cluster {
namespace {

using clk = std::chrono::steady_clock;
using nlohmann::json;

using server::flag_param;
using server::json_error;
using server::param;

std::vector<size_t> all_workers(const ClusterConfig& cfg) {
  std::vector<size_t> v(cfg.workers.size());
  for (size_t i = 0; i < v.size(); ++i) v[i] = i;
  return v;
}

// Forwards every query parameter but the front-end's own.
httplib::Params forward_params(const httplib::Request& req, std::initializer_list<const char*> drop,
                               std::initializer_list<std::pair<const char*, std::string>> set = {}) {
  httplib::Params p;
  for (auto& [k, v] : req.params) {
    bool skip = false;
    for (auto* d : drop) skip |= k == d;
    for (auto& s : set) skip |= k == s.first;
    if (!skip) p.emplace(k, v);
  }
  for (auto& [k, v] : set)
    if (!v.empty()) p.emplace(k, v);
  return p;
}

// Sums two worker stats objects: counts add up, first_ns/last_ns take min/max, arrays are
// concatenated, index_ratio is recomputed, anything else keeps the first value.
void add_stats(json& into, const json& from) {
  if (into.is_null()) {
    into = from;
    return;
  }
  if (!into.is_object() || !from.is_object()) return;
  for (auto& [k, v] : from.items()) {
    if (!into.contains(k)) {
      into[k] = v;
      continue;
    }
    json& d = into[k];
    if (v.is_object()) {
      add_stats(d, v);
    } else if (v.is_array() && d.is_array()) {
      for (auto& e : v) d.push_back(e);
    } else if (v.is_number_unsigned() && d.is_number_unsigned()) {
      if (k == "first_ns")
        d = std::min(d.get<uint64_t>(), v.get<uint64_t>());
      else if (k == "last_ns")
        d = std::max(d.get<uint64_t>(), v.get<uint64_t>());
      else
        d = d.get<uint64_t>() + v.get<uint64_t>();
    }
  }
  if (into.contains("pcap_bytes") && into.contains("index_bytes") && into["pcap_bytes"].is_number()) {
    double pcap = into["pcap_bytes"].get<double>(), idx = into["index_bytes"].get<double>();
    into["index_ratio"] = pcap > 0 ? idx / pcap : 0.0;
  }
}

// One merged packet into a pcap answer (server::pcap_answer).
void write_packet(util::pcap::Writer& out, const MergePacket& p) {
  out.write(p.ts_ns, p.linktype, static_cast<uint32_t>(p.data.size()), p.wirelen,
            reinterpret_cast<const uint8_t*>(p.data.data()));
}

void set_missing_headers(httplib::Response& res, const json& missing) {
  std::string urls, reasons;
  for (auto& [u, r] : missing.items()) {
    urls += (urls.empty() ? "" : " ") + u;
    reasons += fmt::format("{}{}: {}", reasons.empty() ? "" : "; ", u, r.get<std::string>());
  }
  if (!urls.empty()) {
    res.set_header("X-TM-Missing-Workers", urls);
    res.set_header("X-TM-Missing-Reasons", one_line(reasons));
  }
}

std::string urls_of(const ClusterConfig& cfg, const std::vector<size_t>& which) {
  std::string s;
  for (size_t i : which) s += (s.empty() ? "" : " ") + cfg.workers[i].url;
  return s;
}

// The filter parameter, parsed; ApiError(400) on a syntax error.
query::ParseResult parse_filter(const httplib::Request& req) {
  std::string text = param(req, "filter");
  query::ParseResult pr = query::parse_expr(text);
  if (pr.kind == query::ParseResult::Kind::kError) throw server::ApiError(400, query::format_error(text, pr));
  return pr;
}

json explain_json(const ClusterConfig& cfg, const query::ParseResult& pr, const Selection& sel) {
  json j;
  j["balance"] = cfg.balance.known ? json(scheme_name(cfg.balance.scheme)) : json(nullptr);
  j["tunnels"] = cfg.balance.tunnels;
  j["all"] = sel.all;
  j["why"] = sel.why;
  j["workers"] = json::array();
  for (size_t i = 0; i < cfg.workers.size(); ++i)
    if (sel.all || std::find(sel.workers.begin(), sel.workers.end(), i) != sel.workers.end())
      j["workers"].push_back({{"id", i}, {"url", cfg.workers[i].url}});
  j["parsed"] = pr.kind == query::ParseResult::Kind::kIndexed ? json(pr.expr.str()) : json(nullptr);
  return j;
}

std::vector<size_t> chosen(const ClusterConfig& cfg, const Selection& sel) {
  if (sel.all) return all_workers(cfg);
  return std::vector<size_t>(sel.workers.begin(), sel.workers.end());
}

// Requests that change or list state on every worker: per-worker results in "workers".
json per_worker(const ClusterConfig& cfg, const std::vector<Reply>& replies) {
  json w = json::array();
  for (size_t i = 0; i < replies.size(); ++i) {
    json e = {{"url", cfg.workers[i].url}, {"status", replies[i].status}};
    if (!replies[i].ok()) e["error"] = replies[i].error;
    w.push_back(e);
  }
  return w;
}

// All answered 2xx: `ok`. Otherwise the workers' common status if they agree (400 for a bad
// class, 409 for read-only workers), else 502; the body names each worker's result.
int fail_status(const std::vector<Reply>& replies) {
  int common = -1;
  for (auto& r : replies)
    if (!r.ok()) common = common == -1 || common == r.status ? r.status : 0;
  size_t bad = 0;
  for (auto& r : replies) bad += !r.ok();
  return bad == replies.size() && common > 0 ? common : 502;
}

}  // namespace

Frontend::Frontend(ClusterConfig cfg) : cfg_(std::move(cfg)), svr_(std::make_unique<httplib::Server>()) {
  // Every streaming query and subscription holds a server thread for its whole length: room
  // for all of them plus a few for health, stats and query status, which must not queue
  // behind them.
  size_t threads = static_cast<size_t>(cfg_.max_queries + cfg_.max_subscriptions + 4);
  svr_->new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
  for (size_t i = 0; i < cfg_.workers.size(); ++i) wc_.push_back(std::make_unique<WorkerCounters>());
  routes();
}

Frontend::~Frontend() = default;

void Frontend::bind() {
  server::HostPort a = server::parse_host_port(cfg_.listen, "listen");
  if (!svr_->bind_to_port(a.host, a.port))
    throw std::runtime_error(fmt::format("cannot listen on {} (address in use, or not local)", cfg_.listen));
}

void Frontend::serve() { svr_->listen_after_bind(); }

void Frontend::stop() {
  stopping_ = true;
  svr_->stop();
}

void Frontend::remember(uint64_t id, json status) {
  std::lock_guard lk(status_mu_);
  status_[id] = std::move(status);
  status_order_.push_back(id);
  while (status_order_.size() > 1024) {
    status_.erase(status_order_.front());
    status_order_.pop_front();
  }
}

Selection Frontend::select(const query::ParseResult& pr, const BalanceInfo& b) {
  Selection sel = select_workers(pr, b);
  if (sel.all) return sel;
  std::string why = share_mismatch();
  if (why.empty()) return sel;
  Selection all;
  all.why = why + ": every worker";
  return all;
}

// The configuration's worker order and scheme are what selection trusts: a worker that knows
// its share (tm serve --worker-id) is asked once, and a disagreement turns selection off
// (asking everyone stays right). Workers recorded offline (tm record --worker-id, then a
// read-only tm serve) cannot say: they are trusted.
std::string Frontend::share_mismatch() {
  std::lock_guard lk(share_mu_);
  if (!share_why_.empty()) return share_why_;
  share_checked_.resize(cfg_.workers.size(), 0);
  share_retry_.resize(cfg_.workers.size());
  for (size_t i = 0; i < cfg_.workers.size(); ++i) {
    if (share_checked_[i] || clk::now() < share_retry_[i]) continue;
    auto cl = make_client(cfg_.workers[i]);
    cl->set_connection_timeout(1);
    cl->set_read_timeout(1);
    auto r = cl->Get("/api/v1/stats");
    if (!r || r->status != 200) {  // down or slow: asked again later, not on every query
      share_retry_[i] = clk::now() + std::chrono::seconds(30);
      continue;
    }
    share_checked_[i] = 1;
    json j = json::parse(r->body, nullptr, false);
    if (!j.is_object() || !j.contains("capture") || !j["capture"].is_object() ||
        !j["capture"].contains("worker_share"))
      continue;
    const json& ws = j["capture"]["worker_share"];
    uint64_t id = ws.value("worker_id", uint64_t{0}), n = ws.value("workers", uint64_t{0});
    std::string scheme = ws.value("balance", std::string());
    std::string want = scheme_name(cfg_.balance.scheme);
    if (id != i || n != cfg_.workers.size() || scheme != want) {
      share_why_ = fmt::format(
          "worker {} ({}) records share {} of {} by {}, the configuration makes it {} of {} by {}", i,
          cfg_.workers[i].url, id, n, scheme, i, cfg_.workers.size(), want);
      spdlog::error("{}: worker selection off", share_why_);
      return share_why_;
    }
  }
  return "";
}

void Frontend::routes() {
  auto& s = *svr_;
  server::install_common_handlers(s, cfg_.token, http_requests_, 60);

  query_routes();
  flow_routes();
  report_routes();
  stats_routes();
  state_routes();
  subscribe_routes();
}

// Health, the cluster's configuration, query outcomes, and explain.
void Frontend::report_routes() {
  auto& s = *svr_;
  s.Get("/health", [this](const httplib::Request&, httplib::Response& res) {
    json j = {{"status", "ok"}, {"frontend", true}, {"workers", cfg_.workers.size()}};
    res.set_content(j.dump() + "\n", server::kJsonType);
  });

  // The cluster as configured, and the outcome of recent packet queries (by X-TM-Query-Id).
  s.Get("/api/v1/cluster", [this](const httplib::Request&, httplib::Response& res) {
    json j;
    j["balance"] = cfg_.balance.known ? json(scheme_name(cfg_.balance.scheme)) : json(nullptr);
    j["tunnels"] = cfg_.balance.tunnels;
    j["workers"] = json::array();
    for (size_t i = 0; i < cfg_.workers.size(); ++i)
      j["workers"].push_back({{"id", i},
                              {"url", cfg_.workers[i].url},
                              {"timeout", cfg_.workers[i].timeout_s},
                              {"up", wc_[i]->up.load()}});
    res.set_content(j.dump(2) + "\n", server::kJsonType);
  });
  s.Get(R"(/api/v1/cluster/queries/(\d+))", [this](const httplib::Request& req, httplib::Response& res) {
    uint64_t id = std::stoull(req.matches[1].str());
    std::lock_guard lk(status_mu_);
    auto it = status_.find(id);
    if (it == status_.end())
      throw server::ApiError(404, fmt::format("no query {} (still running, or forgotten)", id));
    res.set_content(it->second.dump() + "\n", server::kJsonType);
  });

  s.Get("/api/v1/explain", [this](const httplib::Request& req, httplib::Response& res) {
    auto pr = parse_filter(req);
    json j = explain_json(cfg_, pr, select(pr, cfg_.balance));
    j["filter"] = param(req, "filter");
    res.set_content(j.dump(2) + "\n", server::kJsonType);
  });
}

void Frontend::query_routes() {
  auto& s = *svr_;
  // Packet queries: fan out, wait for every worker's answer status (bounded by its time
  // limit), then merge the streams by timestamp.
  s.Get("/api/v1/query", [this](const httplib::Request& req, httplib::Response& res) {
    auto pr = parse_filter(req);
    bool require_all = flag_param(req, "require_all");
    Selection sel = select(pr, cfg_.balance);
    std::vector<size_t> which = chosen(cfg_, sel);
    queries_admit_.admit();
    struct Ctx {
      std::shared_ptr<FetchSet> fs;
      uint64_t id = 0;
      clk::time_point t0 = clk::now();
    };
    auto ctx = std::make_shared<Ctx>();
    try {
      ctx->id = next_id_++;
      std::string path = httplib::append_query_params("/api/v1/query", forward_params(req, {"require_all"}));
      ctx->fs = start_fetches(cfg_, which, path, 4u << 20);
      for (auto& f : ctx->fs->f) wc_[f->idx]->requests++;
      ctx->fs->wait_started(ctx->t0);
      // A filter every worker refuses is the client's error, not a missing worker.
      for (auto& f : ctx->fs->f) {
        std::lock_guard lk(f->mu);
        if (f->status == 400) throw server::ApiError(400, error_text(400, f->error_body));
      }
      json missing = missing_of(*ctx->fs);
      for (auto& f : ctx->fs->f) {
        wc_[f->idx]->up = f->status != 0;
        if (missing.contains(f->url)) wc_[f->idx]->failures++;
      }
      if (missing.size() == which.size()) {  // an empty answer would look like "no match"
        std::string m;
        for (auto& [u, r] : missing.items())
          m += fmt::format("{}{}: {}", m.empty() ? "" : "; ", u, r.get<std::string>());
        partial_++;
        throw server::ApiError(502, fmt::format("no worker answered: {}", m));
      }
      if (!missing.empty() && require_all) {
        std::string m;
        for (auto& [u, r] : missing.items())
          m += fmt::format("{}{}: {}", m.empty() ? "" : "; ", u, r.get<std::string>());
        partial_++;
        throw server::ApiError(503, fmt::format("--require-all: {} of {} workers did not answer: {}",
                                                missing.size(), which.size(), m));
      }
      res.set_header("X-TM-Query-Id", std::to_string(ctx->id));
      res.set_header("X-TM-Workers", urls_of(cfg_, which));
      set_missing_headers(res, missing);
      if (!missing.empty())
        spdlog::warn("query '{}': workers missing: {}", param(req, "filter"), missing.dump());
    } catch (...) {
      queries_admit_.release();
      throw;
    }
    queries_++;
    res.set_chunked_content_provider(
        server::kPcapType,
        [this, ctx, require_all, which](size_t, httplib::DataSink& sink) {
          util::pcap::Writer out = server::pcap_answer(sink);
          std::vector<PacketQueue*> qs;
          // Every queue, also of a worker that failed mid-answer: what it sent before is valid.
          for (auto& f : ctx->fs->f) qs.push_back(f->q.get());
          // A started answer may be silent for long: a worker scanning weeks for a rare match
          // sends nothing until it finds 64 KiB or ends. Only the query's own time limit ends
          // the wait (a dead worker's socket closes long before).
          auto limit = std::chrono::duration<double>(cfg_.query_timeout_s);
          auto end = ctx->t0 + std::chrono::duration_cast<clk::duration>(limit);
          bool cut = false;
          std::string why_cut;
          try {
            for (;;) {
              std::vector<size_t> stuck;
              auto i = merge_next(qs, std::max(end - clk::now(), clk::duration::zero()), &stuck);
              for (size_t k : stuck) {
                Fetch& f = *ctx->fs->f[k];
                {
                  std::lock_guard lk(f.mu);
                  f.reason = fmt::format("no data before the query time limit ({} s)", cfg_.query_timeout_s);
                }
                f.give_up();
              }
              if (!i) break;
              write_packet(out, qs[*i]->pop());
              if (stopping_ || clk::now() - ctx->t0 > limit) {
                cut = true;
                why_cut = stopping_ ? "shutting down" : "query time limit";
                break;
              }
            }
            if (!cut) out.finish();
          } catch (const std::exception& e) {
            cut = true;
            why_cut = e.what();
          }
          ctx->fs->end();
          json missing = missing_of(*ctx->fs);
          json st = {{"id", ctx->id},
                     {"done", true},
                     {"complete", missing.empty() && !cut},
                     {"workers", json::array()},
                     {"missing", missing},
                     {"packets", out.packets()},
                     {"other_link_type", out.other_link()}};
          for (auto& f : ctx->fs->f) {
            st["workers"].push_back(
                {{"url", f->url}, {"packets", f->packets}, {"ok", !missing.contains(f->url)}});
            wc_[f->idx]->packets += f->packets;
          }
          if (cut) st["cut"] = why_cut;
          remember(ctx->id, st);
          if (out.other_link())
            spdlog::warn("query {}: {} packets of another link type left out", ctx->id, out.other_link());
          bool mid = false;
          for (auto& f : ctx->fs->f) {
            std::lock_guard lk(f->mu);
            if (f->started && missing.contains(f->url)) mid = true;
          }
          if (mid) {
            partial_++;
            spdlog::warn("query {}: workers failed mid-answer: {}", ctx->id, missing.dump());
          }
          if (cut || (mid && require_all)) return false;  // the client sees an incomplete answer
          sink.done();
          return true;
        },
        [this, ctx](bool) {
          ctx->fs->end();
          queries_admit_.release();
        });
  });
}

void Frontend::flow_routes() {
  auto& s = *svr_;
  // Flows: every selected worker's matching records (its top N for --top), merged.
  s.Get("/api/v1/flows", [this](const httplib::Request& req, httplib::Response& res) {
    auto pr = parse_filter(req);
    server::FlowParams fp = server::flow_params(req);
    // Flow records carry the innermost addresses; the hash is of the outermost layer: the
    // selection applies only where the two are the same (no tunnels).
    BalanceInfo b = cfg_.balance;
    if (b.tunnels) b.known = false;
    std::vector<size_t> which = chosen(cfg_, select(pr, b));
    bool require_all = flag_param(req, "require_all");
    queries_admit_.admit();
    struct Release {
      server::Admission& a;
      ~Release() { a.release(); }
    } release{queries_admit_};
    httplib::Params p = forward_params(req, {"require_all", "format"}, {{"format", "json"}});
    std::string path = httplib::append_query_params("/api/v1/flows", p);
    auto replies = fan_out(cfg_, wc_, which, [&](httplib::Client& c) { return c.Get(path); });
    json missing = json::object();
    std::vector<std::vector<flow::FlowRow>> parts;
    for (size_t k = 0; k < which.size(); ++k) {
      auto& r = replies[k];
      if (r.status == 400) throw server::ApiError(400, error_text(400, r.body));
      if (!r.ok()) {
        missing[cfg_.workers[which[k]].url] = r.error;
        continue;
      }
      parts.push_back(server::parse_flow_lines(r.body));
    }
    if (!missing.empty() && require_all)
      throw server::ApiError(503, fmt::format("--require-all: workers did not answer: {}", missing.dump()));
    auto rows = merge_flows(std::move(parts), fp.top, fp.by);
    flow_queries_++;
    res.set_header("X-TM-Workers", urls_of(cfg_, which));
    set_missing_headers(res, missing);
    res.set_content(server::render_flows(rows, fp.format), server::flow_content_type(fp.format));
  });
}

void Frontend::stats_routes() {
  auto& s = *svr_;
  s.Get("/api/v1/stats", [this](const httplib::Request&, httplib::Response& res) {
    auto which = all_workers(cfg_);
    auto replies = fan_out(cfg_, wc_, which, [](httplib::Client& c) { return c.Get("/api/v1/stats"); });
    json j;
    j["frontend"] = {{"queries", queries_.load()},
                     {"flow_queries", flow_queries_.load()},
                     {"partial_answers", partial_.load()},
                     {"queries_rejected", queries_admit_.rejected() + subs_admit_.rejected()},
                     {"active_queries", queries_admit_.active()}};
    j["balance"] = cfg_.balance.known ? json(scheme_name(cfg_.balance.scheme)) : json(nullptr);
    j["workers"] = json::array();
    j["down"] = json::array();
    json store, capture;
    for (size_t k = 0; k < which.size(); ++k) {
      json w = {{"id", k}, {"url", cfg_.workers[k].url}, {"up", replies[k].ok()}};
      if (replies[k].ok()) {
        json body = json::parse(replies[k].body, nullptr, false);
        w["stats"] = body;
        if (body.is_object() && body.contains("store")) add_stats(store, body["store"]);
        if (body.is_object() && body.contains("capture")) add_stats(capture, body["capture"]);
      } else {
        w["error"] = replies[k].error;
        j["down"].push_back(cfg_.workers[k].url);
      }
      j["workers"].push_back(w);
    }
    j["store"] = store.is_null() ? json::object() : store;  // totals over the workers that answered
    if (!capture.is_null()) j["capture"] = capture;
    res.set_content(j.dump(2) + "\n", server::kJsonType);
  });

  s.Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
    auto which = all_workers(cfg_);
    auto replies = fan_out(cfg_, wc_, which, [](httplib::Client& c) { return c.Get("/health"); });
    server::Metrics m;
    for (size_t i = 0; i < which.size(); ++i) {
      std::vector<std::pair<std::string, std::string>> l = {{"worker", cfg_.workers[i].url}};
      m.add("tm_frontend_worker_up", "gauge", "1 when the worker answered its last request (health now).",
            replies[i].ok() ? 1 : 0, l);
      m.add("tm_frontend_worker_requests_total", "counter", "Requests the front-end sent to the worker.",
            static_cast<double>(wc_[i]->requests.load()), l);
      m.add("tm_frontend_worker_failures_total", "counter",
            "Requests to the worker that failed (no answer, error status, time limit, cut stream).",
            static_cast<double>(wc_[i]->failures.load()), l);
      m.add("tm_frontend_worker_packets_total", "counter", "Packets merged from the worker's answers.",
            static_cast<double>(wc_[i]->packets.load()), l);
    }
    m.add("tm_queries_total", "counter", "Packet queries started.", static_cast<double>(queries_.load()));
    m.add("tm_flow_queries_total", "counter", "Flow queries answered.",
          static_cast<double>(flow_queries_.load()));
    m.add("tm_frontend_partial_answers_total", "counter", "Answers without one or more workers.",
          static_cast<double>(partial_.load()));
    m.add("tm_queries_rejected_total", "counter", "Queries refused: too many at once.",
          static_cast<double>(queries_admit_.rejected() + subs_admit_.rejected()));
    m.add("tm_queries_active", "gauge", "Queries running now.", queries_admit_.active());
    m.add("tm_http_requests_total", "counter", "HTTP requests received.",
          static_cast<double>(http_requests_.load()));
    res.set_content(m.text(), server::kMetricsType);
  });
}

// Dynamic classes and per-connection controls: every worker.
void Frontend::state_routes() {
  auto& s = *svr_;
  s.Post("/api/v1/classes", [this](const httplib::Request& req, httplib::Response& res) {
    std::string path = httplib::append_query_params("/api/v1/classes", forward_params(req, {}));
    std::string body = req.body, type = req.get_header_value("Content-Type");
    if (type.empty()) type = server::kJsonType;
    auto replies = fan_out(cfg_, wc_, all_workers(cfg_),
                           [&](httplib::Client& c) { return c.Post(path, body, type.c_str()); });
    json w = per_worker(cfg_, replies);
    bool all_ok = std::all_of(replies.begin(), replies.end(), [](auto& r) { return r.ok(); });
    if (!all_ok) {
      size_t bad = std::count_if(replies.begin(), replies.end(), [](auto& r) { return !r.ok(); });
      std::string why;
      for (size_t i = 0; i < replies.size(); ++i)
        if (!replies[i].ok()) why += fmt::format("; {}: {}", cfg_.workers[i].url, replies[i].error);
      return json_error(res, fail_status(replies),
                        fmt::format("{} of {} workers did not set the class{}", bad, replies.size(), why),
                        {{"workers", w}});
    }
    json j = json::parse(replies[0].body, nullptr, false);
    if (!j.is_object()) j = json::object();
    j["workers"] = w;
    res.set_content(j.dump() + "\n", server::kJsonType);
  });
  s.Get("/api/v1/classes", [this](const httplib::Request&, httplib::Response& res) {
    auto replies =
        fan_out(cfg_, wc_, all_workers(cfg_), [](httplib::Client& c) { return c.Get("/api/v1/classes"); });
    // One entry per host (as a worker lists them), with the workers that hold it.
    std::map<std::string, json> by_host;
    size_t ok = 0;
    for (size_t i = 0; i < replies.size(); ++i) {
      if (!replies[i].ok()) continue;
      ++ok;
      json arr = json::parse(replies[i].body, nullptr, false);
      if (!arr.is_array()) continue;
      for (auto& e : arr) {
        std::string h = e.value("host", "");
        json& d = by_host[h];
        if (d.is_null()) {
          d = e;
          d["workers"] = json::array();
        }
        d["workers"].push_back(cfg_.workers[i].url);
      }
    }
    if (!ok)
      return json_error(res, fail_status(replies), "no worker answered",
                        {{"workers", per_worker(cfg_, replies)}});
    json out = json::array();
    for (auto& [h, e] : by_host) out.push_back(e);
    std::string missing;
    for (size_t i = 0; i < replies.size(); ++i)
      if (!replies[i].ok()) missing += (missing.empty() ? "" : " ") + cfg_.workers[i].url;
    if (!missing.empty()) res.set_header("X-TM-Missing-Workers", missing);
    res.set_content(out.dump(2) + "\n", server::kJsonType);
  });
  auto del = [this](const std::string& host, httplib::Response& res) {
    if (host.empty()) throw server::ApiError(400, "give the host");
    auto replies = fan_out(cfg_, wc_, all_workers(cfg_),
                           [&](httplib::Client& c) { return c.Delete("/api/v1/classes/" + host); });
    json w = per_worker(cfg_, replies);
    size_t removed = std::count_if(replies.begin(), replies.end(), [](auto& r) { return r.ok(); });
    if (!removed)
      return json_error(res, 404, fmt::format("no dynamic class for host {} on any worker", host),
                        {{"workers", w}});
    res.set_content(json{{"removed", host}, {"workers", w}}.dump() + "\n", server::kJsonType);
  };
  s.Delete("/api/v1/classes",
           [del](const httplib::Request& req, httplib::Response& res) { del(param(req, "host"), res); });
  s.Delete(R"(/api/v1/classes/([^/]+))",
           [del](const httplib::Request& req, httplib::Response& res) { del(req.matches[1].str(), res); });

  // Per-connection controls: a connection lives at one worker; listing asks all.
  s.Get("/api/v1/connections", [this](const httplib::Request& req, httplib::Response& res) {
    std::string path = httplib::append_query_params("/api/v1/connections", forward_params(req, {}));
    auto replies = fan_out(cfg_, wc_, all_workers(cfg_), [&](httplib::Client& c) { return c.Get(path); });
    json all = json::array();
    size_t ok = 0;
    for (size_t i = 0; i < replies.size(); ++i) {
      if (replies[i].status == 400) throw server::ApiError(400, error_text(400, replies[i].body));
      if (!replies[i].ok()) continue;
      ++ok;
      json arr = json::parse(replies[i].body, nullptr, false);
      if (arr.is_array())
        for (auto& e : arr) {
          e["worker"] = cfg_.workers[i].url;
          all.push_back(e);
        }
    }
    if (!ok)
      return json_error(res, fail_status(replies), "no worker answered",
                        {{"workers", per_worker(cfg_, replies)}});
    std::stable_sort(all.begin(), all.end(), [](const json& a, const json& b) {
      return a.value("bytes", uint64_t{0}) > b.value("bytes", uint64_t{0});
    });
    size_t top = 0;
    if (std::string t = param(req, "top"); !t.empty()) top = std::strtoull(t.c_str(), nullptr, 10);
    if (top && all.size() > top) all.erase(all.begin() + static_cast<long>(top), all.end());
    res.set_content(all.dump(2) + "\n", server::kJsonType);
  });
  s.Post("/api/v1/connections/control", [this](const httplib::Request& req, httplib::Response& res) {
    std::string path = httplib::append_query_params("/api/v1/connections/control", forward_params(req, {}));
    std::string body = req.body;
    auto replies = fan_out(cfg_, wc_, all_workers(cfg_),
                           [&](httplib::Client& c) { return c.Post(path, body, server::kJsonType); });
    uint64_t n = 0;
    for (auto& r : replies)
      if (r.ok()) n += json::parse(r.body, nullptr, false).value("connections", uint64_t{0});
    if (std::none_of(replies.begin(), replies.end(), [](auto& r) { return r.ok(); }))
      return json_error(res, fail_status(replies), "no worker applied the control",
                        {{"workers", per_worker(cfg_, replies)}});
    res.set_content(json{{"connections", n}, {"workers", per_worker(cfg_, replies)}}.dump() + "\n",
                    server::kJsonType);
  });
}

void Frontend::subscribe_routes() {
  auto& s = *svr_;
  // Subscriptions: every worker's live stream, interleaved as packets arrive (each worker's
  // own order is kept; across workers, arrival order at the front-end).
  s.Get("/api/v1/subscribe", [this](const httplib::Request& req, httplib::Response& res) {
    parse_filter(req);
    subs_admit_.admit();
    auto q = std::make_shared<PacketQueue>(64u << 20);
    std::string path = httplib::append_query_params("/api/v1/subscribe", forward_params(req, {}));
    auto which = all_workers(cfg_);
    struct Ctx {
      std::shared_ptr<FetchSet> fs;
      std::shared_ptr<PacketQueue> q;
      server::Admission* active;
      // The shared queue is cancelled first, so a fetch blocked on it wakes before the fetch
      // set joins its thread (on every path: error, end, client gone).
      ~Ctx() {
        if (q) q->cancel();
        fs.reset();
        active->release();
      }
    };
    auto ctx = std::make_shared<Ctx>();
    ctx->active = &subs_admit_;
    ctx->q = q;
    // One queue for all: packets interleave as they come; a subscription may stay quiet for long.
    ctx->fs = start_fetches(cfg_, which, path, 0, q, 24 * 3600);
    ctx->fs->wait_started(clk::now());
    json missing = json::object();
    size_t started = 0;
    for (auto& f : ctx->fs->f) {
      std::lock_guard lk(f->mu);
      if (f->status == 400) throw server::ApiError(400, error_text(400, f->error_body));
      if (f->started)
        ++started;
      else
        missing[f->url] = f->reason;
    }
    if (!started) {
      std::string m;
      for (auto& [u, r] : missing.items())
        m += fmt::format("{}{}: {}", m.empty() ? "" : "; ", u, r.get<std::string>());
      throw server::ApiError(502, "no worker accepted the subscription: " + m);
    }
    set_missing_headers(res, missing);
    res.set_chunked_content_provider(
        server::kPcapType,
        [this, ctx](size_t, httplib::DataSink& sink) {
          util::pcap::Writer out = server::pcap_answer(sink);
          try {
            while (!stopping_) {
              bool any_running = false;
              for (auto& f : ctx->fs->f) {
                std::lock_guard lk(f->mu);
                any_running |= f->state == Fetch::State::kStreaming || f->state == Fetch::State::kWaiting;
              }
              bool got = false;
              while (ctx->q->wait_head(clk::now() + std::chrono::milliseconds(200))) {
                write_packet(out, ctx->q->pop());
                got = true;
                if (ctx->q->bytes() == 0) break;
              }
              out.flush();
              if (!got && !sink.is_writable()) break;
              if (!any_running && !got) break;
            }
            out.finish();
            sink.done();
            return true;
          } catch (const std::exception& e) {
            spdlog::info("subscription ended: {}", e.what());
          }
          return false;
        },
        [ctx](bool) {
          ctx->q->cancel();
          for (auto& f : ctx->fs->f) f->give_up();
          ctx->fs->end();
        });
  });
}

}  // namespace tmach::cluster
