#include "store/store_dir.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <optional>
#include <stdexcept>

#include "store/layout.h"
#include "store/recovery.h"
#include "store/sidecar.h"
#include "util/file_io.h"
#include "util/timespec.h"

namespace fs = std::filesystem;

namespace tmach::store {

std::string StoreDir::gone() const {
  struct stat held = {};
  struct stat now = {};
  if (dir_lock_fd_ < 0 || ::fstat(dir_lock_fd_, &held) != 0) return {};
  if (::stat(root_.c_str(), &now) != 0) {
    if (errno != ENOENT && errno != ENOTDIR) return {};  // (cannot tell: a later look may)
    return fmt::format("the store directory {} was {} while recording: nothing more can be stored in it",
                       root_, held.st_nlink == 0 ? "deleted" : "moved away");
  }
  if (now.st_dev != held.st_dev || now.st_ino != held.st_ino)
    return fmt::format(
        "the store directory {} was replaced by another while recording (moved away, or deleted "
        "and made again): nothing more can be stored in it",
        root_);
  return {};
}

namespace {

// Syncs the directories a quarantine move changed (`created`: it created `to_dir` under the
// store `root`); a failure is a warning naming `moved`, as the move itself happened.
void make_move_durable(const std::string& root, const fs::path& to_dir, const std::string& from_dir,
                       bool created, const std::string& moved) {
  // Without the syncs a power cut could bring the damaged files back into the class's
  // directory (or lose them, the quarantine's own entries not on disk yet).
  try {
    util::fsync_dir(to_dir.string());
    if (created) {  // quarantine/<class>/ is new, and perhaps quarantine/ with it
      util::fsync_dir(to_dir.parent_path().string());
      util::fsync_dir(root);
    }
    util::fsync_dir(from_dir);
  } catch (const std::exception& e) {  // (moved all the same: the caller reports where to)
    spdlog::warn("store: {} was moved, but the move may not survive a power cut: {}", moved, e.what());
  }
}

}  // namespace

StoreDir::StoreDir(std::string root) : root_(std::move(root)) {
  std::error_code ec;
  fs::create_directories(root_, ec);
  if (ec) throw std::runtime_error(fmt::format("cannot create store {}: {}", root_, ec.message()));
  // The directory itself is locked first: a LOCK file deleted by hand (a "stale lock" cleaned
  // up, a tmp cleaner) let a second recorder in, which took the first one's open segment for
  // a crash's and indexed it while it grew. LOCK stays for recorders of before this, and for
  // the pid it names.
  dir_lock_fd_ = ::open(root_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir_lock_fd_ < 0)
    throw std::runtime_error(fmt::format("store {}: cannot open it: {}", root_, std::strerror(errno)));
  if (flock(dir_lock_fd_, LOCK_EX | LOCK_NB) != 0) {
    const int err = errno;
    ::close(dir_lock_fd_);
    dir_lock_fd_ = -1;
    if (err == EWOULDBLOCK)
      throw std::runtime_error(
          fmt::format("store {} is in use by another recorder (the store directory is locked); tm query "
                      "can still read it",
                      root_));
    throw std::runtime_error(fmt::format("store {}: cannot lock it: {}", root_, std::strerror(err)));
  }
  // (Under the directory's lock: two recorders making one new store at once, the second
  // found the first one's files without their marker yet, and said "not empty and not a tm
  // store"; it now finds the directory locked and says the store is in use.)
  try {
    fs::path marker = fs::path(root_) / kStoreMarker;
    if (!fs::exists(marker)) {
      // Refuse to turn a directory with other content into a store: it would mix files.
      if (looks_like_store(root_)) throw std::runtime_error(missing_marker_hint(root_));
      for (const auto& e : fs::directory_iterator(root_)) {
        (void)e;
        throw std::runtime_error(
            fmt::format("{} is not empty and not a tm store (no {} file): refusing to write into it", root_,
                        kStoreMarker));
      }
      // Atomic, so that a crash (or a full disk) never leaves an empty marker behind.
      util::replace_file_atomic(marker.string(), store_marker_text());
    }
    check_store_marker(root_);
  } catch (...) {
    ::close(dir_lock_fd_);
    dir_lock_fd_ = -1;
    throw;
  }
  std::string lock = (fs::path(root_) / kLockFile).string();
  lock_fd_ = ::open(lock.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  // Only a lock held is another recorder; a lock that cannot be opened (a file system gone
  // read-only after disk errors, no permission, a directory of that name) says why.
  if (lock_fd_ < 0) {
    const int err = errno;
    ::close(dir_lock_fd_);
    dir_lock_fd_ = -1;
    throw std::runtime_error(
        fmt::format("store {}: cannot open its lock {} for writing: {}", root_, lock, std::strerror(err)));
  }
  if (flock(lock_fd_, LOCK_EX | LOCK_NB) != 0) {
    const int err = errno;
    ::close(lock_fd_);
    lock_fd_ = -1;
    ::close(dir_lock_fd_);
    dir_lock_fd_ = -1;
    if (err == EWOULDBLOCK)
      throw std::runtime_error(
          fmt::format("store {} is in use by another recorder (lock {} is held); tm query can still read it",
                      root_, lock));
    throw std::runtime_error(fmt::format("store {}: cannot lock {}: {}", root_, lock, std::strerror(err)));
  }
  if (ftruncate(lock_fd_, 0) == 0) {
    std::string pid = fmt::format("{}\n", getpid());
    if (::write(lock_fd_, pid.data(), pid.size()) < 0) {
    }
  }
}

StoreDir::~StoreDir() {
  if (lock_fd_ >= 0) ::close(lock_fd_);
  if (dir_lock_fd_ >= 0) ::close(dir_lock_fd_);
}

std::string StoreDir::class_dir(const std::string& cls) const {
  std::string dir = (fs::path(root_) / cls).string();
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) throw std::runtime_error(fmt::format("cannot create {}: {}", dir, ec.message()));
  return dir;
}

std::string StoreDir::quarantine(const SegmentInfo& seg) {
  fs::path dir = fs::path(root_) / kQuarantineDir / seg.cls;
  const bool created = fs::create_directories(dir);
  std::string moved;
  for (const std::string& from : {seg.pcap_path(), seg.idx_path()}) {
    if (!fs::exists(from)) continue;
    fs::path to = dir / fs::path(from).filename();
    for (int i = 1; fs::exists(to); ++i)
      to = dir / fmt::format("{}.{}", fs::path(from).filename().string(), i);
    fs::rename(from, to);  // (throws: the caller reports it and leaves the file)
    if (moved.empty()) moved = to.string();
  }
  if (!moved.empty()) make_move_durable(root_, dir, util::parent_dir(seg.pcap_path()), created, moved);
  return moved;
}

std::vector<SegmentInfo> StoreDir::adopt(uint32_t directory_every, uint64_t directory_bytes,
                                         AdoptReport& report) {
  Catalog cat = Catalog::scan(root_);
  report.foreign = cat.foreign;
  verified_.load(root_);
  std::vector<SegmentInfo> kept;
  for (auto& seg : cat.segments) {
    uint64_t& next = report.next_seq[seg.cls];
    next = std::max(next, seg.meta.seq + 1);
    // Damage past a sidecar's header: rebuilt below. Checked once, not at every start (it
    // reads the whole sidecar, ~5 % of the store's bytes).
    bool sound = true;
    if (seg.state == SegmentInfo::State::kSealed && !verified_.known(seg.idx_path())) {
      ++report.verified;
      report.verified_bytes += seg.idx_bytes;
      if (std::string p = check_sealed_sidecar(seg); !p.empty()) {
        report.problems.push_back(p);
        sound = false;  // left damaged: checked, and reported, again next time
      }
    }
    if (seg.state != SegmentInfo::State::kSealed) {
      try {
        std::string bad_sidecar = seg.state == SegmentInfo::State::kBadSidecar ? seg.problem : "";
        // What a refused sidecar still says it indexed (a pcap cut short since: packets lost).
        // Only a sidecar of this segment (its name's sequence number and link type) that
        // describes more bytes than the file has: not one of another segment, swapped in.
        std::optional<SegmentMeta> indexed;
        if (!bad_sidecar.empty()) try {
            SegmentMeta m = read_sidecar_meta(seg.idx_path());
            if (m.seq == seg.meta.seq && m.linktype == seg.meta.linktype && m.pcap_bytes > seg.pcap_bytes &&
                (m.packets == 0 || (seg.meta.first_ts >= m.first_ts && seg.meta.first_ts <= m.last_ts)))
              indexed = m;
          } catch (const std::exception&) {
          }
        RecoveryResult r = recover_segment(seg, directory_every, directory_bytes);
        if (r.not_pcap) {
          report.problems.push_back(
              fmt::format("{}: not a pcap file: moved to {} (its sequence number is not used again)",
                          seg.pcap_path(), quarantine(seg)));
          continue;
        }
        if (!r.damaged.empty()) {  // left as it is (and reported again at every start)
          if (!bad_sidecar.empty()) report.problems.push_back(bad_sidecar + " (not rebuilt: below)");
          report.problems.push_back(r.damaged);
          kept.push_back(std::move(seg));
          continue;
        }
        if (!bad_sidecar.empty() && indexed && indexed->packets > r.packets)
          report.problems.push_back(fmt::format(
              "{} (rebuilt: it indexed {} packets, {} to {}; the pcap holds {} now: {} packets are lost)",
              bad_sidecar, indexed->packets, util::format_time(indexed->first_ts),
              util::format_time(indexed->last_ts), r.packets, indexed->packets - r.packets));
        else if (!bad_sidecar.empty())
          report.problems.push_back(bad_sidecar + " (rebuilt)");
        report.truncated_bytes += r.truncated_bytes;
        ++report.recovered;
        if (r.removed_empty) continue;
      } catch (const std::exception& e) {
        report.problems.push_back(fmt::format("{}: cannot recover: {}", seg.pcap_path(), e.what()));
        continue;
      }
    } else {
      ++report.segments;
    }
    if (!sound)
      verified_.forget(seg.idx_path());
    else if (!verified_.known(seg.idx_path()))
      verified_.add(seg.idx_path());
    kept.push_back(std::move(seg));
  }
  // A sidecar whose pcap is missing indexes nothing: it is set aside (never deleted, and its
  // sequence number is not given again), saying what was lost.
  for (auto& seg : cat.missing) {
    uint64_t& next = report.next_seq[seg.cls];
    next = std::max(next, seg.meta.seq + 1);
    std::string lost = "its packets are lost";
    try {
      SegmentMeta m = read_sidecar_meta(seg.idx_path());
      lost = fmt::format("its {} packets, {} to {}, are lost", m.packets, util::format_time(m.first_ts),
                         util::format_time(m.last_ts));
    } catch (const std::exception&) {
    }
    try {
      report.problems.push_back(
          fmt::format("{} is missing ({}): its sidecar, which indexes nothing now, "
                      "is moved to {}",
                      seg.pcap_path(), lost, quarantine(seg)));
    } catch (const std::exception& e) {
      report.problems.push_back(fmt::format("{} is missing ({}): its sidecar {} is left as it is ({})",
                                            seg.pcap_path(), lost, seg.idx_path(), e.what()));
    }
  }
  save_verified();
  return kept;
}

void StoreDir::save_verified() {
  try {
    verified_.save();
  } catch (const std::exception& e) {  // (the previous file stays: it only ever claims less)
    spdlog::warn("store: cannot record which sidecars are sound: {}", e.what());
  }
}

}  // namespace tmach::store
