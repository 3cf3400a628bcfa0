#include "store/store_writer.h"

#include <fmt/format.h>
#include <pthread.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <filesystem>
#include <utility>

#include "store/layout.h"
#include "util/file_io.h"
#include "util/pcap.h"
#include "util/thread_cpu.h"
#include "util/timespec.h"
#include "util/units.h"

namespace fs = std::filesystem;

namespace tmach::store {

StoreWriter::StoreWriter(StoreOptions opts) : opts_(std::move(opts)), dir_(opts_.dir) {
  const StoreOptions& cfg = opts_;
  wopts_.directory_every = cfg.directory_every;
  wopts_.directory_bytes = cfg.directory_bytes;
  wopts_.fsync_bytes = cfg.fsync_bytes;
  wopts_.fragments = std::make_shared<packet::FragmentLayers>();  // later fragments indexed as their datagram
  on_sealed_ = [this](Sealer::Sealed& s) {
    if (!s.error.empty()) {
      // Its pcap is whole (flushed before the seal): live, make_room() seals it again; else
      // the writer stops (the error below) and the pcap stays, scanned by queries, for the
      // next start to index.
      if (opts_.evict_when_full) {
        unsealed_.emplace_back(s.cls, s.w->base());
      } else {
        add_unsealed(s.cls, s.w->base());
        stats_[s.cls]->segments_unsealed++;
      }
      throw SealFailed(s.error, s.error_number);  // (make_room words it by its errno)
    }
    sealed_segment(s.cls, *s.w, s.idx_bytes);
  };
  state_.resize(classes_.size());
  if (opts_.producers < 1) opts_.producers = 1;
  // A class's RAM budget is one pool of chunks, lent to its producers' rings as they need them.
  for (size_t i = 0; i < classes_.size(); ++i)
    pools_.push_back(std::make_unique<BufferPool>(classes_[i].ram_budget, opts_.producers));
  for (uint16_t p = 0; p < opts_.producers; ++p)
    for (size_t i = 0; i < classes_.size(); ++i) rings_.push_back(std::make_unique<Ring>(*pools_[i]));
  for (size_t i = 0; i < classes_.size(); ++i) {
    stats_.push_back(std::make_unique<ClassWriteStats>());
    state_[i].dir = dir_.class_dir(classes_[i].name);
    state_[i].segment_size = segment_size_for(i);
    state_[i].key_cap = index_key_cap(state_[i].segment_size);
  }
  sealer_.set_gauge(&index_mem_, kSealerPart);
  adopt();
  enforce_budgets();
}

StoreWriter::~StoreWriter() {
  try {
    finish();
  } catch (const std::exception& e) {
    spdlog::error("store writer: {}", e.what());
  }
}

uint64_t StoreWriter::segment_size_for(size_t cls) {
  // A segment larger than its budget would be deleted as soon as it is sealed: the store
  // would keep nothing. Such a class gets segments of a quarter of its budget.
  uint64_t size = opts_.segment_size;
  uint64_t budget = std::min(opts_.disk_budget, classes_[cls].disk_budget);
  if (size <= budget) return size;
  uint64_t smaller = std::max<uint64_t>(budget / 4, kMinSegmentSize);
  adopt_.problems.push_back(fmt::format(
      "segment size {} is larger than the disk budget of class '{}' ({}): its segments are cut at {}{}",
      util::format_size(size), classes_[cls].name, util::format_size(budget), util::format_size(smaller),
      smaller * 2 > budget ? ", too large still for the budget to keep any: the class keeps nothing" : ""));
  return smaller;
}

void StoreWriter::adopt() {
  for (auto& seg : dir_.adopt(opts_.directory_every, opts_.directory_bytes, adopt_)) {
    int cls = -1;
    for (size_t i = 0; i < classes_.size(); ++i)
      if (classes_[i].name == seg.cls) cls = static_cast<int>(i);
    if (cls < 0) continue;  // a class no longer configured: kept, queryable, not budgeted here
    ClassState& st = state_[cls];
    st.sealed.add(DiskRing::File{seg.base, seg.disk_bytes(), seg.meta.first_ts, seg.meta.last_ts});
    stats_[cls]->segments++;
    stats_[cls]->sidecar_bytes += seg.idx_bytes;
  }
  for (size_t i = 0; i < classes_.size(); ++i) {
    // Past every sequence number the class's directory holds or held (also a segment that
    // could not be recovered, or was set aside): a number is never given twice.
    auto it = adopt_.next_seq.find(classes_[i].name);
    if (it != adopt_.next_seq.end()) state_[i].next_seq = std::max(state_[i].next_seq, it->second);
    update_disk_stat(static_cast<uint16_t>(i));
  }
}

void StoreWriter::start() {
  sealer_.start();
  running_ = true;
  thread_ = std::thread([this] {
    pthread_setname_np(pthread_self(), "tm-writer");
    run();
    running_ = false;
    try {
      serve_syncs();  // the last requests still get their flush (or fail fast)
    } catch (const std::exception& e) {
      // (a drain for them failed, the disk full: escaping this thread would end the process)
      // Live, finish() writes on from where the write stopped, making room as the loop does.
      // Otherwise the open segments are cut back to their complete records, as a failure in
      // the loop does; finish() drains the rest into new ones, and cuts and reports what it
      // cannot write.
      write_errors_.fetch_add(1, std::memory_order_relaxed);
      spdlog::warn("writer: the last sync requests: {}", e.what());
      if (!opts_.evict_when_full) keep_cut(cut_open_segments());
    }
    cpu_seconds_.store(util::thread_cpu_seconds(), std::memory_order_relaxed);
  });
}

bool StoreWriter::sync(std::chrono::milliseconds timeout, std::function<void()> fn) {
  if (!running_.load()) return false;
  auto t = std::make_shared<SyncTask>();
  t->fn = std::move(fn);
  std::unique_lock lk(sync_mu_);
  sync_tasks_.push_back(t);
  sync_pending_.fetch_add(1, std::memory_order_release);
  return sync_cv_.wait_for(lk, timeout, [&] { return t->done; });
}

void StoreWriter::serve_syncs() {
  std::vector<std::shared_ptr<SyncTask>> tasks;
  {
    std::lock_guard lk(sync_mu_);
    tasks.swap(sync_tasks_);
    sync_pending_ = 0;
  }
  if (tasks.empty()) return;
  std::exception_ptr failure;  // (the tasks are answered first)
  if (!failed() && !waiting_for_room_ && failing_writes_ < 2) {
    try {
      bool any = false;
      for (size_t c = 0; c < classes_.size(); ++c) any |= drain(static_cast<uint16_t>(c), SIZE_MAX);
      for (auto& st : state_)
        for (auto& [lt, w] : st.open) w->flush();
      if (any && failing_writes_ > 0) writing_again();
    } catch (...) {
      failure = std::current_exception();
    }
  }
  for (auto& t : tasks)
    if (t->fn) t->fn();
  {
    std::lock_guard lk(sync_mu_);
    for (auto& t : tasks) t->done = true;
    sync_cv_.notify_all();
  }
  if (failure) std::rethrow_exception(failure);
}

std::map<std::pair<std::string, uint64_t>, uint64_t> StoreWriter::open_segment_bytes() const {
  std::map<std::pair<std::string, uint64_t>, uint64_t> m;
  for (size_t c = 0; c < state_.size(); ++c)
    for (auto& [lt, w] : state_[c].open) m[{classes_[c].name, w->meta().seq}] = w->file_bytes();
  return m;
}

void StoreWriter::finish() {
  if (finished_) return;
  finished_ = true;
  stop_ = true;
  if (thread_.joinable()) thread_.join();
  // The segments still open are sealed here and now, while the sealer thread finishes the
  // ones handed to it before (it is often still busy with the previous segment when the
  // input ends), rather than after it; they are accounted after those, in order.
  struct Last {
    uint16_t cls;
    std::unique_ptr<SegmentWriter> w;  // (null once its seal is deferred: unsealed_ has it)
    uint64_t idx = 0;
    bool unsealed = false;  // its seal failed (last_seal_failed, last_seal_deferred)
  };
  std::vector<Last> last;
  std::exception_ptr last_failure;
  if (!failed()) {
    try {
      // Live, a full disk costs the oldest segments, not the last packets, as in the run loop.
      if (opts_.evict_when_full) write_out_making_room();
      for (size_t c = 0; c < classes_.size(); ++c) {
        const auto cls = static_cast<uint16_t>(c);
        drain(cls, SIZE_MAX);
        for (auto& [lt, w] : state_[c].open) last.push_back(Last{cls, std::move(w)});
        state_[c].open.clear();
      }
      for (size_t i = 0; i < last.size(); ++i) {
        Last& l = last[i];
        try {
          l.idx = l.w->seal(/*two_threads=*/true);  // (the capture has ended: a core is free)
        } catch (const std::exception& e) {
          // A sidecar the full disk had no room for: the packets are stored, and the other
          // last segments are still sealed. Live, it is sealed again once room is made (below);
          // else, or after a failed sync, which leaves its packets in doubt, it stays unsealed.
          l.unsealed = true;
          if (last_seal_deferred(l.cls, *l.w, e))
            l.w.reset();  // (its index is not needed to seal it from its file: freed before that builds
                          // another)
          else
            last_seal_failed(l.cls, *l.w, e.what(), dynamic_cast<const util::SyncError*>(&e) != nullptr);
          continue;
        }
        note_closed(l.cls, *l.w);
        // The memory at this seal's peak: the spare builders, every last segment, this one at its peak.
        update_index_memory();
        uint64_t n = index_mem_.part(kWriterPart);
        for (size_t k = 0; k < last.size(); ++k)
          if (last[k].w)  // (null: a seal deferred)
            n += k == i ? std::max(last[k].w->seal_peak_bytes(), last[k].w->memory_bytes())
                        : last[k].w->memory_bytes();
        index_mem_.set(kWriterPart, n);
      }
    } catch (...) {
      last_failure = std::current_exception();
      // What reached the disk stays there, cut back to complete records; the counters say so.
      std::vector<std::pair<uint16_t, std::unique_ptr<SegmentWriter>>> cut;
      for (Last& l : last)
        if (l.w && !l.w->closed()) {
          cut_segment(l.cls, *l.w);
          cut.emplace_back(l.cls, std::move(l.w));
        }
      for (auto& c : cut_open_segments()) cut.push_back(std::move(c));
      keep_cut(std::move(cut));
    }
  }
  if (sealer_.running()) {
    // Every segment handed to the sealer is accounted, whether the writer failed or not: a
    // seal that failed leaves its pcap unsealed (on_sealed_ counts it) and is an error, as
    // any failed write is; the ones after it are still given back.
    sealer_.stop();  // (once every queued seal is done)
    collect_every_seal();
  }
  // (Cut while writes kept failing: their last chance in this run, counted if it fails.)
  for (auto& u : std::exchange(unsealed_until_writing_, {})) unsealed_.push_back(std::move(u));
  if (!unsealed_.empty()) {  // (live only)
    // Sidecars are a few MB: room for them is made one oldest segment at a time, the seals
    // tried again after each deletion (room to record on, evict_for_room()'s aim, is not
    // needed any more: it cost several segments for one sidecar).
    // Only segments on disk before are deleted for them, not one of the last ones sealed
    // meanwhile (a ring adds at its end: its first older[c] are those).
    std::vector<size_t> older;
    for (const auto& st : state_) older.push_back(st.sealed.size());
    auto failed = reseal_unsealed(/*keep_full_disk=*/true);
    while (!unsealed_.empty() && evict_oldest(&older)) {
      make_evictions_durable();
      for (auto& f : reseal_unsealed(/*keep_full_disk=*/true)) failed.push_back(std::move(f));
    }
    for (auto& f : reseal_unsealed()) failed.push_back(std::move(f));  // (nothing left to delete)
    // What stays unsealed at the end is said as a last segment left unsealed is
    // (last_seal_failed): its packets are stored, the disk needs attention.
    for (auto& [base, why] : failed)
      said_unsealed(fmt::format("the segment {}.pcap was not sealed ({})", base, why), "its packets");
  }
  if (last_failure || failed()) discard_rings();
  if (last_failure && opts_.evict_when_full) {
    // Live: the last drain met a full disk; what it could write is sealed or left to recovery.
    try {
      std::rethrow_exception(last_failure);
    } catch (const std::exception& e) {
      set_error(e.what());
      spdlog::error("writer: {}", e.what());
      return;
    }
  }
  if (last_failure) std::rethrow_exception(last_failure);
  for (Last& l : last)  // (sealed before a failure the sealer reported above: accounted all the same)
    if (!l.unsealed) sealed_segment(l.cls, *l.w, l.idx);
  if (failed()) return;
  enforce_budgets();
  dir_.save_verified();  // a clean stop: the next start checks no sidecar this run wrote
}

void StoreWriter::collect_every_seal() {
  for (bool more = true; more;) {
    try {
      collect_seals(true);
      more = false;
    } catch (const std::exception& e) {
      if (!opts_.evict_when_full) {
        set_error(e.what());
        continue;
      }
      write_errors_.fetch_add(1, std::memory_order_relaxed);
      if (dynamic_cast<const SealFailed*>(&e)) {
        // Live: its pcap is whole (unsealed_ has it); it is sealed again once room is made, as
        // make_room() does in the run loop.
        spdlog::warn("writer: {}; it is sealed again once the oldest segments are deleted to make room",
                     e.what());
      } else {  // (the bookkeeping after a seal: deletions for the budgets whose sync failed)
        spdlog::error("writer: {}", e.what());
      }
    }
  }
}

void StoreWriter::set_error(const std::string& what) {
  std::lock_guard lk(error_mu_);
  if (error_.empty()) error_ = what.empty() ? "unknown error" : what;
  failed_.store(true, std::memory_order_release);
}

void StoreWriter::run() {
  using clock = std::chrono::steady_clock;
  auto last_flush = clock::now();
  auto last_sync = clock::now();
  auto last_try = clock::now();
  uint32_t idle_us = 100;
  for (;;) {
    bool progress = false;
    bool ticking = false;  // (a failure in the flow records' tick is theirs: write_failed)
    try {
      if (waiting_for_room_ && clock::now() - last_try >= std::chrono::seconds(1)) {
        last_try = clock::now();
        waiting_for_room_ = !make_room("", 0);
      }
      // Writes that keep failing (not for room) are tried again once a second.
      const bool holding = failing_writes_ > 1 && clock::now() < write_retry_at_;
      if (!waiting_for_room_ && !holding)
        for (size_t c = 0; c < classes_.size(); ++c) progress |= drain(static_cast<uint16_t>(c), 4096);
      if (failing_writes_ > 0 && progress) {
        // After a failed write, packets appended to a buffer prove nothing: they are flushed
        // at once, and only then do writes succeed again.
        for (auto& st : state_)
          for (auto& [lt, w] : st.open) w->flush();
        writing_again();
      }
      collect_seals(false);
      if (sync_pending_.load(std::memory_order_acquire)) serve_syncs();
      auto now = clock::now();
      if (tick_ && (!flows_failing_ || now >= flows_retry_at_)) {
        ticking = true;
        tick_(static_cast<uint64_t>(
            std::chrono::duration_cast<std::chrono::nanoseconds>(now.time_since_epoch()).count()));
        ticking = false;
        if (flows_failing_) {
          spdlog::warn("writer: flow records: writing again");
          flows_failing_ = false;
        }
      }
      if (now - last_flush > std::chrono::milliseconds(500)) {
        if (std::string gone = dir_.gone(); !gone.empty()) throw StoreGone(gone);
        seal_aged();
        // Make recent packets visible to queries that scan the open segment.
        for (auto& st : state_)
          for (auto& [lt, w] : st.open) w->flush();
        last_flush = now;
      }
      if (opts_.fsync_interval_ns && now - last_sync > std::chrono::nanoseconds(opts_.fsync_interval_ns)) {
        for (auto& st : state_)
          for (auto& [lt, w] : st.open) w->fsync_data();
        last_sync = now;
      }
    } catch (const std::exception& e) {
      write_errors_.fetch_add(1, std::memory_order_relaxed);  // (the flow records' too)
      if (dynamic_cast<const StoreGone*>(&e)) {
        // What the open segments held went with the directory: cut, not kept (they are
        // nowhere to be found, and nothing is made anew in a store that is not there).
        set_error(e.what());
        spdlog::error("writer thread stopped: {}", e.what());
        cut_open_segments();
        return;
      }
      if (!opts_.evict_when_full) {
        set_error(e.what());
        spdlog::error("writer thread stopped: {}", e.what());
        keep_cut(cut_open_segments());  // the counters say what is on disk
        return;
      }
      last_try = clock::now();
      // A full disk costs the oldest segments, not the packets the failed write held: it is
      // tried again where it stopped (SegmentWriter::flush). Otherwise, or with nothing left to
      // delete, the open segments are cut back to their complete records (the rest counted
      // lost) and the writer waits for room.
      if (!waiting_for_room_ && room_made_for(e)) {
        reseal_unsealed();  // (the seals that failed for want of room)
        continue;
      }
      write_failed(e.what(), util::error_number_of(e), ticking);
    }
    if (!progress) {
      if (stop_.load(std::memory_order_acquire)) break;
      // Idle: back off from 200 us to 2 ms, so an idle recorder costs no CPU to speak of
      // while a ring is still drained long before it can fill (64 MiB at 10 Gbit/s ~ 50 ms).
      idle_us = std::min<uint32_t>(idle_us * 2, 2000);
      std::this_thread::sleep_for(std::chrono::microseconds(idle_us));
    } else {
      idle_us = 100;
    }
  }
}

void StoreWriter::discard_rings() {
  for (size_t c = 0; c < classes_.size(); ++c)
    for (uint16_t p = 0; p < opts_.producers; ++p) {
      Ring& ring = *rings_[ring_of(p, static_cast<uint16_t>(c))];
      uint64_t n = 0;
      for (; ring.front(); ++n) ring.consume();
      ring.release();
      stats_[c]->lost_packets += n;
    }
}

uint64_t StoreWriter::ram_used(uint16_t cls) const {
  uint64_t n = 0;
  for (uint16_t p = 0; p < opts_.producers; ++p) n += ring(p, cls).used();
  return n;
}

uint64_t StoreWriter::ram_capacity(uint16_t cls) const { return pools_[cls]->capacity(); }

uint64_t StoreWriter::ram_released(uint16_t cls) const {
  uint64_t n = 0;
  for (uint16_t p = 0; p < opts_.producers; ++p) n += ring(p, cls).released();
  return n;
}

uint64_t StoreWriter::ram_high_water(uint16_t cls) const { return pools_[cls]->high_water(); }

bool StoreWriter::drain(uint16_t cls, size_t max) {
  bool any = false;
  for (uint16_t p = 0; p < opts_.producers; ++p) any |= drain(p, cls, max);
  return any;
}

bool StoreWriter::drain(uint16_t producer, uint16_t cls, size_t max) {
  Ring& ring = *rings_[ring_of(producer, cls)];
  ClassState& st = state_[cls];
  ClassWriteStats& s = *stats_[cls];
  size_t n = 0;
  KeysView keys;  // the packed keys where they are in the ring
  // The open segment of `wkey`, looked up again only when the link type changes (a map lookup
  // per packet was a measurable share of the writer's time on small frames).
  SegmentWriter* w = nullptr;
  uint64_t wkey = 0;
  // A write that fails leaves the packets appended so far in their segment (a retry writes
  // them: write_out_making_room); they are counted as such, or cut back by make_room().
  struct Count {
    ClassWriteStats& s;
    uint64_t pk = 0, by = 0;
    ~Count() {
      s.written_packets += pk;
      s.written_bytes += by;
    }
  } count{s};
  uint64_t& pk = count.pk;
  uint64_t& by = count.by;
  while (n < max) {
    const RecordHeader* h = ring.front();
    if (!h) break;
    const uint64_t key = open_key(producer, h->linktype);
    if (!w || key != wkey) {
      auto it = st.open.find(key);
      w = it == st.open.end() ? nullptr : it->second.get();
      wkey = key;
    }
    // Full: the segment's size, or (tiny frames carrying many keys) its index's keys.
    if (w && w->packets() > 0 &&
        (w->file_bytes() + 16 + h->caplen > st.segment_size || w->index_entries() >= st.key_cap)) {
      s.written_packets += pk;
      s.written_bytes += by;
      pk = by = 0;
      seal(cls, key);
      w = nullptr;
    }
    if (!w) {
      SegmentName name{st.next_seq++, h->ts_ns, h->linktype};
      std::string base = (fs::path(st.dir) / segment_base_name(name)).string();
      WriterOptions o = wopts_;
      o.expect_packets = st.last_packets + st.last_packets / 8;
      IndexBuilder b;
      if (!spare_builders_.empty()) {
        b = std::move(spare_builders_.back());
        spare_builders_.pop_back();
      }
      w = st.open.emplace(key, std::make_unique<SegmentWriter>(base, name.seq, h->linktype, o, std::move(b)))
              .first->second.get();
      s.segments++;
    }
    if (w->in_place_full()) release_written(producer, cls);
    // The frame goes to the file from the ring (no copy); its ring memory is released once
    // written (release_written).
    const uint64_t noted = w->packets();
    // The packet is in its segment: shown to the observer, counted, taken from the ring.
    auto taken = [&] {
      if (observe_.load(std::memory_order_relaxed))
        observer_(cls, h->ts_ns, h->linktype, h->wirelen, ring.payload(h), h->caplen);
      ++pk;
      by += 16 + h->caplen;
      ring.consume();
    };
    try {
      if (h->keys_bytes && keys.read(ring.packed_keys(h), h->keys_bytes))
        w->append_in_place(h->ts_ns, h->wirelen, ring.payload(h), h->caplen, keys);
      else
        w->append(h->ts_ns, h->wirelen, ring.payload(h), h->caplen);  // decodes for the keys
    } catch (...) {
      // A write failed once the segment had counted the packet (its buffer flushed as it was
      // appended): the packet is in the segment's pending bytes, written when the write is
      // tried again, or counted lost if the segment is cut back instead; either way it is not
      // taken from the ring again (it was then counted twice, lost and written), as the
      // consumed packets of a failed in-place batch are not.
      if (w->packets() != noted) taken();
      throw;
    }
    taken();
    ++n;
    if (test_delay_us_) {
      release_written(producer, cls);  // the test's slow disk: room comes back packet by packet
      // (sleeping `us` a packet made "0.5 ms a frame" 1.7 ms under ctest -j2, and a test's
      // writer outlast the 5 s drain at a stop)
      const auto now = std::chrono::steady_clock::now();
      test_next_ = std::max(test_next_ + std::chrono::microseconds(test_delay_us_),
                            now - std::chrono::milliseconds(50));
      std::this_thread::sleep_until(test_next_);
    }
  }
  release_written(producer, cls);
  if (n) {
    update_disk_stat(cls);
    update_index_memory();
  }
  return n > 0;
}

void StoreWriter::update_index_memory() {
  uint64_t n = 0;
  for (const ClassState& st : state_)
    for (const auto& [key, w] : st.open) n += w->memory_bytes();
  for (const IndexBuilder& b : spare_builders_) n += b.memory_bytes();
  index_mem_.set(kWriterPart, n);
}

void StoreWriter::release_written(uint16_t producer, uint16_t cls) {
  for (auto& [key, w] : state_[cls].open)
    if (w->has_in_place()) w->flush();
  rings_[ring_of(producer, cls)]->release();
}

void StoreWriter::seal(uint16_t cls, uint64_t key) {
  ClassState& st = state_[cls];
  auto it = st.open.find(key);
  if (it == st.open.end()) return;
  // Every frame in the file first (the ring memory it came from may then be reused); a flush
  // that fails leaves the segment open with what it did not write, for a retry.
  it->second->flush();
  if (!sealer_.running()) {
    Sealer::Sealed done;
    done.cls = cls;
    done.w = std::move(it->second);
    st.open.erase(it);
    note_closed(cls, *done.w);
    try {
      done.idx_bytes = done.w->seal();
    } catch (const std::exception& e) {
      done.error = e.what();
      done.error_number = util::error_number_of(e);
    }
    update_index_memory();
    if (done.error.empty())  // (its peak)
      index_mem_.set(kWriterPart, index_mem_.part(kWriterPart) + done.w->seal_peak_bytes());
    on_sealed_(done);  // as the sealer's: a failed seal leaves the pcap whole, unsealed (and throws)
    return;
  }
  std::unique_ptr<SegmentWriter> w = std::move(it->second);
  st.open.erase(it);
  note_closed(cls, *w);
  update_index_memory();  // (w is the sealer's from here: its memory moves to the sealer's part)
  sealer_.hand_over(cls, std::move(w), on_sealed_);
}

void StoreWriter::sealed_segment(uint16_t cls, SegmentWriter& w, uint64_t idx) {
  ClassState& st = state_[cls];
  st.last_packets = w.packets();
  spare_builders_.push_back(w.take_builder());
  update_index_memory();
  st.sealed.add(DiskRing::File{w.base(), w.file_bytes() + idx, w.meta().first_ts, w.meta().last_ts});
  dir_.verified().add(w.base() + ".idx");  // written from memory: sound
  stats_[cls]->segments_sealed++;
  stats_[cls]->sidecar_bytes += idx;
  update_disk_stat(cls);  // (before the budgets, which throw when their deletions cannot be synced)
  enforce_budgets();
}

void StoreWriter::note_closed(uint16_t cls, const SegmentWriter& w) {
  state_[cls].closed_packets += w.packets();
  state_[cls].closed_bytes += w.file_bytes() - sizeof(util::pcap::FileHeader);
}

void StoreWriter::collect_seals(bool wait_all) { sealer_.collect(wait_all, on_sealed_); }

void StoreWriter::evicted(uint16_t cls, const DiskRing::File& f) {
  dir_.verified().forget(f.base + ".idx");
  stats_[cls]->segments_evicted++;
  stats_[cls]->bytes_evicted += f.bytes;
  stats_[cls]->segments--;
  update_disk_stat(cls);
}

uint64_t StoreWriter::newest_written() const {
  uint64_t newest = 0;
  for (auto& st : state_) {
    newest = std::max(newest, st.sealed.newest_ts());
    for (auto& [key, w] : st.open)
      if (w->packets() > 0) newest = std::max(newest, w->meta().last_ts);
  }
  return util::age_clock(newest);  // (no later than a minute past the wall clock)
}

void StoreWriter::seal_aged() {
  bool aging = false;
  const uint64_t newest = newest_written();
  for (size_t c = 0; c < classes_.size(); ++c) {
    const uint64_t half = classes_[c].max_age_ns / 2;
    if (!half) continue;
    aging = true;
    std::vector<uint64_t> aged;
    for (auto& [key, w] : state_[c].open)
      if (w->packets() > 0 && w->meta().first_ts + half < newest) aged.push_back(key);
    for (uint64_t key : aged) seal(static_cast<uint16_t>(c), key);
  }
  // (A sealed segment ages while nothing is sealed: a quiet store's last seal may be long ago.)
  if (aging) enforce_budgets();
}

void StoreWriter::enforce_budgets() {
  // max_age is measured on the recorder's clock: the newest packet written (so that reading
  // old capture files ages by their own time, not by the wall clock).
  const uint64_t newest = newest_written();
  for (size_t c = 0; c < classes_.size(); ++c) {
    const auto cls = static_cast<uint16_t>(c);
    if (classes_[c].max_age_ns)
      state_[c].sealed.evict_older(newest, classes_[c].max_age_ns,
                                   [&](const DiskRing::File& f) { evicted(cls, f); });
    state_[c].sealed.evict_over(classes_[c].disk_budget, [&](const DiskRing::File& f) { evicted(cls, f); });
  }
  if (opts_.disk_budget == UINT64_MAX) return;
  std::vector<DiskRing*> rings;
  for (auto& st : state_) rings.push_back(&st.sealed);
  evict_over(rings, opts_.disk_budget,
             [&](size_t c, const DiskRing::File& f) { evicted(static_cast<uint16_t>(c), f); });
}

void StoreWriter::update_disk_stat(uint16_t cls) {
  uint64_t open = 0;
  for (auto& [lt, w] : state_[cls].open) open += w->file_bytes();
  stats_[cls]->disk_bytes = state_[cls].sealed.bytes() + open;
}

}  // namespace tmach::store
