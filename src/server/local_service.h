// The Service over a store directory on this machine (tm query/flows --store).
#pragma once

#include <cstdint>
#include <string>

#include "server/service.h"

namespace tmach::server {

// --from/--to values (empty: leave the bound as it is), relative to now; throws naming the option.
void parse_time_range(const std::string& from, const std::string& to, uint64_t& from_ns, uint64_t& to_ns);

class LocalService : public Service {
 public:
  explicit LocalService(std::string store) : store_(std::move(store)) {}
  std::string query(const QueryRequest& q, const ByteSink& out, const Warn& warn) override;
  std::string flows(const FlowRequest& q, const ByteSink& out, const Warn& warn) override;

 private:
  std::string store_;
};

}  // namespace tmach::server
