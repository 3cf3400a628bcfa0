#include "server/metrics.h"

#include <fmt/format.h>

#include <cmath>
#include <cstdint>

namespace tmach::server {
namespace {

std::string escape_label(const std::string& v) {
  std::string o;
  for (char c : v) {
    if (c == '\\' || c == '"') o += '\\';
    if (c == '\n') {
      o += "\\n";
      continue;
    }
    o += c;
  }
  return o;
}

}  // namespace

void Metrics::add(const std::string& name, const std::string& type, const std::string& help, double value,
                  const std::vector<std::pair<std::string, std::string>>& labels, const std::string& suffix) {
  Family* f = nullptr;
  for (auto& x : fam_)
    if (x.name == name) f = &x;
  if (!f) {
    fam_.push_back(Family{name, type, help, {}});
    f = &fam_.back();
  }
  std::string s = name + suffix;
  if (!labels.empty()) {
    s += '{';
    for (size_t i = 0; i < labels.size(); ++i)
      s += fmt::format("{}{}=\"{}\"", i ? "," : "", labels[i].first, escape_label(labels[i].second));
    s += '}';
  }
  s += ' ';
  if (value == static_cast<double>(static_cast<int64_t>(value)) && std::abs(value) < 9e15)
    s += fmt::format("{}", static_cast<int64_t>(value));
  else
    s += fmt::format("{}", value);
  f->samples.push_back(std::move(s));
}

std::string Metrics::text() const {
  std::string o;
  for (auto& f : fam_) {
    o += fmt::format("# HELP {} {}\n# TYPE {} {}\n", f.name, f.help, f.name, f.type);
    for (auto& s : f.samples) o += s + "\n";
  }
  return o;
}

void add_api_metrics(Metrics& m, const ApiCounters& c, uint64_t rejected) {
  auto d = [](uint64_t v) { return static_cast<double>(v); };
  m.add("tm_queries_total", "counter", "Packet queries answered or started.", d(c.queries));
  m.add("tm_flow_queries_total", "counter", "Flow queries answered.", d(c.flow_queries));
  m.add("tm_queries_failed_total", "counter", "Queries cut off or failed while streaming.",
        d(c.queries_failed));
  m.add("tm_queries_rejected_total", "counter", "Queries refused: too many at once.", d(rejected));
  m.add("tm_queries_active", "gauge", "Queries running now.", c.active_queries);
  m.add("tm_query_packets_total", "counter", "Packets sent in query answers.", d(c.query_packets));
  const char* h = "tm_query_duration_seconds";
  const char* help = "Query latency in seconds (packet and flow queries).";
  for (size_t i = 0; i < c.latency_bounds.size() && i < c.latency_buckets.size(); ++i)
    m.add(h, "histogram", help, d(c.latency_buckets[i]), {{"le", fmt::format("{}", c.latency_bounds[i])}},
          "_bucket");
  m.add(h, "histogram", help, d(c.latency_count), {{"le", "+Inf"}}, "_bucket");
  m.add(h, "histogram", help, c.latency_sum, {}, "_sum");
  m.add(h, "histogram", help, d(c.latency_count), {}, "_count");
  m.add("tm_subscriptions_active", "gauge", "Live subscriptions now.", c.active_subscriptions);
  m.add("tm_subscriptions_total", "counter", "Subscriptions started.", d(c.subscriptions));
  m.add("tm_http_requests_total", "counter", "HTTP requests received.", d(c.http_requests));
}

}  // namespace tmach::server
