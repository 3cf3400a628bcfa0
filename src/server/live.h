// What tm serve adds to a LocalService when it captures: the live part of the answers (its
// counters, dynamic classes, the connection table, subscriptions to new packets). Every
// method is called from API threads. The implementation over a record::Session is
// LiveBackend (live_backend.h).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "query/expr.h"
#include "store/catalog.h"

namespace tmach::server {

class Metrics;
class Subscriber;

class Backend {
 public:
  virtual ~Backend() = default;
  // Makes every packet captured so far visible on disk (rings drained, buffers flushed).
  virtual bool sync() = 0;
  virtual nlohmann::json stats() = 0;
  // Why the recording is not healthy now (the writer cannot write: a full disk it waits out),
  // or empty.
  virtual std::string problem() { return {}; }
  // By class, the first sequence number of the segments this recording writes: an open segment
  // numbered below it is not its own (one its start's recovery left, damaged). Fixed at start.
  virtual std::map<std::string, uint64_t> first_seq() const { return {}; }
  virtual void metrics(Metrics& m) = 0;
  // Dynamic classes. Throw ServiceError (service.h) for bad input.
  virtual nlohmann::json class_set(const std::string& host, const std::string& cls, uint64_t for_ns) = 0;
  virtual nlohmann::json class_list() = 0;
  // nullopt when the host has no dynamic class; else the answer, {"removed": HOST}. Both this
  // and class_set add "warnings" when the list could not be saved (it holds until tm serve stops).
  virtual std::optional<nlohmann::json> class_remove(const std::string& host) = 0;
  // Registers `s` in the writer thread right after a flush; returns the store as it was on
  // disk at that moment (open segments limited to their size then). Throws ServiceError.
  virtual store::Catalog subscribe(const std::shared_ptr<Subscriber>& s) = 0;
  virtual void unsubscribe(const std::shared_ptr<Subscriber>& s) = 0;
  // Active connections matching `e`, largest first (top 0 = all); and per-connection
  // controls on them: suspend (1) or resume (0) the cutoff / the inactivity timeout, -1 = keep.
  virtual nlohmann::json connections(const query::Expr& e, size_t top) = 0;
  virtual nlohmann::json control(const query::Expr& e, int suspend_cutoff, int suspend_timeout) = 0;
  // Recent rates (rate_history.h), or null when none are kept.
  virtual nlohmann::json history() { return nullptr; }
};

}  // namespace tmach::server
