#include <gtest/gtest.h>

#include <set>

#include "conn/conn_table.h"
#include "conn/flow_key.h"

using namespace tmach;

namespace {

packet::PacketInfo tcp_packet(uint32_t src, uint32_t dst, uint16_t sp, uint16_t dp) {
  packet::PacketInfo p;
  p.ip_count = 1;
  auto& l = p.ip[0];
  l.version = 4;
  uint8_t s[4], d[4];
  for (int i = 0; i < 4; ++i) {
    s[i] = static_cast<uint8_t>(src >> (24 - 8 * i));
    d[i] = static_cast<uint8_t>(dst >> (24 - 8 * i));
  }
  l.src = packet::IpAddr::v4(s);
  l.dst = packet::IpAddr::v4(d);
  l.proto = l.header_proto = packet::kProtoTcp;
  l.has_l4 = l.has_ports = true;
  l.sport = sp;
  l.dport = dp;
  return p;
}

constexpr uint64_t kSec = 1000000000ull;

}  // namespace

TEST(FlowKey, BothDirectionsShareOneKey) {
  auto a = conn::make_key(tcp_packet(0x0a000001, 0x0a000002, 1234, 80));
  auto b = conn::make_key(tcp_packet(0x0a000002, 0x0a000001, 80, 1234));
  ASSERT_TRUE(a && b);
  EXPECT_TRUE(a->key == b->key);
  EXPECT_EQ(a->hash, b->hash);
  EXPECT_NE(a->src_is_a, b->src_is_a);
  auto c = conn::make_key(tcp_packet(0x0a000001, 0x0a000002, 1235, 80));
  EXPECT_FALSE(a->key == c->key);
}

TEST(FlowKey, SameAddressDifferentPortsIsSymmetric) {
  auto a = conn::make_key(tcp_packet(0x7f000001, 0x7f000001, 1000, 2000));
  auto b = conn::make_key(tcp_packet(0x7f000001, 0x7f000001, 2000, 1000));
  EXPECT_TRUE(a->key == b->key);
}

TEST(FlowKey, NoIpNoKey) {
  packet::PacketInfo p;
  EXPECT_FALSE(conn::make_key(p));
}

TEST(ConnTable, InsertFindAndDirection) {
  conn::ConnTable t(100, conn::Timeouts{});
  auto k = *conn::make_key(tcp_packet(1, 2, 10, 20));
  bool created;
  auto* e = t.find_or_insert(k, 5 * kSec, created);
  ASSERT_TRUE(e);
  EXPECT_TRUE(created);
  EXPECT_EQ(e->first_ts, 5 * kSec);
  auto k2 = *conn::make_key(tcp_packet(2, 1, 20, 10));
  auto* e2 = t.find_or_insert(k2, 6 * kSec, created);
  EXPECT_FALSE(created);
  EXPECT_EQ(e, e2);
  EXPECT_EQ(t.size(), 1u);
}

TEST(ConnTable, ExpiresByStateTimeout) {
  conn::Timeouts to;
  to.tcp_ns = 100 * kSec;
  to.closed_ns = 5 * kSec;
  std::vector<conn::EndReason> ended;
  conn::ConnTable t(100, to, [&](const conn::ConnEntry&, conn::EndReason r) { ended.push_back(r); });
  bool c;
  auto* open = t.find_or_insert(*conn::make_key(tcp_packet(1, 2, 10, 20)), 0, c);
  open->last_ts = 0;
  auto* closed = t.find_or_insert(*conn::make_key(tcp_packet(3, 4, 10, 20)), 0, c);
  closed->rst_seen = 1;
  t.expire_step(10 * kSec, t.capacity());
  EXPECT_EQ(t.size(), 1u);  // the reset one is gone after 5 s, the open one stays for 100 s
  EXPECT_EQ(ended.size(), 1u);
  t.expire_step(101 * kSec, t.capacity());
  EXPECT_EQ(t.size(), 0u);
  EXPECT_EQ(t.stats().expired, 2u);
}

TEST(ConnTable, SuspendedTimeoutNeverExpires) {
  conn::Timeouts to;
  to.tcp_ns = kSec;
  conn::ConnTable t(100, to);
  bool c;
  auto* e = t.find_or_insert(*conn::make_key(tcp_packet(1, 2, 10, 20)), 0, c);
  e->suspend_timeout = 1;
  t.expire_step(1000 * kSec, t.capacity());
  EXPECT_EQ(t.size(), 1u);
}

