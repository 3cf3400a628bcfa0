#include "store/store_writer.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <pthread.h>
#include <spdlog/spdlog.h>
#include <sys/file.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>

#include "store/layout.h"
#include "store/recovery.h"
#include "util/thread_cpu.h"

namespace fs = std::filesystem;

namespace tmach::store {

StoreWriter::StoreWriter(StoreOptions opts) : opts_(std::move(opts)) {
  const StoreOptions& cfg = opts_;
  wopts_.directory_every = cfg.directory_every;
  wopts_.directory_bytes = cfg.directory_bytes;
  wopts_.fsync_bytes = cfg.fsync_bytes;
  wopts_.fragments = std::make_shared<packet::FragmentLayers>();  // later fragments indexed as their datagram
  std::error_code ec;
  fs::create_directories(cfg.dir, ec);
  if (ec) throw std::runtime_error(fmt::format("cannot create store {}: {}", cfg.dir, ec.message()));
  fs::path marker = fs::path(cfg.dir) / kStoreMarker;
  if (!fs::exists(marker)) {
    // Refuse to turn a directory with other content into a store: it would mix files.
    for (const auto& e : fs::directory_iterator(cfg.dir)) {
      (void)e;
      throw std::runtime_error(
          fmt::format("{} is not empty and not a tm store (no {} file): refusing to write into it", cfg.dir,
                      kStoreMarker));
    }
    std::ofstream(marker) << "tm store format " << kStoreFormat << "\n";
  }
  std::string lock = (fs::path(cfg.dir) / kLockFile).string();
  lock_fd_ = ::open(lock.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (lock_fd_ < 0 || flock(lock_fd_, LOCK_EX | LOCK_NB) != 0) {
    if (lock_fd_ >= 0) ::close(lock_fd_);
    lock_fd_ = -1;
    throw std::runtime_error(
        fmt::format("store {} is in use by another recorder (lock {} is held); tm query can still read it",
                    cfg.dir, lock));
  }
  if (ftruncate(lock_fd_, 0) == 0) {
    std::string pid = fmt::format("{}\n", getpid());
    if (::write(lock_fd_, pid.data(), pid.size()) < 0) {
    }
  }
  state_.resize(classes_.size());
  if (opts_.producers < 1) opts_.producers = 1;
  // A class's RAM budget is one pool of chunks, lent to its producers' rings as they need them.
  for (size_t i = 0; i < classes_.size(); ++i)
    pools_.push_back(std::make_unique<BufferPool>(classes_[i].ram_budget, opts_.producers));
  for (uint16_t p = 0; p < opts_.producers; ++p)
    for (size_t i = 0; i < classes_.size(); ++i) rings_.push_back(std::make_unique<Ring>(*pools_[i]));
  for (size_t i = 0; i < classes_.size(); ++i) {
    stats_.push_back(std::make_unique<ClassWriteStats>());
    state_[i].dir = (fs::path(cfg.dir) / classes_[i].name).string();
    fs::create_directories(state_[i].dir, ec);
    if (ec) throw std::runtime_error(fmt::format("cannot create {}: {}", state_[i].dir, ec.message()));
  }
  adopt();
  enforce_budgets();
}

StoreWriter::~StoreWriter() {
  try {
    finish();
  } catch (const std::exception& e) {
    spdlog::error("store writer: {}", e.what());
  }
  if (lock_fd_ >= 0) ::close(lock_fd_);
}

void StoreWriter::adopt() {
  Catalog cat = Catalog::scan(opts_.dir);
  adopt_.foreign = cat.foreign;
  for (auto& seg : cat.segments) {
    int cls = -1;
    for (size_t i = 0; i < classes_.size(); ++i)
      if (classes_[i].name == seg.cls) cls = static_cast<int>(i);
    if (seg.state != SegmentInfo::State::kSealed) {
      // Only this process may write here (we hold the lock), so an open segment is a crash leftover.
      try {
        if (seg.state == SegmentInfo::State::kBadSidecar)
          adopt_.problems.push_back(seg.problem + " (rebuilt)");
        RecoveryResult r = recover_segment(seg, opts_.directory_every, opts_.directory_bytes);
        adopt_.truncated_bytes += r.truncated_bytes;
        ++adopt_.recovered;
        if (r.removed_empty) continue;
      } catch (const std::exception& e) {
        adopt_.problems.push_back(fmt::format("{}: cannot recover: {}", seg.pcap_path(), e.what()));
        continue;
      }
    } else {
      ++adopt_.segments;
    }
    if (cls < 0) continue;  // a class no longer configured: kept, queryable, not budgeted here
    ClassState& st = state_[cls];
    st.next_seq = std::max(st.next_seq, seg.meta.seq + 1);
    st.sealed.push_back(Sealed{seg.base, seg.disk_bytes(), seg.meta.first_ts});
    st.sealed_bytes += seg.disk_bytes();
    stats_[cls]->segments++;
    stats_[cls]->sidecar_bytes += seg.idx_bytes;
  }
  for (size_t i = 0; i < classes_.size(); ++i) update_disk_stat(static_cast<uint16_t>(i));
}

void StoreWriter::start() {
  seal_async_ = true;
  // Named threads (top -H, perf): which part of the recorder uses the CPU.
  sealer_ = std::thread([this] {
    pthread_setname_np(pthread_self(), "tm-sealer");
    sealer_loop();
  });
  running_ = true;
  thread_ = std::thread([this] {
    pthread_setname_np(pthread_self(), "tm-writer");
    run();
    running_ = false;
    serve_syncs();  // the last requests still get their flush (or fail fast)
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
  if (!failed()) {
    for (size_t c = 0; c < classes_.size(); ++c) drain(static_cast<uint16_t>(c), SIZE_MAX);
    for (auto& st : state_)
      for (auto& [lt, w] : st.open) w->flush();
  }
  for (auto& t : tasks)
    if (t->fn) t->fn();
  std::lock_guard lk(sync_mu_);
  for (auto& t : tasks) t->done = true;
  sync_cv_.notify_all();
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
    std::unique_ptr<SegmentWriter> w;
    uint64_t idx = 0;
  };
  std::vector<Last> last;
  std::exception_ptr last_failure;
  if (!failed()) {
    try {
      for (size_t c = 0; c < classes_.size(); ++c) {
        const auto cls = static_cast<uint16_t>(c);
        drain(cls, SIZE_MAX);
        for (auto& [lt, w] : state_[c].open) last.push_back(Last{cls, std::move(w)});
        state_[c].open.clear();
      }
      for (Last& l : last) l.idx = l.w->seal();
    } catch (...) {
      last_failure = std::current_exception();
    }
  }
  if (sealer_.joinable()) {
    try {
      if (!failed()) collect_seals(true);
    } catch (const std::exception& e) {
      set_error(e.what());
    }
    {
      std::lock_guard lk(seal_mu_);
      seal_stop_ = true;
    }
    seal_cv_.notify_all();
    sealer_.join();
    seal_async_ = false;
  }
  if (last_failure) std::rethrow_exception(last_failure);
  if (!!failed()) return;
  for (Last& l : last) sealed_segment(l.cls, *l.w, l.idx);
  enforce_budgets();
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
  uint32_t idle_us = 100;
  try {
    for (;;) {
      bool progress = false;
      for (size_t c = 0; c < classes_.size(); ++c) progress |= drain(static_cast<uint16_t>(c), 4096);
      collect_seals(false);
      if (sync_pending_.load(std::memory_order_acquire)) serve_syncs();
      auto now = clock::now();
      if (tick_)
        tick_(static_cast<uint64_t>(
            std::chrono::duration_cast<std::chrono::nanoseconds>(now.time_since_epoch()).count()));
      if (now - last_flush > std::chrono::milliseconds(500)) {
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
  } catch (const std::exception& e) {
    set_error(e.what());
    spdlog::error("writer thread stopped: {}", e.what());
  }
}

uint64_t StoreWriter::ram_used(uint16_t cls) const {
  uint64_t n = 0;
  for (uint16_t p = 0; p < opts_.producers; ++p) n += ring(p, cls).used();
  return n;
}

uint64_t StoreWriter::ram_capacity(uint16_t cls) const { return pools_[cls]->capacity(); }

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
  uint64_t pk = 0, by = 0;
  IndexKeys keys;
  while (n < max) {
    const RecordHeader* h = ring.front();
    if (!h) break;
    const uint64_t key = open_key(producer, h->linktype);
    auto it = st.open.find(key);
    if (it != st.open.end() && it->second->packets() > 0 &&
        it->second->file_bytes() + 16 + h->caplen > opts_.segment_size) {
      s.written_packets += pk;
      s.written_bytes += by;
      pk = by = 0;
      seal(cls, key);
      it = st.open.end();
    }
    if (it == st.open.end()) {
      SegmentName name{st.next_seq++, h->ts_ns, h->linktype};
      std::string base = (fs::path(st.dir) / segment_base_name(name)).string();
      WriterOptions o = wopts_;
      o.expect_packets = st.last_packets + st.last_packets / 8;
      IndexBuilder b;
      if (!st.spare_builders.empty()) {
        b = std::move(st.spare_builders.back());
        st.spare_builders.pop_back();
      }
      it = st.open.emplace(key, std::make_unique<SegmentWriter>(base, name.seq, h->linktype, o, std::move(b)))
               .first;
      s.segments++;
    }
    SegmentWriter& w = *it->second;
    if (w.in_place_full()) release_written(producer, cls);
    // The frame goes to the file from the ring (no copy); its ring memory is released once
    // written (release_written).
    if (h->keys_bytes && keys.unpack(ring.packed_keys(h), h->keys_bytes))
      w.append_in_place(h->ts_ns, h->wirelen, ring.payload(h), h->caplen, keys);
    else
      w.append(h->ts_ns, h->wirelen, ring.payload(h), h->caplen);  // decodes for the keys
    if (observe_.load(std::memory_order_relaxed))
      observer_(cls, h->ts_ns, h->linktype, h->wirelen, ring.payload(h), h->caplen);
    ++pk;
    by += 16 + h->caplen;
    ring.consume();
    ++n;
    if (test_delay_us_) {
      release_written(producer, cls);  // the test's slow disk: room comes back packet by packet
      std::this_thread::sleep_for(std::chrono::microseconds(test_delay_us_));
    }
  }
  release_written(producer, cls);
  s.written_packets += pk;
  s.written_bytes += by;
  if (n) update_disk_stat(cls);
  return n > 0;
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
  std::unique_ptr<SegmentWriter> w = std::move(it->second);
  st.open.erase(it);
  if (!seal_async_) {
    uint64_t idx = w->seal();
    sealed_segment(cls, *w, idx);
    return;
  }
  w->flush();  // every frame in the file now: the ring memory it came from may be reused
  {
    std::unique_lock lk(seal_mu_);
    auto s = std::make_unique<Sealing>();
    s->cls = cls;
    s->w = std::move(w);
    sealing_.push_back(std::move(s));
  }
  seal_cv_.notify_all();
  // Bounded: beyond kMaxSealing in flight, wait for the oldest.
  for (;;) {
    {
      std::lock_guard lk(seal_mu_);
      if (sealing_.size() <= kMaxSealing) break;
    }
    collect_seals(false);
    std::unique_lock lk(seal_mu_);
    if (sealing_.size() > kMaxSealing && !sealing_.front()->done)
      seal_cv_.wait(lk, [&] { return sealing_.front()->done; });
  }
}

void StoreWriter::sealed_segment(uint16_t cls, SegmentWriter& w, uint64_t idx) {
  ClassState& st = state_[cls];
  st.last_packets = w.packets();
  st.spare_builders.push_back(w.take_builder());
  st.sealed.push_back(Sealed{w.base(), w.file_bytes() + idx, w.meta().first_ts});
  st.sealed_bytes += w.file_bytes() + idx;
  stats_[cls]->segments_sealed++;
  stats_[cls]->sidecar_bytes += idx;
  enforce_budgets();
  update_disk_stat(cls);
}

void StoreWriter::collect_seals(bool wait_all) {
  for (;;) {
    std::unique_ptr<Sealing> s;
    {
      std::unique_lock lk(seal_mu_);
      if (sealing_.empty()) return;
      if (!sealing_.front()->done) {
        if (!wait_all) return;
        seal_cv_.wait(lk, [&] { return sealing_.front()->done; });
      }
      s = std::move(sealing_.front());
      sealing_.pop_front();
    }
    if (!s->error.empty()) throw std::runtime_error(s->error);
    sealed_segment(s->cls, *s->w, s->idx_bytes);
  }
}

void StoreWriter::sealer_loop() {
  std::unique_lock lk(seal_mu_);
  for (;;) {
    Sealing* next = nullptr;
    for (auto& s : sealing_)
      if (!s->done) {
        next = s.get();
        break;
      }
    if (!next) {
      if (seal_stop_) return;
      seal_cv_.wait(lk);
      continue;
    }
    lk.unlock();
    // Only this thread touches the segment writer until `done`; the writer thread holds
    // nothing of it but the pointer.
    uint64_t idx = 0;
    std::string err;
    try {
      idx = next->w->seal();
    } catch (const std::exception& e) {
      err = e.what();
    }
    lk.lock();
    next->idx_bytes = idx;
    next->error = std::move(err);
    next->done = true;
    seal_cv_.notify_all();
  }
}

void StoreWriter::evict_oldest(uint16_t cls) {
  ClassState& st = state_[cls];
  Sealed s = st.sealed.front();
  st.sealed.pop_front();
  st.sealed_bytes -= s.bytes;
  std::error_code ec;
  // Sidecar first: a pcap without sidecar would be "recovered" at the next start.
  fs::remove(s.base + ".idx", ec);
  fs::remove(s.base + ".pcap", ec);
  stats_[cls]->segments_evicted++;
  stats_[cls]->bytes_evicted += s.bytes;
  stats_[cls]->segments--;
  update_disk_stat(cls);
}

void StoreWriter::enforce_budgets() {
  for (size_t c = 0; c < classes_.size(); ++c) {
    ClassState& st = state_[c];
    while (!st.sealed.empty() && st.sealed_bytes > classes_[c].disk_budget)
      evict_oldest(static_cast<uint16_t>(c));
  }
  if (opts_.disk_budget == UINT64_MAX) return;
  for (;;) {
    uint64_t total = 0;
    int oldest = -1;
    for (size_t c = 0; c < classes_.size(); ++c) {
      total += state_[c].sealed_bytes;
      if (!state_[c].sealed.empty() &&
          (oldest < 0 || state_[c].sealed.front().first_ts < state_[oldest].sealed.front().first_ts))
        oldest = static_cast<int>(c);
    }
    if (total <= opts_.disk_budget || oldest < 0) break;
    evict_oldest(static_cast<uint16_t>(oldest));
  }
}

void StoreWriter::update_disk_stat(uint16_t cls) {
  uint64_t open = 0;
  for (auto& [lt, w] : state_[cls].open) open += w->file_bytes();
  stats_[cls]->disk_bytes = state_[cls].sealed_bytes + open;
}

}  // namespace tmach::store
