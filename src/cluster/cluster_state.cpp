// ClusterService: health, stats, metrics, dynamic classes and per-connection controls, asked
// of every worker and put together.
#include <fmt/format.h>
#include <httplib.h>

#include <algorithm>

#include "cluster/cluster_service.h"
#include "cluster/stats_merge.h"
#include "cluster/worker_fetch.h"
#include "server/http_common.h"
#include "server/metrics.h"
#include "util/json_text.h"
#include "util/timespec.h"

namespace tmach::cluster {
namespace {

using nlohmann::json;

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

// Not all answered 2xx: the workers' common status if they agree (400 for a bad class, 409
// for read-only workers), else 502; the error names each worker's result.
[[noreturn]] void fail(const ClusterConfig& cfg, const std::vector<Reply>& replies, const std::string& msg) {
  int common = -1;
  for (auto& r : replies)
    if (!r.ok()) common = common == -1 || common == r.status ? r.status : 0;
  size_t bad = 0;
  for (auto& r : replies) bad += !r.ok();
  server::throw_for_status(bad == replies.size() && common > 0 ? common : 502, msg,
                           {{"workers", per_worker(cfg, replies)}});
}

bool any_ok(const std::vector<Reply>& replies) {
  return std::any_of(replies.begin(), replies.end(), [](auto& r) { return r.ok(); });
}

}  // namespace

server::Reply ClusterService::health() {
  return {json{{"status", "ok"}, {"frontend", true}, {"workers", cfg_.workers.size()}}, {}};
}

server::Reply ClusterService::stats(const server::ApiCounters& api) {
  auto which = all_workers();
  auto replies = fan_out(cfg_, wc_, which, [](httplib::Client& c) { return c.Get("/api/v1/stats"); });
  json j;
  j["frontend"] = {{"queries", api.queries},
                   {"flow_queries", api.flow_queries},
                   {"partial_answers", partial_.load()},
                   {"queries_rejected", api.queries_rejected + api.subscriptions_rejected},
                   {"active_queries", api.active_queries}};
  j["balance"] = cfg_.balance.known ? json(scheme_name(cfg_.balance.scheme)) : json(nullptr);
  j["workers"] = json::array();
  j["down"] = json::array();
  json store, capture, flows;
  // Which workers answered, as a packet query or flows names them (missing_of()): the totals
  // are without them. A worker whose answer has no store object (not a tm serve's stats) is
  // one of them: its figures are unknown, not nothing.
  json missing = missing_of(cfg_, which, replies);
  for (size_t k = 0; k < which.size(); ++k) {
    json w = {{"id", k}, {"url", cfg_.workers[k].url}, {"up", replies[k].ok()}};
    if (replies[k].ok()) {
      json body = json::parse(replies[k].body, nullptr, false);
      // (a body that is not JSON is a discarded value, which dump() writes as "<discarded>":
      // the whole answer was no JSON then)
      w["stats"] = body.is_discarded() ? json(nullptr) : body;
      if (body.is_discarded()) {
        w["error"] = missing[cfg_.workers[k].url] = "its stats are not JSON";
      } else if (!body.is_object() || !body.contains("store") || !body["store"].is_object()) {
        w["error"] = missing[cfg_.workers[k].url] = "its stats have no store object";
      } else {
        add_stats(store, body["store"]);
        if (body.contains("capture")) add_stats(capture, body["capture"]);
        if (body.contains("flows")) add_stats(flows, body["flows"]);
      }
    } else {
      w["error"] = replies[k].error;
      j["down"].push_back(cfg_.workers[k].url);
    }
    j["workers"].push_back(w);
  }
  j["store"] = store.is_null() ? json::object() : store;  // totals over the workers that answered
  if (!capture.is_null()) j["capture"] = capture;
  if (!flows.is_null()) j["flows"] = flows;  // the flow records' reach over the workers
  // Still 200 when none answered: this is also the page that says who is down (tm stats
  // --server refuses to print totals of no worker).
  server::Reply r{std::move(j), {}};
  add_missing_headers(r.headers, missing);
  r.body["missing"] = std::move(missing);
  return r;
}

std::string ClusterService::metrics(const server::ApiCounters& api) {
  auto which = all_workers();
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
  m.add("tm_frontend_partial_answers_total", "counter", "Answers without one or more workers.",
        static_cast<double>(partial_.load()));
  server::add_api_metrics(m, api, api.queries_rejected + api.subscriptions_rejected);
  return m.text();
}

// Dynamic classes: every worker.
server::Reply ClusterService::class_set(const server::ClassRequest& r) {
  json body = {{"host", r.host}, {"class", r.cls}};
  if (!r.for_text.empty()) body["for"] = r.for_text;
  std::string text = util::json_text(body);
  auto replies = fan_out(cfg_, wc_, all_workers(), [&](httplib::Client& c) {
    return c.Post("/api/v1/classes", text, server::kJsonType);
  });
  json w = per_worker(cfg_, replies);
  size_t bad = std::count_if(replies.begin(), replies.end(), [](auto& x) { return !x.ok(); });
  if (bad) {
    std::string why;
    for (size_t i = 0; i < replies.size(); ++i)
      if (!replies[i].ok()) why += fmt::format("; {}: {}", cfg_.workers[i].url, replies[i].error);
    fail(cfg_, replies, fmt::format("{} of {} workers did not set the class{}", bad, replies.size(), why));
  }
  json j = json::parse(replies[0].body, nullptr, false);
  if (!j.is_object()) j = json::object();
  j["workers"] = w;
  return {std::move(j), {}};
}

// One entry per host (as a worker lists them), with the workers that hold it.
server::Reply ClusterService::class_list() {
  auto replies =
      fan_out(cfg_, wc_, all_workers(), [](httplib::Client& c) { return c.Get("/api/v1/classes"); });
  std::map<std::string, json> by_host;
  for (size_t i = 0; i < replies.size(); ++i) {
    if (!replies[i].ok()) continue;
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
  if (!any_ok(replies)) fail(cfg_, replies, "no worker answered");
  server::Reply out{json::array(), {}};
  for (auto& [h, e] : by_host) out.body.push_back(e);
  add_missing_headers(out.headers, missing_of(cfg_, all_workers(), replies));
  return out;
}

server::Reply ClusterService::class_remove(const std::string& host) {
  if (host.empty()) throw server::BadRequest("give the host");
  auto replies = fan_out(cfg_, wc_, all_workers(),
                         [&](httplib::Client& c) { return c.Delete("/api/v1/classes/" + host); });
  json w = per_worker(cfg_, replies);
  if (!any_ok(replies) &&
      std::all_of(replies.begin(), replies.end(), [](auto& x) { return x.status == 404; }))
    throw server::NotFound(fmt::format("no dynamic class for host {} on any worker", host), {{"workers", w}});
  // A worker that did not answer keeps the class (and puts it back from its list at a restart):
  // a failure, as a class set that did not reach every worker is (it said "removed").
  std::string why;
  size_t bad = 0;
  for (size_t i = 0; i < replies.size(); ++i)
    if (!replies[i].ok() && replies[i].status != 404) {
      ++bad;
      why += fmt::format("; {}: {}", cfg_.workers[i].url, replies[i].error);
    }
  if (bad)
    fail(cfg_, replies, fmt::format("{} of {} workers did not remove the class{}", bad, replies.size(), why));
  return {json{{"removed", host}, {"workers", w}}, {}};
}

// Per-connection controls: a connection lives at one worker; listing asks all.
server::Reply ClusterService::connections(const server::ConnectionsRequest& r) {
  httplib::Params p{{"filter", r.filter}};
  if (r.top) p.emplace("top", std::to_string(r.top));
  std::string path = httplib::append_query_params("/api/v1/connections", p);
  const auto which = all_workers();
  auto replies = fan_out(cfg_, wc_, which, [&](httplib::Client& c) { return c.Get(path); });
  json all = json::array();
  for (size_t i = 0; i < replies.size(); ++i) {
    if (replies[i].status == 400) throw server::BadRequest(error_text(400, replies[i].body));
    if (!replies[i].ok()) continue;
    json arr = json::parse(replies[i].body, nullptr, false);
    if (arr.is_array())
      for (auto& e : arr) {
        e["worker"] = cfg_.workers[i].url;
        all.push_back(e);
      }
  }
  if (!any_ok(replies)) fail(cfg_, replies, "no worker answered");
  std::stable_sort(all.begin(), all.end(), [](const json& a, const json& b) {
    return a.value("bytes", uint64_t{0}) > b.value("bytes", uint64_t{0});
  });
  if (r.top && all.size() > r.top) all.erase(all.begin() + static_cast<long>(r.top), all.end());
  server::Reply out{std::move(all), {}};
  add_missing_headers(out.headers, missing_of(cfg_, which, replies));  // (their connections are not listed)
  return out;
}

server::Reply ClusterService::control(const server::ControlRequest& r) {
  json body = {{"filter", r.filter}};
  if (r.suspend_cutoff >= 0) body["suspend_cutoff"] = r.suspend_cutoff == 1;
  if (r.suspend_timeout >= 0) body["suspend_timeout"] = r.suspend_timeout == 1;
  std::string text = util::json_text(body);
  auto replies = fan_out(cfg_, wc_, all_workers(), [&](httplib::Client& c) {
    return c.Post("/api/v1/connections/control", text, server::kJsonType);
  });
  uint64_t n = 0;
  for (auto& x : replies)
    if (x.ok()) {  // (a body that is not a JSON object: none counted there, rather than a 500)
      const json j = json::parse(x.body, nullptr, false);
      if (j.is_object() && j.contains("connections") && j["connections"].is_number_unsigned())
        n += j["connections"].get<uint64_t>();
    }
  if (!any_ok(replies)) fail(cfg_, replies, "no worker applied the control");
  return {json{{"connections", n}, {"workers", per_worker(cfg_, replies)}}, {}};
}

}  // namespace tmach::cluster
