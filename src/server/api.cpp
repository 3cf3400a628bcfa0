#include "server/api.h"

#include <fmt/format.h>
#include <httplib.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <deque>

#include "flow/flow_query.h"
#include "query/executor.h"
#include "query/packet_filter.h"
#include "server/flow_format.h"
#include "server/http_limits.h"
#include "server/store_stats.h"
#include "server/subscription.h"
#include "util/timespec.h"
#include "util/units.h"

namespace tmach::server {
namespace {

using clk = std::chrono::steady_clock;

// filter, from, to and class parameters -> a query; ApiError(400) when one is bad.
query::QuerySpec parse_spec(const httplib::Request& req, const char* from_name = "from") {
  query::QuerySpec q;
  q.text = param(req, "filter");
  q.parsed = query::parse_expr(q.text);
  if (q.parsed.kind == query::ParseResult::Kind::kError)
    throw ApiError(400, query::format_error(q.text, q.parsed));
  if (q.parsed.kind == query::ParseResult::Kind::kBpfOnly) {
    std::string err = query::bpf_compile_error(q.text);
    if (!err.empty()) throw ApiError(400, fmt::format("filter: {}", err));
  }
  uint64_t now = util::now_ns();
  std::string err;
  for (auto [name, dst] : {std::pair{from_name, &q.from_ns}, std::pair{"to", &q.to_ns}}) {
    std::string v = param(req, name);
    if (v.empty()) continue;
    auto t = util::parse_time(v, now, &err);
    if (!t) throw ApiError(400, fmt::format("{}: {}", name, err));
    *dst = *t;
  }
  if (q.from_ns > q.to_ns) throw ApiError(400, "from is after to");
  for (size_t i = 0; i < req.get_param_value_count("class"); ++i)
    q.classes.push_back(req.get_param_value("class", i));
  return q;
}

struct Abort {};

std::string escape_label(const std::string& v) {
  std::string o;
  for (char c : v) {
    if (c == '\\' || c == '"') o += '\\';
    if (c == '\n') {
      o += "\\n";
      continue;
    }
    o += c;
  }
  return o;
}

}  // namespace

void Metrics::add(const std::string& name, const std::string& type, const std::string& help, double value,
                  const std::vector<std::pair<std::string, std::string>>& labels, const std::string& suffix) {
  Family* f = nullptr;
  for (auto& x : fam_)
    if (x.name == name) f = &x;
  if (!f) {
    fam_.push_back(Family{name, type, help, {}});
    f = &fam_.back();
  }
  std::string s = name + suffix;
  if (!labels.empty()) {
    s += '{';
    for (size_t i = 0; i < labels.size(); ++i)
      s += fmt::format("{}{}=\"{}\"", i ? "," : "", labels[i].first, escape_label(labels[i].second));
    s += '}';
  }
  s += ' ';
  if (value == static_cast<double>(static_cast<int64_t>(value)) && std::abs(value) < 9e15)
    s += fmt::format("{}", static_cast<int64_t>(value));
  else
    s += fmt::format("{}", value);
  f->samples.push_back(std::move(s));
}

std::string Metrics::text() const {
  std::string o;
  for (auto& f : fam_) {
    o += fmt::format("# HELP {} {}\n# TYPE {} {}\n", f.name, f.help, f.name, f.type);
    for (auto& s : f.samples) o += s + "\n";
  }
  return o;
}

ApiServer::ApiServer(ApiOptions o, Backend* live)
    : o_(std::move(o)), live_(live), svr_(std::make_unique<httplib::Server>()) {
  routes();
}

ApiServer::~ApiServer() = default;

void ApiServer::bind() {
  if (!svr_->bind_to_port(o_.host, o_.port))
    throw std::runtime_error(
        fmt::format("cannot listen on {}:{} (address in use, or not local)", o_.host, o_.port));
}

void ApiServer::serve() { svr_->listen_after_bind(); }

void ApiServer::stop() {
  stopping_ = true;
  svr_->stop();
}

void ApiServer::observe_latency(double s) {
  std::lock_guard lk(lat_mu_);
  for (size_t i = 0; i < lat_bounds_.size(); ++i)
    if (s <= lat_bounds_[i]) lat_buckets_[i]++;
  lat_count_++;
  lat_sum_ += s;
}

void ApiServer::routes() {
  auto& s = *svr_;
  // A client (a cluster front-end merging this answer with a slower worker's) may stop
  // reading for as long as a query may last: only then is the answer cut.
  install_common_handlers(s, o_.token, http_requests_, static_cast<time_t>(std::max(60.0, o_.query_seconds)));

  s.Get("/health", [this](const httplib::Request&, httplib::Response& res) {
    nlohmann::json j = {{"status", "ok"}, {"live", live_ != nullptr}, {"store", o_.store}};
    res.set_content(j.dump() + "\n", kJsonType);
  });

  s.Get("/api/v1/query", [this](const httplib::Request& req, httplib::Response& res) {
    limit_answer_time(o_.query_seconds + 1);  // a client that stops reading is cut off, its slot freed
    query::QuerySpec q = parse_spec(req);
    queries_admit_.admit();
    struct Ctx {
      store::Catalog cat;
      query::QuerySpec q;
      clk::time_point t0 = clk::now();
      bool ok = false;
    };
    auto ctx = std::make_shared<Ctx>();
    try {
      if (live_ && !live_->sync())
        spdlog::warn("query: the writer did not flush in time; recent packets may be missing");
      // Names only: the executor checks each sidecar it opens (as tm query does).
      ctx->cat = store::Catalog::scan(o_.store, store::Catalog::Depth::kNames);
      for (auto& c : q.classes)
        if (std::find(ctx->cat.classes.begin(), ctx->cat.classes.end(), c) == ctx->cat.classes.end())
          throw ApiError(400, fmt::format("no class '{}' in the store", c));
    } catch (...) {
      queries_admit_.release();
      throw;
    }
    ctx->q = std::move(q);
    queries_++;
    res.set_chunked_content_provider(
        kPcapType,
        [this, ctx](size_t, httplib::DataSink& sink) {
          util::pcap::Writer out = pcap_answer(sink);
          auto limit = std::chrono::duration<double>(o_.query_seconds);
          uint64_t n = 0;
          try {
            query::QueryStats st = query::run_query(ctx->cat, ctx->q, [&](const query::OutPacket& p) {
              if ((++n & 255) == 0 && (stopping_ || clk::now() - ctx->t0 > limit)) throw Abort{};
              out.write(p.ts_ns, p.linktype, p.caplen, p.wirelen, p.data);
            });
            out.finish();
            for (auto& w : st.warnings) spdlog::warn("query '{}': {}", ctx->q.text, w);
            if (out.other_link())
              spdlog::warn("query '{}': {} packets of another link type left out", ctx->q.text,
                           out.other_link());
            query_packets_ += out.packets();
            query_bytes_ += out.bytes();
            ctx->ok = true;
            sink.done();
            return true;
          } catch (const Abort&) {
            spdlog::warn("query '{}' cut off ({})", ctx->q.text, stopping_ ? "shutting down" : "time limit");
          } catch (const std::exception& e) {
            spdlog::info("query '{}' ended: {}", ctx->q.text, e.what());
          }
          return false;
        },
        [this, ctx](bool) {
          queries_admit_.release();
          if (!ctx->ok) query_errors_++;
          observe_latency(std::chrono::duration<double>(clk::now() - ctx->t0).count());
        });
  });

  s.Get("/api/v1/flows", [this](const httplib::Request& req, httplib::Response& res) {
    query::QuerySpec q = parse_spec(req);
    FlowParams fp = flow_params(req);
    queries_admit_.admit();
    auto t0 = clk::now();
    try {
      flow::FlowQueryStats st;
      auto rows = flow::query_flows(o_.store, q.parsed, q.from_ns, q.to_ns, st);
      top_flows(rows, fp.top, fp.by);
      res.set_content(render_flows(rows, fp.format), flow_content_type(fp.format));
      for (auto& w : st.warnings) spdlog::warn("flows: {}", w);
    } catch (...) {
      queries_admit_.release();
      throw;
    }
    queries_admit_.release();
    flow_queries_++;
    observe_latency(std::chrono::duration<double>(clk::now() - t0).count());
  });

  s.Get("/api/v1/stats", [this](const httplib::Request&, httplib::Response& res) {
    nlohmann::json j;
    j["store"] = catalog_json(store::Catalog::scan(o_.store));
    j["store_path"] = o_.store;
    j["live"] = live_ != nullptr;
    if (live_) j["capture"] = live_->stats();
    j["api"] = {{"queries", queries_.load()},
                {"flow_queries", flow_queries_.load()},
                {"queries_failed", query_errors_.load()},
                {"queries_rejected", queries_admit_.rejected()},
                {"active_queries", queries_admit_.active()},
                {"active_subscriptions", subs_admit_.active()}};
    res.set_content(j.dump(2) + "\n", kJsonType);
  });

  s.Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
    Metrics m;
    if (live_) live_->metrics(m);
    store::Catalog cat = store::Catalog::scan(o_.store);
    std::map<std::string, std::pair<uint64_t, uint64_t>> seg;  // class -> segments, bytes
    for (auto& c : cat.classes) seg[c];
    for (auto& sg : cat.segments) {
      seg[sg.cls].first++;
      seg[sg.cls].second += sg.disk_bytes();
    }
    for (auto& [c, v] : seg) {
      m.add("tm_store_segments", "gauge", "Segments in the store, by class.", static_cast<double>(v.first),
            {{"class", c}});
      m.add("tm_store_disk_bytes", "gauge", "Disk use of the store (pcap and sidecars), by class.",
            static_cast<double>(v.second), {{"class", c}});
    }
    m.add("tm_queries_total", "counter", "Packet queries answered or started.",
          static_cast<double>(queries_.load()));
    m.add("tm_flow_queries_total", "counter", "Flow queries answered.",
          static_cast<double>(flow_queries_.load()));
    m.add("tm_queries_failed_total", "counter", "Queries cut off or failed while streaming.",
          static_cast<double>(query_errors_.load()));
    m.add("tm_queries_rejected_total", "counter", "Queries refused: too many at once.",
          static_cast<double>(queries_admit_.rejected()));
    m.add("tm_queries_active", "gauge", "Queries running now.", queries_admit_.active());
    m.add("tm_query_packets_total", "counter", "Packets sent in query answers.",
          static_cast<double>(query_packets_));
    {
      std::lock_guard lk(lat_mu_);
      const char* h = "tm_query_duration_seconds";
      const char* help = "Query latency in seconds (packet and flow queries).";
      for (size_t i = 0; i < lat_bounds_.size(); ++i)
        m.add(h, "histogram", help, static_cast<double>(lat_buckets_[i]),
              {{"le", fmt::format("{}", lat_bounds_[i])}}, "_bucket");
      m.add(h, "histogram", help, static_cast<double>(lat_count_), {{"le", "+Inf"}}, "_bucket");
      m.add(h, "histogram", help, lat_sum_, {}, "_sum");
      m.add(h, "histogram", help, static_cast<double>(lat_count_), {}, "_count");
    }
    m.add("tm_subscriptions_active", "gauge", "Live subscriptions now.", subs_admit_.active());
    m.add("tm_subscriptions_total", "counter", "Subscriptions started.",
          static_cast<double>(subs_total_.load()));
    m.add("tm_http_requests_total", "counter", "HTTP requests received.",
          static_cast<double>(http_requests_.load()));
    for (auto& x : http_limit_metrics()) m.add(x.name, "counter", x.help, static_cast<double>(x.value));
    res.set_content(m.text(), kMetricsType);
  });

  // Dynamic classes.
  auto need_live = [this] {
    if (!live_) throw ApiError(409, "this tm serve does not capture (read-only store): no dynamic classes");
  };
  s.Post("/api/v1/classes", [this, need_live](const httplib::Request& req, httplib::Response& res) {
    need_live();
    std::string host = param(req, "host"), cls = param(req, "class"), dur = param(req, "for");
    if (!req.body.empty() && req.body[0] == '{') {
      auto j = json_body(req);
      host = json_string(j, "host", host);
      cls = json_string(j, "class", cls);
      dur = json_string(j, "for", dur);
    }
    if (host.empty() || cls.empty()) throw ApiError(400, "give host and class (and optionally for=DURATION)");
    uint64_t for_ns = 0;
    if (!dur.empty()) {
      auto d = util::parse_duration_ns(dur);
      if (!d || *d == 0)
        throw ApiError(400, fmt::format("for: '{}' is not a duration (examples: 30m, 2h, 7d)", dur));
      for_ns = *d;
    }
    res.set_content(live_->class_set(host, cls, for_ns).dump() + "\n", kJsonType);
  });
  s.Get("/api/v1/classes", [this, need_live](const httplib::Request&, httplib::Response& res) {
    need_live();
    res.set_content(live_->class_list().dump(2) + "\n", kJsonType);
  });
  auto del = [this, need_live](const std::string& host, httplib::Response& res) {
    need_live();
    if (host.empty()) throw ApiError(400, "give the host");
    if (!live_->class_remove(host)) throw ApiError(404, fmt::format("no dynamic class for host {}", host));
    res.set_content(nlohmann::json{{"removed", host}}.dump() + "\n", kJsonType);
  };
  s.Delete("/api/v1/classes",
           [del](const httplib::Request& req, httplib::Response& res) { del(param(req, "host"), res); });
  s.Delete(R"(/api/v1/classes/([^/]+))",
           [del](const httplib::Request& req, httplib::Response& res) { del(req.matches[1].str(), res); });

  // Per-connection controls, as an IDS needs them. Parameters in the query string or, for
  // POST, as a JSON body {"filter": ..., "suspend_cutoff": true, "suspend_timeout": false}.
  auto conn_filter = [](const std::string& text) {
    query::ParseResult pr = query::parse_expr(text);
    if (pr.kind == query::ParseResult::Kind::kError) throw ApiError(400, query::format_error(text, pr));
    if (pr.kind == query::ParseResult::Kind::kBpfOnly)
      throw ApiError(400, fmt::format("filter: connections are selected by addresses, ports and protocols; "
                                      "'{}' is not one of those",
                                      pr.unplanned));
    return pr.expr;
  };
  auto flag = [](const std::string& v, const char* name) {
    if (v.empty()) return -1;
    if (v == "1" || v == "true" || v == "yes") return 1;
    if (v == "0" || v == "false" || v == "no") return 0;
    throw ApiError(400, fmt::format("{}: expected true or false", name));
  };
  s.Get("/api/v1/connections", [this, need_live, conn_filter](const httplib::Request& req,
                                                              httplib::Response& res) {
    need_live();
    size_t top = 0;
    if (std::string t = param(req, "top"); !t.empty()) {
      try {
        top = std::stoul(t);
      } catch (...) {
        throw ApiError(400, "top: expected a number");
      }
    }
    res.set_content(live_->connections(conn_filter(param(req, "filter")), top).dump(2) + "\n", kJsonType);
  });
  s.Post("/api/v1/connections/control",
         [this, need_live, conn_filter, flag](const httplib::Request& req, httplib::Response& res) {
           need_live();
           std::string text = param(req, "filter");
           int sc = flag(param(req, "suspend_cutoff"), "suspend_cutoff");
           int st = flag(param(req, "suspend_timeout"), "suspend_timeout");
           if (!req.body.empty() && req.body[0] == '{') {
             auto j = nlohmann::json::parse(req.body, nullptr, false);
             if (j.is_discarded() || !j.is_object()) throw ApiError(400, "body: not a JSON object");
             text = j.value("filter", text);
             for (auto [key, dst] : {std::pair{"suspend_cutoff", &sc}, std::pair{"suspend_timeout", &st}})
               if (j.contains(key)) {
                 if (!j[key].is_boolean())
                   throw ApiError(400, fmt::format("{}: expected true or false", key));
                 *dst = j[key].get<bool>() ? 1 : 0;
               }
           }
           if (sc < 0 && st < 0)
             throw ApiError(400, "give suspend_cutoff and/or suspend_timeout (true/false)");
           if (text.empty()) throw ApiError(400, "give a filter naming the connection(s)");
           res.set_content(live_->control(conn_filter(text), sc, st).dump() + "\n", kJsonType);
         });

  // Subscriptions: optional history, then new packets as the writer appends them.
  s.Get("/api/v1/subscribe", [this, need_live](const httplib::Request& req, httplib::Response& res) {
    need_live();
    query::QuerySpec q = parse_spec(req, "history_from");
    bool history = req.has_param("history_from");
    subs_admit_.admit();
    auto sub = std::make_shared<Subscriber>(q, 64u << 20);
    store::Catalog snap;
    try {
      snap = live_->subscribe(sub);
    } catch (...) {
      subs_admit_.release();
      throw;
    }
    subs_total_++;
    auto hq = std::make_shared<query::QuerySpec>(q);
    res.set_chunked_content_provider(
        kPcapType,
        [this, sub, hq, history, snap = std::make_shared<store::Catalog>(std::move(snap))](
            size_t, httplib::DataSink& sink) {
          util::pcap::Writer out = pcap_answer(sink);
          auto t0 = clk::now();
          auto limit = std::chrono::duration<double>(o_.subscription_seconds);
          try {
            if (history) {
              query::QuerySpec h = *hq;
              h.to_ns = UINT64_MAX;
              query::run_query(*snap, h, [&](const query::OutPacket& p) {
                if (stopping_) throw Abort{};
                out.write(p.ts_ns, p.linktype, p.caplen, p.wirelen, p.data);
              });
              out.flush();
            }
            std::deque<SubPacket> batch;
            while (!stopping_ && clk::now() - t0 < limit) {
              sub->take(batch, std::chrono::milliseconds(200));
              for (auto& p : batch)
                out.write(p.ts_ns, p.linktype, static_cast<uint32_t>(p.data.size()), p.wirelen,
                          reinterpret_cast<const uint8_t*>(p.data.data()));
              batch.clear();
              out.flush();
              if (!sink.is_writable()) break;
            }
            out.finish();
            sink.done();
            return true;
          } catch (const Abort&) {
          } catch (const std::exception& e) {
            spdlog::info("subscription '{}' ended: {}", hq->text, e.what());
          }
          return false;
        },
        [this, sub](bool) {
          live_->unsubscribe(sub);
          if (sub->overflow())
            spdlog::warn("subscription '{}': {} packets lost (the client read too slowly)", sub->spec().text,
                         sub->overflow());
          subs_admit_.release();
        });
  });
}

}  // namespace tmach::server
