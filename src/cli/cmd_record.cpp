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
#include "config/component_options.h"
#include "flow/flow_drain.h"
#include "record/recorder.h"
#include "store/import_session.h"
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
  app.add_flag(
      "--force", o->force,
      "record a --read file even if the store has already imported it (its packets are stored twice)");
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
    capture::MergeSource files(std::move(to_read));

    util::tune_allocator_for_recording();
    store::StoreWriter writer(config::store_options(cfg));
    std::vector<std::string> flow_problems;
    std::unique_ptr<flow::FlowDrain> flows;
    if (cfg.flows) {
      flows = std::make_unique<flow::FlowDrain>(config::flow_options(cfg), config::class_names(cfg),
                                                &flow_problems);
      writer.set_tick([f = flows.get()](uint64_t now) { f->tick(now); });
    }
    auto ad = writer.adopt_report();
    ad.problems.insert(ad.problems.end(), flow_problems.begin(), flow_problems.end());
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
    record::Recorder rec(cfg, writer, flows.get());

    std::vector<std::unique_ptr<capture::PacketSource>> live_sources;
    if (live) live_sources = open_live_sources(cfg);
    std::atomic<bool> stop{false};
    std::atomic<bool> ending{false};
    std::atomic<int> got_signal{0};
    std::atomic<capture::PacketSource*> current{nullptr};
    std::thread sig_thread([&] {
      int sig;
      sigwait(&set, &sig);
      if (ending) return;  // woken by ourselves at the end
      got_signal = sig;
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
        std::vector<uint32_t> from(batch.size());
        std::vector<bool> ended(input_of.size());
        while (!stop) {
          size_t n = files.next_batch(batch.data(), batch.size(), from.data());
          for (size_t j = 0; j < n; ++j) imports.note(input_of[from[j]], &batch[j], 1);
          // An input at its end (not one stopped by a signal: stop is set before that).
          for (size_t k = 0; k < input_of.size(); ++k)
            if (!ended[k] && files.finished(k) && !stop) {
              ended[k] = true;
              imports.ended(input_of[k]);
            }
          if (n == 0) break;
          if (share) n = share->keep(batch.data(), n);
          rec.process(batch.data(), n, wait_mode);
          if (writer.failed()) throw std::runtime_error("writer failed: " + writer.error());
        }
      }
    } catch (const std::exception& e) {
      std::cerr << "tm record: " << e.what() << "\n";
      rc = 1;
    }
    current = nullptr;
    if (!live) imports.stopped(by_input);
    for (auto& src : files.inputs())
      if (!src->warning().empty()) warnings.push_back(src->warning());
    prefault.stop();
    std::vector<capture::SourceStats> kstats;
    for (auto& s : live_sources) kstats.push_back(s->stats());
    if (flows) flows->hold();  // the flow records of the connections ended now: written on tm-flows
    rec.finish();
    double capture_cpu = util::thread_cpu_seconds();
    if (flows) flows->close();
    writer.finish();
    if (flows && writer.failed())
      flows->join_quietly();
    else if (flows)
      flows->join();
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    ending = true;
    pthread_kill(sig_thread.native_handle(), SIGTERM);  // unblock sigwait
    sig_thread.join();
    for (auto& w : warnings) std::cerr << "tm record: warning: " << w << "\n";
    if (writer.failed()) {
      std::cerr << "tm record: writer: " << writer.error() << "\n";
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
    print_record_summary(std::cout, rec, writer, kstats, secs, capture_cpu, o->json, share.get(),
                         live ? nullptr : &input);
    if (input.interrupted()) std::cerr << "tm record: " << interrupted_line(input) << "\n";
    if (input.interrupted() && rc == 0) rc = 128 + input.signal;
    return rc;
  };
}

}  // namespace tmach::cli
