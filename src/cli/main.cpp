// tm: the Time Machine command line.
#include <fmt/format.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <stdexcept>

#include "cli/commands.h"
#include "cmdline/program.h"

namespace {

// `tm serve` and `tm frontend` are the daemons, a program of their own (src/daemon/): it links
// cpp-httplib's server, which tm does not load (docs/DESIGN.md, "Two executables"). tm
// replaces itself by tm-daemon, found next to its own executable, with the same arguments:
// the process id stays, so signals and exit codes are the daemon's own, and argv[0] stays
// what the user typed, so usage and messages keep saying "tm". Throws when it cannot.
[[noreturn]] void exec_tm_daemon(char** argv) {
  std::error_code ec;
  auto self = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (ec) throw std::runtime_error("cannot find this executable (/proc/self/exe): " + ec.message());
  std::string path = (self.parent_path() / "tm-daemon").string();
  ::execv(path.c_str(), argv);
  throw std::runtime_error(fmt::format("runs in tm-daemon, which should be next to tm: cannot execute {}: {}",
                                       path, std::strerror(errno)));
}

}  // namespace

int main(int argc, char** argv) {
  using namespace tmach::cli;
  Program tm(
      "tm - Time Machine: records the first bytes of every connection, answers queries in milliseconds");
  auto daemon = [argv]() -> int { exec_tm_daemon(argv); };
  tm.command("record", "record capture files or a live interface into a store", add_record);
  tm.command("query", "extract the packets matching a filter from a store, as pcap", add_query);
  tm.command("flows", "flow records (a summary of every connection) matching a filter", add_flows);
  tm.command("stats", "show what a store holds", add_stats);
  tm.command("evidence", "the packets of each Suricata or Zeek alert's connection, as pcap and JSON",
             add_evidence);
  tm.passthrough("serve", "record live interfaces and serve the HTTP API (or serve a store read-only)",
                 daemon);
  tm.command("class", "set, list or remove dynamic classes of a running tm serve", add_class);
  tm.command("connections",
             "active connections of a running tm serve; suspend a connection's cutoff or timeout",
             add_connections);
  tm.command("subscribe", "stream new packets matching a filter from a running tm serve, as pcap",
             add_subscribe);
  tm.passthrough("frontend",
                 "one API in front of several tm serve workers: queries fan out and merge by time", daemon);
  return tm.main(argc, argv);
}
