// tm evidence: for each alert of Suricata (EVE JSON) or Zeek (notice.log, conn.log), the packets
// of its connection as tm stored them and a JSON of what was found (ids/evidence.h); read once
// or followed as the logs grow.
#include <fcntl.h>
#include <fmt/format.h>
#include <signal.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <memory>

#include "cli/commands.h"
#include "cmdline/options.h"
#include "ids/alert.h"
#include "ids/evidence.h"
#include "ids/keep.h"
#include "ids/log_follower.h"
#include "ids/report.h"
#include "server/client.h"
#include "server/http_service.h"
#include "server/local_service.h"
#include "util/file_io.h"
#include "util/json_text.h"
#include "util/sigwait_joiner.h"
#include "util/units.h"

namespace tmach::cli {
namespace {

using Pass = ids::EvidenceRun::Pass;
constexpr auto kPollInterval = std::chrono::milliseconds(500);
// The evidence of a large log is written this many alerts at a time (grouped by connection), so
// that a long log (or, following, one with a long past) is not held in memory whole.
constexpr uint64_t kBatch = 10000;

struct Input {
  std::unique_ptr<ids::LogFollower> log;
  std::unique_ptr<ids::AlertReader> reader;
  const char* format;
};

uint64_t duration_option(const std::string& flag, const std::string& text) {
  auto d = util::parse_duration_ns(text);
  if (!d) throw std::runtime_error(fmt::format("{}: {}", flag, util::duration_error(text)));
  return *d;
}

// One tm evidence at a time per directory: two would write the same temporary files.
int lock_out_dir(const std::string& dir) {
  std::filesystem::create_directories(dir);
  std::string path = (std::filesystem::path(dir) / ".tm-evidence.lock").string();
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) throw std::runtime_error(fmt::format("cannot create {}: {}", path, std::strerror(errno)));
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    ::close(fd);
    throw std::runtime_error(fmt::format("{} is in use by another tm evidence", dir));
  }
  return fd;  // held until the process ends
}

}  // namespace

