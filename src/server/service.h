// One interface for what tm answers, whoever answers it: the local store (LocalService) or a
// running tm serve / tm frontend over HTTP (HttpService). Each CLI command has one code path
// over a Service; which implementation it gets depends on --store or --server.
//
// Requests carry the user's text (filter, times): the answerer parses them, so relative times
// ("15m ago") are relative to its clock and errors read as its own.
#pragma once

#include <functional>
#include <stdexcept>
#include <string>
#include <vector>

namespace tmach::server {

// A request the answerer refuses as malformed (a filter syntax error): the CLI prints the
// message alone and exits with 2.
struct BadRequest : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Receives an answer's bytes (a nanosecond pcap stream, or rendered text) as they come.
using ByteSink = std::function<void(const char* data, size_t n)>;
// Receives each warning (without the "tm CMD: warning: " prefix) as it is found.
using Warn = std::function<void(const std::string&)>;

struct QueryRequest {
  std::string filter, from, to;  // as given; empty: all packets, no bound
  std::vector<std::string> classes;
  bool require_all = false;  // a tm frontend: fail unless every worker answers in full
};

struct FlowRequest {
  std::string filter, from, to;
  std::string format = "text", by = "bytes";  // text, json, csv; bytes, packets, duration
  size_t top = 0;                             // 0: all
  bool require_all = false;
};

class Service {
 public:
  virtual ~Service() = default;
  // The matching packets, in time order, as one nanosecond pcap stream into `out`. Returns
  // the summary line. Throws BadRequest, or std::runtime_error.
  virtual std::string query(const QueryRequest& q, const ByteSink& out, const Warn& warn) = 0;
  // The matching flow records, rendered in q.format into `out`. Returns the summary line
  // (empty when there is none to give).
  virtual std::string flows(const FlowRequest& q, const ByteSink& out, const Warn& warn) = 0;
};

}  // namespace tmach::server
