// The subcommands of tm-daemon (`tm serve`, `tm frontend`): each registers its options on a
// CLI11 app and returns what runs it, which returns the exit code. The namespace is the
// command line's, as for tm's own commands (cli/commands.h).
#pragma once

#include <CLI/CLI.hpp>
#include <functional>

namespace tmach::cli {

using Runner = std::function<int()>;

Runner add_serve(CLI::App& app);
Runner add_frontend(CLI::App& app);

}  // namespace tmach::cli
