// server::LiveBackend's subscriptions over a running store::StoreWriter: what the writer appends
// is offered to them until end_subscriptions() (a stop), and nothing after.
#include <gtest/gtest.h>

#include <chrono>
#include <deque>
#include <memory>
#include <thread>
#include <vector>

#include "config/config.h"
#include "query/executor.h"
#include "query/parser.h"
#include "server/live_backend.h"
#include "server/service.h"
#include "server/subscription.h"
#include "store/store_writer.h"
#include "temp_dir.h"

using namespace tmach;

namespace {

// Pushes `n` Ethernet frames of 100 bytes (waiting while the ring is full), from `ts` on.
void push(store::StoreWriter& w, uint64_t& ts, int n) {
  std::vector<uint8_t> frame(100, 0x42);
  for (int i = 0; i < n; ++i, ts += 1000)
    while (!w.push(0, ts, 1, 100, frame.data(), 100, nullptr))
      std::this_thread::sleep_for(std::chrono::microseconds(50));
}

// Takes what `s` has queued until `want` packets came or `patience` passed; returns how many.
size_t take(server::Subscriber& s, size_t want, std::chrono::milliseconds patience) {
  std::deque<server::SubPacket> got;
  const auto until = std::chrono::steady_clock::now() + patience;
  while (got.size() < want && std::chrono::steady_clock::now() < until)
    s.take(got, std::chrono::milliseconds(20));
  return got.size();
}

}  // namespace

TEST(LiveBackend, AStopEndsTheSubscriptionsAtOnce) {
  TempDir d;
  config::Config cfg;
  cfg.store = (d.p / "store").string();
  cfg.classes.resize(1);
  cfg.classes[0].name = "default";
  store::StoreOptions o;
  o.dir = cfg.store;
  o.evict_when_full = true;
  o.classes.push_back(store::ClassOptions{"default", 4 << 20, UINT64_MAX});
  store::StoreWriter w(o);
  server::LiveBackend backend(cfg, w, {});  // (sets the writer's observer: before start())
  w.start();

  query::QuerySpec q;  // every packet
  q.parsed = query::parse_expr(q.text);
  auto sub = std::make_shared<server::Subscriber>(q, 64 << 20);
  backend.subscribe(sub);
  uint64_t ts = 1'000'000'000;
  push(w, ts, 500);
  EXPECT_EQ(take(*sub, 500, std::chrono::milliseconds(5000)), 500u);  // offered while recording

  backend.end_subscriptions();
  push(w, ts, 500);
  w.finish();  // (every packet pushed is written: the drain at a stop)
  EXPECT_EQ(take(*sub, 1, std::chrono::milliseconds(200)), 0u)
      << "a packet written after the stop was offered";
  EXPECT_EQ(w.stats(0).written_packets.load(), 1000u);
  EXPECT_THROW(backend.subscribe(std::make_shared<server::Subscriber>(q, 64 << 20)), server::Unavailable);
}
