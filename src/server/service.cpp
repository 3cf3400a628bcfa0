#include "server/service.h"

#include <fmt/format.h>

#include <string_view>

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

namespace {
constexpr std::string_view kMissingAtStart = "workers missing from the answer: ";
constexpr std::string_view kFailedDuring = " failed during the answer: ";
}  // namespace

std::string Reply::missing_warning() const {
  std::string workers;
  for (const auto& [k, v] : headers) {
    if (k == "X-TM-Missing-Reasons") return missing_workers_warning(v);
    if (k == "X-TM-Missing-Workers") workers = v;
  }
  return workers.empty() ? workers : missing_workers_warning(workers);
}

namespace {
// JSON text in ASCII (a header's value): control bytes and non-ASCII characters escaped.
std::string ascii(const nlohmann::json& j) {
  return j.dump(-1, ' ', true, nlohmann::json::error_handler_t::replace);
}
}  // namespace

std::string warnings_header(const std::vector<std::string>& warnings) {
  constexpr size_t kMax = 4096;
  nlohmann::json a = nlohmann::json::array();
  size_t used = 2;
  for (size_t i = 0; i < warnings.size(); ++i) {
    const std::string w = ascii(warnings[i]);
    if (used + w.size() + 1 > kMax) {
      a.push_back(fmt::format("... and {} more (in the server's log)", warnings.size() - i));
      break;
    }
    used += w.size() + 1;
    a.push_back(warnings[i]);
  }
  return ascii(a);
}

std::vector<std::string> warnings_of_header(const std::string& value) {
  std::vector<std::string> out;
  nlohmann::json a = nlohmann::json::parse(value, nullptr, false);
  if (!a.is_array()) return out;
  for (auto& w : a)
    if (w.is_string()) out.push_back(w.get<std::string>());
  return out;
}

std::string missing_workers_warning(const std::string& reasons) {
  return std::string(kMissingAtStart) + reasons;
}

std::string worker_failed_warning(const std::string& url, const std::string& why) {
  return "worker " + url + std::string(kFailedDuring) + why;
}

std::optional<std::string> missing_workers_of(const std::string& w) {
  if (w.starts_with(kMissingAtStart)) return w.substr(kMissingAtStart.size());
  if (w.starts_with("worker ") && w.find(kFailedDuring) != std::string::npos) return w;
  return std::nullopt;
}

std::unique_ptr<Stream> Service::open_query(const QueryRequest& q) {
  return std::make_unique<LazyStream>([this, q](const ByteSink& o, const Warn& w) { return query(q, o, w); });
}

std::unique_ptr<Stream> Service::open_flows(const FlowRequest& q) {
  return std::make_unique<LazyStream>([this, q](const ByteSink& o, const Warn& w) { return flows(q, o, w); });
}

nlohmann::json filter_plan(const std::string& filter, bool check_libpcap) {
  nlohmann::json j{{"filter", filter}};
  if (filter.find_first_not_of(" \t\r\n") == std::string::npos) {
    j["kind"] = "all";
    j["plan"] = "every packet of the time range";
    return j;
  }
  query::ParseResult pr = query::parse_expr(filter);
  if (pr.kind == query::ParseResult::Kind::kError) throw BadRequest(query::format_error(filter, pr));
  if (pr.kind == query::ParseResult::Kind::kIndexed) {
    j["kind"] = "indexed";
    j["parsed"] = pr.expr.str();
    j["plan"] = "indexes, then every candidate re-checked on its bytes\n" + query::explain_plan(pr.expr);
  } else {
    // As a query checks it (LocalService): libpcap's own error for what it cannot compile.
    if (check_libpcap)
      if (std::string err = query::libpcap_filter_error(query::libpcap_text(filter, pr)); !err.empty())
        throw BadRequest(err);
    j["unplanned"] = pr.unplanned;
    if (pr.split()) {
      j["kind"] = "indexed+libpcap";
      j["parsed"] = pr.planned.str();
      j["libpcap"] = pr.libpcap;
      j["plan"] =
          "indexes for the terms tm plans, then every candidate re-checked on its bytes by them and by "
          "libpcap BPF for the rest, " +
          pr.libpcap + " ('" + pr.unplanned + "' is not indexed)\n" + query::explain_plan(pr.planned);
    } else {
      j["kind"] = "scan";
      j["plan"] =
          "scan with libpcap BPF ('" + pr.unplanned + "' is not indexed); the time range bounds the scan";
    }
  }
  return j;
}

Reply Service::explain(const QueryRequest& q, const StopCheck&) { return {filter_plan(q.filter), {}}; }

Reply Service::count(const QueryRequest& q, const StopCheck& stop) {
  // As pcapng, unless pcap is asked for: every link type is counted (a pcap answer would leave
  // out the packets of a second one). The stream counts what it writes; nothing is sent.
  QueryRequest all = q;
  if (all.format.empty()) all.format = "pcapng";
  auto s = open_query(all);
  nlohmann::json warnings = nlohmann::json::array();
  std::string summary =
      s->run([](const char*, size_t) {}, [&](const std::string& w) { warnings.push_back(w); }, stop);
  // The summary without the format written: a count writes nothing.
  if (size_t at = summary.find("; written as "); at != std::string::npos) summary.resize(at);
  return {nlohmann::json{{"packets", s->packets}, {"summary", summary}, {"warnings", std::move(warnings)}},
          s->headers};
}

Reply Service::history() {
  return {nlohmann::json{{"interval_s", 0}, {"samples", nlohmann::json::array()}}, {}};
}

}  // namespace tmach::server
