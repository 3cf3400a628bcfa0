// The store's writing side: one RAM ring per class and the drain loop — one writer thread
// (tm-writer) that drains the rings into segments and rotates them. The units it drives:
// the store directory (StoreDir: open, lock, marker, adopt, recover), the sealer (Sealer:
// the tm-sealer thread) and the disk rings (DiskRing: each class's and the store's budget).
//
// Thread model: push() is called by the capture threads only, each producer (capture thread)
// with its own ring per class; everything else in the writer thread, except stats() (atomic
// counters), the ram_*() gauges and the constructor/finish(). A producer's packets go to
// segments of their own (a class has an open segment per producer and link type), so each
// segment is written from one ring and keeps its producer's time order; queries merge
// segments by time.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <exception>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "store/catalog.h"
#include "store/disk_ring.h"
#include "store/ring.h"
#include "store/sealer.h"
#include "store/segment_writer.h"
#include "store/store_dir.h"
#include "util/file_io.h"
#include "util/memory_gauge.h"

namespace tmach::store {

// What the writer is told about a class (config/ fills it from the TOML [[class]] tables).
struct ClassOptions {
  std::string name;
  uint64_t ram_budget = 64ull << 20;  // its RAM ring
  uint64_t disk_budget = UINT64_MAX;  // its sealed segments
  uint64_t max_age_ns = 0;            // > 0: sealed segments whose newest packet is older are evicted
};

// The writer's options (config/component_options.h maps a config::Config into them).
struct StoreOptions {
  std::string dir;  // the store root
  uint64_t segment_size = 256ull << 20;
  uint64_t disk_budget = UINT64_MAX;      // global, over all classes
  uint32_t directory_every = 4096;        // a directory entry every n packets ...
  uint64_t directory_bytes = 4ull << 20;  // ... and at least every this many bytes
  uint64_t fsync_interval_ns = 0;         // 0 = leave it to the kernel
  uint64_t fsync_bytes = 0;
  // When a write fails (a full disk): false — the writer stops and reports it (error(); tm
  // record reading files); true — it deletes the oldest segments to make room and goes on,
  // or, with nothing left to delete, reports the problem (problem()) and tries again every
  // second (live capture).
  bool evict_when_full = false;
  std::vector<ClassOptions> classes;  // in precedence order; the catch-all last
  uint16_t producers = 1;             // capture threads: a ring per class for each
};

// A seal that failed (Sealer::Sealed::error), as StoreWriter's seal bookkeeping rethrows it:
// its pcap is whole, and live it is sealed again once there is room.
class SealFailed : public util::IoError {
 public:
  using IoError::IoError;
};

// The store directory is not where the recorder found it any more (StoreDir::gone()): the
// writer stops, live as well (no room to make or write to wait for).
class StoreGone : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct ClassWriteStats {
  // Packets written to segments (after a failed write: the complete records on disk).
  std::atomic<uint64_t> written_packets{0};
  std::atomic<uint64_t> written_bytes{0};  // pcap bytes written (headers included)
  // Handed to the store but never on disk: taken from the ring for a write that failed, or
  // left in the ring by a writer that stopped for one (finish()).
  std::atomic<uint64_t> lost_packets{0};
  std::atomic<uint64_t> segments_sealed{0};
  // Left without a sidecar: a seal that failed (a full disk; live, make_room() tries it once
  // more and counts it when that fails too, or finish() when none tried), or cut after a
  // failed write. Plain pcaps, which queries scan and the next start indexes (recovery).
  std::atomic<uint64_t> segments_unsealed{0};
  std::atomic<uint64_t> segments_evicted{0};
  std::atomic<uint64_t> bytes_evicted{0};
  std::atomic<uint64_t> disk_bytes{0};  // sealed segments + sidecars + open segments
  std::atomic<uint64_t> segments{0};
  std::atomic<uint64_t> sidecar_bytes{0};
};

class StoreWriter {
 public:
  // Opens (creating if needed) and locks the store, adopts what it holds (recovering open
  // segments), and applies the budgets. Throws std::runtime_error (e.g. store locked).
  explicit StoreWriter(StoreOptions opts);
  ~StoreWriter();

  const AdoptReport& adopt_report() const { return adopt_; }

