#include "server/http_service.h"

#include <fmt/format.h>

#include <chrono>
#include <nlohmann/json.hpp>

#include "server/http_client.h"
#include "util/json_text.h"

namespace tmach::server {
namespace {

bool to_sink(const ByteSink& out, const char* data, size_t n) {
  out(data, n);
  return true;
}

// After an answer: the workers a tm frontend reports missing, before the answer (header) and
// during it (its query status). True when nothing is missing.
bool report_missing_workers(const ClientOptions& c, const ClientResult& r, const Warn& warn) {
  bool complete = true;
  std::string before = r.header("X-TM-Missing-Reasons");
  if (!before.empty()) {
    warn(missing_workers_warning(before));
    complete = false;
  }
  std::string id = r.header("X-TM-Query-Id");
  if (id.empty()) return complete;
  auto st = api_get(c, "/api/v1/cluster/queries/" + id, {}, nullptr);
  auto j = nlohmann::json::parse(st.body, nullptr, false);
  if (st.status != 200 || !j.is_object()) {
    warn("the front-end's status of query " + id + " is unknown");
    return false;
  }
  for (auto& [url, why] : j["missing"].items()) {
    if (before.find(url) != std::string::npos) continue;
    warn(worker_failed_warning(url, why.get<std::string>()));
    complete = false;
  }
  if (j.contains("cut")) complete = false;
  return complete;
}

// After a pcap answer: the warnings the server found while it wrote it (a filter libpcap cannot
// compile for a link type, a damaged index), which the pcap had no room for: the answer's
// X-TM-Answer-Id names them (GET /api/v1/answers/ID). An older server sends no such header.
void report_answer_warnings(const ClientOptions& c, const ClientResult& r, const Warn& warn) {
  std::string id = r.header(kAnswerIdHeader);
  if (id.empty()) return;
  auto a = api_get(c, "/api/v1/answers/" + id, {}, nullptr);
  auto j = nlohmann::json::parse(a.body, nullptr, false);
  if (a.status != 200 || !j.is_object() || !j["warnings"].is_array()) {
    warn("the server's warnings of this answer are unknown (" + (a.error.empty() ? "no answer" : a.error) +
         ")");
    return;
  }
  for (auto& w : j["warnings"])
    if (w.is_string()) warn(w.get<std::string>());
}

// A packet query's parameters: /api/v1/query's and /api/v1/count's, or /api/v1/explain's (no
// limit nor format; measure).
Params query_params(const QueryRequest& q, bool for_explain) {
  Params p{{"filter", q.filter}};
  if (!q.from.empty()) p.emplace("from", q.from);
  if (!q.to.empty()) p.emplace("to", q.to);
  for (auto& c : q.classes) p.emplace("class", c);
  if (q.require_all) p.emplace("require_all", "1");
  if (!q.community_id.empty()) p.emplace("community_id", q.community_id);
  if (!q.flow_id.empty()) p.emplace("flow_id", q.flow_id);
  if (for_explain) {
    if (q.measure) p.emplace("measure", "1");
    return p;
  }
  if (q.limit) p.emplace("limit", std::to_string(q.limit));
  if (!q.format.empty()) p.emplace("format", q.format);
  return p;
}

}  // namespace

std::string HttpService::query(const QueryRequest& q, const ByteSink& out, const Warn& warn) {
  Params p = query_params(q, false);
  auto t0 = std::chrono::steady_clock::now();
  auto r = api_query(c_, "/api/v1/query", p, [&](const char* d, size_t n) { return to_sink(out, d, n); });
  if (r.status == 400) throw BadRequest(r.error);
  // A tm frontend names the workers missing from the answer (cluster/frontend.h).
  bool complete = report_missing_workers(c_, r, warn);
  if (!r.error.empty()) throw std::runtime_error(r.error);
  report_answer_warnings(c_, r, warn);
  if (q.require_all && !complete)
    throw std::runtime_error("--require-all: the answer is missing workers (see above)");
  return fmt::format("answered by {} in {:.1f} ms; written as {}", c_.url,
                     std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count(),
                     r.header("Content-Type").starts_with("application/x-pcapng") ? "pcapng" : "pcap");
}

Reply HttpService::count(const QueryRequest& q, const StopCheck&) {
  // (format: pcap counts what a pcap answer holds, as --store does; an older tm refuses it)
  auto r = api_query(c_, "/api/v1/count", query_params(q, false), nullptr);
  if (r.status == 404 && r.error.find("/api/v1/count") != std::string::npos)
    throw std::runtime_error(c_.url + " has no /api/v1/count (an older tm): --count needs --store there");
  if (r.status == 0) throw std::runtime_error(r.error);
  if (r.status < 200 || r.status >= 300) throw_for_status(r.status, r.error);
  auto j = nlohmann::json::parse(r.body, nullptr, false);
  if (!j.is_object() || !j["packets"].is_number_unsigned())
    throw std::runtime_error("the server's count is not {\"packets\": N}");
  if (!j["warnings"].is_array()) j["warnings"] = nlohmann::json::array();
  j["summary"] =
      "counted by " + c_.url + (j["summary"].is_string() ? ": " + j["summary"].get<std::string>() : "");
  // The workers missing when the answer began (a tm frontend; those that failed during it
  // are in the body's warnings: the front-end collected them while it counted).
  if (std::string m = r.header("X-TM-Missing-Reasons"); !m.empty())
    j["warnings"].insert(j["warnings"].begin(), missing_workers_warning(m));
  Headers h;
  for (const char* k : {"X-TM-Query-Id", "X-TM-Workers", "X-TM-Missing-Workers", "X-TM-Missing-Reasons"})
    if (std::string v = r.header(k); !v.empty()) h.emplace_back(k, v);
  return {std::move(j), std::move(h)};
}

// The server's /api/v1/explain; with q.measure, asked to run the query for its figures (an
// older tm, which does not know measure=, gives its plan without them).
Reply HttpService::explain(const QueryRequest& q, const StopCheck&) {
  Params p = query_params(q, true);
  auto r = api_query(c_, "/api/v1/explain", p, nullptr);
  if (q.measure && refused_unknown_parameter(r.status, r.error, "measure")) {
    p.erase("measure");
    p.erase("require_all");  // (older too, and nothing without figures)
    r = api_query(c_, "/api/v1/explain", p, nullptr);
  }
  if (r.status == 404 && r.error.find("/api/v1/explain") != std::string::npos)
    throw std::runtime_error(c_.url + " has no /api/v1/explain (an older tm): --explain needs --store there");
  if (r.status == 0) throw std::runtime_error(r.error);
  if (r.status < 200 || r.status >= 300) throw_for_status(r.status, r.error);
  auto j = nlohmann::json::parse(r.body, nullptr, false);
  if (!j.is_object()) throw std::runtime_error("the server's plan is not a JSON object");
  return {std::move(j), {}};
}

std::string HttpService::flows(const FlowRequest& q, const ByteSink& out, const Warn& warn) {
  Params p{{"filter", q.filter}, {"format", q.format}, {"by", q.by}};
  if (!q.from.empty()) p.emplace("from", q.from);
  if (!q.to.empty()) p.emplace("to", q.to);
  if (q.top) p.emplace("top", std::to_string(q.top));
  if (q.require_all) p.emplace("require_all", "1");
  if (!q.community_id.empty()) p.emplace("community_id", q.community_id);
  auto r = api_query(c_, "/api/v1/flows", p, [&](const char* d, size_t n) { return to_sink(out, d, n); });
  if (r.status == 400) throw BadRequest(r.error);
  if (!r.error.empty()) throw std::runtime_error(r.error);
  if (std::string m = r.header("X-TM-Missing-Reasons"); !m.empty()) warn(missing_workers_warning(m));
  for (auto& w : warnings_of_header(r.header(kWarningsHeader))) warn(w);
  return "";
}

namespace {

// A plain answer: its body, or the server's error with its status.
const ClientResult& checked(const ClientResult& r) {
  if (r.status == 0) throw std::runtime_error(r.error);
  if (r.status < 200 || r.status >= 300) throw_for_status(r.status, r.error);
  return r;
}

// (with a tm frontend's X-TM-Missing-* headers: the workers the answer is without)
Reply json_reply(const ClientResult& r) {
  auto j = nlohmann::json::parse(checked(r).body, nullptr, false);
  if (j.is_discarded()) throw std::runtime_error("the server's answer is not JSON");
  Reply out{std::move(j), {}};
  for (const char* h : {"X-TM-Missing-Workers", "X-TM-Missing-Reasons"})
    if (std::string v = r.header(h); !v.empty()) out.headers.emplace_back(h, v);
  return out;
}

class SubscriptionStream : public Stream {
 public:
  SubscriptionStream(ClientOptions c, Params p) : c_(std::move(c)), p_(std::move(p)) {}
  std::string run(const ByteSink& out, const Warn& warn, const StopCheck& stop) override {
    bool stopped = false;
    auto r = api_query(
        c_, "/api/v1/subscribe", p_,
        [&](const char* d, size_t n) {
          if (!stop().empty()) return !(stopped = true);
          out(d, n);
          return true;
        },
        // A tm frontend names the workers that did not take the subscription: said at once, as
        // the packets of those workers will be missing for as long as it runs.
        [&](const std::multimap<std::string, std::string>& h) {
          if (auto it = h.find("x-tm-missing-reasons"); it != h.end())
            warn(missing_workers_warning(it->second));
        });
    if (stopped) return "";
    if (r.status != 200 && r.status != 0) throw_for_status(r.status, r.error);
    if (!r.error.empty()) throw std::runtime_error(r.error);
    return "";
  }

