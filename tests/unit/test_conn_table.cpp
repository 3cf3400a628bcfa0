#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <set>

#include "conn/conn_keyer.h"
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

// A connection idle past its timeout whose 5-tuple comes back before the sweep came to it
// (no expire_step in between here) is ended by its timeout, and the packet starts another:
// the same connections and end states as had the sweep come first. At the end, one idle past
// its timeout ends by it, not by the shutdown.
TEST(ConnTable, ALookupEndsAConnectionIdlePastItsTimeout) {
  conn::Timeouts to;
  to.tcp_ns = 100 * kSec;
  std::vector<std::pair<uint64_t, conn::EndReason>> ended;  // (first_ts, why)
  conn::ConnTable t(100, to,
                    [&](const conn::ConnEntry& e, conn::EndReason r) { ended.emplace_back(e.first_ts, r); });
  bool c;
  const auto key = *conn::make_key(tcp_packet(1, 2, 10, 20));
  auto* first = t.find_or_insert(key, 0, c);
  EXPECT_TRUE(c);
  t.find_or_insert(*conn::make_key(tcp_packet(5, 6, 10, 20)), 50 * kSec, c);  // another, still active
  EXPECT_EQ(t.find_or_insert(key, 100 * kSec, c), first);  // 100 s idle: not past the timeout
  EXPECT_FALSE(c);
  auto* again = t.find_or_insert(key, 201 * kSec, c);  // 101 s idle
  EXPECT_TRUE(c);
  EXPECT_EQ(again->first_ts, 201 * kSec);
  ASSERT_EQ(ended.size(), 1u);
  EXPECT_EQ(ended[0], (std::pair<uint64_t, conn::EndReason>{0, conn::EndReason::kTimeout}));
  EXPECT_EQ(t.size(), 2u);
  EXPECT_EQ(t.stats().expired, 1u);
  EXPECT_EQ(t.stats().created, 3u);
  EXPECT_EQ(t.find(key.key, key.hash), again);  // findable after the deletion's shifts
  // At the clock 250 s: the one from 50 s is idle 200 s (timeout), the new one 49 s (shutdown).
  t.end_all(250 * kSec);
  ASSERT_EQ(ended.size(), 3u);
  std::sort(ended.begin() + 1, ended.end());
  EXPECT_EQ(ended[1], (std::pair<uint64_t, conn::EndReason>{50 * kSec, conn::EndReason::kTimeout}));
  EXPECT_EQ(ended[2], (std::pair<uint64_t, conn::EndReason>{201 * kSec, conn::EndReason::kShutdown}));
  EXPECT_EQ(t.stats().expired, 2u);
  // Emptied (its index given back to the kernel, HugeArray::zero): nothing found, and a
  // connection of the same key is a new one.
  EXPECT_EQ(t.size(), 0u);
  EXPECT_EQ(t.find(key.key, key.hash), nullptr);
  t.find_or_insert(key, 300 * kSec, c);
  EXPECT_TRUE(c);
  EXPECT_EQ(t.size(), 1u);
}

