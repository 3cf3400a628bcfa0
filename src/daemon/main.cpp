// tm-daemon: Time Machine's long-running programs, `tm serve` (record live interfaces and
// serve the HTTP API) and `tm frontend` (one API over many recorders). They link cpp-httplib's
// server; `tm` does not, and executes this program when given `serve` or `frontend`
// (docs/DESIGN.md, "Two executables"). It may be run directly too: `tm-daemon serve ...`.
#include <fmt/format.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <iostream>

#include "daemon/commands.h"
#include "store/sidecar.h"

int main(int argc, char** argv) {
  CLI::App app{"tm-daemon - Time Machine's daemons: tm serve and tm frontend"};
  app.require_subcommand(1);
  app.set_version_flag("--version", fmt::format("tm 0.2 (sidecar format {})", tmach::store::kSidecarVersion));
  std::string log_level = "warn";
  app.add_option("--log-level", log_level, "trace, debug, info, warn, error")->capture_default_str();
  std::vector<std::pair<CLI::App*, tmach::cli::Runner>> cmds;
  auto reg = [&](const char* name, const char* help, tmach::cli::Runner (*add)(CLI::App&)) {
    CLI::App* sub = app.add_subcommand(name, help);
    cmds.emplace_back(sub, add(*sub));
  };
  reg("serve", "record live interfaces and serve the HTTP API (or serve a store read-only)",
      tmach::cli::add_serve);
  reg("frontend", "one API in front of several tm serve workers: queries fan out and merge by time",
      tmach::cli::add_frontend);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
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
