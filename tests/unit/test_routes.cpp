// The HTTP routes written once over a Service (server/routes.h): requests built from
// parameters and JSON bodies, ServiceError into status and JSON error, streamed answers and
// their time limit, the transport's counters; and how a LocalService names its errors.
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>
#include <tuple>

#include "served_api.h"
#include "server/http_service.h"
#include "server/local_service.h"
#include "server/routes.h"
#include "store/catalog.h"

namespace tmach::server {
namespace {

using nlohmann::json;

// A stream of `n` bytes of 'x', or, with n = 0, one that writes until told to stop.
class FakeStream : public Stream {
 public:
  explicit FakeStream(size_t n) : n_(n) {}
  std::string run(const ByteSink& out, const Warn& warn, const StopCheck& stop) override {
    if (n_) {
      std::string s(n_, 'x');
      out(s.data(), s.size());
      warn("found while writing");  // (as a filter libpcap cannot compile for a link type)
      packets = 3;
      return "done";
    }
    for (;;) {
      if (std::string why = stop(); !why.empty()) throw Cancelled(why);
      out("y", 1);
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  }

 private:
  size_t n_;
};

// Records what the routes asked; answers what the test set.
class FakeService : public Service {
 public:
  QueryRequest last_query;
  ControlRequest last_control;
  ClassRequest last_class;
  ApiCounters last_counters;
  size_t stream_bytes = 5;
  std::string query(const QueryRequest&, const ByteSink&, const Warn&) override { return ""; }
  std::string flows(const FlowRequest&, const ByteSink&, const Warn&) override { return ""; }
  std::unique_ptr<Stream> open_query(const QueryRequest& q) override {
    last_query = q;
    if (q.filter == "bad") throw BadRequest("filter: bad");
    auto s = std::make_unique<FakeStream>(stream_bytes);
    s->headers.emplace_back("X-Test", "yes");
    return s;
  }
  std::unique_ptr<Stream> open_subscription(const SubscribeRequest&) override { throw Conflict("read-only"); }
  Reply health() override { throw std::runtime_error("broken"); }
  Reply stats(const ApiCounters& api) override {
    last_counters = api;
    return {json{{"queries", api.queries}}, {}};
  }
  std::string metrics(const ApiCounters&) override { return "m 1\n"; }
  Reply class_set(const ClassRequest& r) override {
    last_class = r;
    return {json{{"host", r.host}}, {}};
  }
  Reply class_list() override { return {json::array(), {{"X-TM-Missing-Workers", "http://w"}}}; }
  Reply class_remove(const std::string& host) override {
    throw NotFound("no dynamic class for host " + host, {{"workers", json::array({"w1"})}});
  }
  Reply connections(const ConnectionsRequest& r) override { return {json{{"top", r.top}}, {}}; }
  Reply control(const ControlRequest& r) override {
    last_control = r;
    return {json{{"connections", 0}}, {}};
  }
};

using Routes = ServedApi<FakeService>;

TEST_F(Routes, QueryParametersHeadersAndCounters) {
  start();
  auto c = client();
  auto r = c.Get("/api/v1/query?filter=tcp&from=1h%20ago&class=a&class=b&require_all=1");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, "xxxxx");
  EXPECT_EQ(r->get_header_value("X-Test"), "yes");
  EXPECT_EQ(r->get_header_value("Content-Type"), kPcapType);
  EXPECT_EQ(svc.last_query.filter, "tcp");
  EXPECT_EQ(svc.last_query.from, "1h ago");
  EXPECT_EQ(svc.last_query.classes, (std::vector<std::string>{"a", "b"}));
  EXPECT_TRUE(svc.last_query.require_all);
  // A refused request: its status before any answer, and nothing counted as started.
  r = c.Get("/api/v1/query?filter=bad");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 400);
  EXPECT_EQ(json::parse(r->body)["error"], "filter: bad");
  for (int i = 0; i < 100 && api->counters().latency_count == 0; ++i)  // counted once the answer ended
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  ApiCounters n = api->counters();
  EXPECT_EQ(n.queries, 1u);
  EXPECT_EQ(n.query_packets, 3u);
  EXPECT_EQ(n.queries_failed, 0u);
  EXPECT_EQ(n.active_queries, 0);
  EXPECT_EQ(n.latency_count, 1u);
  r = c.Get("/api/v1/stats");
  ASSERT_TRUE(r);
  EXPECT_EQ(json::parse(r->body)["queries"], 1);
  EXPECT_GE(svc.last_counters.http_requests, 3u);
}

TEST_F(Routes, TimeLimitCutsAStreamAndCountsIt) {
  RouteOptions o;
  o.query_seconds = 0.1;
  svc.stream_bytes = 0;
  start(o);
  auto c = client();
  auto r = c.Get("/api/v1/query?filter=");
  EXPECT_FALSE(r && r->status == 200 && r->body.size() > 1000);  // cut, not endless
  for (int i = 0; i < 100 && api->counters().latency_count == 0; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  EXPECT_EQ(api->counters().queries_failed, 1u);
}

TEST_F(Routes, ServiceErrorsBecomeStatusAndJson) {
  start();
  auto c = client();
  auto r = c.Delete("/api/v1/classes/10.0.0.1");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 404);
  auto j = json::parse(r->body);
  EXPECT_EQ(j["error"], "no dynamic class for host 10.0.0.1");
  EXPECT_EQ(j["workers"], json::array({"w1"}));
  r = c.Get("/api/v1/subscribe?filter=tcp");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 409);
  r = c.Get("/health");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 500);
  EXPECT_EQ(json::parse(r->body)["error"], "broken");
  r = c.Get("/api/v1/classes");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->get_header_value("X-TM-Missing-Workers"), "http://w");
  r = c.Get("/api/v1/connections?top=x");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 400);
  r = c.Get("/metrics");
  ASSERT_TRUE(r);
  // The service's exposition, then what the connection limits counted (http_limits.h).
  EXPECT_EQ(r->body.substr(0, 4), "m 1\n");
  EXPECT_NE(r->body.find("\ntm_http_connections_total "), std::string::npos);
}