  // Capture thread `producer` (< StoreOptions::producers, one thread each): copies a packet and
  // its index keys (index_keys() of its decoded form; null: the writer decodes it) into its
  // ring of the class. False when the class's RAM buffer is full (or too_large()).
  bool push(uint16_t producer, uint16_t cls, uint64_t ts_ns, uint32_t linktype, uint32_t wirelen,
            const uint8_t* data, uint32_t caplen, const IndexKeys* keys) {
    return rings_[ring_of(producer, cls)]->try_push(ts_ns, linktype, wirelen, data, caplen, keys);
  }
  // The same with the keys of the decoded packet, computed straight into the ring
  // (Ring::try_push_decoded: when it refuses, `keys` holds them).
  bool push_decoded(uint16_t producer, uint16_t cls, uint64_t ts_ns, uint32_t linktype, uint32_t wirelen,
                    const uint8_t* data, uint32_t caplen, const packet::PacketInfo& info, IndexKeys& keys) {
    return rings_[ring_of(producer, cls)]->try_push_decoded(ts_ns, linktype, wirelen, data, caplen, info,
                                                            keys);
  }
  bool push(uint16_t cls, uint64_t ts_ns, uint32_t linktype, uint32_t wirelen, const uint8_t* data,
            uint32_t caplen, const IndexKeys* keys) {
    return push(0, cls, ts_ns, linktype, wirelen, data, caplen, keys);
  }
  uint16_t producers() const { return opts_.producers; }
  // Whether push() can never take this frame: larger than a chunk of the class's RAM buffer.
  bool too_large(uint16_t cls, uint32_t caplen, const IndexKeys* keys) const {
    return rings_[cls]->too_large(caplen, keys);
  }
  // The class's RAM buffer (for util::Prefaulter): its chunks in the order they are first lent.
  std::pair<void*, size_t> ram_memory(uint16_t cls) { return pools_[cls]->memory(); }
  const Ring& ring(uint16_t producer, uint16_t cls) const { return *rings_[ring_of(producer, cls)]; }
  Ring& ring_mutable(uint16_t producer, uint16_t cls) {
    return *rings_[ring_of(producer, cls)];
  }  // (prefaulter)
  // The class's RAM buffer (ram_budget), shared by its producers' rings (any thread): bytes of
  // records held now (pushed, not yet written), its size, and the most it ever lent out at once
  // (whole chunks: BufferPool::high_water).
  uint64_t ram_used(uint16_t cls) const;
  uint64_t ram_capacity(uint16_t cls) const;
  uint64_t ram_high_water(uint16_t cls) const;
  // Bytes the writer has given back from the class's rings so far (every producer's): its
  // progress, whether or not a whole chunk is free yet.
  uint64_t ram_released(uint16_t cls) const;

  // `tick`, if any, runs on the writer thread once per turn of its loop with the monotonic
  // time in ns (the flow writer drains there while recording: flow::FlowDrain). Before start().
  void set_tick(std::function<void(uint64_t now_ns)> tick) { tick_ = std::move(tick); }
  void start();
  // Drains the rings, seals every open segment, stops the thread. Idempotent.
  void finish();

  const ClassWriteStats& stats(uint16_t cls) const { return *stats_[cls]; }
  // Test hook: the writer takes this long per packet, to simulate a slow disk. Paced rather than
  // slept per packet: a packet's turn comes `us` after the last one's, and a sleep that
  // overshoots (by a millisecond or more on a loaded machine) is made up by the next packets,
  // up to 50 ms behind (so that after idling the writer is not let loose on a backlog).
  void set_test_delay_us(uint32_t us) { test_delay_us_ = us; }
  // Non-empty if the writer thread failed (any thread; a copy, taken under a lock).
  std::string error() const {
    std::lock_guard lk(error_mu_);
    return error_;
  }
  bool failed() const { return failed_.load(std::memory_order_acquire); }  // error() is not empty
  // Any thread: why the writer cannot write now, "" while it can (evict_when_full: it keeps
  // trying; else error()). And how many writes failed since the start.
  std::string problem() const {
    std::lock_guard lk(error_mu_);
    return !error_.empty() ? error_ : !problem_.empty() ? problem_ : write_problem_;
  }
  uint64_t write_errors() const { return write_errors_.load(std::memory_order_relaxed); }
  // Any thread, once finish() has returned: why a last segment was not sealed (the first such
  // failure, naming the segment), "" when they were. It stays queryable (segments_unsealed).
  std::string unsealed() const {
    std::lock_guard lk(error_mu_);
    return unsealed_why_;
  }
  // The heap memory of index building (any thread): the open segments (index builder, offsets,
  // write buffers), the segments with the sealer, and the builders kept for the next segments;
  // now and at its peak. A segment is sealed when it reaches segment_size, or when its index
  // holds segment_size / 8 keys (index_key_cap), so each is bounded by the segment size
  // (docs/DESIGN.md, "Memory").
  uint64_t index_memory() const { return index_mem_.now(); }
  uint64_t index_memory_peak() const { return index_mem_.peak(); }
  static uint64_t index_key_cap(uint64_t segment_size) { return std::max<uint64_t>(segment_size / 8, 4096); }
  // CPU seconds the writer thread used; final once finish() has returned.
  double cpu_seconds() const { return cpu_seconds_.load(std::memory_order_relaxed); }

