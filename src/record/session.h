// A recording session: everything `tm record` and `tm serve` run to record, and the one
// place that knows the order of start-up and shutdown.
//
// It owns the store writer (tm-writer, tm-sealer), the flow writer (flow::FlowDrain: on
// tm-writer, then tm-flows), the recorder, the prefaulter (tm-prefault) and the input
// (live sources, or files merged into one timeline, counted into the import log); the
// share filter of a split is applied to each batch (SessionOptions::keep). The capture side
// runs on the thread that calls run() and finish(); live, with capture.threads = N > 1, run()
// starts N - 1 more capture threads (tm-capture-<i>) and joins them before it returns: shard i
// has its own sources (its socket of each interface's fanout group), its own recorder
// (connection-table shard) and its own rings in the store writer (producer i).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "capture/merge_source.h"
#include "capture/source.h"
#include "config/config.h"
#include "flow/flow_drain.h"
#include "record/recorder.h"
#include "store/import_session.h"
#include "store/store_writer.h"
#include "util/prefaulter.h"
#include "util/proc_memory.h"

namespace tmach::record {

struct SessionOptions {
  bool live = false;           // live interfaces, not files (when_full "auto": drop, not wait)
  uint32_t test_delay_us = 0;  // testing: the writer sleeps this long per packet
  // Applied to every batch before the recorder sees it (a worker's share of a split:
  // cluster::ShareFilter::keep), or empty. Returns the packets kept, moved to the front.
  std::function<size_t(capture::RawPacket*, size_t)> keep;
  // Files: called on the capture thread after each batch is recorded (tm record's progress
  // line), or empty.
  std::function<void()> file_batch;
};

// The memory a recording holds, by part, in bytes (docs/DESIGN.md, "Memory").
struct MemoryReport {
  util::ProcessMemory process;  // the kernel's figures for the whole process
  // The classes' RAM buffers: resident (the part made resident at start, or as much as was
  // ever lent at once, whichever is more) and configured (their ram_budgets).
  uint64_t ram_buffers = 0, ram_budget = 0;
  // The connection tables (every shard): resident (the index, and the entries of the most
  // connections open at once) and reserved (connections.max entries).
  uint64_t connection_tables = 0, connection_tables_max = 0;
  // Index building (StoreWriter::index_memory): now and at its peak; the most segments open at once.
  uint64_t index_building = 0, index_building_peak = 0;
  // The index of the flow file being written (flow::FlowDrain::index_memory): now and at its peak.
  uint64_t flow_index = 0, flow_index_peak = 0;
  // Live: the kernel's packet rings (capture.buffer_size per socket) mapped into the process.
  uint64_t kernel_rings = 0;
};

// A shard's connection table, as memory_report() counts it.
struct TableMemory {
  uint64_t index_mapped = 0, entries_mapped = 0;  // conn::ConnTable::*_mapped_bytes()
  uint64_t peak_connections = 0;                  // the most connections open at once
};
// The parts of a recording's memory (docs/DESIGN.md, "Memory"), decided here for tm record
// (Session::memory) and tm serve (its live backend's stats and metrics) alike: the process's
// figures, the classes' RAM buffers of `w`, the connection tables, index building, the flow
// index of `flows` (null: flow records off), and the kernel rings of `sockets` live sockets.
MemoryReport memory_report(const config::Config& cfg, const store::StoreWriter& w,
                           const std::vector<TableMemory>& tables, size_t sockets,
                           const flow::FlowDrain* flows);

class Session {
 public:
  // Opens and locks the store (adopting and recovering what it holds), its flow files and
  // the recorder. Throws (e.g. the store is locked, a class filter does not compile).
  Session(const config::Config& cfg, SessionOptions opts);
  ~Session();  // finish() if it was not called; errors are logged
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  // What opening the store found; the flow files' problems are among `problems`.
  const store::AdoptReport& adopt_report() const { return adopt_; }
  store::StoreWriter& writer() { return *writer_; }
  const store::StoreWriter& writer() const { return *writer_; }
  // Flow files left without a sidecar (their seal failed), any thread; 0 without flow records.
  uint64_t flow_files_unsealed() const { return flows_ ? flows_->files_unsealed() : 0; }
  // After finish(): flow records of ended connections that are not on disk (a failed write).
  uint64_t flow_records_lost() { return flows_ ? flows_->records_lost() : 0; }
  std::string flow_failure() const { return flows_ ? flows_->failure() : std::string(); }
  // The flow records' writer (null: flow records off), as long as the session lives.
  const flow::FlowDrain* flows() const { return flows_.get(); }
  // The recorders, one per shard (capture thread); recorder() is shard 0's.
  Recorder& recorder() { return *shards_[0].rec; }
  const Recorder& recorder() const { return *shards_[0].rec; }
  size_t shards() const { return shards_.size(); }
  Recorder& recorder(size_t shard) { return *shards_[shard].rec; }
  // Every shard's counters added up; once run() returned (they are the capture threads' own).
  RecorderTotals totals() const;

