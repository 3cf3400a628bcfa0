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

 private:
  ClientOptions c_;
};

}  // namespace tmach::server