// A SYN without ACK on a closed connection's 5-tuple (port reuse, a refused connection tried
// anew: another sequence number) ends it and starts a new one; on an open one, the same SYN sent
// again after a RST, or any other packet on a closed one (its last ACK, a retransmitted FIN), is
// that connection's.
TEST(ConnTable, AnOpeningPacketOnAClosedConnectionStartsANewOne) {
  std::vector<std::pair<uint64_t, conn::EndReason>> ended;  // (first_ts, why)
  conn::ConnTable t(100, conn::Timeouts{},
                    [&](const conn::ConnEntry& e, conn::EndReason r) { ended.emplace_back(e.first_ts, r); });
  bool c;
  const auto key = *conn::make_key(tcp_packet(1, 2, 10, 20));
  const int32_t syn1 = conn::fold_syn_seq(1000), syn2 = conn::fold_syn_seq(900000);
  ASSERT_NE(syn1, syn2);
  auto* e = t.find_or_insert(key, 1 * kSec, c, syn1);
  ASSERT_TRUE(c);
  e->syn_seq = static_cast<uint16_t>(syn1);                // (the caller's part)
  EXPECT_EQ(t.find_or_insert(key, 2 * kSec, c, syn2), e);  // open: another SYN is still this one's
  EXPECT_FALSE(c);
  e->fin_seen = 1;  // half closed: still open
  EXPECT_EQ(t.find_or_insert(key, 3 * kSec, c, syn2), e);
  EXPECT_FALSE(c);
  e->fin_seen = 3;
  EXPECT_EQ(t.find_or_insert(key, 4 * kSec, c), e);  // the last ACK
  EXPECT_FALSE(c);
  EXPECT_EQ(t.find_or_insert(key, 4 * kSec, c, syn1), e);  // its own SYN again
  EXPECT_FALSE(c);
  EXPECT_TRUE(ended.empty());
  auto* again = t.find_or_insert(key, 5 * kSec, c, syn2);
  ASSERT_TRUE(c);
  again->syn_seq = static_cast<uint16_t>(syn2);
  EXPECT_EQ(again->first_ts, 5 * kSec);
  EXPECT_EQ(again->fin_seen, 0);
  ASSERT_EQ(ended.size(), 1u);
  EXPECT_EQ(ended[0], (std::pair<uint64_t, conn::EndReason>{1 * kSec, conn::EndReason::kReopened}));
  again->rst_seen = 1;                                         // refused
  EXPECT_EQ(t.find_or_insert(key, 6 * kSec, c, syn2), again);  // the same SYN sent again
  EXPECT_FALSE(c);
  auto* third = t.find_or_insert(key, 7 * kSec, c, syn1);  // tried anew
  ASSERT_TRUE(c);
  EXPECT_EQ(third->first_ts, 7 * kSec);
  ASSERT_EQ(ended.size(), 2u);
  EXPECT_EQ(ended[1], (std::pair<uint64_t, conn::EndReason>{5 * kSec, conn::EndReason::kReopened}));
  EXPECT_EQ(t.size(), 1u);
  EXPECT_EQ(t.stats().reopened, 2u);
  EXPECT_EQ(t.stats().expired, 0u);
  EXPECT_EQ(t.stats().created, 3u);
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

TEST(ConnTable, FullTableEndsAnIdleConnectionForANewOneAndKeepsActiveOnes) {
  std::vector<std::pair<uint16_t, conn::EndReason>> ended;
  conn::ConnTable t(16, conn::Timeouts{}, [&](const conn::ConnEntry& e, conn::EndReason r) {
    ended.emplace_back(std::max(e.key.port_a, e.key.port_b), r);
  });
  bool c;
  for (uint32_t i = 0; i < 16; ++i)
    ASSERT_TRUE(t.find_or_insert(*conn::make_key(tcp_packet(1, 2, 1000 + i, 80)), 0, c));
  // 1000 had a second packet: the hand passes it by, 1001 is ended instead.
  EXPECT_FALSE(t.find_or_insert(*conn::make_key(tcp_packet(1, 2, 1000, 80)), 1, c) == nullptr || c);
  EXPECT_TRUE(t.find_or_insert(*conn::make_key(tcp_packet(1, 2, 5000, 80)), 1, c) && c);
  EXPECT_EQ(t.size(), 16u);
  EXPECT_EQ(t.stats().evicted, 1u);
  EXPECT_EQ(t.stats().untracked, 0u);
  ASSERT_EQ(ended.size(), 1u);
  EXPECT_EQ(ended[0].first, 1001);
  EXPECT_EQ(ended[0].second, conn::EndReason::kTableFull);
  // A connection the hand finds timed out ends as such (kTimeout), not as evicted.
  EXPECT_TRUE(t.find_or_insert(*conn::make_key(tcp_packet(1, 2, 5001, 80)), 1000 * kSec, c) && c);
  ASSERT_EQ(ended.size(), 2u);
  EXPECT_EQ(ended[1].second, conn::EndReason::kTimeout);
  EXPECT_EQ(t.stats().expired, 1u);
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

namespace {

// A table of `max` entries under a SYN flood: `established` connections (ports 1..n to
// 10.0.0.1:443) each with a packet every `every` flood SYNs, `syns` one-packet connections
// from distinct sources. The clock advances 1 µs a packet.
struct Flood {
  std::vector<std::pair<uint64_t, conn::EndReason>> ended;  // (born_clock, why)
  std::set<uint32_t> ended_established;
  conn::ConnTable t;
  uint64_t now = 0;
  explicit Flood(size_t max)
      : t(max, conn::Timeouts{}, [this](const conn::ConnEntry& e, conn::EndReason r) {
          ended.emplace_back(e.born_clock, r);
          if (e.key.port_a == 443 || e.key.port_b == 443)
            ended_established.insert(std::min(e.key.port_a, e.key.port_b));
        }) {}
  conn::ConnEntry* packet(uint32_t src, uint32_t dst, uint16_t sp, uint16_t dp, bool& created) {
    now += 1000;
    return t.find_or_insert(*conn::make_key(tcp_packet(src, dst, sp, dp)), now, created);
  }
  conn::ConnEntry* syn(uint32_t i, bool& created) {
    return packet(0xc6120000u + (i & 0xffff), 0x0a000001, static_cast<uint16_t>(1024 + (i >> 16)), 80,
                  created);
  }
  conn::ConnEntry* established(uint16_t port, bool& created) {
    return packet(0x0a000002, 0x0a000001, port, 443, created);
  }
};

}  // namespace

TEST(ConnTable, FloodEvictsTheIdlestWithBoundedWorkPerNewConnection) {
  // A full table of idle connections, then a flood: every new connection is tracked (the
  // table makes room instead of refusing it), the one ended for it is the idlest (here the
  // oldest, since every connection has one packet), and the hand looks at a bounded number
  // of entries for each, not at the table.
  constexpr size_t kMax = 1000;
  Flood f(kMax);
  bool c;
  for (uint32_t i = 0; i < kMax; ++i) ASSERT_TRUE(f.syn(i, c) && c);
  ASSERT_EQ(f.t.size(), kMax);
  for (uint32_t i = kMax; i < 20 * kMax; ++i) {
    const uint64_t steps = f.t.stats().hand_steps;
    auto* e = f.syn(i, c);
    ASSERT_TRUE(e && c) << i;
    ASSERT_EQ(f.t.stats().hand_steps - steps, 1u) << i;  // the first entry it meets is idle
  }
  EXPECT_EQ(f.t.size(), kMax);
  EXPECT_EQ(f.t.stats().untracked, 0u);
  EXPECT_EQ(f.t.stats().evicted, 19 * kMax);
  EXPECT_EQ(f.t.stats().created, 20 * kMax);
  ASSERT_EQ(f.ended.size(), 19 * kMax);
  // Ended oldest first: the k-th connection ended was among the first k + 1 created (the
  // dense table moves entries, so the order may be off by the one freshly created).
  size_t out_of_order = 0;
  for (size_t k = 0; k < f.ended.size(); ++k) {
    EXPECT_EQ(f.ended[k].second, conn::EndReason::kTableFull);
    const uint64_t born_index = f.ended[k].first / 1000 - 1;
    if (born_index > k + 1) ++out_of_order;
  }
  EXPECT_EQ(out_of_order, 0u);
  // What is left are the newest kMax connections.
  for (uint32_t i = 19 * kMax; i < 20 * kMax; ++i) {
    auto k = *conn::make_key(
        tcp_packet(0xc6120000u + (i & 0xffff), 0x0a000001, static_cast<uint16_t>(1024 + (i >> 16)), 80));
    EXPECT_TRUE(f.t.find(k.key, k.hash)) << i;
  }
}

TEST(ConnTable, EstablishedConnectionsWithRecentActivitySurviveAFlood) {
  // 200 established connections, each with a packet every 100 new flood connections (the
  // table turns over every ~1000): a flood of 100 times the table's size ends none of them,
  // and their counters go on in one entry.
  constexpr size_t kMax = 1000;
  constexpr uint16_t kEstablished = 200;
  Flood f(kMax);
  bool c;
  for (uint16_t p = 1; p <= kEstablished; ++p) ASSERT_TRUE(f.established(p, c) && c);
  uint16_t next = 1;
  for (uint32_t i = 0; i < 100 * kMax; ++i) {
    ASSERT_TRUE(f.syn(i, c) && c);
    for (int k = 0; k < 2; ++k) {  // two established packets per SYN: each one every 100 SYNs
      auto* e = f.established(next, c);
      ASSERT_TRUE(e);
      EXPECT_FALSE(c) << "established connection " << next << " was evicted";
      e->pkts[0]++;
      next = static_cast<uint16_t>(next % kEstablished + 1);
    }
  }
  // The hand's work, amortised: one look per connection it ends plus one per mark a packet
  // set (at most one per packet), not a scan of the table.
  EXPECT_LE(f.t.stats().hand_steps, f.t.stats().evicted + 2 * 100 * kMax);
  EXPECT_TRUE(f.ended_established.empty())
      << f.ended_established.size() << " established ended, first " << *f.ended_established.begin();
  EXPECT_GT(f.t.stats().evicted, 99 * kMax - kEstablished);
  EXPECT_EQ(f.t.stats().untracked, 0u);
  for (uint16_t p = 1; p <= kEstablished; ++p) {
    auto k = *conn::make_key(tcp_packet(0x0a000002, 0x0a000001, p, 443));
    auto* e = f.t.find(k.key, k.hash);
    ASSERT_TRUE(e) << p;
    EXPECT_GE(e->pkts[0], 1000u) << p;
  }
}

TEST(ConnTable, AConnectionIdleForLongerThanATurnOfTheHandIsEvicted) {
  // The other side of the bargain: one idle while the flood turns the table over twice is
  // ended (kTableFull, its flow record written), and comes back as a new entry.
  constexpr size_t kMax = 100;
  Flood f(kMax);
  bool c;
  ASSERT_TRUE(f.established(7, c) && c);
  ASSERT_TRUE(f.established(7, c) && !c);  // referenced: one second chance
  for (uint32_t i = 0; i < 3 * kMax; ++i) ASSERT_TRUE(f.syn(i, c));
  EXPECT_EQ(f.ended_established, std::set<uint32_t>{7});
  ASSERT_TRUE(f.established(7, c));
  EXPECT_TRUE(c);
}

TEST(ConnTable, FullOfSuspendedConnectionsLeavesNewOnesUntracked) {
  // Connections whose timeout is suspended (per-connection control) are never evicted: a
  // table full of them refuses new connections, still with bounded work.
  conn::ConnTable t(16, conn::Timeouts{});
  bool c;
  for (uint32_t i = 0; i < 16; ++i)
    t.find_or_insert(*conn::make_key(tcp_packet(1, 2, 1000 + i, 80)), 0, c)->suspend_timeout = 1;
  EXPECT_EQ(t.find_or_insert(*conn::make_key(tcp_packet(1, 2, 5000, 80)), 1, c), nullptr);
  EXPECT_EQ(t.stats().untracked, 1u);
  EXPECT_EQ(t.stats().evicted, 0u);
  EXPECT_LE(t.stats().hand_steps, conn::ConnTable::kEvictScan);
}

namespace {

// The key as make_key() built it field by field before it built the words in registers
// (flow_key.cpp key_of): the register form must give the same bytes and the same hash.
conn::KeyedPacket field_by_field(const packet::IpLayer& l, uint32_t tunnel, uint16_t sp, uint16_t dp) {
  conn::KeyedPacket kp{};
  conn::FlowKey& k = kp.key;
  k.proto = l.proto;
  k.tunnel = tunnel;
  // (std::array's bytewise order, not IpAddr's word compare that key_of() shares)
  const bool src_first = l.src.b < l.dst.b || (l.src.b == l.dst.b && sp <= dp);
  k.a = src_first ? l.src : l.dst;
  k.b = src_first ? l.dst : l.src;
  k.port_a = src_first ? sp : dp;
  k.port_b = src_first ? dp : sp;
  kp.src_is_a = src_first;
  kp.hash = conn::hash_key(k);
  return kp;
}

void expect_same(const conn::KeyedPacket& got, const conn::KeyedPacket& want) {
  EXPECT_EQ(std::memcmp(&got.key, &want.key, sizeof(conn::FlowKey)), 0);
  EXPECT_EQ(got.hash, want.hash);
  EXPECT_EQ(got.src_is_a, want.src_is_a);
}

}  // namespace

TEST(FlowKey, RegisterBuiltKeyIsTheFieldByFieldOne) {
  // Both orders of the addresses, equal addresses with both orders of the ports, and a
  // protocol and tunnel in the high bytes.
  const packet::PacketInfo ps[] = {
      tcp_packet(0x0a000001, 0x0a000002, 1234, 80), tcp_packet(0xc0a80001, 0x0a000002, 40000, 443),
      tcp_packet(0x0a000001, 0x0a000001, 9, 8), tcp_packet(0x0a000001, 0x0a000001, 8, 9)};
  for (const auto& p : ps) {
    auto k = conn::make_key(p);
    ASSERT_TRUE(k);
    expect_same(*k, field_by_field(p.ip[0], 0, p.ip[0].sport, p.ip[0].dport));
    auto kp = conn::make_key(p, 7, 65535);
    ASSERT_TRUE(kp);
    expect_same(*kp, field_by_field(p.ip[0], 0, 7, 65535));
  }
  // IPv6 addresses that differ in their first eight bytes either way, and only in their last
  // eight (the order is bytewise: a 128-bit compare, high word first).
  const uint8_t lo[16] = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 1, 0xff, 0xff, 0, 0, 0, 0, 0, 9};
  const uint8_t hi[16] = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 1};
  const uint8_t lo2[16] = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 1, 0xff, 0xff, 0, 0, 0, 0, 1, 0};
  for (auto [s, d] : {std::pair{lo, hi}, std::pair{hi, lo}, std::pair{lo, lo2}, std::pair{lo2, lo}}) {
    packet::PacketInfo p = tcp_packet(1, 2, 443, 50000);
    p.ip[0].src = packet::IpAddr::v6(s);
    p.ip[0].dst = packet::IpAddr::v6(d);
    expect_same(*conn::make_key(p), field_by_field(p.ip[0], 0, 443, 50000));
  }
  // A tunnelled packet: the inner layer's key with the (nonzero) tunnel hash.
  packet::PacketInfo t = tcp_packet(0x0a000001, 0x0a000002, 1, 2);
  t.ip[1] = tcp_packet(0xac100001, 0xac100002, 5000, 53).ip[0];
  t.ip[1].proto = packet::kProtoUdp;
  t.ip[1].tunnel = packet::kTunnelVxlan;
  t.ip[1].tunnel_id = 42;
  t.ip_count = 2;
  auto kt = conn::make_key(t);
  ASSERT_TRUE(kt);
  EXPECT_NE(conn::tunnel_hash(t), 0u);
  expect_same(*kt, field_by_field(t.ip[1], conn::tunnel_hash(t), 5000, 53));
}

