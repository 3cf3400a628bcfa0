// The Service over HTTP: a running tm serve or tm frontend (tm query/flows --server).
#pragma once

#include "server/client.h"
#include "server/service.h"

namespace tmach::server {

class HttpService : public Service {
 public:
  explicit HttpService(ClientOptions c) : c_(std::move(c)) {}
  std::string query(const QueryRequest& q, const ByteSink& out, const Warn& warn) override;
  std::string flows(const FlowRequest& q, const ByteSink& out, const Warn& warn) override;
  // The server's /api/v1/count: its body, with a front-end's missing workers (its
  // X-TM-Missing-Reasons header) added to "warnings"; its refusals (400, --require-all's 503)
  // thrown with their status. `stop` is not asked (the server's time limit holds).
  Reply count(const QueryRequest& q, const StopCheck& stop) override;
  // The server's /api/v1/explain (its figures with q.measure); `stop` is not asked.
  Reply explain(const QueryRequest& q, const StopCheck& stop) override;
  // The rest of the API, each a request to the server (its status kept: throw_for_status).
  std::unique_ptr<Stream> open_subscription(const SubscribeRequest& q) override;
  Reply health() override;
  Reply stats(const ApiCounters& api) override;  // the server's own counters; `api` unused
  std::string metrics(const ApiCounters& api) override;
  Reply class_set(const ClassRequest& r) override;
  Reply class_list() override;
  Reply class_remove(const std::string& host) override;
  Reply connections(const ConnectionsRequest& r) override;
  Reply control(const ControlRequest& r) override;

 private:
  ClientOptions c_;
};

}  // namespace tmach::server
