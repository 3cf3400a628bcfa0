#include "cmdline/program.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <new>
#include <string>

#include "server/service.h"
#include "store/sidecar.h"

namespace tmach::cli {

void Program::command(const char* name, const char* help, Runner (*add)(CLI::App&)) {
  cmds_.push_back({name, help, add, nullptr});
}

void Program::passthrough(const char* name, const char* help, Runner run) {
  cmds_.push_back({name, help, nullptr, std::move(run)});
}

std::unique_ptr<CLI::App> Program::make_app(const Command* with_options, Runner* run) {
  auto app = std::make_unique<CLI::App>(description_);
  app->require_subcommand(1);
  app->set_version_flag("--version", fmt::format("tm 0.2 (sidecar format {})", store::kSidecarVersion));
  app->add_option("--log-level", log_level_, "trace, debug, info, warn, error")->capture_default_str();
  for (auto& c : cmds_) {
    CLI::App* sub = app->add_subcommand(c.name, c.help);
    if (&c == with_options) {
      *run = c.add(*sub);
    } else {
      sub->prefix_command();  // by name only: the rest of the line is its own
      sub->set_help_flag();
    }
  }
  return app;
}

namespace {

// A standard descriptor the caller closed (`>&-`) is taken by /dev/null opened read-only: no
// file tm opens becomes it (a segment written to as standard output), and a write to it fails
// (EBADF), which the end of the command reports.
void reserve_standard_fds() {
  for (int fd = 0; fd <= 2; ++fd)
    if (fcntl(fd, F_GETFD) == -1 && errno == EBADF) {
      const int n = open("/dev/null", O_RDONLY);  // (kept across exec: tm-daemon's too)
      if (n >= 0 && n != fd) {
        dup2(n, fd);
        close(n);
      }
    }
}

// Whether what the command wrote to standard output reached it (a full disk under `> conn.log`,
// /dev/full, a closed descriptor): said, and exit status 1, as coreutils do, not a truncated
// output with status 0.
int check_standard_output(const std::string& name, int rc) {
  std::cout.flush();
  errno = 0;
  const bool flush_failed = std::fflush(stdout) != 0;
  const int e = errno;
  if (!std::cout || flush_failed || std::ferror(stdout)) {
    std::cerr << "tm " << name << ": write to standard output failed" << (e ? ": " : "")
              << (e ? std::strerror(e) : "") << "; what it shows is incomplete\n";
    return rc == 0 ? 1 : rc;
  }
  return rc;
}

// What std::bad_alloc means here (its what() is "std::bad_alloc", naming neither what nor why):
// most often `ulimit -v`, below what tm maps at start.
std::string out_of_memory() try {
  struct rlimit as {};
  if (getrlimit(RLIMIT_AS, &as) == 0 && as.rlim_cur != RLIM_INFINITY)
    return fmt::format(
        "out of memory: an allocation failed under the address-space limit (ulimit -v) of {} MiB; "
        "tm maps its RAM budgets, connection tables and capture buffers at start "
        "(their sizes: docs/CONFIG.md): lower them or raise the limit",
        as.rlim_cur >> 20);
  return "out of memory: an allocation failed "
         "(the machine, or the memory limit of tm's cgroup, had no more to give)";
} catch (...) {  // (the text itself could not be had: memory is that short)
  return "out of memory";
}

// The soft open-file limit raised to the hard one, as Go's runtime and most daemons do: tm holds
// a descriptor per open segment, flow file and HTTP connection, and the soft default (1024) is a
// relic of select(), which tm does not use (cpp-httplib polls). Capped at 2^20.
void raise_open_file_limit() {
  struct rlimit r {};
  if (getrlimit(RLIMIT_NOFILE, &r) != 0 || r.rlim_cur >= r.rlim_max) return;
  r.rlim_cur = std::min<rlim_t>(r.rlim_max, rlim_t{1} << 20);
  setrlimit(RLIMIT_NOFILE, &r);  // (a failure leaves the limit as it was)
}

}  // namespace

int Program::run_guarded(const std::string& name, const Runner& run) {
  int rc;
  try {
    rc = run();
  } catch (const server::BadRequest& e) {
    // A request refused once it was read (by tm itself or by the server: a 400): 2, whichever
    // command and with --store as with --server (docs/USAGE.md, exit statuses).
    std::cerr << "tm " << name << ": " << e.what() << "\n";
    rc = 2;
  } catch (const std::bad_array_new_length& e) {  // (a size gone wrong, not memory)
    std::cerr << "tm " << name << ": " << e.what() << "\n";
    rc = 1;
  } catch (const std::bad_alloc&) {
    std::cerr << "tm " << name << ": " << out_of_memory() << "\n";
    rc = 1;
  } catch (const std::exception& e) {
    std::cerr << "tm " << name << ": " << e.what() << "\n";
    rc = 1;
  }
  return check_standard_output(name, rc);
}

int Program::main(int argc, char** argv) {
  reserve_standard_fds();
  raise_open_file_limit();
  // A file larger than `ulimit -f` is a write error tm reports (EFBIG: what it wrote is
  // stored, the rest counted), not SIGXFSZ killing it without a summary or a sealed segment.
  std::signal(SIGXFSZ, SIG_IGN);
  const Command* given = nullptr;
  {
    auto probe = make_app(nullptr, nullptr);
    try {
      probe->parse(argc, argv);
    } catch (const CLI::ParseError& e) {
      return probe->exit(e);  // --help, --version, an unknown command
    }
    for (auto& c : cmds_)
      if (probe->get_subcommand(c.name)->parsed()) given = &c;
  }
  if (!given) return 2;
  spdlog::set_default_logger(spdlog::stderr_color_mt("tm"));
  spdlog::set_level(spdlog::level::from_str(log_level_));
  if (!given->add) return run_guarded(given->name, given->run);
  Runner run;
  auto app = make_app(given, &run);
  try {
    app->parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app->exit(e);
  }
  return run_guarded(given->name, run);
}

}  // namespace tmach::cli
