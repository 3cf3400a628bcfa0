// The web page's server side: the embedded files at / and /static/ (no token, content types,
// ETag revalidation), the routes the page uses (explain, count, history, the download's file
// name) over a Service, and the rate history.
#include <gtest/gtest.h>
#include <httplib.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <map>
#include <nlohmann/json.hpp>
#include <thread>

#include "served_api.h"
#include "server/rate_history.h"
#include "server/routes.h"
#include "server/web_assets.h"

namespace tmach::server {
namespace {

using nlohmann::json;

// A pcap of `n` packets of 60 bytes, handed out in pieces of 7 bytes (a count must not depend on
// how the stream is cut).
class PcapStream : public Stream {
 public:
  explicit PcapStream(int n) : n_(n) {}
  std::string run(const ByteSink& out, const Warn&, const StopCheck&) override {
    std::string s = fake_pcap(n_, 60, 'p');
    for (size_t o = 0; o < s.size(); o += 7) out(s.data() + o, std::min<size_t>(7, s.size() - o));
    packets = static_cast<uint64_t>(n_);
    return "ok";
  }

 private:
  int n_;
};

class FakeService : public StubService {
 public:
  std::unique_ptr<Stream> open_query(const QueryRequest&) override { return std::make_unique<PcapStream>(5); }
  Reply stats(const ApiCounters&) override { return {json{{"live", false}}, {}}; }
};

using Web = ServedApi<FakeService>;

TEST(WebAssets, EmbeddedAtBuildTime) {
  for (const char* n : {"index.html", "app.js", "style.css", "overview.js", "query.js", "flows.js", "live.js",
                        "pcap.js", "uPlot.iife.min.js", "uPlot.min.css"}) {
    const WebAsset* a = find_web_asset(n);
    ASSERT_NE(a, nullptr) << n;
    EXPECT_GT(a->size, 0u) << n;
    EXPECT_EQ(a->etag[0], '"') << n;
  }
  EXPECT_EQ(find_web_asset("nope.js"), nullptr);
  EXPECT_EQ(std::string(find_web_asset("app.js")->type), "text/javascript; charset=utf-8");
}

TEST_F(Web, PageWithoutTokenApiWithIt) {
  RouteOptions o;
  o.token = "t0k";
  start(o);
  auto c = client();
  auto r = c.Get("/");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->get_header_value("Content-Type"), "text/html; charset=utf-8");
  EXPECT_NE(r->body.find("/static/app.js"), std::string::npos);
  EXPECT_NE(r->get_header_value("Content-Security-Policy").find("default-src 'self'"), std::string::npos);
  r = c.Get("/static/app.js");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  std::string etag = r->get_header_value("ETag");
  EXPECT_EQ(r->get_header_value("Cache-Control"), "no-cache");
  r = c.Get("/static/app.js", {{"If-None-Match", etag}});
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 304);
  EXPECT_TRUE(r->body.empty());
  r = c.Get("/static/missing.js");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 404);
  r = c.Get("/static/../api/v1/stats");
  ASSERT_TRUE(r);
  EXPECT_NE(r->status, 200);
  r = c.Get("/api/v1/stats");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 401);
  r = c.Get("/api/v1/stats", {{"Authorization", "Bearer t0k"}});
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
}

