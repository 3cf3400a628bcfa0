// tm flows: flow records (one per connection) matching a filter, as a table, JSON lines or CSV.
#include <fmt/format.h>

#include <algorithm>
#include <iostream>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cmdline/options.h"
#include "flow/flow_query.h"
#include "util/timespec.h"

namespace tmach::cli {

Runner add_flows(CLI::App& app) {
  struct Opts {
    std::string store, from, to, format = "text", by = "bytes", community_id;
    std::vector<std::string> filter;
    size_t top = 0;
    bool quiet = false, require_all = false, json = false;
    server::ClientOptions server;
  };
  auto o = std::make_shared<Opts>();
  app.add_option("-s,--store", o->store, "store directory");
  add_server_options(app, o->server, false);
  app.add_option("filter", o->filter, "filter on addresses, ports, protocols (tcpdump syntax)");
  app.add_option("--from", o->from, "flows active at or after this time")->check(not_empty("no bound"));
  app.add_option("--to", o->to, "flows active before this time")->check(not_empty("no bound"));
  app.add_option("--format", o->format,
                 "text (default), json (one object a line), csv, zeek (Zeek's conn.log), zeek-json")
      ->check(CLI::IsMember({"text", "json", "csv", "zeek", "zeek-json"}));
  app.add_flag("--json", o->json, "the same as --format json");
  app.add_option("--top", o->top, "only the N largest flows")->check(whole_number(0, 1000000000));
  app.add_option("--by", o->by, "what --top ranks by: bytes, packets, duration")
      ->check(CLI::IsMember({"bytes", "packets", "duration"}));
  app.add_option("--community-id", o->community_id, "only the flows with this Community ID (1:...)")
      ->check(not_empty("every flow"));
  app.add_flag("-q,--quiet", o->quiet, "no summary on stderr");
  app.add_flag("--require-all", o->require_all,
               "--server is a tm frontend: fail unless every worker answers");
  return [o]() -> int {
    std::string text = filter_text(o->filter);
    if (o->json) o->format = "json";
    std::unique_ptr<server::Service> svc = open_service(o->store, o->server);
    server::FlowRequest r{text, o->from, o->to, o->format, o->by, o->top, o->require_all, o->community_id};
    std::string summary;
    try {
      summary = svc->flows(
          r, [](const char* p, size_t n) { std::cout.write(p, static_cast<std::streamsize>(n)); },
          [](const std::string& w) { std::cerr << "tm flows: warning: " << w << "\n"; });
    } catch (const server::BadRequest& e) {
      std::cerr << e.what() << "\n";
      return 2;
    }
    std::cout.flush();
    if (!o->quiet && !summary.empty()) std::cerr << "tm flows: " << summary << "\n";
    return 0;
  };
}

}  // namespace tmach::cli
