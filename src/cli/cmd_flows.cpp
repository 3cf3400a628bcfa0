// tm flows: flow records (one per connection) matching a filter, as a table, JSON lines or CSV.
#include <fmt/format.h>

#include <algorithm>
#include <iostream>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/options.h"
#include "flow/flow_query.h"
#include "server/client.h"
#include "server/flow_format.h"
#include "util/timespec.h"

namespace tmach::cli {

Runner add_flows(CLI::App& app) {
  struct Opts {
    std::string store, from, to, format = "text", by = "bytes";
    std::vector<std::string> filter;
    size_t top = 0;
    bool quiet = false, require_all = false;
    server::ClientOptions server;
  };
  auto o = std::make_shared<Opts>();
  app.add_option("-s,--store", o->store, "store directory");
  add_server_options(app, o->server, false);
  app.add_option("filter", o->filter, "filter on addresses, ports, protocols (tcpdump syntax)");
  app.add_option("--from", o->from, "flows active at or after this time");
  app.add_option("--to", o->to, "flows active before this time");
  app.add_option("--format", o->format, "text (default), json (one object a line), csv")
      ->check(CLI::IsMember({"text", "json", "csv"}));
  app.add_option("--top", o->top, "only the N largest flows");
  app.add_option("--by", o->by, "what --top ranks by: bytes, packets, duration")
      ->check(CLI::IsMember({"bytes", "packets", "duration"}));
  app.add_flag("-q,--quiet", o->quiet, "no summary on stderr");
  app.add_flag("--require-all", o->require_all,
               "--server is a tm frontend: fail unless every worker answers");
  return [o]() -> int {
    std::string text;
    for (size_t i = 0; i < o->filter.size(); ++i) text += (i ? " " : "") + o->filter[i];
    if (o->store.empty() == o->server.url.empty())
      throw std::runtime_error("give --store DIR or --server URL");
    if (!o->server.url.empty()) {
      server::Params p{{"filter", text}, {"format", o->format}, {"by", o->by}};
      if (!o->from.empty()) p.emplace("from", o->from);
      if (!o->to.empty()) p.emplace("to", o->to);
      if (o->top) p.emplace("top", std::to_string(o->top));
      if (o->require_all) p.emplace("require_all", "1");
      auto r = server::api_get(o->server, "/api/v1/flows", p, stdout);
      if (r.status == 400) {
        std::cerr << r.error << "\n";
        return 2;
      }
      if (!r.error.empty()) throw std::runtime_error(r.error);
      if (std::string m = r.header("X-TM-Missing-Reasons"); !m.empty())
        std::cerr << "tm flows: warning: workers missing from the answer: " << m << "\n";
      return 0;
    }
    query::ParseResult pr = query::parse_expr(text);
    if (pr.kind == query::ParseResult::Kind::kError) {
      std::cerr << query::format_error(text, pr) << "\n";
      return 2;
    }
    uint64_t from = 0, to = UINT64_MAX;
    parse_time_range(o->from, o->to, from, to);
    flow::FlowQueryStats st;
    auto rows = flow::query_flows(o->store, pr, from, to, st);
    server::top_flows(rows, o->top, o->by);
    std::cout << server::render_flows(rows, o->format);
    for (auto& w : st.warnings) std::cerr << "tm flows: warning: " << w << "\n";
    if (!o->quiet)
      std::cerr << fmt::format(
          "tm flows: {} files ({} by index, {} scanned, {} skipped by time), {} records read, {} flows\n",
          st.files, st.files_indexed, st.files_scanned, st.files_skipped, st.candidates, rows.size());
    return 0;
  };
}

}  // namespace tmach::cli
