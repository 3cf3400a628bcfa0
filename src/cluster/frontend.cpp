#include "cluster/frontend.h"

#include <httplib.h>

#include "server/http_common.h"
#include "server/listen.h"
#include "util/json_text.h"

namespace tmach::cluster {
namespace {

server::RouteOptions route_options(const ClusterConfig& c) {
  server::RouteOptions r;
  r.token = c.token;
  r.tls = c.tls;
  r.max_queries = c.max_queries;
  r.max_subscriptions = c.max_subscriptions;
  r.query_seconds = c.query_timeout_s;
  r.write_timeout_s = 60;
  // Every streaming query and subscription holds a server thread for its whole length: room
  // for all of them plus a few for health, stats and query status, which must not queue
  // behind them.
  return r;
}

void json_reply(httplib::Response& res, const nlohmann::json& j) {
  res.set_content(util::json_text(j, 2) + "\n", server::kJsonType);
}

}  // namespace

Frontend::Frontend(ClusterConfig cfg) : svc_(std::move(cfg)), http_(svc_, route_options(svc_.config())) {
  auto& s = http_.routes();
  // The cluster as configured, and the outcome of recent packet queries (by X-TM-Query-Id).
  // Neither takes a parameter: one given is refused (400), as on every route (routes.cpp).
  s.get("/api/v1/cluster", [this](const httplib::Request& req, httplib::Response& res) {
    server::only_params(req, {});
    json_reply(res, svc_.cluster_json());
  });
  s.get(R"(/api/v1/cluster/queries/(\d+))", [this](const httplib::Request& req, httplib::Response& res) {
    server::only_params(req, {});
    res.set_content(util::json_text(svc_.query_status(std::stoull(req.matches[1].str()))) + "\n",
                    server::kJsonType);
  });
}

Frontend::~Frontend() = default;

std::string Frontend::bind() {
  server::HostPort a = server::parse_host_port(svc_.config().listen, "listen");
  return server::format_host_port(a.host, http_.bind(a.host, a.port, svc_.config().listen));
}

void Frontend::serve() { http_.serve(); }

void Frontend::stop() { http_.stop(); }

}  // namespace tmach::cluster