TEST_F(Routes, JsonBodiesAndQueryStrings) {
  start();
  auto c = client();
  auto r = c.Post("/api/v1/classes?for=1h", R"({"host": "10.0.0.1", "class": "web"})", kJsonType);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(svc.last_class.host, "10.0.0.1");
  EXPECT_EQ(svc.last_class.cls, "web");
  EXPECT_EQ(svc.last_class.for_text, "1h");
  r = c.Post("/api/v1/connections/control?suspend_timeout=no",
             R"({"filter": "host 10.0.0.1", "suspend_cutoff": true})", kJsonType);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(svc.last_control.filter, "host 10.0.0.1");
  EXPECT_EQ(svc.last_control.suspend_cutoff, 1);
  EXPECT_EQ(svc.last_control.suspend_timeout, 0);
  r = c.Post("/api/v1/connections/control", R"({"filter": "tcp", "suspend_cutoff": "yes"})", kJsonType);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 400);
  r = c.Post("/api/v1/classes", "[1]", kJsonType);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 415);  // not an object body: refused (it was ignored, as if absent)
  EXPECT_EQ(json::parse(r->body)["error"],
            "request body: /api/v1/classes takes a JSON object (or a form); this JSON begins with '['");
  r = c.Post("/api/v1/classes?host=10.0.0.1&class=web", "", kJsonType);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);  // no body: the query string's parameters
  r = c.Post("/api/v1/classes", "{nope", kJsonType);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 400);
  // A parameter in the query string and in the body: which counts? Refused, as one given twice.
  r = c.Post("/api/v1/classes?class=web", R"({"host": "10.0.0.1", "class": "db"})", kJsonType);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 400);
  EXPECT_EQ(json::parse(r->body)["error"],
            "class: given in the query string and in the JSON body (it takes one value)");
  // `for` given empty is refused, as other parameters given empty are, not taken for no end.
  for (auto [path, body] :
       {std::pair{"/api/v1/classes?for=", R"({"host": "10.0.0.1", "class": "web"})"},
        std::pair{"/api/v1/classes", R"({"host": "10.0.0.1", "class": "web", "for": ""})"}}) {
    svc.last_class = {};
    r = c.Post(path, body, kJsonType);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 400) << path;
    EXPECT_EQ(json::parse(r->body)["error"], "for: given empty (leave it out for no end)") << path;
    EXPECT_EQ(svc.last_class.host, "") << path;  // the service was not asked
  }
}

