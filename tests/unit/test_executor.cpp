// The query executor's limit (tm query -c N): the first N matches of the whole answer, in time
// order, over segments whose times overlap and packets of equal times.
#include <gtest/gtest.h>

#include <chrono>
#include <thread>
#include <tuple>
#include <vector>

#include "query/executor.h"
#include "query/parser.h"
#include "store/catalog.h"
#include "store/store_writer.h"
#include "temp_dir.h"

using namespace tmach;

namespace {

// (time, first payload byte): what tells two answers apart.
using Seen = std::vector<std::pair<uint64_t, uint8_t>>;

Seen answer(const store::Catalog& cat, uint64_t limit) {
  query::QuerySpec q;
  q.parsed = query::parse_expr("");
  q.limit = limit;
  Seen seen;
  query::run_query(cat, q, [&](const query::OutPacket& p) { seen.emplace_back(p.ts_ns, p.data[0]); });
  return seen;
}

}  // namespace

TEST(Executor, ALimitGivesTheFirstPacketsOfTheWholeAnswer) {
  TempDir d;
  {
    store::StoreOptions o;
    o.dir = (d.p / "store").string();
    o.segment_size = 32 << 10;  // ~30 packets a segment: many segments
    o.classes.push_back(store::ClassOptions{"default", 4 << 20, UINT64_MAX});
    store::StoreWriter w(o);
    w.start();
    // Times out of order, so that segments overlap in time, and every time given to two packets.
    std::vector<uint8_t> frame(1000);
    for (int i = 0; i < 600; ++i) {
      const uint64_t ts = 1'000'000'000 + static_cast<uint64_t>((i * 37) % 300) * 1000;
      frame[0] = static_cast<uint8_t>(i);
      while (!w.push(0, ts, 1, 1000, frame.data(), 1000, nullptr))
        std::this_thread::sleep_for(std::chrono::microseconds(50));
    }
    w.finish();
    ASSERT_FALSE(w.failed()) << w.error();
  }
  store::Catalog cat = store::Catalog::scan((d.p / "store").string());
  ASSERT_GT(cat.segments.size(), 10u);
  const Seen whole = answer(cat, 0);
  ASSERT_EQ(whole.size(), 600u);
  for (size_t i = 1; i < whole.size(); ++i) ASSERT_LE(whole[i - 1].first, whole[i].first) << i;
  for (uint64_t n : {1u, 2u, 3u, 31u, 299u, 300u, 599u, 600u, 1000u}) {
    const Seen got = answer(cat, n);
    ASSERT_EQ(got.size(), std::min<uint64_t>(n, 600)) << n;
    EXPECT_TRUE(std::equal(got.begin(), got.end(), whole.begin())) << n;
  }
}