Runner add_evidence(CLI::App& app) {
  struct Opts {
    std::string store, out, from, to, window = "5m", wait = "30s";
    std::string keep, scope = "host", keep_class, metrics_file;
    std::vector<std::string> eve, zeek;
    bool follow = false, quiet = false, json = false;
    uint16_t seed = 0;
    server::ClientOptions server;
  };
  auto o = std::make_shared<Opts>();
  app.add_option("-s,--store", o->store, "store directory");
  add_server_options(app, o->server, false);
  app.add_option("--eve", o->eve, "Suricata EVE JSON log (its alert events); may be repeated");
  app.add_option("--zeek", o->zeek, "Zeek notice.log or conn.log, JSON or TSV; may be repeated");
  app.add_option("-o,--out", o->out, "directory for the evidence: <id>.pcap and <id>.json per connection")
      ->required();
  app.add_option(
         "--window", o->window,
         "look for the alert's flow record within this of its time; a host's packets: this either side")
      ->capture_default_str();
  app.add_option("--from", o->from, "only alerts at or after this time (ISO-8601, epoch seconds, '2h ago')")
      ->check(not_empty("no bound"));
  app.add_option("--to", o->to, "only alerts before this time")->check(not_empty("no bound"));
  app.add_flag("-f,--follow", o->follow,
               "keep reading the logs as they grow, across rotation, until SIGINT/SIGTERM");
  app.add_option("--wait", o->wait,
                 "--follow: ask this long for the flow record of an alert's connection (it may not have "
                 "ended yet) before writing it as not found")
      ->capture_default_str();
  app.add_option("--keep", o->keep,
                 "--server: keep each alert's suspect whole for this long: its hosts into a class without "
                 "cutoff (reverted by the server after that), the live connection's cutoff suspended");
  app.add_option("--scope", o->scope,
                 "--keep: host (the alert's hosts and its connection) or conn (only the connection)")
      ->check(CLI::IsMember({"host", "conn"}))
      ->capture_default_str();
  app.add_option(
      "--keep-class", o->keep_class,
      "--keep: the class for the hosts (default: the first class without cutoff the server reports)");
  app.add_option("--community-id-seed", o->seed, "the Community ID seed the IDS uses (default 0)");
  app.add_flag("-q,--quiet", o->quiet, "no summary on stderr");
  app.add_flag("--json", o->json, "print the summary (what was read, written and kept) as JSON on stdout");
  app.add_option(
      "--metrics-file", o->metrics_file,
      "write the counts as Prometheus text to this file (node_exporter textfile collector: name it "
      "*.prom), replaced atomically whenever they change (following: checked every 0.5 s) and at the "
      "end");
  app.footer(
      "An alert's connection is found among tm's flow records by Community ID; <id> is its Suricata flow_id "
      "or Zeek uid, and repeated alerts of one connection share the pair of files. Running it again "
      "updates the files, never duplicates. See docs/USAGE.md, \"Evidence for IDS alerts\".");
  return [o]() -> int {
    if (o->store.empty() == o->server.url.empty())
      throw std::runtime_error("give --store DIR or --server URL");
    if (o->eve.empty() && o->zeek.empty())
      throw std::runtime_error("give the alerts: --eve FILE or --zeek FILE");
    ids::KeepOptions ko;
    if (!o->keep.empty()) {
      if (o->server.url.empty())
        throw std::runtime_error(
            "--keep needs --server URL (a running tm serve -i): a store has no live capture to keep anything "
            "in");
      ko.keep_ns = duration_option("--keep", o->keep);
      if (ko.keep_ns < 1000000000ull) throw std::runtime_error("--keep: at least 1s");
      ko.scope = o->scope == "conn" ? ids::KeepOptions::Scope::kConn : ids::KeepOptions::Scope::kHost;
      ko.cls = o->keep_class;
    } else if (!o->keep_class.empty() || o->scope != "host") {
      throw std::runtime_error("--scope and --keep-class go with --keep DURATION");
    }
    ids::EvidenceOptions eo;
    eo.out_dir = o->out;
    eo.window_ns = duration_option("--window", o->window);
    eo.seed = o->seed;
    auto wait = std::chrono::nanoseconds(duration_option("--wait", o->wait));
    uint64_t from = 0, to = UINT64_MAX;
    parse_time_range(o->from, o->to, from, to);
    if (from > to) throw std::runtime_error("--from is after --to");

    // SIGINT/SIGTERM (and SIGHUP: the terminal closed) end the run between two alerts'
    // evidence, never within one: blocked here (and in every thread started from now on),
    // taken by sigtimedwait() below.
    sigset_t stop_signals;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGINT);
    sigaddset(&stop_signals, SIGTERM);
    if (!util::signal_ignored(SIGHUP)) sigaddset(&stop_signals, SIGHUP);  // (not under nohup)
    pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
    int stopped_by = 0;
    auto wait_for_signal = [&](std::chrono::nanoseconds d) {
      if (stopped_by) return true;
      timespec ts{static_cast<time_t>(d.count() / 1000000000), static_cast<long>(d.count() % 1000000000)};
      int s = sigtimedwait(&stop_signals, nullptr, &ts);
      if (s > 0) stopped_by = s;
      return stopped_by != 0;
    };

    std::unique_ptr<server::Service> svc;
    if (o->server.url.empty())
      svc = std::make_unique<server::LocalService>(o->store);
    else
      svc = std::make_unique<server::HttpService>(o->server);
    auto warn = [](const std::string& w) { std::cerr << "tm evidence: warning: " << w << "\n"; };
    // What refuses the run does so before --out is made: a log that is not there (following,
    // it may come), and --keep's class (a server without one is refused before any alert is
    // read).
    if (!o->follow)
      for (const auto* logs : {&o->eve, &o->zeek})
        for (const auto& f : *logs)
          if (::access(f.c_str(), R_OK) != 0)
            throw std::runtime_error(fmt::format("cannot open {}: {}", f, std::strerror(errno)));
    std::unique_ptr<ids::Keeper> keeper;
    if (ko.keep_ns) {
      keeper = std::make_unique<ids::Keeper>(*svc, ko, warn);
      keeper->start();
    }
    lock_out_dir(o->out);
    ids::EvidenceWriter writer(*svc, eo, warn);
    ids::EvidenceRun run(writer, wait, warn);
    // A single pass stops between two connections' evidence; following, a signal ends the
    // polling, and what still waits is then written as not found.
    if (!o->follow) run.set_stop([&] { return wait_for_signal(std::chrono::nanoseconds(0)); });
    // --keep: the alert's hosts into a class without cutoff on the live recorder.
    if (keeper)
      run.add_action([k = keeper.get()](const ids::Alert& a) {
        return nlohmann::json{{"kept", k->keep(a)}};
      });

    std::vector<Input> inputs;
    for (auto& f : o->eve)
      inputs.push_back({std::make_unique<ids::LogFollower>(f, o->follow),
                        std::make_unique<ids::AlertReader>(ids::AlertReader::Format::kEve, f, warn), "eve"});
    for (auto& f : o->zeek)
      inputs.push_back({std::make_unique<ids::LogFollower>(f, o->follow),
                        std::make_unique<ids::AlertReader>(ids::AlertReader::Format::kZeek, f, warn),
                        "zeek"});

    uint64_t outside = 0, added = 0;
    auto report = [&] {
      ids::RunReport r;
      for (auto& in : inputs) r.logs.push_back({in.reader->file(), in.format, in.reader->counts()});
      r.outside = outside;
      r.evidence = writer.stats();
      r.waiting = run.waiting_alerts();
      r.errors = run.errors();
      if (keeper) {
        r.keep = keeper->stats();
        r.keep_class = keeper->cls();
      }
      return r;
    };
    std::string metrics_written;
    auto write_metrics = [&] {
      if (o->metrics_file.empty()) return;
      std::string text = ids::report_prometheus(report());
      if (text == metrics_written) return;
      util::replace_file_atomic(o->metrics_file, text);
      metrics_written = std::move(text);
    };
    write_metrics();  // a bad path fails here, before any alert is read
    auto read = [&](Input& in) {
      in.log->poll(
          [&](std::string_view line, size_t n, uint64_t too_long) {
            if (stopped_by) return;
            if (too_long) return in.reader->too_long(n, too_long);
            auto a = in.reader->line(line, n);
            if (!a) return;
            if (a->ts_ns < from || a->ts_ns >= to) {
              ++outside;
              return;
            }
            run.add(std::move(*a));
            if (++added % kBatch == 0) run.process(o->follow ? Pass::kFollow : Pass::kOnce);
          },
          [&](const std::string& why) {
            warn(fmt::format("{}: {}: reading the new file from its start", in.log->path(), why));
            in.reader->reset();
          });
    };
    if (!o->follow) {
      for (auto& in : inputs) {
        read(in);
        if (wait_for_signal(std::chrono::nanoseconds(0))) break;
      }
      // (an alert whose connection --keep put under a control: its interim flow record, a moment)
      while (run.process(Pass::kOnce) > 0 && !wait_for_signal(std::chrono::milliseconds(100))) {
      }
      run.process(Pass::kFinal);
    } else {
      for (;;) {
        for (auto& in : inputs) read(in);
        run.process(Pass::kFollow);
        write_metrics();
        if (wait_for_signal(kPollInterval)) break;
      }
      run.process(Pass::kFinal);  // what still waits for its flow record: written as not found now
    }
    write_metrics();
    if (o->json) std::cout << util::json_text(ids::report_json(report()), 2) << "\n";

    if (!o->quiet) {
      for (auto& in : inputs) {
        const auto& c = in.reader->counts();
        std::cerr << fmt::format("tm evidence: {}: {} lines read, {} alerts, {} ignored, {} skipped\n",
                                 in.reader->file(), c.lines, c.alerts, c.ignored, c.skipped);
      }
      const auto& st = writer.stats();
      std::cerr << fmt::format(
          "tm evidence: {} alerts{}; in {}: {} evidence JSON written, {} pcaps of {} packets, {} without "
          "packets ({} alerts; the JSON says why){}{}{}{}\n",
          st.alerts, outside ? fmt::format(" ({} more outside --from/--to)", outside) : "", o->out,
          st.written, st.pcaps, st.packets, st.not_found, st.alerts_without_packets,
          st.unknown
              ? fmt::format(", {} of them unknown (a worker of the front-end did not answer)", st.unknown)
              : "",
          st.kept_earlier
              ? fmt::format(", {} earlier pcaps kept (the store has fewer packets now)", st.kept_earlier)
              : "",
          run.errors() ? fmt::format(", {} not written (see the warnings)", run.errors()) : "",
          stopped_by && !o->follow ? ", interrupted" : "");
      if (keeper) {
        const auto& ks = keeper->stats();
        std::cerr << fmt::format(
            "tm evidence: --keep {}: {} hosts raised, {} class requests{}, {} connection controls, {} "
            "failed\n",
            o->keep, ks.hosts_raised, ks.class_requests,
            keeper->cls().empty() ? "" : fmt::format(" (class {})", keeper->cls()), ks.controls, ks.failed);
      }
    }
    if (stopped_by && !o->follow) return 128 + stopped_by;
    // Evidence left unknown (a worker did not answer) is not an answer: as errors, exit 1.
    return run.errors() || writer.stats().unknown ? 1 : 0;
  };
}

}  // namespace tmach::cli