  // Daemon hooks (any thread). sync(): the writer thread drains every ring and flushes the
  // open segments to their files, then runs `fn` (if any) in the writer thread, before the
  // next packet is written. Waits up to `timeout`; false when the writer did not answer
  // (not started, stopped, failed). `fn` must own what it uses: it may run after a timeout.
  bool sync(std::chrono::milliseconds timeout, std::function<void()> fn = {});
  // Called in the writer thread for every packet appended to a segment while enabled.
  using PacketObserver = std::function<void(uint16_t cls, uint64_t ts_ns, uint32_t linktype, uint32_t wirelen,
                                            const uint8_t* data, uint32_t caplen)>;
  void set_observer(PacketObserver obs) { observer_ = std::move(obs); }  // before start()
  void enable_observer(bool on) { observe_.store(on, std::memory_order_relaxed); }
  // Writer thread only (e.g. inside a sync fn): the file bytes of every open segment, by class
  // name and sequence number (not by path: an open segment is renamed when older packets come).
  std::map<std::pair<std::string, uint64_t>, uint64_t> open_segment_bytes() const;
  // Writer thread only: the sequence number the class's next segment will get.
  uint64_t next_seq(uint16_t cls) const { return state_[cls].next_seq; }

 private:
  size_t ring_of(uint16_t producer, uint16_t cls) const { return size_t{producer} * classes_.size() + cls; }
  // An open segment's key: its producer and link type.
  static uint64_t open_key(uint16_t producer, uint32_t linktype) {
    return uint64_t{producer} << 32 | linktype;
  }
  struct ClassState {
    std::string dir;
    uint64_t next_seq = 1;
    std::map<uint64_t, std::unique_ptr<SegmentWriter>> open;  // by open_key(producer, link type)
    DiskRing sealed{{".idx", ".pcap"}};                       // oldest first
    // What the last sealed segment leaves the next one: its packet count (room for the
    // offsets; its index builder goes to spare_builders_).
    uint64_t last_packets = 0;
    uint64_t segment_size = 0;  // the store's, or less for a small disk budget
    uint64_t key_cap = 0;       // index_key_cap(segment_size)
    // Packets (and their record bytes) of the segments that left `open` whole: what is on
    // disk, whatever happens to the open ones.
    uint64_t closed_packets = 0, closed_bytes = 0;
  };