// A value's '=' is the value's: a parameter is split at its first '=' (httplib's parser kept
// what follows the last: the filter `tcp[13]=2` was `2`, a Community ID lost its '=' padding),
// in a query string and in a form body alike.
TEST_F(Routes, AnEqualsSignInAValueIsTheValues) {
  start();
  auto c = client();
  auto r = c.Get("/api/v1/query?filter=tcp[13]=2&from=1h%20ago");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200) << r->body;
  EXPECT_EQ(svc.last_query.filter, "tcp[13]=2");
  EXPECT_EQ(svc.last_query.from, "1h ago");
  r = c.Post("/api/v1/query",
             "filter=ip%5B8%5D=64+and+tcp&community_id=1:abc=", "application/x-www-form-urlencoded");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200) << r->body;
  EXPECT_EQ(svc.last_query.filter, "ip[8]=64 and tcp");
  EXPECT_EQ(svc.last_query.community_id, "1:abc=");
  r = c.Get("/api/v1/query?=tcp");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 400);
  EXPECT_NE(json::parse(r->body)["error"].get<std::string>().find("unknown parameter ''"), std::string::npos);
  // A Range is not served: the whole answer, 200, and no 206 without a Content-Range.
  r = c.Get("/api/v1/query?filter=tcp", {{"Range", "bytes=0-1"}});
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, "xxxxx");
  EXPECT_EQ(r->get_header_value("Accept-Ranges"), "none");
  r = c.Get("/api/v1/query?filter=tcp", {{"Range", "bytes=abc"}});  // (httplib's 416, before routing)
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 416);
  EXPECT_EQ(json::parse(r->body)["error"],
            "Range: not a byte range httplib can read (answers come whole: leave Range out)");
  r = c.Head("/api/v1/query?filter=tcp");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->get_header_value("Accept-Ranges"), "none");
}

// A JSON body is read as strictly as a query string: a member the route does not take (a
// misspelt "fitler" answered the whole store), one given twice, text that is not JSON (said
// where), and nesting deep enough to exhaust a thread's stack (50000 deep killed tm serve) are
// each a 400 naming it.
TEST_F(Routes, JsonBodiesMisspeltTwiceOrNestedDeepAreRefused) {
  start();
  auto c = client();
  auto post = [&](const std::string& body) {
    auto r = c.Post("/api/v1/count", body, kJsonType);
    EXPECT_TRUE(r);
    return r ? std::pair{r->status, json::parse(r->body, nullptr, false).value("error", "")}
             : std::pair{0, std::string()};
  };
  EXPECT_EQ(post(R"({"filter": "tcp", "class": ["a", "b"]})").first, 200);
  auto [st, err] = post(R"({"fitler": "host 10.0.0.1"})");
  EXPECT_EQ(st, 400);
  EXPECT_NE(err.find("unknown parameter 'fitler'"), std::string::npos) << err;
  std::tie(st, err) = post(R"({"filter": "udp", "filter": "tcp"})");
  EXPECT_EQ(st, 400);
  EXPECT_NE(err.find("member 'filter' given twice"), std::string::npos) << err;
  std::tie(st, err) = post(R"({"filter": "\ud800"})");
  EXPECT_EQ(st, 400);
  EXPECT_NE(err.find("body: not JSON: parse error at line 1, column"), std::string::npos) << err;
  EXPECT_NE(err.find("surrogate"), std::string::npos) << err;
  for (const char* open_close : {"[]", "{}"}) {
    std::string deep = "{\"filter\": ";
    for (int i = 0; i < 50000; ++i) deep += open_close[0] == '[' ? "[" : "{\"a\": ";
    deep += "1";
    deep += std::string(50000, open_close[1]);
    deep += "}";
    std::tie(st, err) = post(deep);
    EXPECT_EQ(st, 400);
    EXPECT_EQ(err, "body: JSON nested more than 16 deep");
  }
  // Brackets inside a string are text, not nesting.
  std::tie(st, err) = post(R"({"filter": "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[\"]]]"})");
  EXPECT_EQ(st, 200) << err;
  // A path that is not UTF-8: a JSON error, the server unharmed.
  auto r = c.Get("/%ff%fe");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 400);
  EXPECT_TRUE(json::parse(r->body, nullptr, false).is_object()) << r->body;
  EXPECT_TRUE(c.Get("/api/v1/stats"));  // (still serving)
}

// A filter of `n` bytes or more: "host 10.0.0.1 or ... or tcp".
std::string long_filter(size_t n) {
  std::string f;
  while (f.size() < n) f += "host 10.0.0.1 or ";
  return f + "tcp";
}

// httplib refused a form body over its own 8 KiB (a bare 413 "HTTP 413"): forms are taken up
// to the documented 1 MiB, as JSON bodies are.
TEST_F(Routes, FormBodiesTakenUpToTheBodyLimit) {
  start();
  auto c = client();
  std::string f = long_filter(20000);
  httplib::Params form{{"filter", f}, {"from", "1h ago"}};
  auto r = c.Post("/api/v1/download", form);
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  r = c.Get(json::parse(r->body)["url"].get<std::string>().c_str());
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(svc.last_query.filter, f);
  EXPECT_EQ(svc.last_query.from, "1h ago");
  r = c.Post("/api/v1/count", form);  // the packet-query routes take POST (a filter too long for a URI)
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200) << r->body;
  EXPECT_EQ(json::parse(r->body)["packets"], 3);
  // (Over 1 MiB, the 413 naming the size: tests/e2e/test_http_limits.py, through curl; this
  // client fails writing the body the server does not read.)
}

