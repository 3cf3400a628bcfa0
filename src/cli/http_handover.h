// `tm` links no HTTP: the commands that speak it run in `tm-http`, the whole program built from
// the same sources, which `tm` executes in its own place. A `tm query` or `tm record` thereby
// starts without loading cpp-httplib and the TLS and compression libraries it pulls in
// (Debian ships it only as a shared library): about a millisecond of every query.
#pragma once

#include <CLI/CLI.hpp>

namespace tmach::cli {

// True when the parsed subcommand must run in tm-http: one that only exists over the API
// (`http_only`), or a command given --server.
bool needs_http(const CLI::App& sub, bool http_only);

// Replaces this process by tm-http (found next to this executable) with the same arguments;
// the process id stays, so signals and exit codes are the command's own. Throws naming the
// path when tm-http cannot be executed.
[[noreturn]] void hand_over_to_tm_http(char** argv);

}  // namespace tmach::cli
