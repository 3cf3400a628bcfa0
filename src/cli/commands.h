// The tm subcommands. Each registers its options on a CLI11 app and returns what runs it
// (cmdline/program.h). (`serve` and `frontend` are tm-daemon's: daemon/commands.h.)
#pragma once

#include <CLI/CLI.hpp>

#include "cmdline/program.h"

namespace tmach::cli {

Runner add_record(CLI::App& app);
Runner add_stats(CLI::App& app);
Runner add_query(CLI::App& app);
Runner add_flows(CLI::App& app);
Runner add_connections(CLI::App& app);
Runner add_class(CLI::App& app);
Runner add_subscribe(CLI::App& app);
Runner add_evidence(CLI::App& app);

}  // namespace tmach::cli
