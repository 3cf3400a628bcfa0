// tm query: the packets matching a filter and a time range, as one pcap in time order.
#include <fmt/format.h>

#include <chrono>
#include <cstdio>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>

#include "cli/commands.h"
#include "cluster/pcap_merge.h"
#include "cmdline/options.h"
#include "flow/flow_query.h"
#include "packet/community_id.h"
#include "query/combine.h"
#include "query/executor.h"
#include "query/packet_filter.h"
#include "query/planner.h"
#include "server/client.h"
#include "store/catalog.h"
#include "util/file_io.h"
#include "util/pcap.h"
#include "util/pcapng_writer.h"
#include "util/timespec.h"

namespace tmach::cli {
namespace {

// The answer's file, opened when its first bytes come (a refused query leaves no file).
class OutFile {
 public:
  explicit OutFile(std::string path) : path_(std::move(path)) {}
  ~OutFile() {
    if (f_ && f_ != stdout) std::fclose(f_);
  }
  void write(const char* p, size_t n) {
    if (!f_) {
      f_ = path_ == "-" ? stdout : std::fopen(path_.c_str(), "wb");
      if (!f_) throw std::runtime_error(fmt::format("cannot write {}: {}", path_, std::strerror(errno)));
    }
    util::write_all(fileno(f_), p, n, path_ == "-" ? "standard output" : path_);
  }