  // The input, before start(): live sources (shard i reads sources i, i + shards(), ...: give
  // each interface's sockets one after the other, as capture::open_live_group returns them,
  // and shard i gets socket i of each), or files read as one timeline. For files,
  // merged input k is --read input_of[k] of the import log `imports` (which must outlive
  // the session): each packet is noted to its input, and each input read to its end.
  void set_live_sources(std::vector<std::unique_ptr<capture::PacketSource>> sources);
  void set_files(std::unique_ptr<capture::MergeSource> files, std::vector<uint32_t> input_of,
                 store::ImportSession* imports);
  const std::vector<std::unique_ptr<capture::PacketSource>>& live_sources() const { return live_; }
  const std::vector<capture::PacketSource*>& shard_sources(size_t shard) const {
    return shards_[shard].sources;
  }
  const capture::MergeSource* files() const { return files_.get(); }

  // Starts the prefaulter and the writer; the session's clock (seconds()) starts here.
  void start();
  // Reads the input into the recorder until it ends or stop() is called; throws on a read
  // error or (files) when the writer failed. `around`, if given, is called for each batch of
  // a live source with the function that records it (the daemon's per-batch hooks, under its
  // lock); the share filter has been applied before. With several shards it is called on each
  // shard's capture thread, with the shard's index.
  using Around = std::function<void(size_t shard, const std::function<void()>& record_batch)>;
  void run(const Around& around = {});
  // Any thread (the signal thread): run() returns soon; live sources and the file being read
  // are stopped.
  void stop();
  bool stopping() const { return stop_.load(std::memory_order_acquire); }

  // The shutdown, in its one order: the prefaulter stops; the live sources' kernel counters
  // are taken; the flow writer moves to tm-flows; the recorder ends every connection (their
  // flow records); the writer drains the rings and seals the last segments while tm-flows
  // writes the last flow records and seals the last flow file; both are waited for.
  // Rethrows the writer's or the flow writer's failure (the writer's error() is separate:
  // see writer().failed()). Once; later calls do nothing.
  void finish();

  // The memory by part. Once run() has returned (the shards' connection tables are their
  // capture threads' until then).
  MemoryReport memory() const;

  // After finish(): the live sources' kernel counters, the seconds from start() to the end
  // of finish(), and the CPU seconds of the capture threads (the one that ran run(), and the
  // shards' own).
  const std::vector<capture::SourceStats>& source_stats() const { return kstats_; }
  double seconds() const { return seconds_; }
  double capture_cpu_seconds() const { return capture_cpu_; }

 private:
  void run_live(const Around& around);
  void run_shard(size_t i, const Around& around);
  void run_files();

  struct Shard {
    std::unique_ptr<Recorder> rec;
    std::vector<capture::PacketSource*> sources;
    double cpu = 0;  // a thread of its own: its CPU seconds once it ended
  };

  config::Config cfg_;
  SessionOptions opts_;
  bool wait_mode_;
  // Declared so that the writer (whose thread calls into the flow drain) goes before it.
  std::unique_ptr<flow::FlowDrain> flows_;
  std::unique_ptr<store::StoreWriter> writer_;
  std::vector<Shard> shards_;
  store::AdoptReport adopt_;
  std::vector<std::unique_ptr<capture::PacketSource>> live_;
  std::unique_ptr<capture::MergeSource> files_;
  std::vector<uint32_t> input_of_;
  store::ImportSession* imports_ = nullptr;
  std::atomic<capture::PacketSource*> current_{nullptr};  // the file source being read
  std::atomic<bool> stop_{false};
  std::atomic<uint64_t> stop_ns_{0};  // CLOCK_REALTIME of stop(): the drain takes what came before
  util::Prefaulter prefault_;
  std::chrono::steady_clock::time_point t0_;
  bool started_ = false, finished_ = false;
  std::vector<capture::SourceStats> kstats_;
  double seconds_ = 0, capture_cpu_ = 0;
};

}  // namespace tmach::record
