// The daemon's HTTP/1.1 API (tm serve): the routes of routes.h over a LocalService of the
// store, recorded live (tm serve -i: the capture's hooks, live.h) or read-only. (No .cpp of
// its own: what speaks HTTP is routes.cpp, in the HTTP library.)
#pragma once

#include <fmt/format.h>

#include <algorithm>
#include <string>

#include "server/live.h"
#include "server/local_service.h"
#include "server/routes.h"

namespace tmach::server {

struct ApiOptions {
  std::string store;
  std::string host = "127.0.0.1";
  int port = 8910;
  std::string token;                    // bearer token; empty: no authentication (loopback only)
  int max_queries = 4;                  // concurrent /query and /flows; beyond: 503
  int max_subscriptions = 8;            // concurrent /subscribe; beyond: 503
  double query_seconds = 300;           // a query running longer is cut off
  double subscription_seconds = 86400;  // a subscription lasting longer is ended
  TlsFiles tls;                         // HTTPS when tls.on()
};

class ApiServer {
 public:
  // `live` may be null: the store is served read-only.
  ApiServer(ApiOptions o, Backend* live)
      : o_(std::move(o)), svc_(local_options(o_, live)), http_(svc_, route_options(o_)) {}
  // Binds the listening socket (port 0: one the system picks); throws std::runtime_error
  // when it cannot.
  void bind() { o_.port = http_.bind(o_.host, o_.port, fmt::format("{}:{}", o_.host, o_.port)); }
  int port() const { return o_.port; }  // after bind(): the port bound
  // Serves until stop() (blocking).
  void serve() { http_.serve(); }
  // Stops listening, ends running queries and subscriptions soon.
  void stop() { http_.stop(); }

 private:
  static LocalOptions local_options(const ApiOptions& o, Backend* live) {
    LocalOptions l;
    l.store = o.store;
    l.live = live;
    l.naming = LocalOptions::Naming::kParameters;
    l.write_chunk = 1 << 16;  // 64 KiB chunks of the HTTP answer
    return l;
  }
  static RouteOptions route_options(const ApiOptions& o) {
    RouteOptions r;
    r.token = o.token;
    r.max_queries = o.max_queries;
    r.max_subscriptions = o.max_subscriptions;
    r.query_seconds = o.query_seconds;
    r.subscription_seconds = o.subscription_seconds;
    r.tls = o.tls;
    // A client (a cluster front-end merging this answer with a slower worker's) may stop
    // reading for as long as a query may last: only then is the answer cut.
    r.write_timeout_s = static_cast<time_t>(std::max(60.0, o.query_seconds));
    return r;
  }
  ApiOptions o_;
  LocalService svc_;
  HttpApi http_;
};

}  // namespace tmach::server
