// A test fixture serving an HttpApi over a test's own Service on a loopback port (the route
// tests: test_routes.cpp, test_web.cpp).
#pragma once

#include <gtest/gtest.h>
#include <httplib.h>

#include <chrono>
#include <memory>
#include <thread>

#include "server/routes.h"

namespace tmach::server {

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
