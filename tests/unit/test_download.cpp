// Downloads by one-time ticket (download_tickets.h; POST /api/v1/download, GET
// /api/v1/download/TICKET in routes.cpp): the tickets themselves on a test clock, and the routes
// over a Service that records the query it is asked.
#include <gtest/gtest.h>
#include <httplib.h>

#include <atomic>
#include <cstring>
#include <mutex>
#include <nlohmann/json.hpp>
#include <set>

#include "served_api.h"
#include "server/download_tickets.h"
#include "server/routes.h"

namespace tmach::server {
namespace {

using nlohmann::json;
using Clock = DownloadTickets::Clock;

struct TestClock {
  Clock::time_point t = Clock::time_point() + std::chrono::hours(1);
  std::function<Clock::time_point()> fn() {
    return [this] { return t; };
  }
};

QueryRequest req(const std::string& filter, const std::string& from = "",
                 std::vector<std::string> classes = {}) {
  QueryRequest q;
  q.filter = filter;
  q.from = from;
  q.classes = std::move(classes);
  return q;
}

int status_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const ServiceError& e) {
    return e.status;
  }
  return 0;
}

TEST(DownloadTickets, OneUseWithinItsLifetime) {
  TestClock clk;
  DownloadTickets t(std::chrono::seconds(60), 4, clk.fn());
  std::string a = t.issue(req("tcp port 80", "1h ago", {"web"}));
  ASSERT_EQ(a.size(), 32u);
  EXPECT_EQ(a.find_first_not_of("0123456789abcdef"), std::string::npos);
  EXPECT_EQ(t.pending(), 1u);
  QueryRequest q = t.redeem(a);
  EXPECT_EQ(q.filter, "tcp port 80");
  EXPECT_EQ(q.from, "1h ago");
  EXPECT_EQ(q.classes, std::vector<std::string>{"web"});
  EXPECT_EQ(t.pending(), 0u);
  EXPECT_EQ(status_of([&] { t.redeem(a); }), 410);  // used
  EXPECT_EQ(status_of([&] { t.redeem(std::string(32, '0')); }), 404);
  EXPECT_EQ(status_of([&] { t.redeem(""); }), 404);

  std::string b = t.issue(req("udp"));
  clk.t += std::chrono::seconds(59);
  std::string c = t.issue(req("icmp"));
  clk.t += std::chrono::seconds(1);
  EXPECT_EQ(status_of([&] { t.redeem(b); }), 410);  // expired at 60 s
  EXPECT_EQ(t.redeem(c).filter, "icmp");            // 1 s old
  // Long after: forgotten.
  clk.t += std::chrono::hours(1);
  EXPECT_EQ(status_of([&] { t.redeem(b); }), 404);
}

TEST(DownloadTickets, BoundedAndRandom) {
  TestClock clk;
  DownloadTickets t(std::chrono::seconds(60), 3, clk.fn());
  std::set<std::string> seen;
  for (int i = 0; i < 3; ++i) seen.insert(t.issue(req("tcp")));
  EXPECT_EQ(seen.size(), 3u);
  EXPECT_EQ(status_of([&] { t.issue(req("tcp")); }), 503);  // three waiting
  t.redeem(*seen.begin());                                  // a used one makes room
  std::string d = t.issue(req("tcp"));
  EXPECT_FALSE(seen.count(d));
  EXPECT_EQ(status_of([&] { t.issue(req("tcp")); }), 503);
  clk.t += std::chrono::seconds(61);  // expired ones make room too
  for (int i = 0; i < 3; ++i) t.issue(req("tcp"));
  EXPECT_EQ(t.pending(), 3u);
}

// A service answering every query with a 3-packet pcap, remembering the last request.
class RecordingService : public StubService {
 public:
  std::string query(const QueryRequest& q, const ByteSink& out, const Warn&) override {
    {
      std::lock_guard lk(mu);
      last_ = q;
    }
    std::string s = fake_pcap(3, 40, 'x');
    out(s.data(), s.size());
    return "3 packets";
  }
  QueryRequest last() {
    std::lock_guard lk(mu);
    return last_;
  }
  std::mutex mu;
  QueryRequest last_;  // mu
};

using Download = ServedApi<RecordingService>;