TEST(ConnTable, FullTableRefusesNewConnectionsButKeepsOld) {
  conn::ConnTable t(16, conn::Timeouts{});
  bool c;
  for (uint32_t i = 0; i < 16; ++i)
    ASSERT_TRUE(t.find_or_insert(*conn::make_key(tcp_packet(1, 2, 1000 + i, 80)), 0, c));
  EXPECT_EQ(t.find_or_insert(*conn::make_key(tcp_packet(1, 2, 5000, 80)), 1, c), nullptr);
  EXPECT_EQ(t.stats().untracked, 1u);
  EXPECT_NE(t.find_or_insert(*conn::make_key(tcp_packet(1, 2, 1003, 80)), 1, c), nullptr);
  // Once old connections time out there is room again.
  EXPECT_NE(t.find_or_insert(*conn::make_key(tcp_packet(1, 2, 5000, 80)), 1000 * kSec, c), nullptr);
}

TEST(ConnTable, ManyInsertsAndExpiriesKeepEveryEntryFindable) {
  // Backward-shift deletion must never lose an entry: churn and check against a set.
  conn::Timeouts to;
  to.tcp_ns = 10 * kSec;
  conn::ConnTable t(5000, to);
  std::set<uint32_t> live;
  bool c;
  uint64_t now = 0;
  for (uint32_t i = 0; i < 40000; ++i) {
    now = static_cast<uint64_t>(i) * kSec / 100;
    auto* e = t.find_or_insert(*conn::make_key(tcp_packet(i, 7, 1, 2)), now, c);
    ASSERT_TRUE(e);
    ASSERT_TRUE(c);
    t.expire_step(now, 64);
  }
  size_t found = 0;
  for (uint32_t i = 0; i < 40000; ++i) {
    auto k = *conn::make_key(tcp_packet(i, 7, 1, 2));
    if (auto* e = t.find(k.key, k.hash)) {
      ++found;
      EXPECT_GE(e->first_ts + 10 * kSec + kSec, now - 40 * kSec);
    }
  }
  EXPECT_EQ(found, t.size());
  EXPECT_LE(t.size(), 5000u);
}

TEST(ConnTable, IdlenessIsMeasuredOnTheClockNotOnPacketTimes) {
  conn::Timeouts to;
  to.tcp_ns = 100 * kSec;
  conn::ConnTable t(100, to);
  bool c;
  // A packet from t = 10 s while the clock (newest time seen) is at 1000 s.
  auto* e = t.find_or_insert(*conn::make_key(tcp_packet(1, 2, 10, 20)), 10 * kSec, 1000 * kSec, c);
  ASSERT_TRUE(e && c);
  EXPECT_EQ(e->first_ts, 10 * kSec);
  EXPECT_EQ(e->last_ts, 10 * kSec);
  EXPECT_EQ(e->active_clock, 1000 * kSec);
  t.expire_step(1000 * kSec, t.capacity());
  t.expire_step(1099 * kSec, t.capacity());
  EXPECT_EQ(t.size(), 1u);
  t.expire_step(1101 * kSec, t.capacity());
  EXPECT_EQ(t.size(), 0u);
}

TEST(ConnTable, EntryFlagsAndClassDoNotOverlap) {
  // The flags and the class share two bytes (bit-fields): setting one leaves the others.
  conn::ConnTable t(100, conn::Timeouts{});
  bool c;
  auto* e = t.find_or_insert(*conn::make_key(tcp_packet(1, 2, 10, 20)), 0, c);
  e->cls = conn::kMaxClasses - 1;
  e->fin_seen |= 2;
  e->suspend_timeout = 1;
  EXPECT_EQ(e->cls, conn::kMaxClasses - 1);
  EXPECT_EQ(e->fin_seen, 2);
  EXPECT_EQ(e->cut, 0);
  EXPECT_EQ(e->rst_seen, 0);
  EXPECT_EQ(e->suspend_cutoff, 0);
  EXPECT_EQ(e->suspend_timeout, 1);
  EXPECT_EQ(e->orig_is_a, 1);
}
