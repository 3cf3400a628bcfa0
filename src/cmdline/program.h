// The frame of both programs' main() (tm, tm-daemon): --version, --log-level, exactly one
// subcommand, and a command's failure printed as "tm CMD: message" with exit status 1.
//
// Only the command given has its options registered: the command line is parsed twice, first
// to find the command (every subcommand by name only), then with that command's options. A
// command's options cost CLI11 some 100k instructions to register, and a `tm query` of one
// connection takes a few milliseconds in all.
#pragma once

#include <CLI/CLI.hpp>
#include <functional>
#include <string>
#include <vector>

namespace tmach::cli {

// What runs a subcommand once its options are parsed; returns the exit code.
using Runner = std::function<int()>;

class Program {
 public:
  explicit Program(std::string description) : description_(std::move(description)) {}

  // A subcommand whose options `add` registers.
  void command(const char* name, const char* help, Runner (*add)(CLI::App&));
  // A subcommand whose arguments, --help included, are left as they are for `run` (tm's
  // daemons, which tm-daemon parses).
  void passthrough(const char* name, const char* help, Runner run);

  // Parses the command line and runs the command given: its exit code, or CLI11's for
  // --help, --version and usage errors.
  int main(int argc, char** argv);

 private:
  struct Command {
    const char* name;
    const char* help;
    Runner (*add)(CLI::App&);  // null for a passthrough
    Runner run;                // a passthrough's
  };
  // The app with its global options and every command by name; `with_options` (or none) gets
  // its options. The subcommands are in the order of `cmds_`.
  std::unique_ptr<CLI::App> make_app(const Command* with_options, Runner* run);
  int run_guarded(const std::string& name, const Runner& run);

  std::string description_;
  std::string log_level_ = "warn";
  std::vector<Command> cmds_;
};

}  // namespace tmach::cli
