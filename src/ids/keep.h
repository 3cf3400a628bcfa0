// Keeping the suspect whole (tm evidence --keep): on each alert, through a running tm serve's
// Service, the alert's hosts go into a dynamic class without cutoff for a while (the server
// reverts it: its `for` expiry), and the cutoff of the alert's live connection is suspended, so
// that what happens next is recorded in full. With the connection scope only the connection's
// cutoff is suspended.
//
// Idempotent: a burst of alerts on one host (one connection) asks the server once, and again
// at most once every keep/10 to refresh the expiry. A server error (a read-only store: 409, a
// bad request: 400, a server that does not answer) is reported for that alert, never thrown.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <string>

#include "ids/alert.h"
#include "server/service.h"

namespace tmach::ids {

struct KeepOptions {
  enum class Scope : uint8_t { kHost, kConn };
  uint64_t keep_ns = 0;  // how long a host stays in the class
  Scope scope = Scope::kHost;
  std::string cls;  // the class; empty: the first one without cutoff the server reports
};

struct KeepStats {
  uint64_t hosts_raised = 0;    // hosts put into the class (a refresh of one already put: not counted)
  uint64_t class_requests = 0;  // class_set requests that succeeded (refreshes included)
  uint64_t controls = 0;        // control requests (cutoff suspended) that succeeded
  uint64_t failed = 0;          // requests that failed
};

class Keeper {
 public:
  using Clock = std::chrono::steady_clock;
  Keeper(server::Service& svc, KeepOptions o, server::Warn warn);
  // Picks the class from what the server reports (its stats: each class and its cutoff).
  // Throws std::runtime_error, a message for the user, when the server has no live capture,
  // --keep-class names no class it has, or (no --keep-class) no class is without cutoff.
  // Returns the class. The host scope needs it; the connection scope checks only the server.
  std::string start();
  // The action for one alert: what was done, as the evidence JSON's "kept" (hosts, class, until;
  // "error" when a request failed).
  nlohmann::json keep(const Alert& a, Clock::time_point now = Clock::now());
  const KeepStats& stats() const { return stats_; }
  const std::string& cls() const { return o_.cls; }

  // The filter of the alert's connection, both directions each with its own ports
  // (flow::connections_filter of a record made from the alert's tuple); a tuple without a
  // protocol: TCP, UDP and SCTP.
  static std::string connection_filter(const Alert& a);

 private:
  struct Held {
    Clock::time_point asked;
    std::string until;  // the server's expiry ("" for a connection: until it ends)
  };
  bool due(const std::map<std::string, Held>& m, const std::string& k, Clock::time_point now) const;
  // The server's dynamic class entries (Service::class_list), or an object when they cannot be
  // had whole (below).
  nlohmann::json class_list();
  // A keep never shortens what a host has: in the keep class already until later than this
  // keep would, or for good (an operator's `tm class set`, the Zeek script, another run), it is
  // left as it is (setting it made an operator's "never" expire with the keep). That stay
  // ("never" or its expiry) from `listed` (class_list()), else nullopt: the host is set.
  std::optional<std::string> standing(const nlohmann::json& listed, const std::string& host) const;

  server::Service& svc_;
  KeepOptions o_;
  server::Warn warn_;
  KeepStats stats_;
  std::map<std::string, Held> hosts_, conns_;
};

}  // namespace tmach::ids