TEST_F(Web, ExplainCountHistoryAndDownloadName) {
  start();
  auto c = client();
  auto r = c.Get("/api/v1/explain?filter=host%2010.0.0.5%20and%20port%2080");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200);
  json j = json::parse(r->body);
  EXPECT_EQ(j["kind"], "indexed");
  EXPECT_NE(j["plan"].get<std::string>().find("indexes"), std::string::npos);
  r = c.Get("/api/v1/explain?filter=tcp%5B13%5D%20%26%202%20!%3D%200");
  ASSERT_TRUE(r);
  EXPECT_EQ(json::parse(r->body)["kind"], "scan");
  r = c.Get("/api/v1/explain?filter=host%2010.0.0.5%20and%20greater%20100");
  ASSERT_TRUE(r);
  j = json::parse(r->body);
  EXPECT_EQ(j["kind"], "indexed+libpcap");
  EXPECT_EQ(j["parsed"], "host 10.0.0.5");
  EXPECT_EQ(j["libpcap"], "(greater 100)");
  r = c.Get("/api/v1/explain?filter=tcp%5B13%5D%20%26%20");  // "tcp[13] & ": libpcap's own error
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 400);
  EXPECT_NE(json::parse(r->body)["error"].get<std::string>().find("can't parse filter expression"),
            std::string::npos);
  r = c.Get("/api/v1/explain?filter=host%20and");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 400);
  EXPECT_NE(json::parse(r->body)["error"].get<std::string>().find('^'), std::string::npos);
  r = c.Get("/api/v1/explain");
  ASSERT_TRUE(r);
  EXPECT_EQ(json::parse(r->body)["kind"], "all");

  r = c.Get("/api/v1/count?filter=tcp");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200);
  EXPECT_EQ(json::parse(r->body)["packets"], 5);

  r = c.Get("/api/v1/history");
  ASSERT_TRUE(r);
  EXPECT_EQ(json::parse(r->body)["samples"].size(), 0u);

  r = c.Get("/api/v1/query?filter=host%2010.0.0.5%20and%20port%20443&from=2026-11-25T13:00:00Z&to=15m%20ago");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->get_header_value("Content-Disposition"),
            "attachment; filename=\"tm-host_10.0.0.5_and_port_443-2026-11-25T13_00_00Z-15m_ago.pcap\"");
  r = c.Get("/api/v1/query?filter=%22%2F..%2F%22");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->get_header_value("Content-Disposition"), "attachment; filename=\"tm-_..-start-end.pcap\"");
}

TEST(RateHistory, RatesBetweenSamplesBounded) {
  std::atomic<uint64_t> n{0};
  RateHistory h(
      [&n] {
        uint64_t v = n += 1000;
        return json{{"classes", {{"web", {{"stored_packets", v}, {"cut_packets", v / 2}, {"ring_used", 7}}}}},
                    {"kernel_dropped", 0}};
      },
      std::chrono::hours(1), 3);  // the thread takes the first sample; the test the others
  for (int i = 0; i < 200 && n == 0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  for (int i = 0; i < 5; ++i) h.sample_now();
  json j = h.json();
  ASSERT_EQ(j["samples"].size(), 3u);  // bounded: the oldest dropped
  auto& s = j["samples"].back();
  EXPECT_GT(s["classes"]["web"]["stored_pps"].get<double>(), 0);
  EXPECT_GT(s["classes"]["web"]["stored_pps"].get<double>(), s["classes"]["web"]["cut_pps"].get<double>());
  EXPECT_EQ(s["classes"]["web"]["ring_used"], 7);
  EXPECT_EQ(s["classes"]["web"]["dropped_pps"], 0.0);
  EXPECT_LT(j["samples"][0]["t_ns"].get<uint64_t>(), s["t_ns"].get<uint64_t>());
}

TEST(RateHistory, SamplesKeepToTheGridOneInEachCell) {
  using std::chrono::milliseconds;
  const uint64_t s = 1000000000ull, t0 = 1764700000ull * s;  // a multiple of 10 s
  const milliseconds i(10000);
  EXPECT_EQ(RateHistory::wait_after(t0 + 3 * s / 1000, i).count(), 10 * s - 3 * s / 1000);
  EXPECT_EQ(RateHistory::wait_after(t0, i).count(), 10 * s);
  EXPECT_EQ(RateHistory::wait_after(t0 + 9 * s + 999 * s / 1000, i).count(),
            10 * s + s / 1000);  // the next one
  // A sampler that takes 7 ms each time (a loaded machine), started at an odd time, over a
  // day: each 10 s cell of the epoch's grid gets exactly one sample. (A whole interval waited
  // after each sample moved them 7 ms later each time: a cell without any every ~4 hours.)
  uint64_t t = t0 + 4321 * s / 1000;
  std::map<uint64_t, int> cells;
  for (int k = 0; k < 8640; ++k) {
    t += 7 * s / 1000;  // the sample's own time
    cells[t / (10 * s)]++;
    t += static_cast<uint64_t>(RateHistory::wait_after(t, i).count());
  }
  EXPECT_EQ(cells.size(), 8640u);
  EXPECT_EQ(cells.rbegin()->first - cells.begin()->first + 1, 8640u);  // no cell left out
}

}  // namespace
}  // namespace tmach::server
