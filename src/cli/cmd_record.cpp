// tm record: capture files or live interfaces into a store.
#include <fmt/format.h>
#include <pthread.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "capture/merge_source.h"
#include "capture/source.h"
#include "cli/commands.h"
#include "cmdline/options.h"
#include "cmdline/summary.h"
#include "record/session.h"
#include "store/catalog.h"
#include "store/import_session.h"
#include "util/json_text.h"
#include "util/sigwait_joiner.h"
#include "util/units.h"

namespace tmach::cli {
namespace {

// The progress line of an import on a terminal: bytes read of the total, packets/s, the time
// left; rewritten in place (\r) at most 4 times a second on stderr, and only when stderr is a
// terminal (a log or a pipe gets nothing). Runs on the capture thread, after each batch.
class Progress {
 public:
  Progress(const record::Session& s, uint64_t total)
      : s_(s), total_(total), on_(isatty(STDERR_FILENO) == 1) {}
  void tick() {
    if (!on_) return;
    auto now = clk::now();
    if (now - last_ < std::chrono::milliseconds(250)) return;
    last_ = now;
    uint64_t bytes = 0;
    for (auto& in : s_.files()->inputs()) bytes += in->bytes_read().value_or(0);
    uint64_t packets = s_.recorder().counters().packets;
    double secs = std::chrono::duration<double>(now - t0_).count();
    std::string line = fmt::format("tm record: {}", util::format_size(bytes));
    if (total_) line += fmt::format(" of {} ({:.0f}%)", util::format_size(total_), 100.0 * bytes / total_);
    line += fmt::format(" read, {} packets, {:.0f} packets/s", packets, secs > 0 ? packets / secs : 0.0);
    if (total_ && bytes && bytes < total_ && secs >= 1) {
      auto left =
          static_cast<uint64_t>(secs * static_cast<double>(total_ - bytes) / static_cast<double>(bytes));
      line += fmt::format(", ETA {}:{:02}:{:02}", left / 3600, left / 60 % 60, left % 60);
    }
    std::cerr << "\r" << line << "\033[K" << std::flush;
    shown_ = true;
  }
  // Clears the line before the summary.
  void end() {
    if (shown_) std::cerr << "\r\033[K" << std::flush;
    shown_ = false;
  }

