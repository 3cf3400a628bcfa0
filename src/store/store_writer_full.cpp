// StoreWriter on a full disk: what a failed write leaves is cut back to complete records and
// counted as it is on disk; live (StoreOptions::evict_when_full), the oldest segments are
// deleted to make room, or the writer reports the problem and tries again every second.
#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <sys/statvfs.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <utility>

#include "store/layout.h"
#include "store/recovery.h"
#include "store/store_writer.h"
#include "util/file_io.h"
#include "util/pcap.h"
#include "util/units.h"

namespace fs = std::filesystem;

namespace tmach::store {
namespace {

// A segment's pcap left without its sidecar, as a disk ring lists it (its size, and its first
// packet's time from its name).
DiskRing::File unsealed_file(const std::string& base) {
  std::error_code ec;
  const uint64_t bytes = fs::file_size(base + ".pcap", ec);
  const auto name = parse_segment_name(fs::path(base).filename().string());
  return DiskRing::File{base, ec ? 0 : bytes, name ? name->first_ns : 0, 0};
}

}  // namespace

void StoreWriter::set_problem(const std::string& what) {
  std::lock_guard lk(error_mu_);
  problem_ = what;
}

SegmentWriter::Cut StoreWriter::cut_segment(uint16_t cls, SegmentWriter& w) {
  if (w.closed()) return {};
  uint64_t appended = w.packets();
  SegmentWriter::Cut c = w.cut_to_complete();
  state_[cls].closed_packets += c.packets;
  state_[cls].closed_bytes += c.record_bytes;
  stats_[cls]->lost_packets += appended - c.packets;
  return c;
}

void StoreWriter::last_seal_failed(uint16_t cls, SegmentWriter& w, const std::string& why, bool in_doubt) {
  write_errors_.fetch_add(1, std::memory_order_relaxed);
  // seal() flushes and syncs the file before it writes the sidecar: usually every packet is
  // in it. If that flush failed, the file is cut back to its complete records.
  const uint64_t appended = w.packets();
  const uint64_t appended_bytes = w.file_bytes() - sizeof(util::pcap::FileHeader);
  SegmentWriter::Cut c = cut_segment(cls, w);
  ClassWriteStats& s = *stats_[cls];
  s.written_packets -= std::min<uint64_t>(s.written_packets, appended - c.packets);
  s.written_bytes -=
      std::min<uint64_t>(s.written_bytes, appended_bytes - std::min(appended_bytes, c.record_bytes));
  std::error_code ec;
  const std::string what = fmt::format("the last segment {}.pcap was not sealed ({})", w.base(), why);
  if (fs::file_size(w.base() + ".pcap", ec) <= sizeof(util::pcap::FileHeader) && !ec) {
    fs::remove(w.base() + ".pcap", ec);  // not one packet in it
    s.segments--;
    spdlog::error("store: {} and, holding no complete packet, is removed", what);
  } else {
    add_unsealed(cls, w.base());
    s.segments_unsealed++;
    said_unsealed(what, fmt::format("its {} packets", c.packets));
  }
  // Packets its flush could not write are lost, and after a failed sync none is known to be on
  // the disk: the writer has failed (as after any failed write), so that no input is logged as
  // imported in whole (imports.jsonl). (It then returns from finish() before the budgets and
  // the verified list: the next start does both.)
  if (c.packets < appended)
    set_error(fmt::format("{}: {} of its packets were not written", what, appended - c.packets));
  else if (in_doubt)
    set_error(fmt::format("{}: its packets may not be on the disk", what));
  std::lock_guard lk(error_mu_);
  if (unsealed_why_.empty()) unsealed_why_ = what;
}

void StoreWriter::said_unsealed(const std::string& what, const std::string& packets) {
  spdlog::error(
      "store: {}: {} are stored but not indexed; queries scan it, and the next tm record or tm serve on this "
      "store indexes it",
      what, packets);
  std::lock_guard lk(error_mu_);
  if (unsealed_why_.empty()) unsealed_why_ = what;
}

std::vector<std::pair<uint16_t, std::unique_ptr<SegmentWriter>>> StoreWriter::cut_open_segments() {
  std::vector<std::pair<uint16_t, std::unique_ptr<SegmentWriter>>> cut;
  for (size_t c = 0; c < state_.size(); ++c) {
    const auto cls = static_cast<uint16_t>(c);
    ClassState& st = state_[c];
    for (auto& [lt, w] : st.open) {
      cut_segment(cls, *w);
      cut.emplace_back(cls, std::move(w));
    }
    st.open.clear();
    for (uint16_t p = 0; p < opts_.producers; ++p)
      rings_[ring_of(p, cls)]->release();  // the frames taken for the failed write are gone
    stats_[c]->written_packets = st.closed_packets;
    stats_[c]->written_bytes = st.closed_bytes;
    update_disk_stat(cls);
  }
  return cut;
}

void StoreWriter::add_unsealed(uint16_t cls, const std::string& base) {
  state_[cls].sealed.add(unsealed_file(base));
  update_disk_stat(cls);
}

void StoreWriter::keep_cut(std::vector<std::pair<uint16_t, std::unique_ptr<SegmentWriter>>> cut) {
  for (auto& [cls, w] : cut) {
    std::error_code ec;
    if (fs::file_size(w->base() + ".pcap", ec) <= sizeof(util::pcap::FileHeader) && !ec) {
      fs::remove(w->base() + ".pcap", ec);  // not one packet in it
      stats_[cls]->segments--;
    } else {
      add_unsealed(cls, w->base());
      stats_[cls]->segments_unsealed++;  // (at the end of the run: nothing seals it before the next start)
    }
  }
}

bool StoreWriter::room_to_write() const {
  struct statvfs v;
  if (::statvfs(opts_.dir.c_str(), &v) != 0) return true;  // (the next write tells)
  uint64_t free = static_cast<uint64_t>(v.f_bavail) * v.f_frsize;
  uint64_t total = static_cast<uint64_t>(v.f_blocks) * v.f_frsize;
  uint64_t seg = 0;
  for (auto& st : state_) seg = std::max(seg, st.segment_size);
  // Room for the segment being written and those being sealed, with their sidecars; or half
  // of a small file system.
  return free >= std::min((Sealer::kMaxInFlight + 1) * (seg + seg / 8), total / 2);
}

namespace {

// What make_room logs after the failed write `what` (errno `err`): a full disk (ENOSPC, and
// EDQUOT, a quota's) is what deleting segments is for; any other error is said to be none,
// by its name, with what became of the segments.
bool full_disk(int err) { return err == ENOSPC || err == EDQUOT; }

std::string write_failure_line(const std::string& what, int err, size_t evicted) {
  if (full_disk(err)) return fmt::format("{}; {} oldest segment(s) deleted to make room", what, evicted);
  std::string line = what;
  if (err != 0) {
    const char* name = strerrorname_np(err);
    line += fmt::format(" ({}: a write error, not a full disk)", name ? name : std::to_string(err));
  }
  line += "; the open segments are kept up to their last complete packet";
  if (evicted)
    line += fmt::format(", and {} oldest segment(s) deleted: the disk is short of room too", evicted);
  return line;
}

}  // namespace

size_t StoreWriter::evict_for_room(bool at_least_one) {
  // The oldest segments of any class go first, until there is room; made durable once for the
  // batch.
  size_t n = 0;
  while (((at_least_one && n == 0) || !room_to_write()) && evict_oldest()) ++n;
  make_evictions_durable();
  return n;
}

bool StoreWriter::evict_oldest(std::vector<size_t>* older) {
  int oldest = -1;
  for (size_t c = 0; c < state_.size(); ++c) {
    const DiskRing& r = state_[c].sealed;
    if (older && (*older)[c] == 0) continue;
    if (!r.empty() &&
        (oldest < 0 || r.oldest().first_ts < state_[static_cast<size_t>(oldest)].sealed.oldest().first_ts))
      oldest = static_cast<int>(c);
  }
  if (oldest < 0) return false;
  if (older) --(*older)[static_cast<size_t>(oldest)];
  evicted(static_cast<uint16_t>(oldest), state_[static_cast<size_t>(oldest)].sealed.evict_oldest());
  return true;
}

void StoreWriter::make_evictions_durable() noexcept {
  for (auto& st : state_) make_evictions_durable(st.sealed);
}

void StoreWriter::make_evictions_durable(DiskRing& ring) noexcept {
  // A failure is a warning: the segments are deleted all the same, and this runs in run()'s
  // error handler, which must not throw.
  try {
    ring.make_evictions_durable();
  } catch (const std::exception& e) {
    spdlog::warn("writer: {}: the deleted segments may come back after a power cut", e.what());
  }
}

bool StoreWriter::last_seal_deferred(uint16_t cls, SegmentWriter& w, const std::exception& e) {
  const int err = util::error_number_of(e);
  if (!opts_.evict_when_full || !full_disk(err) || dynamic_cast<const util::SyncError*>(&e) ||
      !w.all_written())
    return false;
  write_errors_.fetch_add(1, std::memory_order_relaxed);
  spdlog::warn(
      "writer: the last segment {}.pcap was not sealed ({}); it is sealed again once the oldest "
      "segments are deleted to make room",
      w.base(), e.what());
  note_closed(cls, w);
  unsealed_.emplace_back(cls, w.base());
  return true;
}

bool StoreWriter::room_made_for(const std::exception& e) {
  const int err = util::error_number_of(e);
  // A failed fdatasync is not tried again: the kernel reports a write-back error once, and a
  // second fdatasync would succeed with the pages still unwritten (make_room() cuts back).
  if (!full_disk(err) || dynamic_cast<const util::SyncError*>(&e)) return false;
  // A seal that failed for want of room that deletions have made since: it is sealed again
  // (reseal_unsealed) without deleting more.
  if (dynamic_cast<const SealFailed*>(&e) && room_to_write()) return true;
  size_t n = evict_for_room(/*at_least_one=*/true);
  if (n == 0 && sealer_.running()) {
    // The segments on the disk may all be with the sealer still: once sealed, the oldest of
    // them can go.
    collect_every_seal();
    n = evict_for_room(/*at_least_one=*/true);
  }
  if (n == 0 && !unsealed_.empty()) {
    // Then seals that failed for want of room (the write that failed took it): their pcaps
    // are whole, and the oldest packets here. As many as make room are deleted, oldest
    // first; the others stay in unsealed_, to be sealed again.
    DiskRing pcaps({".idx.tmp", ".pcap"});  // (a failed seal's leftover first)
    for (const auto& [cls, base] : unsealed_) pcaps.add(unsealed_file(base));
    do {
      evicted(unsealed_[n].first, pcaps.evict_oldest());
    } while (++n < unsealed_.size() && !room_to_write());
    make_evictions_durable(pcaps);
    unsealed_.erase(unsealed_.begin(), unsealed_.begin() + static_cast<std::ptrdiff_t>(n));
  }
  if (n == 0) return false;  // nothing left to delete
  spdlog::warn("writer: {}", write_failure_line(e.what(), err, n));
  return true;
}

void StoreWriter::write_out_making_room() {
  for (;;) {
    try {
      for (size_t c = 0; c < classes_.size(); ++c) drain(static_cast<uint16_t>(c), SIZE_MAX);
      for (auto& st : state_)
        for (auto& [lt, w] : st.open) w->flush();
      return;
    } catch (const std::exception& e) {
      if (!room_made_for(e)) throw;
      write_errors_.fetch_add(1, std::memory_order_relaxed);
    }
  }
}

bool StoreWriter::make_room(const std::string& what, int err) {
  auto cut = cut_open_segments();
  const size_t evicted_now = evict_for_room(/*at_least_one=*/false);
  // What was cut is sealed from its file (as a crash leftover is), or stays a plain pcap that
  // queries scan and the next start seals; either way it may be deleted for room later.
  for (auto& [cls, w] : cut) unsealed_.emplace_back(cls, w->base());
  reseal_unsealed();
  bool room = room_to_write();
  if (!what.empty())
    spdlog::log(full_disk(err) ? spdlog::level::warn : spdlog::level::err, "writer: {}",
                write_failure_line(what, err, evicted_now));
  std::string before;  // the lack of room reported so far
  {
    std::lock_guard lk(error_mu_);
    before = problem_;
  }
  const bool was = !before.empty();
  if (room) {
    if (was) spdlog::warn("writer: room on disk again, writing");
    set_problem("");
  } else {
    std::string p = what.empty() ? before : fmt::format("{} (nothing left to delete)", what);
    if (!was)
      spdlog::error("writer: {}; packets are dropped until there is room again (retrying every second)", p);
    set_problem(p);
  }
  return room;
}

void StoreWriter::write_failed(const std::string& what, int err, bool flows) {
  if (full_disk(err)) {
    waiting_for_room_ = !make_room(what, err);
    return;
  }
  if (flows) {
    // The flow writer keeps the records it could not write for its next turn: the packets'
    // segments are not cut for it, and it is tried again a second later.
    if (!flows_failing_)
      spdlog::error("writer: flow records: {}; they are kept and tried again every second", what);
    flows_failing_ = true;
    flows_retry_at_ = std::chrono::steady_clock::now() + std::chrono::seconds(1);
    return;
  }
  write_retry_at_ = std::chrono::steady_clock::now() + std::chrono::seconds(1);
  const bool first = failing_writes_++ == 0;
  waiting_for_room_ = !make_room(first ? what : "", err);  // (it logs the first failure)
  if (first) return;
  if (failing_writes_ == 2)
    spdlog::error(
        "writer: writes keep failing ({}); packets are dropped until one succeeds (tried again every "
        "second)",
        what);
  std::lock_guard lk(error_mu_);
  write_problem_ = what;
}

void StoreWriter::writing_again() {
  if (failing_writes_ > 1) spdlog::warn("writer: writing again, after {} failed attempts", failing_writes_);
  failing_writes_ = 0;
  {
    std::lock_guard lk(error_mu_);
    write_problem_.clear();
  }
  retry_unsealed_until_writing();
}

void StoreWriter::retry_unsealed_until_writing() {
  if (unsealed_until_writing_.empty()) return;
  for (auto& u : std::exchange(unsealed_until_writing_, {})) unsealed_.push_back(std::move(u));
  for (auto& [base, why] : reseal_unsealed())
    spdlog::warn(
        "writer: the segment {}.pcap, cut when writes began failing, was not sealed ({}); the next start "
        "seals it",
        base, why);
}

std::vector<std::pair<std::string, std::string>> StoreWriter::reseal_unsealed(bool keep_full_disk) {
  std::vector<std::pair<std::string, std::string>> failed;
  std::vector<std::pair<uint16_t, std::string>> kept;
  for (auto& [cls, base] : std::exchange(unsealed_, {})) {
    SegmentInfo seg;
    seg.cls = classes_[cls].name;
    seg.base = base;
    auto name = parse_segment_name(fs::path(base).filename().string());
    seg.meta.seq = name ? name->seq : 0;
    seg.meta.linktype = name ? name->linktype : 0;
    seg.state = SegmentInfo::State::kOpen;
    std::error_code ec;
    try {
      RecoveryResult r = recover_segment(seg, opts_.directory_every, opts_.directory_bytes);
      if (r.not_pcap) {  // not one whole file header: ours, written just now
        fs::remove(seg.pcap_path(), ec);
        fs::remove(seg.idx_path(), ec);
      }
      if (r.removed_empty || r.not_pcap) {
        stats_[cls]->segments--;
        continue;
      }
      if (!r.damaged.empty()) {  // left as it is, unsealed (recovery.h): queries scan it up to there
        spdlog::warn("writer: {}", r.damaged);
        add_unsealed(cls, seg.base);
        stats_[cls]->segments_unsealed++;
        continue;
      }
      state_[cls].sealed.add(DiskRing::File{seg.base, seg.disk_bytes(), seg.meta.first_ts, seg.meta.last_ts});
      dir_.verified().add(seg.idx_path());
      stats_[cls]->segments_sealed++;
      stats_[cls]->sidecar_bytes += seg.idx_bytes;
      update_disk_stat(cls);
    } catch (const std::exception& e) {  // (no room for its sidecar yet)
      fs::remove(seg.idx_path() + ".tmp", ec);
      if (keep_full_disk && full_disk(util::error_number_of(e))) {
        kept.emplace_back(cls, base);
        continue;
      }
      if (!finished_ && failing_writes_ > 0 && !full_disk(util::error_number_of(e))) {
        unsealed_until_writing_.emplace_back(cls, base);  // (writes are failing: tried again when they pass)
        continue;
      }
      // Not tried again in this run: it stays without a sidecar until the next start (or its
      // eviction), and is counted now, while the recording goes on (stats, /metrics).
      add_unsealed(cls, seg.base);
      stats_[cls]->segments_unsealed++;
      failed.emplace_back(seg.base, e.what());
    }
  }
  unsealed_ = std::move(kept);
  return failed;
}

}  // namespace tmach::store
