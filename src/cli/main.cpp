// tm: the Time Machine command line.
#include <fmt/format.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <iostream>

#include "cli/commands.h"
#include "cli/http_handover.h"
#include "store/sidecar.h"

// Commands that only exist over the HTTP API are compiled into tm-http alone; tm registers
// them (for --help) and hands them over (cli/http_handover.h).
#ifdef TM_WITH_HTTP
#define HTTP_ONLY(add) (add)
#else
#define HTTP_ONLY(add) nullptr
#endif

int main(int argc, char** argv) {
  CLI::App app{
      "tm - Time Machine: records the first bytes of every connection, answers queries in milliseconds"};
  app.require_subcommand(1);
  app.set_version_flag("--version", fmt::format("tm 0.2 (sidecar format {})", tmach::store::kSidecarVersion));
  std::string log_level = "warn";
  app.add_option("--log-level", log_level, "trace, debug, info, warn, error")->capture_default_str();
  struct Command {
    CLI::App* sub;
    tmach::cli::Runner run;
    bool http_only;  // registered by name only: runs in tm-http
  };
  std::vector<Command> cmds;
  auto reg = [&](const char* name, const char* help, tmach::cli::Runner (*add)(CLI::App&)) {
    CLI::App* sub = app.add_subcommand(name, help);
    if (add != nullptr) {
      cmds.push_back({sub, add(*sub), false});
    } else {
      sub->prefix_command();  // its options, --help included, are tm-http's to parse
      cmds.push_back({sub, nullptr, true});
    }
  };
  reg("record", "record capture files or a live interface into a store", tmach::cli::add_record);
  reg("query", "extract the packets matching a filter from a store, as pcap", tmach::cli::add_query);
  reg("flows", "flow records (a summary of every connection) matching a filter", tmach::cli::add_flows);
  reg("stats", "show what a store holds", tmach::cli::add_stats);
  reg("evidence", "the packets of each Suricata or Zeek alert's connection, as pcap and JSON",
      tmach::cli::add_evidence);
  reg("serve", "record live interfaces and serve the HTTP API (or serve a store read-only)",
      HTTP_ONLY(tmach::cli::add_serve));
  reg("class", "set, list or remove dynamic classes of a running tm serve", HTTP_ONLY(tmach::cli::add_class));
  reg("connections", "active connections of a running tm serve; suspend a connection's cutoff or timeout",
      HTTP_ONLY(tmach::cli::add_connections));
  reg("subscribe", "stream new packets matching a filter from a running tm serve, as pcap",
      HTTP_ONLY(tmach::cli::add_subscribe));
  reg("frontend", "one API in front of several tm serve workers: queries fan out and merge by time",
      HTTP_ONLY(tmach::cli::add_frontend));
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  spdlog::set_level(spdlog::level::from_str(log_level));
  spdlog::set_default_logger(spdlog::stderr_color_mt("tm"));
  spdlog::set_level(spdlog::level::from_str(log_level));
  for (auto& [sub, run, http_only] : cmds) {
    if (!sub->parsed()) continue;
    try {
#ifndef TM_WITH_HTTP
      if (tmach::cli::needs_http(*sub, http_only)) tmach::cli::hand_over_to_tm_http(argv);
#endif
      return run();
    } catch (const std::exception& e) {
      std::cerr << "tm " << sub->get_name() << ": " << e.what() << "\n";
      return 1;
    }
  }
  return 2;
}
