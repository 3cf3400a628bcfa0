// The Service over a store directory on this machine: tm query/flows --store, and tm serve's
// API, which gives it the live capture's hooks (live.h) when it records.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "query/executor.h"
#include "server/live.h"
#include "server/service.h"

namespace tmach::server {

class QueryStream;

// --from/--to values (empty: leave the bound as it is), relative to now; throws naming the option.
void parse_time_range(const std::string& from, const std::string& to, uint64_t& from_ns, uint64_t& to_ns);

struct LocalOptions {
  std::string store;
  Backend* live = nullptr;  // tm serve -i; null: the store alone (read-only: no dynamic classes)
  // How a refused request's errors (BadRequest: exit status 2 on the command line, 400 over
  // HTTP) name what was asked: as the command line's options (--from) or as the API's
  // parameters (from).
  enum class Naming { kOptions, kParameters } naming = Naming::kOptions;
  size_t write_chunk = 1 << 20;           // bytes per write of a pcap answer
  size_t subscription_queue = 64u << 20;  // bytes a slow subscriber may fall behind
};

class LocalService : public Service {
 public:
  explicit LocalService(std::string store) : LocalService(LocalOptions{std::move(store)}) {}
  explicit LocalService(LocalOptions o) : o_(std::move(o)) {}
  std::string query(const QueryRequest& q, const ByteSink& out, const Warn& warn) override;
  std::string flows(const FlowRequest& q, const ByteSink& out, const Warn& warn) override;
  std::unique_ptr<Stream> open_query(const QueryRequest& q) override;
  std::unique_ptr<Stream> open_flows(const FlowRequest& q) override;
  std::unique_ptr<Stream> open_subscription(const SubscribeRequest& q) override;
  Reply health() override;
  Reply stats(const ApiCounters& api) override;
  std::string metrics(const ApiCounters& api) override;
  Reply class_set(const ClassRequest& r) override;
  Reply class_list() override;
  Reply class_remove(const std::string& host) override;
  Reply connections(const ConnectionsRequest& r) override;
  Reply control(const ControlRequest& r) override;
  Reply history() override;
  // Counts without building the answer (no copy of a packet); the same count as Service::count.
  Reply count(const QueryRequest& q, const StopCheck& stop) override;
  // Service::explain, the request checked first as open_query checks it; with q.measure, the
  // query run without an answer, for its figures.
  Reply explain(const QueryRequest& q, const StopCheck& stop) override;

 private:
  struct PacketQuery;
  // A packet query's request checked and parsed (open_packets and explain); `sync`: the live
  // writer flushes first (the answer's catalog then holds the packets still in RAM).
  PacketQuery packet_query(const QueryRequest& r, bool sync) const;
  // open_query's stream, which can also only count.
  std::unique_ptr<QueryStream> open_packets(const QueryRequest& r);
  // filter, times and classes -> a query; errors named as o_.naming says. `check_order`:
  // from after to is an error. `check_libpcap`: a filter handed to libpcap whole is compiled
  // for Ethernet now (packet_query checks it later, for the store's link types).
  query::QuerySpec spec(const std::string& filter, const std::string& from, const char* from_name,
                        const std::string& to, bool check_order, bool check_libpcap = true) const;
  [[noreturn]] void refuse(const std::string& option_text, const std::string& param_text) const;
  Backend& need_live(const char* what) const;  // Conflict (409) "...: no WHAT" without live capture
  // BadRequest unless `id` is empty or a Community ID.
  // The base64 form of a Community ID given in either form (packet::community_id_base64), ""
  // for ""; BadRequest for what is none.
  std::string community_id_of(const std::string& id) const;

  LocalOptions o_;
};

}  // namespace tmach::server
