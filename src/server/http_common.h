// What the recorder's API (tm serve) and the cluster front-end (tm frontend) answer alike:
// errors as JSON, the bearer-token check, request parameters, pcap answers.
#pragma once

#include <atomic>
#include <cstdint>
#include <ctime>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <utility>

#include "server/service.h"

namespace httplib {
class Server;
struct Request;
struct Response;
class DataSink;
}  // namespace httplib

namespace tmach::server {

// A request the API could not honour: HTTP status and message (service.h).
using ApiError = ServiceError;

// Content types of the answers.
inline constexpr const char* kJsonType = "application/json";
inline constexpr const char* kPcapType = "application/vnd.tcpdump.pcap";
inline constexpr const char* kMetricsType = "text/plain; version=0.0.4";

// Admission control: at most `limit` requests of a kind at once; beyond, 503.
class Admission {
 public:
  Admission(std::string what, int limit) : what_(std::move(what)), limit_(limit) {}
  // One more running, or Unavailable (503) "too many <what> (limit N); try again later".
  void admit();
  void release() { active_--; }
  int active() const { return active_.load(); }
  uint64_t rejected() const { return rejected_.load(); }

 private:
  std::string what_;
  int limit_;
  std::atomic<int> active_{0};
  std::atomic<uint64_t> rejected_{0};
};

// The flow answer's parameters: format (json, csv, text; default json), by (bytes, packets,
// duration; default bytes), top (a number; 0 = all). BadRequest when one is bad.
struct FlowParams {
  std::string format = "json", by = "bytes";
  size_t top = 0;
};
FlowParams flow_params(const httplib::Request& req);

// Answers {"error": msg, ...extra} with `status`.
void json_error(httplib::Response& res, int status, const std::string& msg,
                nlohmann::json extra = nlohmann::json::object());

// Compares without an early exit (the length is not secret, the content is).
bool const_time_equal(const std::string& a, const std::string& b);

// A query parameter, or "" when absent; a flag parameter ("1", "true", "yes").
std::string param(const httplib::Request& req, const char* name);
bool flag_param(const httplib::Request& req, const char* name);

// Writes into a chunked response; throws std::runtime_error("client went away") when the
// client is gone.
ByteSink chunk_sink(httplib::DataSink& sink);

// Timeouts, request size limit, bearer token (`token`, compared in constant time; /health
// stays open; none when empty), JSON answers for unknown endpoints and for exceptions
// (a ServiceError's status and detail, else 500); counts every request in `requests`.
void install_common_handlers(httplib::Server& s, const std::string& token, std::atomic<uint64_t>& requests,
                             time_t write_timeout_s);

}  // namespace tmach::server
