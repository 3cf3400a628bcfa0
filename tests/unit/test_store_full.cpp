// The store writer on a full disk, live (StoreOptions::evict_when_full): it deletes the
// oldest segments to make room, or reports the problem and tries again. Each test mounts a
// small tmpfs (root only; skipped otherwise).
#include <gtest/gtest.h>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>
#include <thread>
#include <vector>

#include "store/catalog.h"
#include "store/layout.h"
#include "store/store_writer.h"
#include "temp_dir.h"
#include "util/file_io.h"
#include "within.h"

using namespace tmach;
namespace fs = std::filesystem;

namespace {

struct Tmpfs {
  TempDir d;
  bool ok = false;
  explicit Tmpfs(const char* size) {
    if (geteuid() != 0) return;
    ok = ::mount("tmpfs", d.p.c_str(), "tmpfs", 0, (std::string("size=") + size).c_str()) == 0;
  }
  ~Tmpfs() {
    if (ok) ::umount2(d.p.c_str(), MNT_DETACH);
  }
};

store::StoreOptions live_options(const fs::path& dir) {
  store::StoreOptions o;
  o.dir = dir.string();
  o.segment_size = 512 << 10;
  o.evict_when_full = true;
  o.classes.push_back(store::ClassOptions{"default", 4 << 20, UINT64_MAX});
  return o;
}

// Pushes `n` frames of 1000 bytes (waiting while the ring is full, as file input does).
void push(store::StoreWriter& w, uint64_t& ts, int n) {
  std::vector<uint8_t> frame(1000, 0x42);
  for (int i = 0; i < n; ++i, ts += 1000)
    while (!w.push(0, ts, 1, 1000, frame.data(), 1000, nullptr))
      std::this_thread::sleep_for(std::chrono::microseconds(50));
}

// What spdlog logs while it lives (the default logger's output).
struct LogCapture {
  std::ostringstream text;
  std::shared_ptr<spdlog::logger> before = spdlog::default_logger();
  LogCapture() {
    spdlog::set_default_logger(
        std::make_shared<spdlog::logger>("test", std::make_shared<spdlog::sinks::ostream_sink_mt>(text)));
  }
  ~LogCapture() { spdlog::set_default_logger(before); }
  std::string str() const { return text.str(); }
};

// A file size limit (RLIMIT_FSIZE) while it lives: a write past it fails with EFBIG ("File too
// large"), SIGXFSZ ignored: a write error that is no full disk, without a seam.
struct FileSizeLimit {
  rlimit old{};
  void (*old_handler)(int) = nullptr;
  explicit FileSizeLimit(rlim_t bytes) {
    getrlimit(RLIMIT_FSIZE, &old);
    old_handler = std::signal(SIGXFSZ, SIG_IGN);
    rlimit lim{bytes, old.rlim_max};
    setrlimit(RLIMIT_FSIZE, &lim);
  }
  ~FileSizeLimit() {
    setrlimit(RLIMIT_FSIZE, &old);
    std::signal(SIGXFSZ, old_handler);
  }
};

// Every line of `log` that says a write failed for lack of room says what the writer did about
// it (deleted segments, or had nothing left to delete): the wording of a full disk.
void expect_full_disk_wording(const std::string& log) {
  std::istringstream in(log);
  int lines = 0;
  for (std::string line; std::getline(in, line);) {
    if (line.find("writer: ") == std::string::npos ||
        line.find("No space left on device") == std::string::npos)
      continue;
    ++lines;
    EXPECT_TRUE(line.find("to make room") != std::string::npos ||
                line.find("(nothing left to delete)") != std::string::npos)
        << line;
    EXPECT_EQ(line.find("not a full disk"), std::string::npos) << line;
  }
  EXPECT_GT(lines, 0) << log;
}

}  // namespace

