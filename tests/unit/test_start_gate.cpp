// capture::StartGate (what a fanout member discards at its start) and the live sources' counter
// helpers (source.h).
#include <gtest/gtest.h>

#include <chrono>
#include <thread>

#include "capture/source.h"
#include "capture/start_gate.h"

namespace tmach::capture {
namespace {

TEST(StartGate, OpenUntilSet) {
  StartGate g;
  EXPECT_FALSE(g.discard(0));
  EXPECT_FALSE(g.discard(1));
  EXPECT_EQ(g.discarded(), 0u);
}

TEST(StartGate, DiscardsWhatCameBeforeTheStartThenOpensForGood) {
  StartGate g;
  g.set(1000);
  EXPECT_TRUE(g.discard(10));
  EXPECT_TRUE(g.discard(999));
  EXPECT_EQ(g.discarded(), 2u);
  EXPECT_FALSE(g.discard(1000));  // the first frame from the start on opens it
  // Later frames stamped earlier (another CPU's stamp, a clock stepped back) are kept.
  EXPECT_FALSE(g.discard(999));
  EXPECT_FALSE(g.discard(5));
  EXPECT_EQ(g.discarded(), 2u);
}

TEST(StartGate, TheLaterStartWins) {
  StartGate g;
  g.set(2000);  // the socket joined
  g.set(1500);  // (an earlier start does not move it back)
  EXPECT_TRUE(g.discard(1999));
  g.set(3000);  // the group's last socket joined
  EXPECT_TRUE(g.discard(2500));
  EXPECT_FALSE(g.discard(3000));
  EXPECT_EQ(g.discarded(), 2u);
}

TEST(StartGate, ReceivedIsTheKernelsCountLessTheDiscardedAndNeverGoesDown) {
  StartGate g;
  EXPECT_EQ(g.received(5), 5u);
  g.set(1000);
  // Until the gate opens the kernel's count may hold frames to discard: it stays where it was
  // (it rose by them for good before: the daemon reads the counters every 100 ms).
  EXPECT_EQ(g.received(10), 5u);
  EXPECT_TRUE(g.discard(1));
  EXPECT_TRUE(g.discard(2));
  EXPECT_EQ(g.received(10), 5u);
  EXPECT_FALSE(g.discard(1500));  // open
  EXPECT_EQ(g.received(14), 12u);
  EXPECT_EQ(g.received(13), 12u);  // never down
}

// The second counts from the first read, not from set(): a socket set up long before its
// capture thread first reads it (the next interface's rings being made meanwhile) still
// discards what it holds from before its start.
TEST(StartGate, TheSecondCountsFromTheFirstRead) {
  StartGate g;
  g.set(StartGate::now_ns(CLOCK_REALTIME) + 3600ull * 1000000000ull);
  std::this_thread::sleep_for(std::chrono::milliseconds(1100));  // set up, not read yet
  g.tick();                                                      // the first read
  EXPECT_TRUE(g.discard(1));
  g.tick();
  EXPECT_TRUE(g.discard(2));
  EXPECT_EQ(g.discarded(), 2u);
}

TEST(StartGate, AnIdleSocketOpensASecondAfterItsFirstRead) {
  StartGate g;
  g.set(StartGate::now_ns(CLOCK_REALTIME) + 3600ull * 1000000000ull);  // as after a clock step back
  g.tick();
  EXPECT_TRUE(g.discard(1));  // within the second: still closed
  // A second later (monotonic), tick() opens it: nothing more is discarded.
  std::this_thread::sleep_for(std::chrono::milliseconds(1100));
  g.tick();
  EXPECT_FALSE(g.discard(1));
  EXPECT_EQ(g.discarded(), 1u);
}

// libpcap's 32-bit totals, added up across their wrap (a long capture: 2^32 packets).
TEST(WrappingTotal, GoesOnPastTheWrap) {
  WrappingTotal t;
  t.update(0xfffffff0u);
  EXPECT_EQ(t.total, 0xfffffff0u);
  t.update(0x10u);  // wrapped: 0x20 more
  EXPECT_EQ(t.total, 0x100000010ull);
  t.update(0x10u);  // unchanged
  EXPECT_EQ(t.total, 0x100000010ull);
}

// The capture thread reads the counters at once, then not again within the period.
TEST(StatsPace, DueAtOnceThenOncePerPeriod) {
  StatsPace p;
  EXPECT_TRUE(p.due());
  EXPECT_FALSE(p.due());
}

}  // namespace
}  // namespace tmach::capture