TEST(FlowKey, EqualityLooksAtEveryByteButThePadding) {
  conn::FlowKey k = conn::make_key(tcp_packet(0x0a000001, 0x0a000002, 1234, 80))->key;
  k.tunnel = 0x01020304;
  conn::FlowKey same = k;
  same.pad[0] = 0;  // (the padding is always 0: the keys compare it too)
  EXPECT_TRUE(k == same);
  // One byte changed anywhere in the addresses, ports, protocol or tunnel: a different key.
  for (size_t at : {size_t{0}, size_t{7}, size_t{8}, size_t{15}, size_t{16}, size_t{31}, size_t{32},
                    size_t{35}, size_t{36}, size_t{40}, size_t{43}}) {
    conn::FlowKey other = k;
    reinterpret_cast<uint8_t*>(&other)[at] ^= 0x10;
    EXPECT_FALSE(k == other) << "byte " << at;
    EXPECT_FALSE(other == k) << "byte " << at;
  }
}

TEST(FlowKey, KeyerFastPathForNonFragmentsMatchesTheFragmentTable) {
  // A plain packet: ConnKeyer's fast path (no fragment memory) gives what FragmentTable gives.
  conn::ConnKeyer keyer;
  conn::FragmentTable frags;
  packet::PacketInfo p = tcp_packet(0x0a000001, 0x0a000002, 1234, 80);
  expect_same(*keyer.key(p, 1), *frags.key(p, 1));
  expect_same(*keyer.key(p, 1), *conn::make_key(p));
  // A first fragment and a later one (no ports): the slow path, the later one gets the
  // first one's key.
  packet::PacketInfo first = p;
  first.ip[0].fragment = true;
  first.ip[0].frag_id = 77;
  packet::PacketInfo later = first;
  later.ip[0].frag_offset = 185;
  later.ip[0].has_l4 = later.ip[0].has_ports = false;
  later.ip[0].sport = later.ip[0].dport = 0;
  auto k1 = keyer.key(first, 2);
  auto k2 = keyer.key(later, 3);
  ASSERT_TRUE(k1 && k2);
  expect_same(*k1, *conn::make_key(p));
  expect_same(*k2, *k1);
  EXPECT_EQ(keyer.fragments().hits(), 1u);
  // Without the first, the later fragment gets ports 0, as make_key() gives it.
  conn::ConnKeyer fresh;
  expect_same(*fresh.key(later, 3), *conn::make_key(later));
  EXPECT_NE(conn::make_key(later)->hash, k1->hash);
}

