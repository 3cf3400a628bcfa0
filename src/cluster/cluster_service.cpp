// ClusterService: packet queries, flows, subscriptions, worker selection and the front-end's
// own reports (cluster_state.cpp has stats, metrics, classes and connections).
#include "cluster/cluster_service.h"

#include <fmt/format.h>
#include <httplib.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <optional>
#include <set>
#include <string_view>

#include "cluster/flow_merge.h"
#include "cluster/history_merge.h"
#include "cluster/pcap_merge.h"
#include "cluster/worker_fetch.h"
#include "query/parser.h"
#include "server/client.h"
#include "server/flow_format.h"
#include "server/http_common.h"
#include "util/json_text.h"
#include "util/pcapng_writer.h"

namespace tmach::cluster {
namespace {

using clk = std::chrono::steady_clock;
using nlohmann::json;

// One merged packet into a pcap answer.
template <typename W>
void write_packet(W& out, const MergePacket& p) {
  out.write(p.ts_ns, p.linktype, static_cast<uint32_t>(p.data.size()), p.wirelen,
            reinterpret_cast<const uint8_t*>(p.data.data()));
}

std::string urls_of(const ClusterConfig& cfg, const std::vector<size_t>& which) {
  std::string s;
  for (size_t i : which) s += (s.empty() ? "" : " ") + cfg.workers[i].url;
  return s;
}

// The filter, parsed; BadRequest on a syntax error.
query::ParseResult parse_filter(const std::string& text) {
  query::ParseResult pr = query::parse_expr(text);
  if (pr.kind == query::ParseResult::Kind::kError) throw server::BadRequest(query::format_error(text, pr));
  return pr;
}

// The parameters of a worker's request: `set` (empty values left out), each class.
httplib::Params params(std::initializer_list<std::pair<const char*, std::string>> set,
                       const std::vector<std::string>& classes = {}) {
  httplib::Params p;
  for (auto& [k, v] : set)
    if (!v.empty()) p.emplace(k, v);
  for (auto& c : classes) p.emplace("class", c);
  return p;
}

}  // namespace

ClusterService::ClusterService(ClusterConfig cfg) : cfg_(std::move(cfg)) {
  for (size_t i = 0; i < cfg_.workers.size(); ++i) wc_.push_back(std::make_unique<WorkerCounters>());
}

ClusterService::~ClusterService() = default;

std::vector<size_t> ClusterService::all_workers() const {
  std::vector<size_t> v(cfg_.workers.size());
  for (size_t i = 0; i < v.size(); ++i) v[i] = i;
  return v;
}

void ClusterService::remember(uint64_t id, json status) {
  std::lock_guard lk(status_mu_);
  status_[id] = std::move(status);
  status_order_.push_back(id);
  while (status_order_.size() > 1024) {
    status_.erase(status_order_.front());
    status_order_.pop_front();
  }
}

// The one rule of every answer put together from several workers (packet queries, counts,
// flows, history; stats names its missing workers the same way): none answered is a 502, not
// an empty answer that would read as "nothing there"; some did not and the client asked for
// all (require_all) is a 503; else the answer goes on, naming them (missing headers).
void ClusterService::check_answered(const json& missing, size_t asked, bool require_all) {
  if (missing.empty()) return;
  if (missing.size() >= asked)
    throw server::ServiceError(502, fmt::format("no worker answered: {}", reasons_of(missing)));
  if (require_all) {
    partial_++;
    throw server::Unavailable(fmt::format("--require-all: {} of {} workers did not answer: {}",
                                          missing.size(), asked, reasons_of(missing)));
  }
}

Selection ClusterService::select(const query::ParseResult& pr, const BalanceInfo& b) {
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
std::string ClusterService::share_mismatch() {
  std::lock_guard lk(share_mu_);
  if (!share_why_.empty()) return share_why_;
  share_checked_.resize(cfg_.workers.size(), 0);
  share_retry_.resize(cfg_.workers.size());
  for (size_t i = 0; i < cfg_.workers.size(); ++i) {
    if (share_checked_[i] || clk::now() < share_retry_[i]) continue;
    auto cl = make_client(cfg_.workers[i], server::via_chain());
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

json ClusterService::cluster_json() const {
  json j;
  j["balance"] = cfg_.balance.known ? json(scheme_name(cfg_.balance.scheme)) : json(nullptr);
  j["tunnels"] = cfg_.balance.tunnels;
  j["workers"] = json::array();
  for (size_t i = 0; i < cfg_.workers.size(); ++i)
    j["workers"].push_back({{"id", i},
                            {"url", cfg_.workers[i].url},
                            {"timeout", cfg_.workers[i].timeout_s},
                            {"up", wc_[i]->up.load()}});
  return j;
}

json ClusterService::query_status(uint64_t id) {
  std::lock_guard lk(status_mu_);
  auto it = status_.find(id);
  if (it == status_.end())
    throw server::NotFound(fmt::format("no query {} (still running, or forgotten)", id));
  return it->second;
}

// The plan, checked by the workers it would ask as they check a query (from, to, class, and
// a filter libpcap compiles, for their link types: a worker's 400 is the client's error, as
// for a query), with the format the answer would be written in: as asked, else pcapng when
// the workers' answers may hold more than one link type between them (their plans'
// link_types). With q.measure each worker runs it: their figures summed, and as for a count,
// none answering is a 502, some missing a 503 with require_all, else a warning naming them.
server::Reply ClusterService::explain(const server::QueryRequest& q, const server::StopCheck&) {
  std::optional<util::pcap::Output> forced;
  if (!q.format.empty() && !(forced = util::pcap::parse_output(q.format)))
    throw server::BadRequest(fmt::format("format: '{}' is not pcap or pcapng", q.format));
  const std::string& filter = q.filter;
  auto pr = parse_filter(filter);
  Selection sel = select(pr, cfg_.balance);
  std::vector<size_t> which;
  if (sel.all)
    which = all_workers();
  else
    which.assign(sel.workers.begin(), sel.workers.end());
  // (With the connection selectors: each worker checks them, and finds the flow's lifetime.)
  auto p = params({{"from", q.from}, {"to", q.to}, {"community_id", q.community_id}, {"flow_id", q.flow_id}},
                  q.classes);
  p.emplace("filter", filter);
  if (q.measure) p.emplace("measure", "1");
  auto t0 = std::chrono::steady_clock::now();
  // Each worker plans it first, within --timeout as any request to a worker: one that does not
  // answer is missing. With measure, those that did then run it, each up to its query time
  // limit (a worker answers a measured explain only when it has run the query): a silent worker
  // held the request, and a query slot, for that limit (5 minutes) instead of --timeout.
  auto plain = p;
  plain.erase("measure");
  const httplib::Request plan_req = worker_request("/api/v1/explain", plain, true);
  auto replies = fan_out(cfg_, wc_, which, [&](httplib::Client& c) { return c.send(plan_req); });
  std::vector<size_t> older;  // (indexes into which/replies) workers that refuse measure=: older ones
  if (q.measure) {
    std::vector<size_t> up, whom;  // those that planned it (indexes into which; the workers)
    for (size_t k = 0; k < replies.size(); ++k)
      if (replies[k].ok()) {
        up.push_back(k);
        whom.push_back(which[k]);
      }
    const httplib::Request req = worker_request("/api/v1/explain", p, true);
    auto measured = fan_out(cfg_, wc_, whom, [&](httplib::Client& c) {
      c.set_read_timeout(static_cast<time_t>(cfg_.query_timeout_s + 1), 0);
      return c.send(req);
    });
    for (size_t i = 0; i < up.size(); ++i) {
      // (An older worker refuses measure= before it checks anything: its plan stands, its
      // figures unknown.)
      if (server::refused_unknown_parameter(measured[i].status, measured[i].error, "measure"))
        older.push_back(up[i]);
      else
        replies[up[i]] = std::move(measured[i]);
    }
  }
  std::set<uint64_t> links;
  // With measure: the workers' figures summed, their warnings each under its worker's name.
  json figures = json::object(), warnings = json::array(), range;
  // A flow or Community ID that no worker asked has (each but one has none of a flow's).
  size_t answered = 0, without = 0;
  std::string no_connection;
  for (size_t k = 0; k < replies.size(); ++k) {
    auto& r = replies[k];
    const std::string& url = cfg_.workers[which[k]].url;
    if (r.status == 400) throw server::BadRequest(error_text(400, r.body));
    if (r.ok() && std::find(older.begin(), older.end(), k) != older.end())
      warnings.push_back(fmt::format("worker {}: its figures are not known (an older tm: no measure=)", url));
    json b = r.ok() ? json::parse(r.body, nullptr, false) : json();
    if (!b.is_object()) continue;
    ++answered;
    if (b.value("no_connection", json()).is_string()) {
      ++without;
      no_connection = b["no_connection"].get<std::string>();
    } else if (range.is_null()) {  // (the query's range and filter, a flow's on its worker)
      range = json::object();
      for (const char* k : {"from_ns", "to_ns", "query_filter", "connections"})
        if (b.contains(k)) range[k] = b[k];
    }
    if (b.value("link_types", json()).is_array())
      for (auto& l : b["link_types"])
        if (l.is_number_unsigned()) links.insert(l.get<uint64_t>());
    if (q.measure && b.value("figures", json()).is_object())
      for (const char* f : server::kExplainFigures)
        if (b["figures"].value(f, json()).is_number_unsigned())
          figures[f] = figures.value(f, uint64_t{0}) + b["figures"][f].get<uint64_t>();
    if (b.value("warnings", json()).is_array())
      for (auto& w : b["warnings"])
        if (w.is_string()) warnings.push_back(fmt::format("worker {}: {}", url, w.get<std::string>()));
  }
  // Those that did not answer did not check the request: the plan stands without them, but
  // figures without them are partial, said as a count's are.
  json missing = missing_of(cfg_, which, replies);
  if (q.measure) check_answered(missing, which.size(), q.require_all);
  if (q.measure && q.require_all)
    for (size_t k : older)
      if (replies[k].ok())
        throw server::Unavailable(
            fmt::format("--require-all: worker {} gives no figures (an older tm: no measure=)",
                        cfg_.workers[which[k]].url));
  if (!missing.empty())
    warnings.insert(warnings.begin(), server::missing_workers_warning(reasons_of(missing)));
  json j;
  j["balance"] = cfg_.balance.known ? json(scheme_name(cfg_.balance.scheme)) : json(nullptr);
  j["tunnels"] = cfg_.balance.tunnels;
  j["all"] = sel.all;
  j["why"] = sel.why;
  j["workers"] = json::array();
  for (size_t i : which) j["workers"].push_back({{"id", i}, {"url", cfg_.workers[i].url}});
  j["missing"] = std::move(missing);
  j["format"] = util::pcap::output_name(
      forced.value_or(links.size() > 1 ? util::pcap::Output::kPcapng : util::pcap::Output::kPcap));
  j["link_types"] = links;
  j["parsed"] = pr.kind == query::ParseResult::Kind::kIndexed ? json(pr.expr.str()) : json(nullptr);
  j["filter"] = filter;
  if (range.is_object()) j.update(range);
  if (q.measure) {
    figures["ms"] = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    j["figures"] = std::move(figures);
  }
  j["warnings"] = std::move(warnings);
  if (answered && without == answered) {  // an empty answer, whatever the filter (as a worker says it)
    j["no_connection"] =
        fmt::format("none of the {} workers that answered has it ({})", answered, no_connection);
    j["kind"] = "none";
    j["plan"] = "nothing to read: " + j["no_connection"].get<std::string>();
  }
  // The plan of the query the workers run (a flow's or Community ID's connections and the
  // filter), else of the filter alone.
  json plan;
  if (!j.contains("no_connection") && j.contains("query_filter") && j["query_filter"].is_string()) {
    try {
      plan = server::filter_plan(j["query_filter"].get<std::string>(), false);
      plan.erase("filter");
      j.erase("parsed");
    } catch (const server::BadRequest&) {  // (a worker's text this front-end reads otherwise)
    }
  }
  if (plan.is_null()) plan = server::filter_plan(filter, false);
  for (auto& [k, v] : plan.items())
    if (!j.contains(k) || j[k].is_null()) j[k] = v;
  return {std::move(j), {}};
}

// The rate history of the cluster: every worker's, summed on the 10 s grid.
server::Reply ClusterService::history() {
  auto which = all_workers();
  auto replies = fan_out(cfg_, wc_, which, [](httplib::Client& c) { return c.Get("/api/v1/history"); });
  std::vector<json> parts;
  json answered = json::array(), missing = missing_of(cfg_, which, replies);
  for (size_t k = 0; k < which.size(); ++k) {
    const std::string& url = cfg_.workers[which[k]].url;
    if (!replies[k].ok()) continue;
    json body = json::parse(replies[k].body, nullptr, false);
    if (!body.is_object()) {
      missing[url] = "its history is not a JSON object";
      continue;
    }
    parts.push_back(std::move(body));
    answered.push_back(url);
  }
  check_answered(missing, which.size(), false);
  server::Reply r{merge_histories(parts), {}};
  r.body["workers"] = std::move(answered);
  r.body["missing"] = missing;
  add_missing_headers(r.headers, missing);
  return r;
}

// A packet query under way: the workers' answers, merged by timestamp as they stream in.
class ClusterService::QueryStream : public server::Stream {
 public:
  QueryStream(ClusterService& cs, std::shared_ptr<FetchSet> fs, uint64_t id, clk::time_point t0,
              bool require_all, util::pcap::Output output, uint64_t limit)
      : cs_(cs),
        fs_(std::move(fs)),
        id_(id),
        t0_(t0),
        require_all_(require_all),
        output_(output),
        limit_(limit) {
    content_type = util::pcap::output_content_type(output);
  }
  ~QueryStream() override { fs_->end(); }

  std::string run(const server::ByteSink& sink, const server::Warn& warn,
                  const server::StopCheck& stop) override {
    util::pcap::AnswerWriter out(output_, sink);
    std::vector<PacketQueue*> qs;
    // Every queue, also of a worker that failed mid-answer: what it sent before is valid.
    for (auto& f : fs_->f) qs.push_back(f->q.get());
    // A started answer may be silent for long: a worker scanning weeks for a rare match sends
    // nothing until it finds 64 KiB or ends. Only the query's own time limit ends the wait (a
    // dead worker's socket closes long before).
    double limit_s = cs_.cfg_.query_timeout_s;
    auto end = t0_ + std::chrono::duration_cast<clk::duration>(std::chrono::duration<double>(limit_s));
    bool cut = false, stopped = false;
    std::string why_cut;
    uint64_t merged = 0;
    // Packets a worker sent older than one it sent before (a worker's answer is in time order:
    // one that is not makes the merge's not either): per worker, said at the end.
    std::vector<uint64_t> backwards(qs.size(), 0), previous(qs.size(), 0);
    try {
      for (;;) {
        std::vector<size_t> stuck;
        auto i = merge_next(qs, std::max(end - clk::now(), clk::duration::zero()), &stuck);
        for (size_t k : stuck) {
          Fetch& f = *fs_->f[k];
          {
            std::lock_guard lk(f.mu);
            f.reason = fmt::format("no data before the query time limit ({} s)", limit_s);
          }
          f.give_up();
        }
        if (!i) break;
        MergePacket p = qs[*i]->pop();
        if (p.ts_ns < previous[*i]) ++backwards[*i];
        previous[*i] = std::max(previous[*i], p.ts_ns);
        // With a limit each worker sends its first `limit`: the merge's first `limit` are the
        // cluster's. The rest is read to its end (the workers' answers complete), not written.
        if (!limit_ || merged++ < limit_) write_packet(out, p);
        if (std::string why = stop(); !why.empty()) {
          cut = stopped = true;
          why_cut = why;
          break;
        }
      }
      if (!cut) out.finish();
    } catch (const std::exception& e) {
      cut = true;
      why_cut = e.what();
    }
    fs_->end();
    packets = out.packets();
    for (size_t k = 0; k < backwards.size(); ++k)
      if (backwards[k])
        warn(fmt::format(
            "worker {}: {} packets of its answer came before one it had sent (not in time order): "
            "the merged answer is not in time order there",
            fs_->f[k]->url, backwards[k]));
    // What the workers found while answering (a missing segment): the front-end's own
    // warnings of this answer (GET /api/v1/answers/ID here), each naming its worker.
    if (!stopped) {
      AnswerWarnings aw = answer_warnings(cs_.cfg_, *fs_);
      // Every worker that answered has no record of it (not said when the warnings of one whose
      // answer ended are not known: an older tm, or a failed request; it may have had it).
      if (aw.answered && aw.without == aw.answered && aw.ended == aw.answered && out.packets() == 0) {
        no_connection =
            fmt::format("none of the {} workers that answered has it ({})", aw.answered, aw.no_connection);
        warn(no_connection);
        no_connection_notes = aw.no_connection_notes;
        for (auto& n : aw.no_connection_notes) warn(n);
      }
      for (auto& w : aw.warnings) warn(w);
    }
    json missing = missing_of(*fs_);
    json st = {{"id", id_},
               {"done", true},
               {"complete", missing.empty() && !cut},
               {"workers", json::array()},
               {"missing", missing},
               {"packets", out.packets()},
               {"other_link_type", out.other_link()}};
    for (auto& f : fs_->f) {
      st["workers"].push_back({{"url", f->url}, {"packets", f->packets}, {"ok", !missing.contains(f->url)}});
      cs_.wc_[f->idx]->packets += f->packets;
    }
    if (cut) st["cut"] = why_cut;
    cs_.remember(id_, st);
    if (out.other_link())
      warn(fmt::format("{} packets of another link type left out (format=pcapng keeps them)",
                       out.other_link()));
    bool mid = false;
    for (auto& f : fs_->f) {
      std::lock_guard lk(f->mu);
      if (f->started && missing.contains(f->url)) mid = true;
    }
    if (mid) {
      cs_.partial_++;
      warn(fmt::format("workers failed mid-answer: {}", util::json_text(missing)));
    }
    // The client sees an incomplete answer.
    if (stopped) throw server::Cancelled(why_cut);
    if (cut) throw std::runtime_error(why_cut);
    if (mid && require_all_)  // (a 503 where the answer is not streamed yet: /api/v1/count)
      throw server::Unavailable("--require-all: workers failed mid-answer: " + reasons_of(missing));
    const size_t answered = fs_->f.size() - missing.size();
    return fmt::format("{} packets from {} worker{}; written as {}", out.packets(), answered,
                       answered == 1 ? "" : "s", out.describe());
  }

 private:
  ClusterService& cs_;
  std::shared_ptr<FetchSet> fs_;
  uint64_t id_;
  clk::time_point t0_;
  bool require_all_;
  util::pcap::Output output_;
  uint64_t limit_;  // > 0: the first `limit_` merged packets only
};

// Packet queries: fan out, wait for every worker's answer status (bounded by its time limit),
// then merge the streams by timestamp.
std::unique_ptr<server::Stream> ClusterService::open_query(const server::QueryRequest& q) {
  std::optional<util::pcap::Output> forced;
  if (!q.format.empty() && !(forced = util::pcap::parse_output(q.format)))
    throw server::BadRequest(fmt::format("format: '{}' is not pcap or pcapng", q.format));
  auto pr = parse_filter(q.filter);
  std::vector<size_t> which;
  if (Selection sel = select(pr, cfg_.balance); sel.all)
    which = all_workers();
  else
    which.assign(sel.workers.begin(), sel.workers.end());
  auto t0 = clk::now();
  uint64_t id = next_id_++;
  // The workers answer in pcapng, also when pcap is asked for: a worker's packets of several
  // link types then all reach the merge, which writes pcap or pcapng (below) and so counts
  // what a pcap leaves out (a worker asked for pcap would leave them out uncounted).
  auto p = params({{"from", q.from},
                   {"to", q.to},
                   {"community_id", q.community_id},
                   {"flow_id", q.flow_id},
                   {"limit", q.limit ? std::to_string(q.limit) : ""},
                   {"format", "pcapng"}},
                  q.classes);
  p.emplace("filter", q.filter);
  auto fs = start_fetches(cfg_, which, worker_request("/api/v1/query", p, true), 4u << 20);
  for (auto& f : fs->f) wc_[f->idx]->requests++;
  fs->wait_started(t0);
  // A filter every worker refuses is the client's error, not a missing worker.
  for (auto& f : fs->f) {
    std::lock_guard lk(f->mu);
    if (f->status == 400) throw server::BadRequest(error_text(400, f->error_body));
  }
  json missing = missing_of(*fs);
  for (auto& f : fs->f) {
    wc_[f->idx]->up = f->status != 0;
    if (missing.contains(f->url)) wc_[f->idx]->failures++;
  }
  check_answered(missing, which.size(), q.require_all);
  // Auto: pcapng when the workers' answers may hold more than one link type between them (each
  // names the link types of the segments it reads, before its first packet).
  std::set<std::string> links;
  for (auto& f : fs->f) {
    std::lock_guard lk(f->mu);
    if (!f->started) continue;
    std::string_view v = f->link_types;
    while (!v.empty()) {
      size_t c = v.find(',');
      links.emplace(v.substr(0, c));
      v = c == std::string_view::npos ? std::string_view() : v.substr(c + 1);
    }
  }
  auto output = forced.value_or(links.size() > 1 ? util::pcap::Output::kPcapng : util::pcap::Output::kPcap);
  auto s = std::make_unique<QueryStream>(*this, std::move(fs), id, t0, q.require_all, output, q.limit);
  s->headers.emplace_back("X-TM-Query-Id", std::to_string(id));
  s->headers.emplace_back("X-TM-Workers", urls_of(cfg_, which));
  add_missing_headers(s->headers, missing);
  if (!missing.empty()) spdlog::warn("query '{}': workers missing: {}", q.filter, util::json_text(missing));
  return s;
}

std::string ClusterService::query(const server::QueryRequest& q, const server::ByteSink& out,
                                  const server::Warn& warn) {
  return open_query(q)->run(out, warn, [] { return std::string(); });
}

namespace {

// A flow answer, merged before it is written.
class TextStream : public server::Stream {
 public:
  explicit TextStream(std::string text, std::vector<std::string> warnings = {})
      : text_(std::move(text)), warnings_(std::move(warnings)) {}
  std::string run(const server::ByteSink& out, const server::Warn& warn, const server::StopCheck&) override {
    out(text_.data(), text_.size());
    for (auto& w : warnings_) warn(w);
    return "";
  }

 private:
  std::string text_;
  std::vector<std::string> warnings_;
};

}  // namespace

// Flows: every selected worker's matching records (its top N for --top), merged.
std::unique_ptr<server::Stream> ClusterService::open_flows(const server::FlowRequest& q) {
  auto pr = parse_filter(q.filter);
  // Flow records carry the innermost addresses; the hash is of the outermost layer: the
  // selection applies only where the two are the same (no tunnels).
  BalanceInfo b = cfg_.balance;
  if (b.tunnels) b.known = false;
  std::vector<size_t> which;
  if (Selection sel = select(pr, b); sel.all)
    which = all_workers();
  else
    which.assign(sel.workers.begin(), sel.workers.end());
  auto p = params(
      {{"from", q.from}, {"to", q.to}, {"by", q.by}, {"format", "json"}, {"community_id", q.community_id}});
  p.emplace("filter", q.filter);
  if (q.top) p.emplace("top", std::to_string(q.top));
  const httplib::Request req = worker_request("/api/v1/flows", p, true);
  auto replies = fan_out(cfg_, wc_, which, [&](httplib::Client& c) { return c.send(req); });
  std::vector<std::vector<flow::FlowRow>> parts;
  std::vector<std::string> warnings;  // the workers' (damaged flow files), each naming its worker
  for (size_t k = 0; k < replies.size(); ++k) {
    auto& r = replies[k];
    if (r.status == 400) throw server::BadRequest(error_text(400, r.body));
    if (!r.ok()) continue;
    for (auto& w : r.warnings)
      warnings.push_back(fmt::format("worker {}: {}", cfg_.workers[which[k]].url, w));
    // A worker whose answer is not flow records (a line not JSON, a record without its fields)
    // is missing, named with why, as one that did not answer: not the whole answer failed (a 500,
    // or a 400 blaming the client for a worker's text).
    try {
      parts.push_back(server::parse_flow_lines(r.body));
    } catch (const std::exception& e) {
      r.status = 0;
      r.error = fmt::format("its flow records are not readable: {}", e.what());
    }
  }
  // With every worker down an empty table would read as "no such flows".
  json missing = missing_of(cfg_, which, replies);
  check_answered(missing, which.size(), q.require_all);
  auto rows = merge_flows(std::move(parts), q.top, q.by);
  auto s = std::make_unique<TextStream>(server::render_flows(rows, q.format), std::move(warnings));
  s->headers.emplace_back("X-TM-Workers", urls_of(cfg_, which));
  add_missing_headers(s->headers, missing);
  return s;
}

std::string ClusterService::flows(const server::FlowRequest& q, const server::ByteSink& out,
                                  const server::Warn& warn) {
  auto s = open_flows(q);
  for (auto& [k, v] : s->headers)
    if (k == "X-TM-Missing-Reasons") warn(server::missing_workers_warning(v));
  return s->run(out, warn, [] { return std::string(); });
}

// Every worker's live stream into one queue: packets interleave as they come.
class ClusterService::SubscriptionStream : public server::Stream {
 public:
  SubscriptionStream(std::shared_ptr<PacketQueue> q, std::shared_ptr<FetchSet> fs)
      : q_(std::move(q)), fs_(std::move(fs)) {}
  // The shared queue is cancelled first, so a fetch blocked on it wakes before the fetch set
  // joins its thread (on every path: error, end, client gone).
  ~SubscriptionStream() override {
    q_->cancel();
    for (auto& f : fs_->f) f->give_up();
    fs_->end();
  }
  // Ends normally when `stop` says stop, or when no worker streams any more.
  std::string run(const server::ByteSink& sink, const server::Warn&, const server::StopCheck& stop) override {
    util::pcap::Writer out(sink);
    while (stop().empty()) {
      bool any_running = false;
      for (auto& f : fs_->f) {
        std::lock_guard lk(f->mu);
        any_running |= f->state == Fetch::State::kStreaming || f->state == Fetch::State::kWaiting;
      }
      bool got = false;
      while (q_->wait_head(clk::now() + std::chrono::milliseconds(200))) {
        write_packet(out, q_->pop());
        got = true;
        if (q_->bytes() == 0) break;
      }
      out.flush();
      if (!any_running && !got) break;
    }
    out.finish();
    packets = out.packets();
    return fmt::format("{} packets", packets);
  }

 private:
  std::shared_ptr<PacketQueue> q_;
  std::shared_ptr<FetchSet> fs_;
};

std::unique_ptr<server::Stream> ClusterService::open_subscription(const server::SubscribeRequest& q) {
  parse_filter(q.filter);
  auto p = params({{"to", q.to}}, q.classes);
  p.emplace("filter", q.filter);
  if (q.history) p.emplace("history_from", q.history_from);
  const httplib::Request req = worker_request("/api/v1/subscribe", p, true);
  auto queue = std::make_shared<PacketQueue>(64u << 20);
  // One queue for all; a subscription may stay quiet for long.
  auto fs = start_fetches(cfg_, all_workers(), req, 0, queue, 24 * 3600);
  auto s = std::make_unique<SubscriptionStream>(queue, fs);  // from here on, ended by its destructor
  fs->wait_started(clk::now());
  json missing = json::object();
  size_t started = 0;
  for (auto& f : fs->f) {
    std::lock_guard lk(f->mu);
    if (f->status == 400) throw server::BadRequest(error_text(400, f->error_body));
    if (f->started)
      ++started;
    else
      missing[f->url] = f->reason;
  }
  if (!started)
    throw server::ServiceError(502, "no worker accepted the subscription: " + reasons_of(missing));
  add_missing_headers(s->headers, missing);
  return s;
}

}  // namespace tmach::cluster