TEST_F(Download, TicketWithTokenDownloadWithoutOnce) {
  RouteOptions o;
  o.token = "t0k";
  start(o);
  auto c = client();
  httplib::Headers auth{{"Authorization", "Bearer t0k"}};
  auto r = c.Post("/api/v1/download", "filter=tcp+port+80&from=1h+ago", "application/x-www-form-urlencoded");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 401);  // a ticket needs the token
  r = c.Post("/api/v1/download", auth, "filter=tcp+port+80&from=1h+ago&class=web",
             "application/x-www-form-urlencoded");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  json j = json::parse(r->body);
  std::string t = j["ticket"];
  EXPECT_EQ(j["url"], "/api/v1/download/" + t);
  EXPECT_EQ(j["expires_s"], 60);
  EXPECT_EQ(j["name"], "tm-tcp_port_80-1h_ago-end.pcap");
  EXPECT_EQ(r->get_header_value("Cache-Control"), "no-store");

  r = c.Head(j["url"].get<std::string>());  // (a link previewer's) the headers; the ticket stays good
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->get_header_value("Content-Disposition"),
            "attachment; filename=\"tm-tcp_port_80-1h_ago-end.pcap\"");
  EXPECT_EQ(api->counters().queries, 0u);  // (from the plan: no query run, no slot taken)
  EXPECT_EQ(api->counters().queries_failed, 0u);
  r = c.Get(j["url"].get<std::string>());  // no token: the ticket is the credential
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  EXPECT_EQ(r->body.size(), 24u + 3 * 56);
  EXPECT_EQ(r->get_header_value("Content-Disposition"),
            "attachment; filename=\"tm-tcp_port_80-1h_ago-end.pcap\"");
  EXPECT_EQ(svc.last().filter, "tcp port 80");  // the query the ticket was issued for
  EXPECT_EQ(svc.last().from, "1h ago");
  EXPECT_EQ(svc.last().classes, std::vector<std::string>{"web"});

  r = c.Get(j["url"].get<std::string>());
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 410);
  EXPECT_NE(json::parse(r->body)["error"].get<std::string>().find("used already"), std::string::npos);
  r = c.Get("/api/v1/download/" + std::string(32, 'a'));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 404);
  r = c.Get("/api/v1/download/" + t + "?filter=udp");  // a ticket's query is fixed
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 400);
  r = c.Post("/api/v1/download/" + t, "", "text/plain");  // only GET goes without the token
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 401);
}

TEST_F(Download, JsonBodyAndRefusals) {
  start();
  auto c = client();
  auto r = c.Post("/api/v1/download",
                  R"({"filter": "udp", "to": "5m ago", "class": ["a", "b"], "format": "pcapng"})",
                  "application/json");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  r = c.Get(json::parse(r->body)["url"].get<std::string>());
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(svc.last().filter, "udp");
  EXPECT_EQ(svc.last().to, "5m ago");
  EXPECT_EQ(svc.last().format, "pcapng");
  EXPECT_EQ(svc.last().classes, (std::vector<std::string>{"a", "b"}));
  // A bad filter is refused when the ticket is asked for, with the caret message.
  r = c.Post("/api/v1/download", "filter=host+and", "application/x-www-form-urlencoded");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 400);
  EXPECT_NE(json::parse(r->body)["error"].get<std::string>().find('^'), std::string::npos);
  r = c.Post("/api/v1/download", "filter=tcp&flow=1", "application/x-www-form-urlencoded");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 400);
  r = c.Post("/api/v1/download", R"({"class": [1]})", "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 400);
}

// A service whose first query cannot open (every worker down, or the store busy: 503), then
// answers as RecordingService does.
class FirstOpenFailsService : public RecordingService {
 public:
  std::unique_ptr<Stream> open_query(const QueryRequest& q) override {
    if (!failed.exchange(true)) throw Unavailable("no worker answered (test)");
    return RecordingService::open_query(q);
  }
  std::atomic<bool> failed{false};
};

using DownloadRetry = ServedApi<FirstOpenFailsService>;

TEST_F(DownloadRetry, ATicketWhoseAnswerCouldNotStartIsNotUsedUp) {
  start();
  auto c = client();
  auto r = c.Post("/api/v1/download", "filter=tcp", "application/x-www-form-urlencoded");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  std::string url = json::parse(r->body)["url"];
  r = c.Get(url);  // the answer cannot start: the error says why, nothing was downloaded
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 503);
  EXPECT_NE(json::parse(r->body)["error"].get<std::string>().find("no worker answered"), std::string::npos);
  r = c.Get(url);  // so the ticket is still good for its one download
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  EXPECT_EQ(r->body.size(), 24u + 3 * 56);
  r = c.Get(url);  // and then used
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 410);
}

}  // namespace
}  // namespace tmach::server