TEST(FlowKey, KeyerInPlaceFormGivesWhatTheOptionalFormGives) {
  // key(p, now, out), the recorder's, against key(p, now) on a twin keyer fed the same
  // packets: plain, fragments (first, later), ESP both ways (SA pairing), and a frame without IP.
  packet::PacketInfo plain = tcp_packet(0x0a000001, 0x0a000002, 1234, 80);
  packet::PacketInfo first = plain;
  first.ip[0].fragment = true;
  first.ip[0].frag_id = 9;
  packet::PacketInfo later = first;
  later.ip[0].frag_offset = 185;
  later.ip[0].has_l4 = later.ip[0].has_ports = false;
  later.ip[0].sport = later.ip[0].dport = 0;
  packet::PacketInfo esp_ab = tcp_packet(0x0a000003, 0x0a000004, 0, 0);
  esp_ab.ip[0].proto = esp_ab.ip[0].header_proto = packet::kProtoEsp;
  esp_ab.ip[0].has_l4 = esp_ab.ip[0].has_ports = false;
  esp_ab.ip[0].has_spi = true;
  esp_ab.ip[0].spi = 0x1111;
  packet::PacketInfo esp_ba = esp_ab;
  std::swap(esp_ba.ip[0].src, esp_ba.ip[0].dst);
  esp_ba.ip[0].spi = 0x2222;
  packet::PacketInfo non_ip;
  conn::ConnKeyer in_place, optional;
  uint64_t t = 1;
  for (const packet::PacketInfo* p : {&plain, &first, &later, &esp_ab, &esp_ba, &esp_ab, &non_ip, &later}) {
    conn::KeyedPacket out{};
    out.hash = 12345;  // left as it was when there is no key
    const bool got = in_place.key(*p, t, out);
    const auto want = optional.key(*p, t);
    ASSERT_EQ(got, want.has_value());
    if (got)
      expect_same(out, *want);
    else
      EXPECT_EQ(out.hash, 12345u);
    ++t;
  }
  EXPECT_EQ(in_place.fragments().hits(), optional.fragments().hits());
  EXPECT_EQ(in_place.fragments().hits(), 2u);
  EXPECT_EQ(in_place.sa_pairs().paired(), 1u);
}