  void run();
  bool drain(uint16_t cls, size_t max);  // every producer's ring of the class, up to max records each
  bool drain(uint16_t producer, uint16_t cls, size_t max);
  // Writes the frames the class's open segments hold in place, then gives the producer's ring
  // memory back.
  void release_written(uint16_t producer, uint16_t cls);
  // Seals the class's open segment of that key (open_key): on the sealer thread while the
  // writer thread runs (the rings keep draining), else here.
  void seal(uint16_t cls, uint64_t key);
  void sealed_segment(uint16_t cls, SegmentWriter& w, uint64_t idx_bytes);  // the bookkeeping after a seal
  // Accounts the seals the sealer finished; with `wait_all`, waits for every one in flight.
  // Rethrows a seal's error.
  void collect_seals(bool wait_all);
  // collect_seals(true) until every seal in flight is accounted: a failed one is an error
  // (set_error), or live (evict_when_full) a warning, its pcap left in unsealed_.
  void collect_every_seal();
  void enforce_budgets();
  // A class with max_age: its open segment is sealed once its first packet is half max_age
  // older than the clock (the newest packet written), so that a quiet class, whose segment would
  // take months to fill, keeps no packet much past its age (only sealed segments are deleted by
  // age): at most about 1.5 x max_age.
  void seal_aged();
  // The recorder's clock for max_age: the newest packet written, sealed or in an open segment,
  // no later than a minute past the wall clock.
  uint64_t newest_written() const;
  void evicted(uint16_t cls, const DiskRing::File& f);  // the bookkeeping after an eviction
  void update_disk_stat(uint16_t cls);
  void update_index_memory();  // writer thread: its part of index_mem_
  void adopt();
  uint64_t segment_size_for(size_t cls);
  void note_closed(uint16_t cls, const SegmentWriter& w);
  // After a failed write (store_writer_full.cpp): the open segments are cut back to their
  // complete records and closed; the counters say what is on disk. Returns the cut ones.
  std::vector<std::pair<uint16_t, std::unique_ptr<SegmentWriter>>> cut_open_segments();
  SegmentWriter::Cut cut_segment(uint16_t cls, SegmentWriter& w);
  // finish(): the seal of a last segment failed with `why`: it is cut back to complete
  // records (if its flush failed), kept unsealed, counted and reported (unsealed()).
  // `in_doubt`: its data may not be on the disk (a failed fdatasync), which fails the writer too.
  void last_seal_failed(uint16_t cls, SegmentWriter& w, const std::string& why, bool in_doubt);
  // finish(), evict_when_full: the seal of a last segment whose pcap is whole failed on a full
  // disk (`e`): it goes to unsealed_, sealed from its file once room is made. False otherwise.
  bool last_seal_deferred(uint16_t cls, SegmentWriter& w, const std::exception& e);
  // A segment left unsealed at the end (`what` names it and why; `packets`: "its N packets"):
  // logged as an error and kept for unsealed() (the first one).
  void said_unsealed(const std::string& what, const std::string& packets);
  // Not live: the cut segments stay as plain pcaps (the next start seals them), an empty one goes.
  void keep_cut(std::vector<std::pair<uint16_t, std::unique_ptr<SegmentWriter>>> cut);
  // evict_when_full: makes room after a failed write `what` (errno `err`, 0 when unknown; both
  // empty/0 for a retry): seals what was cut, deletes the oldest segments while the disk is
  // short of room; true when there is room to go on. Only ENOSPC and EDQUOT are worded as a
  // full disk.
  bool make_room(const std::string& what, int err);
  // evict_when_full, after a write `what` (errno `err`) that failed although room_made_for()
  // found no room to make: a full disk is make_room()'s. Any other error (a file system gone
  // read-only, a disk's I/O errors, EFBIG): make_room() cuts back, and the first failure is
  // logged and tried again at once (it may pass). When writes keep failing (a second failure
  // with no write that succeeded between), the problem is set (problem(): health, metrics, the
  // capture's short wait) and logged once, and the writer tries again every second, logging
  // nothing more until a write succeeds (writing_again()). While held, every class waits (a
  // failure is not told apart by class: the file system is usually the same). `flows`: the
  // failure was the flow records' (StoreWriter::set_tick): other than for room, it is logged
  // once and their tick held for a second, the packets' writes untouched.
  void write_failed(const std::string& what, int err, bool flows);
  void writing_again();  // a drain and flush that wrote packets succeeded after write_failed()
  // The segments in unsealed_until_writing_, sealed from their files now (or counted unsealed).
  void retry_unsealed_until_writing();
  // finish() after a failure: what the rings still hold will not be written; counted lost.
  void discard_rings();
  // Deletes the oldest sealed segments of any class while the disk is short of room
  // (room_to_write()), and at least one with `at_least_one`; returns how many.
  size_t evict_for_room(bool at_least_one);
  // Deletes the oldest sealed segment of any class; false when there is none. Not yet made
  // durable (make_evictions_durable()). With `older`, only from the classes whose count there
  // is above 0 (decremented): a ring's first `older[c]` segments, those on disk before.
  bool evict_oldest(std::vector<size_t>* older = nullptr);
  void make_evictions_durable() noexcept;                       // (a failure is a warning)
  static void make_evictions_durable(DiskRing& ring) noexcept;  // one ring's
  // Seals the pcaps of unsealed_ from their files (recovery), or counts them unsealed; returns
  // those it could not seal (base, why). With `keep_full_disk`, one whose sidecar met a full
  // disk (ENOSPC, EDQUOT) stays in unsealed_ instead, neither counted nor returned.
  std::vector<std::pair<std::string, std::string>> reseal_unsealed(bool keep_full_disk = false);
  // finish(), evict_when_full: drains the rings and flushes the open segments; a write that
  // fails on a full disk deletes the oldest segments and resumes where it stopped (nothing is
  // lost), as long as there are segments to delete. Throws what it cannot get past.
  void write_out_making_room();
  // evict_when_full, after the failed write `e`: on a full disk (ENOSPC, EDQUOT), deletes the
  // oldest segments (once the seals in flight are done, if it must) so that the write can be
  // tried again where it stopped; false when `e` is no full disk or nothing is left to delete.
  bool room_made_for(const std::exception& e);
  bool room_to_write() const;  // the file system has the room make_room() aims at
  void add_unsealed(uint16_t cls, const std::string& base);  // a pcap left without sidecar, deletable

