#include "server/flow_format.h"

#include <fmt/format.h>

#include <algorithm>
#include <nlohmann/json.hpp>

#include "util/timespec.h"

namespace tmach::server {
namespace {

std::string flags_str(uint8_t f) {
  std::string s;
  if (f & 0x02) s += 'S';
  if (f & 0x10) s += 'A';
  if (f & 0x08) s += 'P';
  if (f & 0x01) s += 'F';
  if (f & 0x04) s += 'R';
  if (f & 0x20) s += 'U';
  return s.empty() ? "-" : s;
}

const char* proto_name(uint8_t p) {
  switch (p) {
    case 6:
      return "tcp";
    case 17:
      return "udp";
    case 1:
      return "icmp";
    case 58:
      return "icmp6";
    case 132:
      return "sctp";
    default:
      return nullptr;
  }
}

std::string proto_str(uint8_t p) {
  const char* n = proto_name(p);
  return n ? n : fmt::format("{}", p);
}

const char* packets_str(flow::FlowRow::Packets p) {
  return p == flow::FlowRow::Packets::kAll ? "yes" : p == flow::FlowRow::Packets::kSome ? "some" : "no";
}

std::string endpoint(const packet::IpAddr& a, uint16_t port, bool ports, bool v6) {
  if (!ports) return a.str();
  return v6 ? fmt::format("[{}]:{}", a.str(), port) : fmt::format("{}:{}", a.str(), port);
}

nlohmann::json to_json(const flow::FlowRow& r) {
  const auto& f = r.rec;
  return {
      {"id", f.id},
      {"first", util::format_time(f.first_ts)},
      {"last", util::format_time(f.last_ts)},
      {"duration", static_cast<double>(f.last_ts - f.first_ts) / 1e9},
      {"proto", proto_str(f.proto)},
      {"orig_addr", f.orig.str()},
      {"orig_port", f.orig_port},
      {"resp_addr", f.resp.str()},
      {"resp_port", f.resp_port},
      {"orig_pkts", f.pkts[0]},
      {"orig_bytes", f.bytes[0]},
      {"resp_pkts", f.pkts[1]},
      {"resp_bytes", f.bytes[1]},
      {"orig_flags", flags_str(f.tcp_flags[0])},
      {"resp_flags", flags_str(f.tcp_flags[1])},
      {"state", flow::to_string(static_cast<flow::EndState>(f.end))},
      {"cut", f.cut != 0},
      {"cutoff_time", f.cutoff_ts ? nlohmann::json(util::format_time(f.cutoff_ts)) : nlohmann::json(nullptr)},
      {"class", r.cls},
      {"tunnel", f.tunnel},
      {"stored_pkts", f.stored},
      {"packets_on_disk", packets_str(r.packets)}};
}

}  // namespace

void top_flows(std::vector<flow::FlowRow>& rows, size_t top, const std::string& by) {
  if (!top) return;
  auto key = [&](const flow::FlowRow& r) -> uint64_t {
    if (by == "packets") return r.rec.pkts[0] + r.rec.pkts[1];
    if (by == "duration") return r.rec.last_ts - r.rec.first_ts;
    return r.rec.bytes[0] + r.rec.bytes[1];
  };
  std::stable_sort(rows.begin(), rows.end(), [&](const auto& a, const auto& b) { return key(a) > key(b); });
  if (rows.size() > top) rows.resize(top);
}

std::string render_flows(const std::vector<flow::FlowRow>& rows, const std::string& format) {
  std::string o;
  if (format == "json") {
    for (auto& r : rows) o += to_json(r).dump() + "\n";
  } else if (format == "csv") {
    static const char* cols[] = {
        "id",         "first",      "last",        "duration",       "proto",      "orig_addr",
        "orig_port",  "resp_addr",  "resp_port",   "orig_pkts",      "orig_bytes", "resp_pkts",
        "resp_bytes", "orig_flags", "resp_flags",  "state",          "cut",        "cutoff_time",
        "class",      "tunnel",     "stored_pkts", "packets_on_disk"};
    for (size_t i = 0; i < std::size(cols); ++i) o += std::string(i ? "," : "") + cols[i];
    o += "\n";
    for (auto& r : rows) {
      auto j = to_json(r);
      for (size_t i = 0; i < std::size(cols); ++i) {
        const auto& v = j[cols[i]];
        o += std::string(i ? "," : "") + (v.is_string() ? v.get<std::string>() : v.is_null() ? "" : v.dump());
      }
      o += "\n";
    }
  } else {
    o += fmt::format(
        "{:<19} {:<30} {:>9} {:<5} {:<45} {:<45} {:>8} {:>11} {:>8} {:>11} {:<8} {:<4} {:<9} {}\n", "id",
        "first", "duration", "proto", "originator", "responder", "o.pkts", "o.bytes", "r.pkts", "r.bytes",
        "state", "cut", "class", "packets");
    for (auto& r : rows) {
      const auto& f = r.rec;
      bool ports = f.proto == 6 || f.proto == 17 || f.proto == 132;
      o += fmt::format(
          "{:<19} {:<30} {:>9.3f} {:<5} {:<45} {:<45} {:>8} {:>11} {:>8} {:>11} {:<8} {:<4} {:<9} {}\n", f.id,
          util::format_time(f.first_ts), static_cast<double>(f.last_ts - f.first_ts) / 1e9,
          proto_str(f.proto), endpoint(f.orig, f.orig_port, ports, f.version == 6),
          endpoint(f.resp, f.resp_port, ports, f.version == 6), f.pkts[0], f.bytes[0], f.pkts[1], f.bytes[1],
          flow::to_string(static_cast<flow::EndState>(f.end)), f.cut ? "yes" : "no", r.cls,
          packets_str(r.packets));
    }
  }
  return o;
}

}  // namespace tmach::server