 private:
  ClientOptions c_;
  Params p_;
};

}  // namespace

std::unique_ptr<Stream> HttpService::open_subscription(const SubscribeRequest& q) {
  Params p{{"filter", q.filter}};
  if (q.history) p.emplace("history_from", q.history_from);
  if (!q.to.empty()) p.emplace("to", q.to);
  for (auto& c : q.classes) p.emplace("class", c);
  return std::make_unique<SubscriptionStream>(c_, std::move(p));
}

Reply HttpService::health() { return json_reply(api_get(c_, "/health", {}, nullptr)); }

Reply HttpService::stats(const ApiCounters&) { return json_reply(api_get(c_, "/api/v1/stats", {}, nullptr)); }

std::string HttpService::metrics(const ApiCounters&) {
  return checked(api_get(c_, "/metrics", {}, nullptr)).body;
}

Reply HttpService::class_set(const ClassRequest& r) {
  nlohmann::json b = {{"host", r.host}, {"class", r.cls}};
  if (!r.for_text.empty()) b["for"] = r.for_text;
  return json_reply(api_post(c_, "/api/v1/classes", util::json_text(b)));
}

Reply HttpService::class_list() { return json_reply(api_get(c_, "/api/v1/classes", {}, nullptr)); }

Reply HttpService::class_remove(const std::string& host) {
  // (Encoded: a '#', '?', '%' or space in what was given is the host's text, not the URL's.)
  return json_reply(api_delete(c_, "/api/v1/classes/" + url_encode(host)));
}

Reply HttpService::connections(const ConnectionsRequest& r) {
  Params p{{"filter", r.filter}};
  if (r.top) p.emplace("top", std::to_string(r.top));
  return json_reply(api_get(c_, "/api/v1/connections", p, nullptr));
}

Reply HttpService::control(const ControlRequest& r) {
  nlohmann::json b = {{"filter", r.filter}};
  if (r.suspend_cutoff >= 0) b["suspend_cutoff"] = r.suspend_cutoff == 1;
  if (r.suspend_timeout >= 0) b["suspend_timeout"] = r.suspend_timeout == 1;
  return json_reply(api_post(c_, "/api/v1/connections/control", util::json_text(b)));
}

}  // namespace tmach::server