 private:
  using clk = std::chrono::steady_clock;
  const record::Session& s_;
  uint64_t total_;  // 0: unknown (stdin)
  bool on_;
  bool shown_ = false;
  clk::time_point t0_ = clk::now(), last_ = t0_;
};

}  // namespace

Runner add_record(CLI::App& app) {
  auto o = std::make_shared<RecordOptions>();
  add_config_options(app, *o);
  app.add_option("-r,--read", o->reads,
                 "capture file (pcap or pcapng; '-' = stdin); repeat for several: they are merged by "
                 "timestamp into one timeline");
  app.add_flag(
      "--force", o->force,
      "record a --read file even if the store has already imported it (its packets are stored twice)");
  app.add_flag("--repair", o->repair,
               "first mark the store as one again if it lost its STORE marker (after checking that it "
               "holds a store's files only); without --read or --interface, only that");
  app.add_option("-i,--interface", o->interfaces, "live interface; repeatable");
  auto format = std::make_shared<std::string>("text");
  app.add_option("--format", *format, "the summary as text, json, or csv (one line per class)")
      ->check(CLI::IsMember({"text", "json", "csv"}));
  app.add_flag("--json", o->json, "the same as --format json");
  app.add_option("--test-writer-delay-us", o->test_delay_us, "testing: slow the writer down (per packet)")
      ->group("");
  return [o, format]() -> int {
    if (o->json) *format = "json";
    config::Config cfg = build_config(*o);
    if (o->repair) {
      if (std::string did = store::repair_store_marker(cfg.store); !did.empty())
        std::cerr << "tm record: " << did << "\n";
      if (o->reads.empty() && cfg.interfaces.empty()) return 0;
    }
    if (o->reads.empty() && cfg.interfaces.empty())
      throw std::runtime_error(
          "nothing to record: give --read FILE or --interface IFACE (or capture.interfaces)");
    if (!o->reads.empty() && !o->interfaces.empty())
      throw std::runtime_error("give either --read or --interface, not both");
    // The command line over the file: --read records files, whatever capture.interfaces says
    // (a sensor's config used to import a capture).
    if (!o->reads.empty()) cfg.interfaces.clear();
    if (std::count(o->reads.begin(), o->reads.end(), "-") > 1)
      throw std::runtime_error("--read: '-' (stdin) given more than once: stdin can be read once");
    bool live = o->reads.empty();
    // A worker of a split: recording files, it keeps its share by the balancing hash; live, it
    // joins the workers' fanout group on each interface and the kernel gives it its share.
    const bool fanout_worker = live && worker_split(*o);
    auto share = live ? nullptr : make_share_filter(*o);

    // Open every input before touching the store: a typo in a path must not create a store.
    // (Signals still end tm here as they would any program: a named pipe waits in open() for
    // its writer, and a pipe for its first bytes, for as long as they take; blocked, SIGINT and
    // SIGTERM left only SIGKILL. No thread is started yet, and nothing is written.)
    std::vector<std::unique_ptr<capture::PacketSource>> file_sources;
    for (auto& path : o->reads) file_sources.push_back(capture::open_file_source(path));

    // Signals are taken by a thread of their own (sigwait), which asks the sources to stop;
    // blocked before any thread starts, so that every thread inherits it. SIGHUP (the terminal
    // or ssh session closed) ends the run as SIGTERM does, as tcpdump takes it, unless it is
    // ignored (nohup): a blocked signal is kept pending even when ignored, so it is not asked
    // for then.
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    if (!util::signal_ignored(SIGHUP)) sigaddset(&set, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &set, nullptr);
    // Files the store has already imported are skipped (stderr says so) unless --force.
    store::ImportSession imports(cfg.store, o->reads, o->force, std::cerr);
    if (imports.all_skipped()) {
      std::cerr << fmt::format(
          "tm record: nothing recorded: every input was already imported into {} (in whole or in part)\n",
          cfg.store);
      return 1;
    }
    // The other files are read as one timeline, merged by timestamp (one file passes through).
    std::vector<uint32_t> input_of;  // merged input k reads --read input_of[k]
    std::vector<const capture::PacketSource*> by_input(o->reads.size());  // (null: skipped)
    std::vector<std::unique_ptr<capture::PacketSource>> to_read;
    for (size_t i = 0; i < file_sources.size(); ++i) {
      if (imports.skip(i)) continue;
      by_input[i] = file_sources[i].get();
      input_of.push_back(static_cast<uint32_t>(i));
      to_read.push_back(std::move(file_sources[i]));
    }
    auto files = std::make_unique<capture::MergeSource>(std::move(to_read));

    // The progress line's total: the sizes of the files to read (unknown with stdin or a pipe).
    uint64_t total = 0;
    for (size_t i = 0; i < o->reads.size(); ++i) {
      if (imports.skip(i)) continue;
      struct stat st {};
      if (o->reads[i] == "-" || ::stat(o->reads[i].c_str(), &st) != 0 || !S_ISREG(st.st_mode)) {
        total = 0;
        break;
      }
      total += static_cast<uint64_t>(st.st_size);
    }
    std::unique_ptr<Progress> progress;
    record::SessionOptions so;
    so.live = live;
    so.test_delay_us = o->test_delay_us;
    if (share) so.keep = [f = share.get()](capture::RawPacket* p, size_t n) { return f->keep(p, n); };
    if (!live) so.file_batch = [&progress] { progress->tick(); };
    if (live) check_interfaces(cfg, fanout_worker);  // (a typo must not make a store)
    record::Session session(cfg, std::move(so));
    if (!live) progress = std::make_unique<Progress>(session, total);
    // Before any packet is stored: a run killed from here on is known to the next one.
    if (!live) imports.begin();
    const auto& ad = session.adopt_report();
    if (ad.segments)
      spdlog::info(
          "adopted {} sealed segments; sidecars checked whole: {} ({} bytes; the others are known sound)",
          ad.segments, ad.verified, ad.verified_bytes);
    if (ad.recovered)
      std::cerr << fmt::format(
          "tm record: recovered {} segment(s) left without a sealed sidecar or with a refused one ({} bytes "
          "of incomplete records cut)\n",
          ad.recovered, ad.truncated_bytes);
    for (auto& f : ad.foreign)
      std::cerr << "tm record: note: " << f << " was not written by tm; left alone\n";
    for (auto& p : ad.problems) std::cerr << "tm record: warning: " << p << "\n";

    if (live) {
      session.set_live_sources(open_live_sources(cfg, fanout_worker ? o.get() : nullptr));
      // (As tcpdump's "listening on": from here the kernel keeps the packets for tm.)
      for (auto& ifc : cfg.interfaces)
        std::cerr << fmt::format(
            "tm record: listening on {} ({} capture thread{}); SIGINT or SIGTERM ends it\n", ifc,
            cfg.capture_threads, cfg.capture_threads > 1 ? "s" : "");
      if (fanout_worker)
        for (auto& ifc : cfg.interfaces)
          std::cerr << fmt::format("tm record: worker {} of {}: a member of fanout group {} on {}\n",
                                   o->worker_id, o->workers,
                                   worker_fanout_group(ifc, o->workers, o->cluster_key), ifc);
    } else {
      session.set_files(std::move(files), std::move(input_of), &imports);
    }
    std::atomic<bool> ending{false};
    std::atomic<int> got_signal{0};
    std::thread sig_thread([&] {
      int sig;
      sigwait(&set, &sig);
      if (ending) return;  // woken by ourselves at the end
      got_signal = sig;
      session.stop();
    });
    util::SigwaitJoiner end_sig_thread(sig_thread, &ending);  // (on every way out)

    session.start();
    std::vector<std::string> warnings;
    int rc = 0;
    try {
      session.run();
    } catch (const std::exception& e) {
      std::cerr << "tm record: " << e.what() << "\n";
      rc = 1;
    }
    if (progress) progress->end();
    if (!live) {
      imports.stopped(by_input);
      for (auto& src : session.files()->inputs())
        if (!src->warning().empty()) warnings.push_back(src->warning());
    }
    try {
      session.finish();
    } catch (const std::exception& e) {  // (the flow records: the packets are sealed)
      std::cerr << "tm record: " << e.what() << "\n";
      rc = 1;
    }
    // A last segment left unsealed (a full disk; said on stderr as it happened): its packets
    // are stored and queryable, but the disk needs attention, as any failed write does.
    if (!session.writer().unsealed().empty()) rc = 1;
    end_sig_thread.end();
    for (auto& w : warnings)  // (a source's warning may be several lines: one per damaged part)
      for (size_t at = 0, nl; at < w.size(); at = nl + 1) {
        nl = std::min(w.find('\n', at), w.size());
        std::cerr << "tm record: warning: " << w.substr(at, nl - at) << "\n";
      }
    if (session.writer().failed()) {
      std::cerr << "tm record: writer: " << session.writer().error() << "\n";
      rc = 1;
    } else if (!live) {
      try {
        imports.commit();  // what was read is sealed: log it (a file read in part as partial)
      } catch (const std::exception& e) {
        std::cerr << "tm record: " << e.what() << "\n";
        rc = 1;
      }
    }
    // A signal ends a live capture normally; for files it means input was left unread.
    store::ImportReport input = imports.report(live ? 0 : got_signal.load());
    std::ostringstream summary;
    const record::MemoryReport memory = session.memory();
    print_record_summary(
        summary, session.totals(), cfg.classes, session.writer(), session.source_stats(), session.seconds(),
        session.capture_cpu_seconds(), *format != "text", share.get(), live ? nullptr : &input, &memory,
        {session.flow_files_unsealed(), session.flow_records_lost(), session.flow_failure()});
    if (*format == "csv") {  // the classes of the JSON summary, one line each
      auto j = nlohmann::json::parse(summary.str());
      // (The columns of earlier versions first, in their order; those added since after them.)
      static const char* kCols[] = {
          "seen_packets",     "seen_bytes",        "stored_packets",    "stored_bytes", "cut_packets",
          "cut_bytes",        "dropped_ring_full", "dropped_too_large", "connections",  "segments",
          "segments_evicted", "disk_bytes",        "written_packets",   "lost_packets", "segments_unsealed",
          "tcp_control_kept", "ring_capacity",     "ring_high_water",   "ring_used"};
      auto text = [](const nlohmann::json& v) {
        return v.is_string() ? v.get<std::string>() : util::json_text(v);
      };
      std::cout << "class,cutoff";
      for (auto* c : kCols) std::cout << "," << c;
      std::cout << ",disk_budget\n";
      for (auto& [name, c] : j["classes"].items()) {
        std::cout << name << "," << text(c["cutoff"]);
        for (auto* k : kCols) std::cout << "," << c.value(k, uint64_t{0});
        std::cout << "," << (c.contains("disk_budget") ? text(c["disk_budget"]) : "") << "\n";
      }
    } else {
      std::cout << summary.str();
    }
    if (input.interrupted()) std::cerr << "tm record: " << interrupted_line(input) << "\n";
    if (input.interrupted() && rc == 0) rc = 128 + input.signal;
    return rc;
  };
}

}  // namespace tmach::cli
