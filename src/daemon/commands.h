// The subcommands of tm-daemon (`tm serve`, `tm frontend`): each registers its options on a
// CLI11 app and returns what runs it (cmdline/program.h). The namespace is the command
// line's, as for tm's own commands (cli/commands.h).
#pragma once

#include <CLI/CLI.hpp>

#include "cmdline/program.h"

namespace tmach::cli {

Runner add_serve(CLI::App& app);
Runner add_frontend(CLI::App& app);

}  // namespace tmach::cli
