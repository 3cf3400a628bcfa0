#include "record/session.h"

#include <fmt/format.h>
#include <pthread.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <exception>
#include <stdexcept>
#include <thread>

#include "config/component_options.h"
#include "util/allocator_tuning.h"
#include "util/pcap.h"
#include "util/thread_cpu.h"
#include "util/timespec.h"

namespace tmach::record {

namespace {
// Live: how long a capture thread goes on reading what its sockets hold once stopped.
constexpr std::chrono::seconds kDrainAtStop{5};
// The longest a ring block waits for more frames before the kernel hands it over
// (afpacket_source.cpp kRetireTimeoutMs, libpcap's timeout), and a little more.
constexpr std::chrono::milliseconds kRetireAtStop{120};
// Live: how long a packet waits for a writer that makes no progress at all (gives no record
// back) before the capture thread drops instead (Recorder::set_stall_limits): while the
// writer cannot write (a full disk with nothing left to delete, writes that keep failing),
// short enough to stop promptly; otherwise far longer than a slow disk's hiccup (a sync of a
// loaded VM's disk took over 2 s: e2e test_backpressure dropped part of a burst its 32 MiB
// kernel buffer held), short of holding the capture thread for ever on a hung disk; once
// stopped, kDrainAtStop (the time the drain has). (A slow writer that still makes progress is
// waited for, at a stop too: the drain may then take longer than kDrainAtStop.)
constexpr std::chrono::seconds kLiveStallLimit{2};
constexpr std::chrono::seconds kLiveHungLimit{30};
// The newest time of a batch that a pcap record can hold (0 if none): as the recorder's clock
// takes it (a time it does not record does not move its clock either).
uint64_t newest_ts(const capture::RawPacket* p, size_t n) {
  uint64_t t = 0;
  for (size_t i = 0; i < n; ++i)
    if (p[i].ts_ns < util::pcap::kTimeLimitNs) t = std::max(t, p[i].ts_ns);
  return t;
}
}  // namespace

Session::Session(const config::Config& cfg, SessionOptions opts)
    : cfg_(cfg),
      opts_(std::move(opts)),
      // auto waits too: reading files nothing is gained by losing data that is not going away;
      // live, a capture thread that waits leaves the overflow in the kernel's capture buffer
      // (capture.buffer_size), which the kernel drops from only once that is full too.
      wait_mode_(cfg.when_full != config::WhenFull::kDrop) {
  util::tune_allocator_for_recording();
  const auto n =
      static_cast<uint16_t>(opts_.live ? std::clamp(cfg_.capture_threads, 1, config::kMaxCaptureThreads) : 1);
  if (n > 1 && opts_.keep)
    throw std::runtime_error(
        "capture.threads > 1 cannot be combined with a share filter (cluster::ShareFilter keeps one "
        "thread's counters); live workers split by PACKET_FANOUT instead (--worker-id with --interface)");
  // The store first: it is locked before anything in it is touched.
  store::StoreOptions so = config::store_options(cfg_);
  so.evict_when_full = opts_.live;  // live: a full disk costs the oldest segments, not the recording
  so.producers = n;
  writer_ = std::make_unique<store::StoreWriter>(std::move(so));
  adopt_ = writer_->adopt_report();
  if (cfg_.flows) {
    flows_ = std::make_unique<flow::FlowDrain>(config::flow_options(cfg_), config::class_names(cfg_),
                                               &adopt_.problems);
    writer_->set_tick([f = flows_.get()](uint64_t now_ns) { f->tick(now_ns); });
  }
  if (opts_.test_delay_us) writer_->set_test_delay_us(opts_.test_delay_us);
  shards_.resize(n);
  for (uint16_t i = 0; i < n; ++i) {
    shards_[i].rec = std::make_unique<Recorder>(cfg_, *writer_, flows_.get(), i, n);
    if (opts_.live) {
      shards_[i].rec->set_stall_limits(kLiveStallLimit, kLiveHungLimit);
      shards_[i].rec->set_stopping(&stop_, kDrainAtStop);
    }
  }
}

RecorderTotals Session::totals() const {
  std::vector<const Recorder*> recs;
  for (const auto& s : shards_) recs.push_back(s.rec.get());
  return record::totals(recs);
}

Session::~Session() {
  try {
    finish();
  } catch (const std::exception& e) {
    spdlog::error("recording session: {}", e.what());
  }
}

void Session::set_live_sources(std::vector<std::unique_ptr<capture::PacketSource>> sources) {
  live_ = std::move(sources);
  for (size_t k = 0; k < live_.size(); ++k) shards_[k % shards_.size()].sources.push_back(live_[k].get());
}

void Session::set_files(std::unique_ptr<capture::MergeSource> files, std::vector<uint32_t> input_of,
                        store::ImportSession* imports) {
  files_ = std::move(files);
  input_of_ = std::move(input_of);
  imports_ = imports;
}

namespace {
// What start() makes resident ahead of use: each class's RAM buffer's first bytes, and the
// first bytes of the connection tables' entries (split between the shards).
constexpr size_t kPrefaultBytes = 32u << 20;
constexpr size_t kHugePage = 2u << 20;
uint64_t huge_pages(uint64_t bytes) { return (bytes + kHugePage - 1) & ~uint64_t{kHugePage - 1}; }
}  // namespace

MemoryReport memory_report(const config::Config& cfg, const store::StoreWriter& w,
                           const std::vector<TableMemory>& tables, size_t sockets,
                           const flow::FlowDrain* flows) {
  MemoryReport m;
  const uint64_t prefaulted = sockets ? kPrefaultBytes : 0;  // (live capture only: Session::start)
  m.process = util::process_memory();
  for (size_t c = 0; c < cfg.classes.size(); ++c) {
    const auto cls = static_cast<uint16_t>(c);
    const uint64_t cap = w.ram_capacity(cls);
    m.ram_budget += cap;
    m.ram_buffers += std::min(cap, huge_pages(std::max<uint64_t>(w.ram_high_water(cls), prefaulted)));
  }
  for (const TableMemory& t : tables) {
    const uint64_t entries =
        std::max<uint64_t>(t.peak_connections * sizeof(conn::ConnEntry), prefaulted / tables.size());
    m.connection_tables += t.index_mapped + std::min<uint64_t>(t.entries_mapped, huge_pages(entries));
    m.connection_tables_max += t.index_mapped + t.entries_mapped;
  }
  m.index_building = w.index_memory();
  m.index_building_peak = w.index_memory_peak();
  if (flows) {
    m.flow_index = flows->index_memory();
    m.flow_index_peak = flows->index_memory_peak();
  }
  m.kernel_rings = uint64_t{cfg.capture_buffer} * sockets;
  return m;
}

MemoryReport Session::memory() const {
  std::vector<TableMemory> tables;
  for (const auto& s : shards_) {
    const conn::ConnTable& t = s.rec->table();
    tables.push_back({t.index_mapped_bytes(), t.entries_mapped_bytes(), t.stats().peak});
  }
  return memory_report(cfg_, *writer_, tables, live_.size(), flows_.get());
}

void Session::start() {
  // Live capture only: reading files nothing is lost while the capture thread takes a page
  // fault, and the prefaulter's work competed with the capture and writer threads for the
  // cores (ingest-small, 12 interleaved rounds: median 525 ms without it, 671 ms with it).
  // The rings' first 32 MiB first (the capture thread fills them from the start; while the
  // writer keeps up it stays in their first few MiB, and the bench captures' high-water
  // marks were 12 and 31 MB), then the connection table's index and its first 32 MiB of
  // entries (~250k connections).
  if (!live_.empty()) {
    std::vector<std::pair<void*, size_t>> hot;
    const size_t ways = shards_.size();
    for (size_t c = 0; c < cfg_.classes.size(); ++c) {
      auto [m, n] = writer_->ram_memory(static_cast<uint16_t>(c));
      hot.emplace_back(m, std::min<size_t>(n, kPrefaultBytes));
    }
    for (auto& s : shards_)
      for (auto& r : s.rec->table_mutable().hot_memory(kPrefaultBytes / ways)) hot.push_back(r);
    prefault_.start(std::move(hot));
  }
  writer_->start();
  started_ = true;
  t0_ = std::chrono::steady_clock::now();
}

void Session::stop() {
  uint64_t expected = 0;
  stop_ns_.compare_exchange_strong(expected, util::now_ns());
  stop_.store(true, std::memory_order_release);
  for (auto& s : live_) s->stop();
  if (auto* c = current_.load()) c->stop();
}

void Session::run(const Around& around) {
  if (files_)
    run_files();
  else
    run_live(around);
}

void Session::run_live(const Around& around) {
  if (shards_.size() == 1) return run_shard(0, around);
  // Shards 1.. on threads of their own, shard 0 here; the first failure stops them all and
  // is rethrown once every thread is joined.
  std::vector<std::thread> threads;
  std::vector<std::exception_ptr> failed(shards_.size());
  for (size_t i = 1; i < shards_.size(); ++i)
    threads.emplace_back([this, i, &around, &failed] {
      pthread_setname_np(pthread_self(), fmt::format("tm-capture-{}", i).substr(0, 15).c_str());
      try {
        run_shard(i, around);
      } catch (...) {
        failed[i] = std::current_exception();
        stop();
      }
      shards_[i].cpu = util::thread_cpu_seconds();
    });
  try {
    run_shard(0, around);
  } catch (...) {
    failed[0] = std::current_exception();
    stop();
  }
  for (auto& t : threads) t.join();
  for (auto& f : failed)
    if (f) std::rethrow_exception(f);
}

void Session::run_shard(size_t i, const Around& around) {
  Recorder& rec = *shards_[i].rec;
  std::vector<capture::RawPacket> batch(256);
  // A batch of source `s`, up to its first frame stamped at `before_ns` or later (none such
  // while capturing): how many it read, and whether it showed such a later frame.
  struct Took {
    size_t got;
    bool past;
  };
  auto take = [&](capture::PacketSource* s, uint64_t before_ns, bool wait) {
    const size_t got = s->next_batch(batch.data(), batch.size());
    size_t n = got;
    bool past = false;
    if (before_ns != UINT64_MAX) {
      n = 0;
      while (n < got && batch[n].ts_ns < before_ns) ++n;
      past = n < got;
    }
    const size_t all = n;
    const uint64_t newest = opts_.keep ? newest_ts(batch.data(), all) : 0;
    if (opts_.keep) n = opts_.keep(batch.data(), n);
    auto process = [&] {
      rec.process(batch.data(), n, wait);
      rec.advance(newest, all - n);  // (the other workers' share: their time)
    };
    if (around)
      around(i, process);
    else
      process();
    return Took{got, past};
  };
  while (!stopping()) {
    for (capture::PacketSource* s : shards_[i].sources) take(s, UINT64_MAX, wait_mode_);
    // Live, the writer stops only when it cannot go on (its store directory gone: StoreGone):
    // the capture ends with its error, as with an interface that vanished (tm serve then stops
    // its API at once, and does not say it was asked to stop).
    if (writer_->failed()) [[unlikely]]
      throw std::runtime_error("writer failed: " + writer_->error());
  }
  // Stopped: what the kernel had queued before the stop is read too (it arrived before it; in
  // wait mode up to a capture buffer of it, which stopping at once left unread and counted
  // nowhere): frames stamped before the stop, each socket until it shows a later one or
  // nothing more, for at most kDrainAtStop. (A stopped source returns what it holds, then
  // nothing; a busy link's frames from after the stop are not captured.)
  // The kernel hands a ring block over once full or at its retire timeout (AF_PACKET 50 ms,
  // libpcap 100 ms): after a first empty read the sockets are read again kRetireAtStop later,
  // for the frames of a block still being filled at the stop.
  // In wait mode the drain goes at the writer's pace: one that is behind leaves frames
  // unread at kDrainAtStop. Those are then taken without waiting (kDrainAtStop more at most,
  // at the capture's own pace): what the ring has room for is stored, the rest is counted as
  // dropped (ring full), so that no frame the kernel delivered before the stop is lost
  // uncounted (they were, before: 1.3 M of 3.3 M frames received in one test).
  const uint64_t stop_ns = stop_ns_.load();
  std::vector<capture::PacketSource*> left = shards_[i].sources;
  bool retired = false;
  for (bool wait : {wait_mode_, false}) {
    const auto until = std::chrono::steady_clock::now() + kDrainAtStop;
    while (!left.empty() && std::chrono::steady_clock::now() < until) {
      bool any = false;
      for (size_t k = 0; k < left.size();) {
        const Took t = take(left[k], stop_ns, wait);
        any |= t.got > 0;
        if (t.past || (t.got == 0 && retired))
          left.erase(left.begin() + static_cast<long>(k));
        else
          ++k;
      }
      if (!any) {
        if (retired) break;
        std::this_thread::sleep_for(kRetireAtStop);
        retired = true;
      }
    }
    if (left.empty() || !wait) break;
    spdlog::warn(
        "stop: the writer was behind after {} s of draining: the frames captured before the stop that "
        "are still queued are stored as far as the RAM buffer holds them, the rest counted as dropped",
        kDrainAtStop.count());
  }
}

void Session::run_files() {
  struct Current {  // the signal thread stops the file being read, while it is read
    std::atomic<capture::PacketSource*>& c;
    ~Current() { c = nullptr; }
  } current{current_};
  current_ = files_.get();
  std::vector<capture::RawPacket> batch(256);
  std::vector<uint32_t> from(batch.size());
  std::vector<bool> ended(input_of_.size());
  while (!stopping()) {
    size_t n = files_->next_batch(batch.data(), batch.size(), from.data());
    if (imports_) {
      for (size_t j = 0; j < n; ++j) imports_->note(input_of_[from[j]], &batch[j], 1);
      // An input at its end (not one stopped by a signal: stop_ is set before that).
      for (size_t k = 0; k < input_of_.size(); ++k)
        if (!ended[k] && files_->finished(k) && !stopping()) {
          ended[k] = true;
          imports_->ended(input_of_[k]);
        }
    }
    if (n == 0) break;
    const size_t all = n;
    const uint64_t newest = opts_.keep ? newest_ts(batch.data(), all) : 0;
    if (opts_.keep) n = opts_.keep(batch.data(), n);
    shards_[0].rec->process(batch.data(), n, wait_mode_);
    shards_[0].rec->advance(newest, all - n);  // (the other workers' share: their time)
    if (writer_->failed()) throw std::runtime_error("writer failed: " + writer_->error());
    if (opts_.file_batch) opts_.file_batch();
  }
}

void Session::finish() {
  if (finished_) return;
  finished_ = true;
  prefault_.stop();
  for (auto& s : live_) kstats_.push_back(s->stats());
  // The flow records of the connections ended now are written on tm-flows, alongside the
  // writer's last drain of the rings and seal of the last segments rather than after them.
  if (flows_) flows_->hold();
  for (auto& s : shards_) s.rec->finish();
  capture_cpu_ = util::thread_cpu_seconds();
  for (auto& s : shards_) capture_cpu_ += s.cpu;
  if (flows_) flows_->close();  // every flow record is pushed
  try {
    writer_->finish();
  } catch (...) {
    if (flows_) flows_->join_quietly();
    throw;
  }
  if (flows_) {
    if (writer_->failed())
      flows_->join_quietly();  // the writer's error is the one reported
    else
      flows_->join();
  }
  if (started_) seconds_ = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0_).count();
}

}  // namespace tmach::record