// A request line over httplib's 8 KiB was a bare 414 "HTTP 414": the error says what is too
// long, the limit, and to POST the parameters instead; the POST then answers.
TEST_F(Routes, UriTooLongSaysSoAndPostTakesTheFilter) {
  start();
  auto c = client();
  std::string f = long_filter(9000);
  auto r = c.Get(("/api/v1/count?" + httplib::detail::params_to_query_str({{"filter", f}})).c_str());
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 414);
  std::string e = json::parse(r->body)["error"];
  EXPECT_NE(e.find("URI too long"), std::string::npos) << e;
  EXPECT_NE(e.find("8192"), std::string::npos) << e;
  EXPECT_NE(e.find("POST"), std::string::npos) << e;
  r = c.Get("/api/v1/count?filter=tcp", {{"X-Long", std::string(9000, 'a')}});  // a header line: 400
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 400);
  EXPECT_NE(r->body.find("each at most 8192 bytes"), std::string::npos) << r->body;
  r = c.Post("/api/v1/count", json{{"filter", f}}.dump(), kJsonType);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200) << r->body;
  EXPECT_EQ(svc.last_query.filter, f);
  r = c.Post("/api/v1/explain", json{{"filter", f}}.dump(), kJsonType);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200) << r->body;
  EXPECT_EQ(json::parse(r->body)["kind"], "indexed");
}

// A second value of a single-valued parameter was silently dropped, and a flag took any word
// ("maybe" as false): both are 400s naming the parameter.
TEST_F(Routes, RepeatedParametersAndBadFlagsRefusedNamingThem) {
  start();
  auto c = client();
  auto error_of = [&](const char* path) {
    auto r = c.Get(path);
    EXPECT_TRUE(r);
    if (!r) return std::string();
    EXPECT_EQ(r->status, 400) << path;
    return json::parse(r->body)["error"].get<std::string>();
  };
  EXPECT_EQ(error_of("/api/v1/query?filter=tcp&filter=udp"), "filter: given 2 times (it takes one value)");
  EXPECT_EQ(error_of("/api/v1/count?filter=tcp&from=1h%20ago&from=2h%20ago"),
            "from: given 2 times (it takes one value)");
  EXPECT_EQ(error_of("/api/v1/query?filter=tcp&require_all=maybe"),
            "require_all: expected true or false (1, 0, true, false, yes, no)");
  EXPECT_EQ(error_of("/api/v1/flows?top=1&top=2"), "top: given 2 times (it takes one value)");
  auto r = c.Post("/api/v1/connections/control?filter=tcp&suspend_cutoff=maybe", "", "text/plain");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 400);
  EXPECT_EQ(json::parse(r->body)["error"],
            "suspend_cutoff: expected true or false (1, 0, true, false, yes, no)");
  // Still taken: several classes, and the flag's words.
  r = c.Get("/api/v1/query?filter=tcp&class=a&class=b&require_all=no");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_FALSE(svc.last_query.require_all);
  EXPECT_EQ(svc.last_query.classes.size(), 2u);
}

// The warnings found while a pcap answer was written reached the server's log only: tm query
// --server -w printed none (--store and --count do). The answer names them (X-TM-Answer-Id),
// its client fetches them once it has ended (GET /api/v1/answers/ID) and warns as --store does.
TEST_F(Routes, PcapAnswersWarningsReachTheClient) {
  start();
  auto c = client();
  auto r = c.Get("/api/v1/query?filter=tcp");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200);
  std::string id = r->get_header_value("X-TM-Answer-Id");
  ASSERT_FALSE(id.empty());
  r = c.Get(("/api/v1/answers/" + id).c_str());
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200);
  EXPECT_EQ(json::parse(r->body)["warnings"], json::array({"found while writing"}));
  r = c.Get("/api/v1/answers/999999");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 404);
  // The next answer's id is not the next number (another client could fetch it by counting).
  r = c.Get("/api/v1/query?filter=tcp");
  ASSERT_TRUE(r);
  const std::string next = r->get_header_value("X-TM-Answer-Id");
  ASSERT_FALSE(next.empty());
  EXPECT_NE(std::stoull(next), std::stoull(id) + 1);
  EXPECT_GT(std::max(std::stoull(next), std::stoull(id)), uint64_t{1} << 32);  // (both below: 1 in 2^62)
  EXPECT_EQ(c.Get(("/api/v1/answers/" + next).c_str())->status, 200);
  // The CLI's client (tm query --server -w).
  ClientOptions co;
  co.url = fmt::format("http://127.0.0.1:{}", port);
  HttpService http(co);
  std::vector<std::string> warned;
  std::string got;
  http.query(
      QueryRequest{"tcp", "", "", {}, false, "", "", ""}, [&](const char* d, size_t n) { got.append(d, n); },
      [&](const std::string& w) { warned.push_back(w); });
  EXPECT_EQ(got, "xxxxx");
  EXPECT_EQ(warned, std::vector<std::string>{"found while writing"});
}

