// max_age while recording: only sealed segments are deleted by age, so a quiet class's open
// segment, which might take months to fill, is sealed once its first packet is half max_age
// older than the recorder's clock (the newest packet written, of any class).
#include <gtest/gtest.h>

#include <chrono>
#include <functional>
#include <thread>
#include <vector>

#include "store/catalog.h"
#include "store/store_writer.h"
#include "temp_dir.h"
#include "util/timespec.h"
#include "within.h"

using namespace tmach;

namespace {

constexpr uint64_t kSecond = 1'000'000'000ull;

void push(store::StoreWriter& w, uint16_t cls, uint64_t ts) {
  std::vector<uint8_t> frame(100, 0x42);
  while (!w.push(cls, ts, 1, 100, frame.data(), 100, nullptr))
    std::this_thread::sleep_for(std::chrono::microseconds(50));
}

// A store of two classes: "busy" (class 0, no max_age) and "quiet" (class 1, `quiet_age`).
store::StoreOptions busy_and_quiet(const TempDir& d, uint64_t quiet_age) {
  store::StoreOptions o;
  o.dir = (d.p / "store").string();
  o.classes.push_back(store::ClassOptions{"busy", 4 << 20, UINT64_MAX, 0});
  o.classes.push_back(store::ClassOptions{"quiet", 4 << 20, UINT64_MAX, quiet_age});
  return o;
}

}  // namespace

TEST(StoreAge, APacketStampedInTheFutureAgesNothingAway) {
  // One packet a year ahead (a damaged record, a sensor's clock gone wrong) moved the clock a
  // year: the quiet class's packet of the present was sealed and deleted at once.
  TempDir d;
  const store::StoreOptions o = busy_and_quiet(d, 3600 * kSecond);
  store::StoreWriter w(o);
  w.start();
  const uint64_t now = util::now_ns();
  push(w, 1, now);
  push(w, 0, now + 365ull * 86400 * kSecond);
  ASSERT_TRUE(w.sync(std::chrono::milliseconds(5000)));
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));  // (three of the writer's age checks)
  EXPECT_EQ(w.stats(1).segments_evicted.load(), 0u);
  w.finish();
  uint64_t quiet = 0;
  for (auto& s : store::Catalog::scan(o.dir).segments)
    if (s.cls == "quiet") quiet += s.meta.packets;
  EXPECT_EQ(quiet, 1u);
}

TEST(StoreAge, AQuietClassesOpenSegmentIsSealedAndDeletedByAge) {
  TempDir d;
  const store::StoreOptions o = busy_and_quiet(d, 10 * kSecond);
  store::StoreWriter w(o);
  w.start();
  const uint64_t t0 = 1'700'000'000 * kSecond;
  push(w, 1, t0);  // the quiet class's one packet
  // The clock passes half its age: its segment (256 MiB, far from full) is sealed.
  for (uint64_t s = 0; s <= 6; ++s) push(w, 0, t0 + s * kSecond);
  EXPECT_TRUE(within(std::chrono::milliseconds(5000), [&] { return w.stats(1).segments_sealed.load() == 1; }))
      << "the quiet class's open segment was not sealed at half its max_age";
  EXPECT_EQ(w.stats(1).segments_evicted.load(), 0u);  // (not older than max_age yet)
  EXPECT_EQ(w.stats(0).segments_sealed.load(), 0u);   // (no max_age: by size only)
  // Past max_age, the sealed segment goes, though no other segment is sealed.
  push(w, 0, t0 + 11 * kSecond);
  EXPECT_TRUE(within(std::chrono::milliseconds(5000), [&] {
    return w.stats(1).segments_evicted.load() == 1;
  })) << "the quiet class's packet was kept past its max_age";
  EXPECT_EQ(w.stats(0).segments_evicted.load(), 0u);
  w.finish();
  store::Catalog cat = store::Catalog::scan(o.dir);
  uint64_t quiet = 0, busy = 0;
  for (auto& s : cat.segments) (s.cls == "quiet" ? quiet : busy) += s.meta.packets;
  EXPECT_EQ(quiet, 0u);
  EXPECT_EQ(busy, 8u);
}
