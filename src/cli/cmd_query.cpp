// tm query: the packets matching a filter and a time range, as one pcap in time order.
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
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

// Whether `path` (a file that may not exist yet) is under directory `dir`, both resolved.
bool inside(const std::string& path, const std::string& dir) {
  std::error_code ec;
  // (Made absolute first: a relative name none of whose parts exists stays relative.)
  auto d = std::filesystem::weakly_canonical(std::filesystem::absolute(dir, ec), ec);
  if (ec) return false;
  if (d.filename().empty()) d = d.parent_path();  // (a trailing '/')
  auto p = std::filesystem::weakly_canonical(std::filesystem::absolute(path, ec), ec);
  if (ec) return false;
  auto [dm, pm] = std::mismatch(d.begin(), d.end(), p.begin(), p.end());
  return dm == d.end() && pm != p.end();
}

// --explain: the plan of the query and what running it touched, as the Service explains it
// (the store's or server's figures; a tm frontend's summed over the workers it asks).
int print_explain(const nlohmann::json& j) {
  using nlohmann::json;
  // (Each member looked up, not assumed: an older or another server's plan may lack any.)
  auto at = [](const json& o, const char* k) { return o.is_object() ? o.value(k, json()) : json(); };
  auto str = [&](const json& o, const char* k) {
    json v = at(o, k);
    return v.is_string() ? v.get<std::string>() : std::string();
  };
  auto num = [&](const json& o, const char* k) {
    json v = at(o, k);
    return v.is_number_unsigned() ? v.get<uint64_t>() : uint64_t{0};
  };
  std::string filter = j.contains("query_filter") ? str(j, "query_filter") : str(j, "filter");
  std::cout << "filter: " << (filter.empty() ? "(all packets)" : filter) << "\n";
  if (std::string p = str(j, "parsed"); !p.empty()) std::cout << "parsed: " << p << "\n";
  if (std::string c = str(j, "connections"); !c.empty())
    std::cout << "connections: " << c << " (checked per packet: libpcap answers the filter)\n";
  if (std::string plan = str(j, "plan"); !plan.empty())
    std::cout << "plan: " << plan << (plan.back() != '\n' ? "\n" : "");
  if (at(j, "from_ns").is_number_unsigned()) {
    uint64_t from = num(j, "from_ns");
    std::cout << fmt::format(
        "time range: {} .. {}\n", from ? util::format_time(from) : "start",
        at(j, "to_ns").is_number_unsigned() ? util::format_time(num(j, "to_ns")) : "end");
  }
  const json workers = at(j, "workers");
  if (workers.is_array()) {
    std::cout << fmt::format("cluster: balance {}, tunnels {}\n",
                             str(j, "balance").empty() ? "unknown" : str(j, "balance"),
                             at(j, "tunnels") == json(true) ? "possible" : "none");
    std::cout << "selection: " << str(j, "why") << "\n";
    std::cout << fmt::format("workers asked: {}\n", workers.size());
    for (auto& w : workers) std::cout << fmt::format("  worker {} {}\n", num(w, "id"), str(w, "url"));
  }
  if (const json f = at(j, "figures"); f.is_object()) {
    std::cout << fmt::format(
        "segments: {} in {}, {} skipped by time, {} through their sidecar ({} with no candidate), {} read "
        "whole\n",
        num(f, "segments"), workers.is_array() ? "the workers' stores" : "store", num(f, "skipped_by_time"),
        num(f, "through_sidecar"), num(f, "no_candidate"), num(f, "read_whole"));
    std::cout << fmt::format("candidates read: {}, matched: {}, {:.1f} ms\n", num(f, "candidates"),
                             num(f, "matched"), at(f, "ms").is_number() ? f["ms"].get<double>() : 0.0);
  } else if (workers.is_array()) {  // a tm frontend of workers that give none (older ones)
    std::cout << "(segments and candidates: not given by the workers)\n";
  } else {  // an older tm serve: its figures need the store
    std::cout << "(segments and candidates: tm query --store on the server's host)\n";
  }
  if (std::string none = str(j, "no_connection"); !none.empty() && str(j, "kind") != "none")
    std::cerr << "tm query: warning: " << none << "\n";
  if (const json ws = at(j, "warnings"); ws.is_array())
    for (auto& w : ws)
      if (w.is_string()) std::cerr << "tm query: warning: " << w.get<std::string>() << "\n";
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
  // (One class an occurrence, or several with commas: `--class web 'tcp port 80'` took the
  // filter for a second class.)
  app.add_option("--class", o->classes, "search only this class (repeat it, or CLASS,CLASS,...)")
      ->allow_extra_args(false)
      ->delimiter(',');
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
  app.add_option(
         "--community-id", o->community_id,
         "the packets of the connection(s) with this Community ID (1:..., as Zeek and Suricata log it)")
      ->check(not_empty("every connection"));
  return [o]() -> int {
    if (!o->explain && !o->count && o->out.empty())
      throw std::runtime_error("say where the answer goes: -w FILE, -w - (stdout), --count or --explain");
    if (o->store.empty() == o->server.url.empty())
      throw std::runtime_error("give --store DIR or --server URL");
    if (!o->store.empty() && !o->out.empty() && o->out != "-" && !o->explain && !o->count &&
        inside(o->out, o->store))
      throw std::runtime_error(fmt::format(
          "-w {}: that is inside the store {}; writing there would overwrite or add to its segments", o->out,
          o->store));
    if (o->limit && o->explain) {  // (the plan is the same whatever the limit: a usage error)
      std::cerr << "-c/--limit does not go with --explain\n";
      return 2;
    }
    if (o->flow_id && !o->community_id.empty()) {  // (as the service refuses it: a usage error)
      std::cerr << "give --flow or --community-id, not both\n";
      return 2;
    }
    // The answer, its count (a server counts on its side: /api/v1/count), or its plan and
    // figures: one path for --store and --server.
    std::unique_ptr<server::Service> svc = open_service(o->store, o->server);
    server::QueryRequest r{filter_text(o->filter),
                           o->from,
                           o->to,
                           o->classes,
                           o->require_all,
                           o->community_id,
                           o->flow_id ? std::to_string(o->flow_id) : "",
                           o->format,
                           o->limit,
                           o->explain};
    auto warn = [](const std::string& w) { std::cerr << "tm query: warning: " << w << "\n"; };
    std::string summary;
    try {
      if (o->explain) return print_explain(svc->explain(r, [] { return std::string(); }).body);
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
  };
}

}  // namespace tmach::cli