  StoreOptions opts_;
  const std::vector<ClassOptions>& classes_ = opts_.classes;
  StoreDir dir_;
  std::vector<std::unique_ptr<BufferPool>> pools_;  // by class: its ram_budget
  std::vector<std::unique_ptr<Ring>> rings_;        // ring_of(producer, class), lending from pools_[class]
  std::vector<std::unique_ptr<ClassWriteStats>> stats_;
  std::deque<ClassState> state_;  // deque: ClassState is not copyable
  // The index builders of sealed segments, with the memory they grew to, for the next segments
  // of any class (growing it from nothing for every segment cost page faults and copies of
  // tens of MB). Shared by the classes, so that no more builders exist than segments were
  // open or sealing at once (docs/DESIGN.md, "Memory"). Writer thread.
  std::vector<IndexBuilder> spare_builders_;
  WriterOptions wopts_;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  // Index building's memory: part kWriterPart set by the writer thread (open segments, spare
  // builders), kSealerPart by the sealer (the segments in its hands).
  static constexpr size_t kWriterPart = 0, kSealerPart = 1;
  util::MemoryGauge index_mem_;
  Sealer sealer_;
  Sealer::OnSealed on_sealed_;
  bool finished_ = false;
  bool waiting_for_room_ = false;  // writer thread: a full disk, nothing left to delete
  // Writer thread: writes failed other than for room since the last that succeeded (> 1:
  // write_problem_ is set, and the writer tries again once a second).
  uint32_t failing_writes_ = 0;
  std::chrono::steady_clock::time_point write_retry_at_{};  // writer thread: the held drain's next try
  bool flows_failing_ = false;                              // writer thread: the tick failed (write_failed)
  std::chrono::steady_clock::time_point flows_retry_at_{};  // writer thread: its next try
  std::vector<std::pair<uint16_t, std::string>> unsealed_;  // writer thread: seals that failed (class, base)
  // Writer thread: segments cut while writes kept failing (not for room) whose seal failed too:
  // sealed from their files once a write succeeds again (writing_again()), or at finish(). They
  // stayed without a sidecar until the next start, scanned by every query.
  std::vector<std::pair<uint16_t, std::string>> unsealed_until_writing_;
  uint32_t test_delay_us_ = 0;
  std::chrono::steady_clock::time_point test_next_{};  // the thread draining: the paced writer's next turn
  AdoptReport adopt_;
  void set_error(const std::string& what);  // the first error stays
  mutable std::mutex error_mu_;
  std::string error_;          // guarded by error_mu_
  std::string problem_;        // guarded by error_mu_: the lack of room evict_when_full goes on with
  std::string write_problem_;  // guarded by error_mu_: the write error it goes on with (write_failed)
  std::string unsealed_why_;   // guarded by error_mu_: see unsealed()
  void set_problem(const std::string& what);
  std::atomic<bool> failed_{false};
  std::atomic<uint64_t> write_errors_{0};

  void serve_syncs();
  struct SyncTask {
    std::function<void()> fn;
    bool done = false;
  };
  std::mutex sync_mu_;
  std::condition_variable sync_cv_;
  std::vector<std::shared_ptr<SyncTask>> sync_tasks_;
  std::atomic<uint32_t> sync_pending_{0};
  std::atomic<bool> running_{false};
  PacketObserver observer_;
  std::function<void(uint64_t)> tick_;
  std::atomic<bool> observe_{false};
  std::atomic<double> cpu_seconds_{0.0};
};

}  // namespace tmach::store
