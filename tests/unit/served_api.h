// A test fixture serving an HttpApi over a test's own Service on a loopback port (the route
// tests: test_routes.cpp, test_web.cpp).
#pragma once

#include <gtest/gtest.h>
#include <httplib.h>

#include <chrono>
#include <cstring>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>

#include "server/routes.h"

namespace tmach::server {

// A service with nothing to serve, for fakes to override what their test needs: empty answers,
// health ok, stats {}, and Conflict ("read-only") for the live-only calls.
class StubService : public Service {
 public:
  std::string query(const QueryRequest&, const ByteSink&, const Warn&) override { return ""; }
  std::string flows(const FlowRequest&, const ByteSink&, const Warn&) override { return ""; }
  std::unique_ptr<Stream> open_subscription(const SubscribeRequest&) override { throw Conflict("read-only"); }
  Reply health() override { return {nlohmann::json{{"status", "ok"}}, {}}; }
  Reply stats(const ApiCounters&) override { return {nlohmann::json::object(), {}}; }
  std::string metrics(const ApiCounters&) override { return ""; }
  Reply class_set(const ClassRequest&) override { throw Conflict("read-only"); }
  Reply class_list() override { throw Conflict("read-only"); }
  Reply class_remove(const std::string&) override { throw Conflict("read-only"); }
  Reply connections(const ConnectionsRequest&) override { throw Conflict("read-only"); }
  Reply control(const ControlRequest&) override { throw Conflict("read-only"); }
};

// A nanosecond pcap (link type 1) of `n` records of `len` bytes of `fill`, for fake services.
inline std::string fake_pcap(int n, uint32_t len, char fill) {
  std::string s(24, '\0');
  uint32_t magic = 0xa1b23c4d, lt = 1;
  std::memcpy(s.data(), &magic, 4);
  std::memcpy(s.data() + 20, &lt, 4);
  for (int i = 0; i < n; ++i) {
    char h[16] = {};
    std::memcpy(h + 8, &len, 4);
    std::memcpy(h + 12, &len, 4);
    s.append(h, 16);
    s.append(len, fill);
  }
  return s;
}

template <class Svc>
class ServedApi : public ::testing::Test {
 protected:
  void start(RouteOptions o = {}) {
    api = std::make_unique<HttpApi>(svc, o);
    port = api->server().bind_to_any_port("127.0.0.1");
    ASSERT_GT(port, 0);
    th = std::thread([this] { api->serve(); });
    for (int i = 0; i < 200 && !api->server().is_running(); ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  void TearDown() override {
    if (api) api->stop();
    if (th.joinable()) th.join();
  }
  httplib::Client client() { return httplib::Client("127.0.0.1", port); }
  Svc svc;
  std::unique_ptr<HttpApi> api;
  std::thread th;
  int port = 0;
};

}  // namespace tmach::server