 private:
  std::string path_;
  std::FILE* f_ = nullptr;
};

// --explain --server: the server's plan of the filter (its /api/v1/explain, the same plan
// --store prints, without the store's figures); a tm frontend adds which workers it would ask.
// The time range and classes go with it: the server checks them as it checks a query's.
int explain_remote(const server::ClientOptions& c, const std::string& filter, const std::string& from,
                   const std::string& to, const std::vector<std::string>& classes) {
  server::Params p{{"filter", filter}};
  if (!from.empty()) p.emplace("from", from);
  if (!to.empty()) p.emplace("to", to);
  for (auto& cl : classes) p.emplace("class", cl);
  auto r = server::api_query(c, "/api/v1/explain", p, nullptr);
  if (r.status == 404)
    throw std::runtime_error(c.url + " has no /api/v1/explain (an older tm): --explain needs --store there");
  if (r.status == 400) {
    std::cerr << r.error << "\n";
    return 2;
  }
  if (!r.error.empty()) throw std::runtime_error(r.error);
  auto j = nlohmann::json::parse(r.body, nullptr, false);
  if (!j.is_object()) throw std::runtime_error("the server's answer is not JSON");
  std::cout << "filter: " << (filter.empty() ? "(all packets)" : filter) << "\n";
  if (j["parsed"].is_string()) std::cout << "parsed: " << j["parsed"].get<std::string>() << "\n";
  if (j["plan"].is_string()) {
    std::string plan = j["plan"].get<std::string>();
    std::cout << "plan: " << plan << (plan.empty() || plan.back() != '\n' ? "\n" : "");
  }
  if (!j.contains("workers")) {  // a tm serve: the segment and candidate figures need the store
    std::cout << "(segments and candidates: tm query --store on the server's host)\n";
    return 0;
  }
  std::cout << fmt::format("cluster: balance {}, tunnels {}\n",
                           j["balance"].is_string() ? j["balance"].get<std::string>() : "unknown",
                           j["tunnels"].get<bool>() ? "possible" : "none");
  std::cout << "selection: " << j["why"].get<std::string>() << "\n";
  std::cout << fmt::format("workers asked: {}\n", j["workers"].size());
  for (auto& w : j["workers"])
    std::cout << fmt::format("  worker {} {}\n", w["id"].get<size_t>(), w["url"].get<std::string>());
  return 0;
}

}  // namespace

Runner add_query(CLI::App& app) {
  struct Opts {
    std::string store, out, from, to;
    std::vector<std::string> filter;
    std::vector<std::string> classes;
    bool explain = false, count = false, quiet = false, require_all = false;
    uint64_t flow_id = 0, limit = 0;
    std::string community_id, format;
    server::ClientOptions server;
  };
  auto o = std::make_shared<Opts>();
  app.add_option("-s,--store", o->store, "store directory");
  add_server_options(app, o->server, false);
  app.add_option("filter", o->filter, "tcpdump filter expression (quote it, or give it as several words)");
  app.add_option("-w,--write", o->out, "write the answer as pcap to FILE ('-' = stdout)");
  app.add_option("--format", o->format,
                 "pcap or pcapng; default: pcapng when the store's segments in the query's classes and "
                 "time range hold more than one link type, else pcap")
      ->check(CLI::IsMember({"pcap", "pcapng"}));
  app.add_option("--from", o->from, "start of the time range, inclusive (ISO-8601, epoch seconds, '15m ago')")
      ->check(not_empty("no bound"));
  app.add_option("--to", o->to, "end of the time range, exclusive")->check(not_empty("no bound"));
  app.add_option("--class", o->classes, "search only these classes");
  app.add_flag("--explain", o->explain, "show the plan and what it touched, without writing packets");
  app.add_flag("--count", o->count, "only count the matching packets");
  app.add_option("-c,--limit", o->limit,
                 "only the first N matching packets, in time order (as tcpdump -c); with --count, at most N")
      ->check(whole_number(1, UINT64_MAX));
  app.add_flag("-q,--quiet", o->quiet, "no summary on stderr");
  app.add_flag("--require-all", o->require_all,
               "--server is a tm frontend: fail unless every worker it asks answers in full");
  app.add_option("--flow", o->flow_id, "the packets of one flow (its id from tm flows), while still on disk")
      ->check(whole_number(1, UINT64_MAX));
  CLI::Option* cid = app.add_option(
      "--community-id", o->community_id,
      "the packets of the connection(s) with this Community ID (1:..., as Zeek and Suricata log it)");
  return [o, cid]() -> int {
    if (cid->count() && o->community_id.empty()) {  // (not "every connection": a usage error)
      std::cerr << "--community-id: given empty (leave it out for every connection)\n";
      return 2;
    }
    if (!o->explain && !o->count && o->out.empty())
      throw std::runtime_error("say where the answer goes: -w FILE, -w - (stdout), --count or --explain");
    if (o->store.empty() == o->server.url.empty())
      throw std::runtime_error("give --store DIR or --server URL");
    if (o->limit && o->explain) {  // (the plan is the same whatever the limit: a usage error)
      std::cerr << "-c/--limit does not go with --explain\n";
      return 2;
    }
    if (o->flow_id && !o->community_id.empty()) {  // (as the service refuses it: a usage error)
      std::cerr << "give --flow or --community-id, not both\n";
      return 2;
    }
    query::QuerySpec q;
    q.text = filter_text(o->filter);
    if (!o->server.url.empty() && o->explain) {
      if (o->flow_id) throw std::runtime_error("--explain --flow needs --store");
      return explain_remote(o->server, q.text, o->from, o->to, o->classes);
    }
    if (!o->explain) {
      // The answer, or (--count) how many packets it holds: one path for --store and --server
      // (a server counts on its side: /api/v1/count).
      std::unique_ptr<server::Service> svc = open_service(o->store, o->server);
      server::QueryRequest r{q.text,
                             o->from,
                             o->to,
                             o->classes,
                             o->require_all,
                             o->community_id,
                             o->flow_id ? std::to_string(o->flow_id) : "",
                             o->format,
                             o->limit};
      auto warn = [](const std::string& w) { std::cerr << "tm query: warning: " << w << "\n"; };
      std::string summary;
      try {
        if (o->count) {
          server::Reply c = svc->count(r, [] { return std::string(); });
          for (auto& w : c.body["warnings"]) warn(w.get<std::string>());
          std::cout << c.body["packets"].get<uint64_t>() << "\n";
          summary = c.body["summary"].is_string() ? c.body["summary"].get<std::string>() : "";
        } else if (!o->server.url.empty() && o->format == "pcap") {
          // A pcap asked of a server: its answer asked as pcapng, written as pcap here, so that the
          // packets a pcap cannot take (another link type than the first packet's) are counted and
          // warned of as with --store (a server's own pcap would leave them out unsaid).
          OutFile out(o->out);
          util::pcap::AnswerWriter pcap(util::pcap::Output::kPcap,
                                        [&](const char* p, size_t n) { out.write(p, n); });
          cluster::PcapStreamParser parser;
          r.format = "pcapng";
          summary = svc->query(
              r,
              [&](const char* p, size_t n) {
                bool ok = parser.feed(p, n, [&](cluster::MergePacket&& m) {
                  pcap.write(m.ts_ns, m.linktype, static_cast<uint32_t>(m.data.size()), m.wirelen,
                             reinterpret_cast<const uint8_t*>(m.data.data()));
                });
                if (!ok) throw std::runtime_error(o->server.url + "'s answer: " + parser.error());
              },
              warn);
          pcap.finish();
          if (pcap.other_link())
            warn(fmt::format(
                "{} matching packets of another link type than {} were left out (--format pcapng keeps them)",
                pcap.other_link(), pcap.linktype()));
          if (size_t k = summary.rfind("; written as "); k != std::string::npos)
            summary = summary.substr(0, k) + "; written as " + pcap.describe();
        } else {
          OutFile out(o->out);
          summary = svc->query(
              r, [&](const char* p, size_t n) { out.write(p, n); }, warn);
        }
      } catch (const server::BadRequest& e) {
        std::cerr << e.what() << "\n";
        return 2;
      }
      if (!o->quiet && !summary.empty()) std::cerr << "tm query: " << summary << "\n";
      return 0;
    }
    std::optional<flow::FlowPackets> flow;
    if (o->flow_id) {  // --explain: the store's own figures, the flow's packets as a query takes them
      flow = flow::flow_packets(o->store, o->flow_id);
      if (!flow) throw std::runtime_error(fmt::format("no flow {} in store {}", o->flow_id, o->store));
      q.text = query::and_filters(flow->filter, q.text, "--flow", "filter");
    }
    if (!o->community_id.empty()) {  // --explain: the store's own figures
      if (!packet::is_community_id(o->community_id))
        throw std::runtime_error(
            fmt::format("--community-id: '{}' is not a version-1 Community ID", o->community_id));
      std::string conns = flow::community_filter(o->store, o->community_id);
      if (conns.empty()) {
        std::cerr << fmt::format("tm query: warning: no flow record of store {} has Community ID {}\n",
                                 o->store, o->community_id);
        conns = "ip and not ip";  // nothing
      }
      q.text = query::and_filters(conns, q.text, "--community-id", "filter");
    }
    q.parsed = query::parse_expr(q.text);
    if (q.parsed.kind == query::ParseResult::Kind::kError) {
      std::cerr << query::format_error(q.text, q.parsed) << "\n";
      return 2;
    }
    if (q.parsed.kind == query::ParseResult::Kind::kBpfOnly)
      if (std::string err = query::libpcap_filter_error(q.text); !err.empty()) {
        std::cerr << err << "\n";
        return 2;
      }
    parse_time_range(o->from, o->to, q.from_ns, q.to_ns);
    if (q.from_ns > q.to_ns) throw std::runtime_error("--from is after --to");
    if (flow) {  // (as LocalService::packet_query narrows it)
      flow::FlowWindow w = flow::flow_window(std::to_string(o->flow_id), *flow, q.from_ns, q.to_ns);
      if (!w.problem.empty()) throw std::runtime_error(fmt::format("--{}: {}", w.bound, w.problem));
      q.from_ns = w.from_ns;
      q.to_ns = w.to_ns;
    }
    q.classes = o->classes;
    auto t0 = std::chrono::steady_clock::now();
    // Names only: the executor checks each sidecar it opens (and skips by its time range).
    store::Catalog cat = store::Catalog::scan(o->store, store::Catalog::Depth::kNames);
    for (auto& c : q.classes)
      if (std::find(cat.classes.begin(), cat.classes.end(), c) == cat.classes.end())
        throw std::runtime_error(fmt::format("no class '{}' in store {}", c, o->store));

    // --explain: the store's own figures (a Service answers packets only).
    query::QueryStats st = query::run_query(cat, q, [](const query::OutPacket&) {});
    double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    std::cout << "filter: " << (q.text.empty() ? "(all packets)" : q.text) << "\n";
    if (q.parsed.kind == query::ParseResult::Kind::kIndexed) {
      std::cout << "parsed: " << q.parsed.expr.str() << "\n";
      std::cout << "plan: indexes, then every candidate re-checked on its bytes\n"
                << query::explain_plan(q.parsed.expr);
    } else {
      std::cout << fmt::format(
          "plan: scan with libpcap BPF ('{}' is not indexed); the time range bounds the scan\n",
          q.parsed.unplanned);
    }
    std::cout << fmt::format("time range: {} .. {}\n", q.from_ns ? util::format_time(q.from_ns) : "start",
                             q.to_ns != UINT64_MAX ? util::format_time(q.to_ns) : "end");
    std::cout << fmt::format(
        "segments: {} in store, {} skipped by time, {} through indexes ({} with no candidate), {} "
        "scanned\n",
        st.segments_total, st.segments_skipped_time, st.segments_indexed, st.segments_empty,
        st.segments_scanned);
    std::cout << fmt::format("candidates read: {}, matched: {}, {:.1f} ms\n", st.candidates, st.matched, ms);
    for (auto& w : st.warnings) std::cerr << "tm query: warning: " << w << "\n";
    return 0;
  };
}

}  // namespace tmach::cli