// Live, a failed write that is no full disk is named as what it is (its file and error), not
// as a lack of room; a full disk keeps its wording (LiveWriterDeletesOldestSegmentsToMakeRoom).
TEST(StoreFull, AWriteErrorThatIsNoFullDiskIsNamedAsItIs) {
  TempDir d;
  store::StoreWriter w(live_options(d.p / "store"));  // (512 KiB segments)
  LogCapture log;
  {
    FileSizeLimit limit(256 << 10);
    w.start();
    uint64_t ts = 1'000'000'000;
    push(w, ts, 400);  // 400 KB: the first segment's write passes 256 KiB
    ASSERT_TRUE(within(std::chrono::milliseconds(5000), [&] { return w.write_errors() > 0; }));
    ASSERT_TRUE(w.sync(std::chrono::milliseconds(5000)));
  }
  w.finish();
  const std::string text = log.str();
  EXPECT_NE(text.find(".pcap failed: File too large (EFBIG: a write error, not a full disk)"),
            std::string::npos)
      << text;
  EXPECT_EQ(text.find("to make room"), std::string::npos) << text;
  EXPECT_EQ(w.problem(), "");  // room on the disk: nothing to report as a lack of it
}

// Live, writes that keep failing other than for room (here EFBIG: no file may grow at all; a
// file system gone read-only is the same to the writer) are a problem reported as a full disk
// with nothing to delete is (health, metrics), logged once rather than at every attempt, and
// tried again every second until a write succeeds.
TEST(StoreFull, WritesThatKeepFailingAreReportedOnceAndTriedAgain) {
  TempDir d;
  store::StoreWriter w(live_options(d.p / "store"));
  LogCapture log;
  w.start();
  uint64_t ts = 1'000'000'000;
  {
    FileSizeLimit limit(0);
    ASSERT_TRUE(within(std::chrono::milliseconds(3000), [&] {
      push(w, ts, 10);  // (packets keep coming: a failed write's are gone, cut back)
      return !w.problem().empty();
    })) << log.str();
    EXPECT_NE(w.problem().find("File too large"), std::string::npos) << w.problem();
    EXPECT_FALSE(w.failed());  // still running, still trying
    // Packets keep coming for 2.5 s: a few more attempts, no more lines.
    const uint64_t errors = w.write_errors();
    for (int i = 0; i < 25; ++i) {
      push(w, ts, 20);
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    EXPECT_GE(w.write_errors(), errors + 2);  // tried again, about once a second
    EXPECT_LE(w.write_errors(), errors + 4);
    EXPECT_FALSE(w.problem().empty());
  }
  const uint64_t written = w.stats(0).written_packets.load();
  push(w, ts, 100);
  ASSERT_TRUE(within(std::chrono::milliseconds(3000), [&] { return w.problem().empty(); })) << log.str();
  ASSERT_TRUE(w.sync(std::chrono::milliseconds(3000)));
  EXPECT_GE(w.stats(0).written_packets.load(), written + 100);
  w.finish();
  EXPECT_FALSE(w.failed()) << w.error();
  const std::string text = log.str();
  size_t lines = 0;
  for (size_t at = 0; (at = text.find("File too large", at)) != std::string::npos; ++at) ++lines;
  EXPECT_LE(lines, 3u) << text;  // the first failure, the second saying they keep failing
  EXPECT_NE(text.find("writes keep failing"), std::string::npos) << text;
  EXPECT_NE(text.find("writing again"), std::string::npos) << text;
}

// The segment open when writes began failing is cut back and sealed from its file; when that
// seal fails too (writes are failing), it is sealed once a write succeeds again. It stayed
// without a sidecar until the next start, every query scanning it (hostile-environment tester).
TEST(StoreFull, TheSegmentCutWhenWritesBeganFailingIsSealedOnceTheyPass) {
  TempDir d;
  store::StoreWriter w(live_options(d.p / "store"));  // (512 KiB segments)
  LogCapture log;
  w.start();
  uint64_t ts = 1'000'000'000;
  push(w, ts, 100);  // 100 KB in the open segment, on disk
  ASSERT_TRUE(w.sync(std::chrono::milliseconds(3000)));
  {
    FileSizeLimit limit(0);  // no file may grow: the segment's next write and its sidecar fail
    ASSERT_TRUE(within(std::chrono::milliseconds(3000), [&] {
      push(w, ts, 10);
      return !w.problem().empty();
    })) << log.str();
  }
  push(w, ts, 100);
  ASSERT_TRUE(within(std::chrono::milliseconds(3000), [&] { return w.problem().empty(); })) << log.str();
  ASSERT_TRUE(w.sync(std::chrono::milliseconds(3000)));
  // The first segment (the one cut) is sealed, while the writer runs: its sidecar is there.
  std::vector<fs::path> pcaps;
  for (auto& e : fs::directory_iterator(d.p / "store" / "default"))
    if (e.path().extension() == ".pcap") pcaps.push_back(e.path());
  std::sort(pcaps.begin(), pcaps.end());
  ASSERT_GE(pcaps.size(), 2u);
  EXPECT_TRUE(fs::exists(fs::path(pcaps[0]).replace_extension(".idx"))) << pcaps[0] << "\n" << log.str();
  EXPECT_EQ(w.stats(0).segments_unsealed.load(), 0u);
  w.finish();
  EXPECT_FALSE(w.failed()) << w.error();
}

// The flow records' writer runs on the writer thread's tick: when its writes fail (other than
// for room) the packets' are untouched, neither cut nor held, and it is said once.
TEST(StoreFull, FlowRecordsThatCannotBeWrittenDoNotHoldThePackets) {
  TempDir d;
  store::StoreWriter w(live_options(d.p / "store"));
  std::atomic<int> ticks{0};
  w.set_tick([&](uint64_t) {
    ++ticks;
    throw util::IoError("cannot create flows/x.flows: Read-only file system", EROFS);
  });
  LogCapture log;
  w.start();
  uint64_t ts = 1'000'000'000;
  for (int i = 0; i < 20; ++i) {
    push(w, ts, 50);
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ASSERT_TRUE(w.sync(std::chrono::milliseconds(3000)));
  EXPECT_EQ(w.stats(0).written_packets.load(), 1000u);
  EXPECT_EQ(w.stats(0).lost_packets.load(), 0u);
  EXPECT_EQ(w.problem(), "");
  EXPECT_GE(ticks.load(), 2);  // tried again, about once a second over 2 s
  EXPECT_LE(ticks.load(), 4);
  w.finish();
  EXPECT_FALSE(w.failed()) << w.error();
  const std::string text = log.str();
  size_t lines = 0;
  for (size_t at = 0; (at = text.find("Read-only file system", at)) != std::string::npos; ++at) ++lines;
  EXPECT_EQ(lines, 1u) << text;
}

TEST(StoreFull, LiveWriterDeletesOldestSegmentsToMakeRoom) {
  Tmpfs t("6m");
  if (!t.ok) GTEST_SKIP() << "mounting a tmpfs needs root";
  store::StoreWriter w(live_options(t.d.p / "store"));
  LogCapture log;
  w.start();
  uint64_t ts = 1'000'000'000;
  push(w, ts, 30000);  // 30 MB through a 6 MB file system
  ASSERT_TRUE(w.sync(std::chrono::milliseconds(5000)));
  EXPECT_FALSE(w.failed()) << w.error();
  EXPECT_NE(log.str().find("No space left on device; "), std::string::npos) << log.str();
  expect_full_disk_wording(log.str());
  EXPECT_GT(w.write_errors(), 0u);
  EXPECT_GT(w.stats(0).segments_evicted.load(), 0u);
  EXPECT_EQ(w.problem(), "");
  w.finish();
  EXPECT_FALSE(w.failed()) << w.error();
  // What is left is whole: every segment sealed, the newest packets among them.
  store::Catalog cat = store::Catalog::scan((t.d.p / "store").string());
  ASSERT_FALSE(cat.segments.empty());
  uint64_t packets = 0;
  for (auto& s : cat.segments) {
    EXPECT_EQ(s.state, store::SegmentInfo::State::kSealed) << s.base << ": " << s.problem;
    packets += s.meta.packets;
  }
  EXPECT_GT(cat.segments.front().meta.first_ts, 1'000'000'000u);  // the oldest went
  EXPECT_GT(cat.segments.back().meta.last_ts, ts - 1000 * 1000);  // the newest stayed
  EXPECT_EQ(cat.foreign, std::vector<std::string>{});
  // Every packet written (then kept or evicted): a write that met the full disk was tried
  // again once the oldest segments were deleted, not cut back.
  EXPECT_EQ(w.stats(0).lost_packets.load(), 0u);
  EXPECT_EQ(w.stats(0).written_packets.load(), 30000u);
  EXPECT_LE(packets, 30000u);
}

TEST(StoreFull, LiveWriterWithNothingToDeleteReportsAndTriesAgain) {
  Tmpfs t("4m");
  if (!t.ok) GTEST_SKIP() << "mounting a tmpfs needs root";
  store::StoreWriter w(live_options(t.d.p / "store"));
  // Someone else's file fills the disk: nothing of the store's to delete.
  fs::path ballast = t.d.p / "ballast";
  {
    std::ofstream f(ballast, std::ios::binary);
    std::vector<char> mb(1 << 20, 'x');
    for (int i = 0; i < 8 && f; ++i) f.write(mb.data(), mb.size());
  }
  w.start();
  uint64_t ts = 1'000'000'000;
  push(w, ts, 200);
  ASSERT_TRUE(within(std::chrono::milliseconds(3000), [&] { return !w.problem().empty(); }));
  EXPECT_NE(w.problem().find("No space left"), std::string::npos) << w.problem();
  EXPECT_FALSE(w.failed());  // still running, still trying
  fs::remove(ballast);
  ASSERT_TRUE(within(std::chrono::milliseconds(3000), [&] { return w.problem().empty(); }));
  push(w, ts, 200);
  ASSERT_TRUE(w.sync(std::chrono::milliseconds(3000)));
  EXPECT_GE(w.stats(0).written_packets.load(), 200u);
  w.finish();
  EXPECT_FALSE(w.failed()) << w.error();
}

// A write that fails within a segment (its buffer flushed as a packet is appended, not at the
// seal): the packet being appended is counted once, lost or written, not both (it was
// counted lost with the segment cut back and then written again from the ring).
TEST(StoreFull, APacketWhoseWriteFailedIsCountedOnce) {
  Tmpfs t("6m");
  if (!t.ok) GTEST_SKIP() << "mounting a tmpfs needs root";
  store::StoreOptions o = live_options(t.d.p / "store");
  o.segment_size = 5 << 20;  // above the writer's 4 MiB buffer: flushed while appending
  store::StoreWriter w(o);
  LogCapture log;
  w.start();
  uint64_t ts = 1'000'000'000;
  push(w, ts, 30000);
  ASSERT_TRUE(w.sync(std::chrono::milliseconds(5000)));
  w.finish();
  EXPECT_FALSE(w.failed()) << w.error();
  EXPECT_GT(w.write_errors(), 0u);
  expect_full_disk_wording(log.str());
  EXPECT_EQ(w.stats(0).written_packets.load() + w.stats(0).lost_packets.load(), 30000u);
  EXPECT_EQ(w.stats(0).lost_packets.load(), 0u);  // (room was made: the write went on)
}

// The frames of the pcaps left in a class directory, in segment order: each frame's first 4
// bytes (its number, as last_write_on_a_full_disk pushes them) and its length.
std::vector<std::pair<uint32_t, uint32_t>> stored_frames(const fs::path& dir) {
  std::vector<fs::path> pcaps;
  for (auto& e : fs::directory_iterator(dir))
    if (e.path().extension() == ".pcap") pcaps.push_back(e.path());
  std::sort(pcaps.begin(), pcaps.end());  // (by sequence number: the names start with it)
  std::vector<std::pair<uint32_t, uint32_t>> out;
  for (auto& p : pcaps) {
    std::ifstream in(p, std::ios::binary);
    in.seekg(24);
    uint32_t h[4];
    while (in.read(reinterpret_cast<char*>(h), 16)) {
      std::vector<char> data(h[2]);
      if (!in.read(data.data(), h[2])) {
        ADD_FAILURE() << p << ": a record cut short";
        break;
      }
      uint32_t n = 0;
      std::memcpy(&n, data.data(), 4);
      out.emplace_back(n, h[2]);
    }
  }
  return out;
}

// Live, the last write (finish(): the rings drained, the open segments flushed) on a full
// disk deletes the oldest segments and writes on from where it stopped: every packet is
// stored, none lost. Deterministic: the writer thread is not started, so the run loop's
// periodic flush cannot meet the full disk first, and finish() writes everything. With
// `in_place` the frames carry their index keys, so the writer writes them from the ring by
// writev (mixed sizes: copied into its gather buffer below SegmentWriter::kCopyBelow, from
// the ring above), else it copies and decodes them.
void last_write_on_a_full_disk(bool in_place) {
  Tmpfs t("3m");
  if (!t.ok) GTEST_SKIP() << "mounting a tmpfs needs root";
  store::StoreOptions o = live_options(t.d.p / "store");
  o.segment_size = 1 << 20;
  store::StoreWriter w(o);
  LogCapture log;
  std::vector<uint8_t> frame(1000, 0x42);
  store::IndexKeys keys;
  keys.n_scalars = 1;
  keys.scalars[0] = 7;
  uint64_t ts = 1'000'000'000;
  uint32_t pushed = 0;
  auto size_of = [&](uint32_t i) { return in_place && i % 3 == 1 ? 100u : 1000u; };
  for (;; ts += 1000) {  // until the 4 MiB ring is full
    std::memcpy(frame.data(), &pushed, 4);
    if (!w.push(0, ts, 1, size_of(pushed), frame.data(), size_of(pushed), in_place ? &keys : nullptr)) break;
    ++pushed;
  }
  ASSERT_GT(uint64_t{pushed} * 1016, 3u << 20) << "more than the disk holds";
  w.finish();
  EXPECT_FALSE(w.failed()) << w.error();
  EXPECT_GT(w.write_errors(), 0u);
  EXPECT_GT(w.stats(0).segments_evicted.load(), 0u);
  EXPECT_EQ(w.stats(0).lost_packets.load(), 0u);
  EXPECT_EQ(w.stats(0).written_packets.load(), pushed);
  expect_full_disk_wording(log.str());
  // What is left is whole, sealed pcaps holding the newest frames, each once and in order, up
  // to the last one pushed.
  const auto frames = stored_frames(t.d.p / "store" / "default");
  ASSERT_FALSE(frames.empty());
  EXPECT_GT(frames.front().first, 0u);  // (the oldest went)
  for (size_t i = 0; i < frames.size(); ++i) {
    const uint32_t want = frames.front().first + static_cast<uint32_t>(i);
    ASSERT_EQ(frames[i].first, want) << "frame " << i;
    ASSERT_EQ(frames[i].second, size_of(want)) << "frame " << i;
  }
  EXPECT_EQ(frames.back().first, pushed - 1);
  store::Catalog cat = store::Catalog::scan((t.d.p / "store").string());
  uint64_t packets = 0;
  for (auto& s : cat.segments) {
    EXPECT_EQ(s.state, store::SegmentInfo::State::kSealed) << s.base << ": " << s.problem;
    packets += s.meta.packets;
  }
  EXPECT_EQ(packets, frames.size());
}

TEST(StoreFull, LiveLastWriteOnAFullDiskMakesRoomAndLosesNothing) { last_write_on_a_full_disk(false); }

TEST(StoreFull, LiveLastWriteInPlaceOnAFullDiskMakesRoomAndLosesNothing) { last_write_on_a_full_disk(true); }

// Fills the file system of `dir` with a file ("ballast") that leaves `room` bytes free (a
// multiple of its block size).
void leave_room(const fs::path& dir, uint64_t room) {
  struct statvfs v;
  ASSERT_EQ(::statvfs(dir.c_str(), &v), 0);
  const uint64_t free_bytes = uint64_t{v.f_bavail} * v.f_frsize;
  ASSERT_GT(free_bytes, room);
  std::ofstream ballast(dir / "ballast", std::ios::binary);
  std::vector<char> zeros(free_bytes - room);
  ballast.write(zeros.data(), static_cast<std::streamsize>(zeros.size()));
  ballast.close();
  ASSERT_TRUE(ballast.good());
}

// Live, the last segment's pcap fits on the disk at the stop and its sidecar does not: the
// oldest segment is deleted and the last one sealed from its file, not left unsealed (for
// queries to scan until the next start indexes it). One segment is deleted, not as many as
// recording on would need room for: a sidecar is small. With no older segment to delete, it
// is left unsealed and said to be (unsealed(): tm record exits 1), its packets stored.
// `older_frames` frames of 1000 bytes are recorded before, in 1 MiB segments.
void last_seal_on_a_full_disk(int older_frames, const char* disk) {
  Tmpfs t(disk);
  if (!t.ok) GTEST_SKIP() << "mounting a tmpfs needs root";
  store::StoreOptions o = live_options(t.d.p / "store");
  o.segment_size = 1 << 20;
  uint64_t ts = 1'000'000'000;
  std::vector<uint8_t> frame(1000, 0x42);
  const bool older_segment = older_frames > 0;
  size_t older = 0;  // segments recorded before
  if (older_segment) {
    store::StoreWriter first(o);  // sealed segments of ~1 MiB (and a small one) to delete later
    first.start();
    push(first, ts, older_frames);
    first.finish();
    ASSERT_FALSE(first.failed()) << first.error();
    older = store::Catalog::scan((t.d.p / "store").string()).segments.size();
  }
  store::StoreWriter w(o);
  LogCapture log;
  constexpr uint32_t kFrames = 400;
  for (uint32_t i = 0; i < kFrames; ++i, ts += 1000)
    ASSERT_TRUE(w.push(0, ts, 1, 1000, frame.data(), 1000, nullptr));
  // Room for the last segment's pcap, to the page, and not one page more.
  struct statvfs v;
  ASSERT_EQ(::statvfs(t.d.p.c_str(), &v), 0);
  const uint64_t page = v.f_frsize;
  const uint64_t pcap_room = (24 + kFrames * 1016 + page - 1) / page * page;
  leave_room(t.d.p, pcap_room);
  if (::testing::Test::HasFatalFailure()) return;
  ASSERT_EQ(::statvfs(t.d.p.c_str(), &v), 0);
  ASSERT_EQ(uint64_t{v.f_bavail} * page, pcap_room);
  w.finish();
  EXPECT_FALSE(w.failed()) << w.error();  // (its packets are stored)
  EXPECT_GT(w.write_errors(), 0u);
  EXPECT_NE(log.str().find("it is sealed again once the oldest segments are deleted"), std::string::npos)
      << log.str();
  EXPECT_EQ(w.stats(0).lost_packets.load(), 0u);
  EXPECT_EQ(w.stats(0).written_packets.load(), kFrames);
  store::Catalog cat = store::Catalog::scan((t.d.p / "store").string());
  ASSERT_FALSE(cat.segments.empty());
  const store::SegmentInfo& last = cat.segments.back();
  EXPECT_EQ(last.meta.first_ts, ts - kFrames * 1000);
  if (older_segment) {
    EXPECT_EQ(w.stats(0).segments_evicted.load(), 1u);
    EXPECT_EQ(cat.segments.size(), older);  // (one older deleted, the last one added)
    EXPECT_EQ(w.stats(0).segments_unsealed.load(), 0u);
    EXPECT_EQ(w.stats(0).segments_sealed.load(), 1u);
    EXPECT_EQ(w.unsealed(), "");
    for (auto& s : cat.segments)
      EXPECT_EQ(s.state, store::SegmentInfo::State::kSealed) << s.base << ": " << s.problem;
    EXPECT_EQ(last.meta.packets, kFrames);
    EXPECT_EQ(last.meta.last_ts, ts - 1000);
  } else {
    EXPECT_EQ(w.stats(0).segments_unsealed.load(), 1u);
    EXPECT_EQ(w.stats(0).segments_sealed.load(), 0u);
    EXPECT_NE(w.unsealed().find(".pcap was not sealed"), std::string::npos) << w.unsealed();
    EXPECT_NE(log.str().find("its packets are stored but not indexed"), std::string::npos) << log.str();
    EXPECT_EQ(last.state, store::SegmentInfo::State::kOpen);
    EXPECT_EQ(fs::file_size(last.pcap_path()), 24u + kFrames * 1016);
  }
}

TEST(StoreFull, LiveLastSealOnAFullDiskMakesRoomAndSeals) { last_seal_on_a_full_disk(1100, "4m"); }

TEST(StoreFull, LiveLastSealOnAFullDiskDeletesOneSegmentOfMany) { last_seal_on_a_full_disk(4200, "8m"); }

TEST(StoreFull, LiveLastSealOnAFullDiskWithNothingToDeleteIsSaid) { last_seal_on_a_full_disk(0, "4m"); }

// Live, two last segments (two link types) whose pcaps fit at the stop and whose sidecars do
// not; deleting the one older segment makes room for one sidecar only. One last segment is
// sealed, the other left unsealed and said to be: the one sealed is not deleted in turn to
// make room for the other's sidecar (only segments on the disk before the stop are), so no
// packet recorded is lost.
TEST(StoreFull, LiveLastSealsNeverDeleteALastSegmentForAnother) {
  Tmpfs t("4m");
  if (!t.ok) GTEST_SKIP() << "mounting a tmpfs needs root";
  store::StoreOptions o = live_options(t.d.p / "store");
  o.segment_size = 1 << 20;
  constexpr uint32_t kFrames = 400;
  // Ethernet, IPv4, UDP frames of 1000 bytes, each from an address of its own (a sidecar of a
  // few pages).
  auto frame = [](uint32_t i) {
    std::vector<uint8_t> f(1000, 0x42);
    const uint8_t hdr[] = {0,
                           1,
                           2,
                           3,
                           4,
                           5,
                           6,
                           7,
                           8,
                           9,
                           10,
                           11,
                           0x08,
                           0x00,  // Ethernet
                           0x45,
                           0,
                           0x03,
                           0xda,
                           0,
                           0,
                           0,
                           0,
                           64,
                           17,
                           0,
                           0,  // IPv4, 986 bytes
                           10,
                           1,
                           static_cast<uint8_t>(i >> 8),
                           static_cast<uint8_t>(i),
                           10,
                           0,
                           0,
                           1,
                           0x30,
                           0x39,
                           0x00,
                           0x35,
                           0x03,
                           0xc6,
                           0,
                           0};  // UDP 12345 -> 53
    std::memcpy(f.data(), hdr, sizeof(hdr));
    return f;
  };
  auto fill = [&](store::StoreWriter& w, uint64_t ts) {
    for (uint32_t i = 0; i < kFrames; ++i, ts += 1000) {
      const auto f = frame(i);
      ASSERT_TRUE(w.push(0, ts, 1, 1000, f.data(), 1000, nullptr));
      ASSERT_TRUE(w.push(0, ts + 1, 113, 1000, f.data(), 1000, nullptr));
    }
  };
  struct statvfs v;
  ASSERT_EQ(::statvfs(t.d.p.c_str(), &v), 0);
  const uint64_t page = v.f_frsize;
  auto pages = [&](uint64_t bytes) { return (bytes + page - 1) / page * page; };
  const uint64_t t0 = 1'000'000'000, t1 = 2'000'000'000;
  // The last sidecars' size, from the same recording on a roomy disk.
  uint64_t sidecar = 0;
  {
    TempDir roomy;
    store::StoreOptions ro = o;
    ro.dir = (roomy.p / "store").string();
    store::StoreWriter w(ro);
    fill(w, t1);
    w.finish();
    ASSERT_FALSE(w.failed()) << w.error();
    store::Catalog cat = store::Catalog::scan(ro.dir);
    ASSERT_EQ(cat.segments.size(), 2u);
    for (auto& s : cat.segments) sidecar = std::max<uint64_t>(sidecar, pages(fs::file_size(s.idx_path())));
  }
  // The older segment: a few frames, taking at least one last sidecar's room and less than two.
  {
    store::StoreWriter first(o);
    uint64_t ts = t0;
    for (uint32_t i = 0; i < 20; ++i, ts += 1000) {
      const auto f = frame(i);
      ASSERT_TRUE(first.push(0, ts, 1, 1000, f.data(), 1000, nullptr));
    }
    first.finish();
    ASSERT_FALSE(first.failed()) << first.error();
    store::Catalog cat = store::Catalog::scan(o.dir);
    ASSERT_EQ(cat.segments.size(), 1u);
    const uint64_t old =
        pages(fs::file_size(cat.segments[0].pcap_path())) + pages(fs::file_size(cat.segments[0].idx_path()));
    ASSERT_GE(old, sidecar) << "the test's premise: deleting the older segment makes room for one sidecar";
    ASSERT_LT(old, 2 * sidecar) << "the test's premise: and not for two";
  }
  store::StoreWriter w(o);
  LogCapture log;
  fill(w, t1);
  // Room for both pcaps, to the page, and no more.
  leave_room(t.d.p, 2 * pages(24 + kFrames * 1016));
  if (HasFatalFailure()) return;
  w.finish();
  EXPECT_EQ(w.stats(0).segments_evicted.load(), 1u) << log.str();  // the older one
  EXPECT_EQ(w.stats(0).lost_packets.load(), 0u);
  EXPECT_EQ(w.stats(0).written_packets.load(), 2 * kFrames);
  EXPECT_EQ(w.stats(0).segments_unsealed.load(), 1u);
  EXPECT_NE(w.unsealed().find(".pcap was not sealed"), std::string::npos) << w.unsealed();
  store::Catalog cat = store::Catalog::scan((t.d.p / "store").string());
  ASSERT_EQ(cat.segments.size(), 2u) << log.str();  // both last segments, one sealed
  for (auto& s : cat.segments) {
    EXPECT_GE(s.meta.first_ts, t1) << s.base;
    EXPECT_EQ(fs::file_size(s.pcap_path()), 24u + kFrames * 1016) << s.base;
  }
}

// A seal that fails on the sealer thread while a file is read (its sidecar cannot be created:
// a directory is in the way, no root needed) stops the writer, as any failed write; every
// segment left without a sidecar is counted in segments_unsealed, and what is on disk in
// written_packets (the seals still queued are given back, not dropped).
TEST(StoreFull, EverySegmentLeftUnsealedIsCounted) {
  TempDir d;
  store::StoreOptions o;
  o.dir = (d.p / "store").string();
  o.segment_size = 512 << 10;
  o.classes.push_back(store::ClassOptions{"default", 4 << 20, UINT64_MAX});
  store::StoreWriter w(o);
  const uint64_t first = 1'000'000'000;
  const std::string seg1 = (d.p / "store" / "default" / store::segment_base_name({1, first, 1})).string();
  fs::create_directories(seg1 + ".idx.tmp");  // its sidecar cannot be written
  w.start();
  std::vector<uint8_t> frame(1000, 0x42);
  uint64_t ts = first;
  for (int i = 0; i < 5000 && !w.failed(); ++i, ts += 1000)
    while (!w.push(0, ts, 1, 1000, frame.data(), 1000, nullptr) && !w.failed())
      std::this_thread::sleep_for(std::chrono::microseconds(50));
  w.finish();
  EXPECT_TRUE(w.failed());
  EXPECT_NE(w.error().find(".idx.tmp"), std::string::npos) << w.error();
  fs::remove(seg1 + ".idx.tmp");
  uint64_t unsealed = 0, on_disk = 0;
  for (auto& e : fs::directory_iterator(d.p / "store" / "default")) {
    if (e.path().extension() != ".pcap") continue;
    std::string base = e.path().string();
    base.resize(base.size() - 5);
    if (!fs::exists(base + ".idx")) ++unsealed;
    on_disk += (fs::file_size(e.path()) - 24) / (1000 + 16);
  }
  EXPECT_TRUE(fs::exists(seg1 + ".pcap"));
  EXPECT_GT(unsealed, 0u);
  EXPECT_EQ(w.stats(0).segments_unsealed.load(), unsealed);
  EXPECT_EQ(w.stats(0).written_packets.load(), on_disk);
}

// Live, a seal that failed is tried once more by make_room(); when that fails too the segment
// stays a plain pcap until the next start, and is counted in segments_unsealed then, while the
// recording goes on (the stats and /metrics show it), not at the end nor twice.
TEST(StoreFull, LiveASegmentLeftUnsealedIsCountedWhileRecording) {
  TempDir d;
  store::StoreWriter w(live_options(d.p / "store"));  // (512 KiB segments)
  const uint64_t first = 1'000'000'000;
  const std::string seg1 = (d.p / "store" / "default" / store::segment_base_name({1, first, 1})).string();
  // Its sidecar cannot be written, ever: a directory in its temporary file's place, not empty
  // (an empty one was removed by the first failure's clean-up, and the seal tried again once
  // writes passed then succeeded).
  fs::create_directories(seg1 + ".idx.tmp/x");
  w.start();
  uint64_t ts = first;
  push(w, ts, 1000);  // ~1 MB: the first segment is sealed
  // (Packets keep coming: once one is written, the seal is tried again, and fails for good.)
  ASSERT_TRUE(within(std::chrono::milliseconds(5000),
                     [&] {
                       push(w, ts, 10);
                       return w.stats(0).segments_unsealed.load() > 0;
                     }))
      << "segments_unsealed " << w.stats(0).segments_unsealed.load() << ", write errors " << w.write_errors();
  EXPECT_EQ(w.stats(0).segments_unsealed.load(), 1u);
  EXPECT_FALSE(w.failed()) << w.error();
  push(w, ts, 1000);
  w.finish();
  EXPECT_EQ(w.stats(0).segments_unsealed.load(), 1u);
  EXPECT_TRUE(fs::exists(seg1 + ".pcap"));
  EXPECT_FALSE(fs::exists(seg1 + ".idx"));
}
