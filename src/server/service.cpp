#include "server/service.h"

#include <cstring>

#include "query/packet_filter.h"
#include "query/parser.h"
#include "query/planner.h"

namespace tmach::server {
namespace {

// A one-step call made when the stream runs.
class LazyStream : public Stream {
 public:
  using Call = std::function<std::string(const ByteSink&, const Warn&)>;
  explicit LazyStream(Call c) : call_(std::move(c)) {}
  std::string run(const ByteSink& out, const Warn& warn, const StopCheck& stop) override {
    return call_(
        [&](const char* d, size_t n) {
          if (std::string why = stop(); !why.empty()) throw Cancelled(why);
          out(d, n);
        },
        warn);
  }

 private:
  Call call_;
};

// Counts the records of a pcap stream, whatever the sizes of the pieces it comes in.
class PcapCounter {
 public:
  void feed(const char* d, size_t n) {
    while (n > 0) {
      if (skip_ > 0) {
        size_t k = std::min<uint64_t>(skip_, n);
        skip_ -= k, d += k, n -= k;
        continue;
      }
      size_t want = header_done_ ? 16 : 24;
      size_t k = std::min(want - have_, n);
      std::memcpy(buf_ + have_, d, k);
      have_ += k, d += k, n -= k;
      if (have_ < want) continue;
      have_ = 0;
      if (!header_done_) {
        uint32_t magic;
        std::memcpy(&magic, buf_, 4);
        swapped_ = magic == 0xd4c3b2a1 || magic == 0x4d3cb2a1;
        header_done_ = true;
        continue;
      }
      uint32_t incl;
      std::memcpy(&incl, buf_ + 8, 4);
      if (swapped_) incl = __builtin_bswap32(incl);
      skip_ = incl;
      ++packets_;
    }
  }
  uint64_t packets() const { return packets_; }

 private:
  char buf_[24];
  size_t have_ = 0;
  uint64_t skip_ = 0, packets_ = 0;
  bool header_done_ = false, swapped_ = false;
};

}  // namespace

void throw_for_status(int status, const std::string& m, nlohmann::json detail) {
  switch (status) {
    case 400:
      throw BadRequest(m, std::move(detail));
    case 404:
      throw NotFound(m, std::move(detail));
    case 409:
      throw Conflict(m, std::move(detail));
    case 503:
      throw Unavailable(m, std::move(detail));
    default:
      throw ServiceError(status, m, std::move(detail));
  }
}

std::unique_ptr<Stream> Service::open_query(const QueryRequest& q) {
  return std::make_unique<LazyStream>([this, q](const ByteSink& o, const Warn& w) { return query(q, o, w); });
}

std::unique_ptr<Stream> Service::open_flows(const FlowRequest& q) {
  return std::make_unique<LazyStream>([this, q](const ByteSink& o, const Warn& w) { return flows(q, o, w); });
}

Reply Service::explain(const QueryRequest& q) {
  nlohmann::json j{{"filter", q.filter}};
  if (q.filter.find_first_not_of(" \t\r\n") == std::string::npos) {
    j["kind"] = "all";
    j["plan"] = "every packet of the time range";
    return {std::move(j), {}};
  }
  query::ParseResult pr = query::parse_expr(q.filter);
  if (pr.kind == query::ParseResult::Kind::kError) throw BadRequest(query::format_error(q.filter, pr));
  if (pr.kind == query::ParseResult::Kind::kIndexed) {
    j["kind"] = "indexed";
    j["parsed"] = pr.expr.str();
    j["plan"] = "indexes, then every candidate re-checked on its bytes\n" + query::explain_plan(pr.expr);
  } else {
    // As a query checks it (LocalService): libpcap's own error for what it cannot compile.
    if (std::string err = query::bpf_compile_error(q.filter); !err.empty())
      throw BadRequest("filter: " + err);
    j["kind"] = "scan";
    j["unplanned"] = pr.unplanned;
    j["plan"] =
        "scan with libpcap BPF ('" + pr.unplanned + "' is not indexed); the time range bounds the scan";
  }
  return {std::move(j), {}};
}

Reply Service::count(const QueryRequest& q, const StopCheck& stop) {
  auto s = open_query(q);
  PcapCounter c;
  std::string summary =
      s->run([&](const char* d, size_t n) { c.feed(d, n); }, [](const std::string&) {}, stop);
  return {nlohmann::json{{"packets", c.packets()}, {"summary", summary}}, s->headers};
}

Reply Service::history() {
  return {nlohmann::json{{"interval_s", 0}, {"samples", nlohmann::json::array()}}, {}};
}

}  // namespace tmach::server
