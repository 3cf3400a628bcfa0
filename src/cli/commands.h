// The tm subcommands. Each registers its options on a CLI11 app and returns the exit code.
#pragma once

#include <CLI/CLI.hpp>
#include <functional>

namespace tmach::cli {

using Runner = std::function<int()>;

Runner add_record(CLI::App& app);
Runner add_stats(CLI::App& app);
Runner add_query(CLI::App& app);
Runner add_flows(CLI::App& app);
Runner add_connections(CLI::App& app);
Runner add_serve(CLI::App& app);
Runner add_class(CLI::App& app);
Runner add_subscribe(CLI::App& app);
Runner add_frontend(CLI::App& app);
Runner add_evidence(CLI::App& app);

}  // namespace tmach::cli
