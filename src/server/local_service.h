// The Service over a store directory on this machine (tm query/flows --store).
#pragma once

#include <string>

#include "server/service.h"

namespace tmach::server {

class LocalService : public Service {
 public:
  explicit LocalService(std::string store) : store_(std::move(store)) {}
  std::string query(const QueryRequest& q, const ByteSink& out, const Warn& warn) override;
  std::string flows(const FlowRequest& q, const ByteSink& out, const Warn& warn) override;

 private:
  std::string store_;
};

}  // namespace tmach::server
