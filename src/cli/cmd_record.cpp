// tm record: capture files or live interfaces into a store.
#include <fmt/format.h>
#include <pthread.h>
#include <signal.h>
#include <spdlog/spdlog.h>

#include <atomic>
#include <chrono>
#include <iostream>
#include <thread>

#include "capture/merge_source.h"
#include "capture/source.h"
#include "cli/commands.h"
#include "cli/options.h"
#include "cli/summary.h"
#include "record/recorder.h"
#include "store/store_writer.h"
#include "util/allocator_tuning.h"
#include "util/prefaulter.h"
#include "util/thread_cpu.h"

namespace tmach::cli {

Runner add_record(CLI::App& app) {
  auto o = std::make_shared<RecordOptions>();
  add_config_options(app, *o);
  app.add_option("-r,--read", o->reads,
                 "capture file (pcap or pcapng; '-' = stdin); repeat for several: they are merged by "
                 "timestamp into one timeline");
  app.add_option("-i,--interface", o->interfaces, "live interface; repeatable");
  app.add_flag("--json", o->json, "print the summary as JSON");
  app.add_option("--test-writer-delay-us", o->test_delay_us, "testing: slow the writer down (per packet)")
      ->group("");
  return [o]() -> int {
    config::Config cfg = build_config(*o);
    if (o->reads.empty() && cfg.interfaces.empty())
      throw std::runtime_error(
          "nothing to record: give --read FILE or --interface IFACE (or capture.interfaces)");
    if (!o->reads.empty() && !cfg.interfaces.empty())
      throw std::runtime_error("give either --read or --interface, not both");
    bool live = o->reads.empty();
    auto share = make_share_filter(*o);

    // Signals are taken by a thread of their own (sigwait), which asks the sources to stop.
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, nullptr);

    // Open every input before touching the store: a typo in a path must not create a store.
    std::vector<std::unique_ptr<capture::PacketSource>> file_sources;
    for (auto& path : o->reads) file_sources.push_back(capture::open_file_source(path));
    // Several files are read as one timeline, merged by timestamp (one file passes through).
    capture::MergeSource files(std::move(file_sources));

    util::tune_allocator_for_recording();
    store::StoreWriter writer(cfg, cfg.classes);
    const auto& ad = writer.adopt_report();
    if (ad.segments) spdlog::info("adopted {} sealed segments", ad.segments);
    if (ad.recovered)
      std::cerr << fmt::format(
          "tm record: recovered {} segment(s) left without a sealed sidecar ({} bytes of "
          "incomplete records cut)\n",
          ad.recovered, ad.truncated_bytes);
    for (auto& f : ad.foreign)
      std::cerr << "tm record: note: " << f << " was not written by tm; left alone\n";
    for (auto& p : ad.problems) std::cerr << "tm record: warning: " << p << "\n";
    if (o->test_delay_us) writer.set_test_delay_us(o->test_delay_us);
    record::Recorder rec(cfg, writer);

    std::vector<std::unique_ptr<capture::PacketSource>> live_sources;
    if (live) live_sources = open_live_sources(cfg);
    std::atomic<bool> stop{false};
    std::atomic<capture::PacketSource*> current{nullptr};
    std::thread sig_thread([&] {
      int sig;
      sigwait(&set, &sig);
      if (sig == 0) return;  // woken by ourselves at the end
      stop = true;
      for (auto& s : live_sources) s->stop();
      if (auto* c = current.load()) c->stop();
    });

    // The rings' first 32 MiB first (the capture thread fills them from the start; while the
    // writer keeps up it stays in their first few MiB, and the bench captures' high-water
    // marks were 12 and 31 MB), then the connection table's index and its first 32 MiB of
    // entries (~250k connections).
    util::Prefaulter prefault;
    {
      std::vector<std::pair<void*, size_t>> hot;
      for (size_t c = 0; c < cfg.classes.size(); ++c) {
        auto [p, n] = writer.ring_mutable(static_cast<uint16_t>(c)).memory();
        hot.emplace_back(p, std::min<size_t>(n, 32u << 20));
      }
      for (auto& r : rec.table_mutable().hot_memory(32u << 20)) hot.push_back(r);
      prefault.start(std::move(hot));
    }
    writer.start();
    auto t0 = std::chrono::steady_clock::now();
    std::vector<capture::RawPacket> batch(256);
    std::vector<std::string> warnings;
    bool wait_mode =
        cfg.when_full == config::WhenFull::kWait || (cfg.when_full == config::WhenFull::kAuto && !live);
    int rc = 0;
    try {
      if (live) {
        while (!stop) {
          for (auto& s : live_sources) {
            size_t n = s->next_batch(batch.data(), batch.size());
            if (share) n = share->keep(batch.data(), n);
            rec.process(batch.data(), n, wait_mode);
          }
        }
      } else {
        current = &files;
        while (!stop) {
          size_t n = files.next_batch(batch.data(), batch.size());
          if (n == 0) break;
          if (share) n = share->keep(batch.data(), n);
          rec.process(batch.data(), n, wait_mode);
          if (!writer.error().empty()) throw std::runtime_error("writer failed: " + writer.error());
        }
      }
    } catch (const std::exception& e) {
      std::cerr << "tm record: " << e.what() << "\n";
      rc = 1;
    }
    current = nullptr;
    for (auto& src : files.inputs())
      if (!src->warning().empty()) warnings.push_back(src->warning());
    prefault.stop();
    std::vector<capture::SourceStats> kstats;
    for (auto& s : live_sources) kstats.push_back(s->stats());
    writer.hold_flows();  // the flow records of the connections ended now: written by finish()
    rec.finish();
    double capture_cpu = util::thread_cpu_seconds();
    writer.finish();
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    pthread_kill(sig_thread.native_handle(), SIGTERM);  // unblock sigwait
    sig_thread.join();
    for (auto& w : warnings) std::cerr << "tm record: warning: " << w << "\n";
    if (!writer.error().empty()) {
      std::cerr << "tm record: writer: " << writer.error() << "\n";
      rc = 1;
    }
    print_record_summary(std::cout, rec, writer, kstats, secs, capture_cpu, o->json, share.get());
    return rc;
  };
}

}  // namespace tmach::cli
