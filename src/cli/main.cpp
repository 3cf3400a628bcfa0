// tm: the Time Machine command line.
#include <fmt/format.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <iostream>

#include "cli/commands.h"
#include "store/sidecar.h"

namespace {

// `tm serve` and `tm frontend` are the daemons, a program of their own (src/daemon/): it links
// cpp-httplib's server, which tm does not load (docs/DESIGN.md, "Two executables"). tm
// replaces itself by tm-daemon, found next to its own executable, with the same arguments:
// the process id stays, so signals and exit codes are the daemon's own, and argv[0] stays
// what the user typed, so usage and messages keep saying "tm". Returns only on failure.
std::string exec_tm_daemon(char** argv) {
  std::error_code ec;
  auto self = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (ec) return "cannot find this executable (/proc/self/exe): " + ec.message();
  std::string path = (self.parent_path() / "tm-daemon").string();
  ::execv(path.c_str(), argv);
  return fmt::format("runs in tm-daemon, which should be next to tm: cannot execute {}: {}", path,
                     std::strerror(errno));
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "tm - Time Machine: records the first bytes of every connection, answers queries in milliseconds"};
  app.require_subcommand(1);
  app.set_version_flag("--version", fmt::format("tm 0.2 (sidecar format {})", tmach::store::kSidecarVersion));
  std::string log_level = "warn";
  app.add_option("--log-level", log_level, "trace, debug, info, warn, error")->capture_default_str();
  std::vector<std::pair<CLI::App*, tmach::cli::Runner>> cmds;
  auto reg = [&](const char* name, const char* help, tmach::cli::Runner (*add)(CLI::App&)) {
    CLI::App* sub = app.add_subcommand(name, help);
    cmds.emplace_back(sub, add(*sub));
  };
  reg("record", "record capture files or a live interface into a store", tmach::cli::add_record);
  reg("query", "extract the packets matching a filter from a store, as pcap", tmach::cli::add_query);
  reg("flows", "flow records (a summary of every connection) matching a filter", tmach::cli::add_flows);
  reg("stats", "show what a store holds", tmach::cli::add_stats);
  reg("class", "set, list or remove dynamic classes of a running tm serve", tmach::cli::add_class);
  reg("connections", "active connections of a running tm serve; suspend a connection's cutoff or timeout",
      tmach::cli::add_connections);
  reg("subscribe", "stream new packets matching a filter from a running tm serve, as pcap",
      tmach::cli::add_subscribe);
  // The daemons: their options, --help included, are tm-daemon's to parse.
  std::vector<CLI::App*> daemons;
  daemons.push_back(app.add_subcommand(
      "serve", "record live interfaces and serve the HTTP API (or serve a store read-only)"));
  daemons.push_back(app.add_subcommand(
      "frontend", "one API in front of several tm serve workers: queries fan out and merge by time"));
  for (auto* d : daemons) {
    d->prefix_command();
    d->set_help_flag();  // --help too: tm-daemon prints the command's options
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  for (auto* d : daemons) {
    if (!d->parsed()) continue;
    std::string why = exec_tm_daemon(argv);
    std::cerr << "tm " << d->get_name() << ": " << why << "\n";
    return 1;
  }
  spdlog::set_default_logger(spdlog::stderr_color_mt("tm"));
  spdlog::set_level(spdlog::level::from_str(log_level));
  for (auto& [sub, run] : cmds) {
    if (!sub->parsed()) continue;
    try {
      return run();
    } catch (const std::exception& e) {
      std::cerr << "tm " << sub->get_name() << ": " << e.what() << "\n";
      return 1;
    }
  }
  return 2;
}
