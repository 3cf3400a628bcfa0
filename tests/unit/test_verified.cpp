// The store's VERIFIED file (store/verified.h): which sidecars are known sound, rewritten only
// when that changes.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <thread>

#include "store/verified.h"
#include "temp_dir.h"

using tmach::store::kVerifiedFile;
using tmach::store::VerifiedSidecars;
namespace fs = std::filesystem;

namespace {

void write_file(const fs::path& p, const std::string& text) { std::ofstream(p) << text; }

// The file's modification time in ns, or 0 when it is missing.
uint64_t mtime_ns(const fs::path& p) {
  struct stat st;
  if (::stat(p.c_str(), &st) != 0) return 0;
  return static_cast<uint64_t>(st.st_mtim.tv_sec) * 1000000000ull + static_cast<uint64_t>(st.st_mtim.tv_nsec);
}

// Sets the file's modification time `ago` before now.
void age(const fs::path& p, std::chrono::seconds ago) {
  fs::last_write_time(p, fs::file_time_type::clock::now() - ago);
}

struct Verified : ::testing::Test {
  TempDir dir;
  fs::path idx = dir.p / "a.idx", file = dir.p / kVerifiedFile;
  void SetUp() override {
    write_file(idx, "sidecar");
    age(idx, std::chrono::seconds(60));  // older than any VERIFIED written below
  }
  // A run that wrote (or checked) the sidecar and recorded it.
  void record_sound() {
    VerifiedSidecars v;
    v.load(dir.p.string());
    v.add(idx.string());
    v.save();
  }
};

}  // namespace

TEST_F(Verified, ANewStoreWithNothingToRecordWritesNoFile) {
  VerifiedSidecars v;
  v.load(dir.p.string());
  v.save();
  EXPECT_FALSE(fs::exists(file));
}

TEST_F(Verified, AStartThatFindsEverySidecarKnownDoesNotRewriteIt) {
  record_sound();
  ASSERT_TRUE(fs::exists(file));
  age(file, std::chrono::seconds(10));
  const uint64_t before = mtime_ns(file);
  VerifiedSidecars v;
  v.load(dir.p.string());
  ASSERT_TRUE(v.known(idx.string()));
  v.add(idx.string());  // what adopting the store does for every sound sidecar
  v.save();
  EXPECT_EQ(mtime_ns(file), before);
}

TEST_F(Verified, ARacySidecarIsWrittenAgainSoTheNextStartTrustsIt) {
  record_sound();
  // The file written in the same clock tick as the sidecar: its stamp is not trusted.
  age(file, std::chrono::seconds(120));
  {
    VerifiedSidecars v;
    v.load(dir.p.string());
    ASSERT_FALSE(v.known(idx.string()));
    v.add(idx.string());  // checked whole, found sound
    v.save();
  }
  VerifiedSidecars v;
  v.load(dir.p.string());
  EXPECT_TRUE(v.known(idx.string()));
}

TEST_F(Verified, ForgettingASidecarRewritesTheFile) {
  record_sound();
  age(file, std::chrono::seconds(10));
  {
    VerifiedSidecars v;
    v.load(dir.p.string());
    v.forget(idx.string());
    v.save();
  }
  VerifiedSidecars v;
  v.load(dir.p.string());
  EXPECT_FALSE(v.known(idx.string()));
  EXPECT_EQ(v.size(), 0u);
}

TEST_F(Verified, AChangedSidecarIsNotKnown) {
  record_sound();
  write_file(idx, "sidecar, rewritten");
  age(idx, std::chrono::seconds(60));
  VerifiedSidecars v;
  v.load(dir.p.string());
  EXPECT_FALSE(v.known(idx.string()));
}