TEST(ServiceErrors, ThrowForStatusGivesTheKind) {
  EXPECT_THROW(throw_for_status(400, "x"), BadRequest);
  EXPECT_THROW(throw_for_status(404, "x"), NotFound);
  EXPECT_THROW(throw_for_status(409, "x"), Conflict);
  EXPECT_THROW(throw_for_status(503, "x"), Unavailable);
  try {
    throw_for_status(502, "gone", {{"workers", 1}});
  } catch (const ServiceError& e) {
    EXPECT_EQ(e.status, 502);
    EXPECT_EQ(e.detail["workers"], 1);
  }
}

TEST(LocalServiceErrors, NamedAsOptionsOrAsParameters) {
  LocalOptions o;
  o.store = "/nonexistent";
  LocalService cli(o);
  o.naming = LocalOptions::Naming::kParameters;
  LocalService api(o);
  EXPECT_THROW(cli.open_query({"host and", "", "", {}, false, "", "", ""}), BadRequest);
  EXPECT_THROW(api.open_query({"host and", "", "", {}, false, "", "", ""}), BadRequest);
  try {  // (a refused request either way: exit status 2 on the command line, as through a server)
    cli.open_query({"tcp", "yesterday-ish", "", {}, false, "", "", ""});
    FAIL();
  } catch (const BadRequest& e) {
    EXPECT_EQ(std::string(e.what()).rfind("--from: ", 0), 0u) << e.what();
  }
  try {
    api.open_query({"tcp", "yesterday-ish", "", {}, false, "", "", ""});
    FAIL();
  } catch (const BadRequest& e) {
    EXPECT_EQ(std::string(e.what()).rfind("from: ", 0), 0u) << e.what();
  }
  try {
    api.open_query({"tcp", "2026-01-02", "2026-01-01", {}, false, "", "", ""});
    FAIL();
  } catch (const BadRequest& e) {
    EXPECT_STREQ(e.what(), "from is after to");
  }
  // Read-only: no dynamic classes, no connections, no subscriptions.
  EXPECT_THROW(api.class_list(), Conflict);
  EXPECT_THROW(api.control({"tcp", 1, -1}), Conflict);
  EXPECT_THROW(api.open_subscription({"tcp", "", "", {}, false}), Conflict);
  EXPECT_EQ(api.health().body["live"], false);
}

// /api/v1/explain checked only the filter: a bad time, a time range backwards and an unknown
// class were answered 200 where the query refuses them. It checks them as the query does.
TEST(LocalServiceErrors, ExplainChecksTheRequestAsTheQueryDoes) {
  auto dir = std::filesystem::temp_directory_path() / ("tm-explain-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir / "default");
  std::ofstream(dir / "STORE") << store::store_marker_text();
  LocalOptions o;
  o.store = dir.string();
  o.naming = LocalOptions::Naming::kParameters;
  LocalService api(o);
  const StopCheck go_on = [] { return std::string(); };
  EXPECT_EQ(api.explain({"tcp", "1h ago", "", {"default"}, false, "", "", ""}, go_on).body["kind"],
            "indexed");
  for (auto [from, to, cls, why] :
       {std::tuple{"abc", "", "", "from: "}, std::tuple{"", "tomorrow-ish", "", "to: "},
        std::tuple{"2026-01-02", "2026-01-01", "", "from is after to"},
        std::tuple{"", "", "nosuch", "no class 'nosuch' in the store"}}) {
    try {
      api.explain({"tcp", from, to, cls[0] ? std::vector<std::string>{cls} : std::vector<std::string>{},
                   false, "", "", ""},
                  go_on);
      ADD_FAILURE() << "explain took " << from << " " << to << " " << cls;
    } catch (const BadRequest& e) {
      EXPECT_EQ(std::string(e.what()).rfind(why, 0), 0u) << e.what();
    }
  }
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace tmach::server
