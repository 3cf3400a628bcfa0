#include "server/flow_format.h"

#include <arpa/inet.h>
#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <ctime>
#include <nlohmann/json.hpp>
#include <sstream>
#include <stdexcept>

#include "server/zeek_format.h"
#include "util/json_text.h"
#include "util/timespec.h"

namespace tmach::server {
namespace {

// One table each for the names flow answers use, written and read back through the same.
constexpr std::pair<char, uint8_t> kFlagLetters[] = {{'S', 0x02}, {'A', 0x10}, {'P', 0x08},
                                                     {'F', 0x01}, {'R', 0x04}, {'U', 0x20}};
constexpr std::pair<const char*, uint8_t> kProtoNames[] = {
    {"tcp", 6}, {"udp", 17}, {"icmp", 1}, {"icmp6", 58}, {"sctp", 132}};
constexpr std::pair<const char*, flow::FlowRow::Packets> kPacketsNames[] = {
    {"yes", flow::FlowRow::Packets::kAll},
    {"some", flow::FlowRow::Packets::kSome},
    {"no", flow::FlowRow::Packets::kNone}};

std::string flags_str(uint8_t f) {
  std::string s;
  for (auto [c, bit] : kFlagLetters)
    if (f & bit) s += c;
  return s.empty() ? "-" : s;
}

uint8_t flags_of(const std::string& s) {
  uint8_t f = 0;
  for (char c : s)
    for (auto [letter, bit] : kFlagLetters)
      if (c == letter) f |= bit;
  return f;
}

std::string proto_str(uint8_t p) {
  for (auto [n, v] : kProtoNames)
    if (v == p) return n;
  return fmt::format("{}", p);
}

uint8_t proto_of(const std::string& s) {
  for (auto [n, v] : kProtoNames)
    if (s == n) return v;
  size_t used = 0;
  int v = -1;
  try {
    v = std::stoi(s, &used);
  } catch (...) {
  }
  if (used != s.size() || v < 0 || v > 255) throw std::runtime_error("flow proto: '" + s + "'");
  return static_cast<uint8_t>(v);
}

const char* packets_str(flow::FlowRow::Packets p) {
  for (auto [n, v] : kPacketsNames)
    if (v == p) return n;
  return "no";
}

flow::FlowRow::Packets packets_of(const std::string& s) {
  for (auto [n, v] : kPacketsNames)
    if (s == n) return v;
  throw std::runtime_error("flow packets_on_disk: '" + s + "'");
}

uint8_t end_of(const std::string& s) {
  for (uint8_t e = 0; e <= 4; ++e)
    if (s == flow::to_string(static_cast<flow::EndState>(e))) return e;
  throw std::runtime_error("flow state: '" + s + "'");
}

uint64_t time_of(const nlohmann::json& v, const char* what) {
  std::string err;
  auto t = util::parse_absolute_time(v.get<std::string>(), &err);
  if (!t) throw std::runtime_error(fmt::format("flow {}: {}", what, err));
  return *t;
}

packet::IpAddr addr_of(const std::string& s, uint8_t& version) {
  uint8_t b[16];
  if (inet_pton(AF_INET, s.c_str(), b) == 1) {
    version = 4;
    return packet::IpAddr::v4(b);
  }
  if (inet_pton(AF_INET6, s.c_str(), b) == 1) {
    version = 6;
    return packet::IpAddr::v6(b);
  }
  throw std::runtime_error("flow address: '" + s + "'");
}

std::string endpoint(const packet::IpAddr& a, uint16_t port, bool ports, bool v6) {
  if (!ports) return a.str();
  return v6 ? fmt::format("[{}]:{}", a.str(), port) : fmt::format("{}:{}", a.str(), port);
}

}  // namespace

std::string proto_name(uint8_t p) { return proto_str(p); }

nlohmann::json flow_to_json(const flow::FlowRow& r) {
  const auto& f = r.rec;
  std::string cid = flow::community_id(f);
  nlohmann::json j = {
      // A string: ids use all 64 bits, beyond the 2^53 a JSON number keeps exactly in most
      // readers (jq, JavaScript) — a rounded id names no flow.
      {"id", std::to_string(f.id)},
      {"first", util::format_time(f.first_ts)},
      {"last", util::format_time(f.last_ts)},
      {"first_ns", f.first_ts},
      {"last_ns", f.last_ts},
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
      {"packets_on_disk", packets_str(r.packets)},
      {"community_id", cid.empty() ? nlohmann::json(nullptr) : nlohmann::json(cid)}};
  // An ESP/AH connection: its SA pair's second SPI (0: none seen), where the record has it
  // (flow::kFlowSaPartner): what tells its packets from another SA pair's between the same hosts.
  if (f.flags & flow::kFlowSaPartner) j["sa_partner_spi"] = flow::sa_partner(f);
  return j;
}

namespace {

// A flow id as written (a decimal string), or as a number (what older tm wrote).
uint64_t id_of(const nlohmann::json& v) {
  if (v.is_number_unsigned()) return v.get<uint64_t>();
  if (v.is_number_integer() && v.get<int64_t>() >= 0) return static_cast<uint64_t>(v.get<int64_t>());
  const std::string& s = v.get_ref<const std::string&>();  // (throws type_error otherwise)
  uint64_t id = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), id);
  if (ec != std::errc() || end != s.data() + s.size() || s.empty())
    throw std::runtime_error("flow id: '" + s + "' is not a number");
  return id;
}

}  // namespace

flow::FlowRow flow_from_json(const nlohmann::json& j) {
  flow::FlowRow r;
  flow::FlowRecord& f = r.rec;
  f = flow::FlowRecord{};
  f.id = id_of(j.at("id"));
  f.first_ts = time_of(j.at("first"), "first");
  f.last_ts = time_of(j.at("last"), "last");
  f.proto = proto_of(j.at("proto").get<std::string>());
  uint8_t v = 0;
  f.orig = addr_of(j.at("orig_addr").get<std::string>(), v);
  f.resp = addr_of(j.at("resp_addr").get<std::string>(), v);
  f.version = v;
  f.orig_port = j.at("orig_port").get<uint16_t>();
  f.resp_port = j.at("resp_port").get<uint16_t>();
  f.pkts[0] = j.at("orig_pkts").get<uint64_t>();
  f.bytes[0] = j.at("orig_bytes").get<uint64_t>();
  f.pkts[1] = j.at("resp_pkts").get<uint64_t>();
  f.bytes[1] = j.at("resp_bytes").get<uint64_t>();
  f.tcp_flags[0] = flags_of(j.at("orig_flags").get<std::string>());
  f.tcp_flags[1] = flags_of(j.at("resp_flags").get<std::string>());
  f.end = end_of(j.at("state").get<std::string>());
  f.cut = j.at("cut").get<bool>() ? 1 : 0;
  f.cutoff_ts = j.at("cutoff_time").is_string() ? time_of(j["cutoff_time"], "cutoff_time") : 0;
  f.tunnel = j.at("tunnel").get<uint32_t>();
  f.stored = j.at("stored_pkts").get<uint64_t>();
  if (j.contains("sa_partner_spi"))
    f.flags |= flow::kFlowSaPartner | uint64_t{j["sa_partner_spi"].get<uint32_t>()}
                                          << flow::kFlowSaPartnerShift;
  r.cls = j.at("class").get<std::string>();
  r.packets = packets_of(j.at("packets_on_disk").get<std::string>());
  return r;
}

std::vector<flow::FlowRow> parse_flow_lines(const std::string& body) {
  std::vector<flow::FlowRow> rows;
  std::istringstream in(body);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    auto j = nlohmann::json::parse(line, nullptr, false);
    if (!j.is_object()) throw std::runtime_error("flow answer: a line is not a JSON object");
    rows.push_back(flow_from_json(j));
  }
  return rows;
}

const char* flow_content_type(const std::string& format) {
  return format == "json" || format == "zeek-json" ? "application/x-ndjson"
         : format == "csv"                         ? "text/csv"
                                                   : "text/plain";
}

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
  if (format == "zeek") return render_zeek_tsv(rows, static_cast<int64_t>(std::time(nullptr)));
  if (format == "zeek-json") return render_zeek_json(rows);
  std::string o;
  if (format == "json") {
    for (auto& r : rows) o += util::json_text(flow_to_json(r)) + "\n";
  } else if (format == "csv") {
    static const char* cols[] = {
        "id",         "first",      "last",        "duration",        "proto",       "orig_addr",
        "orig_port",  "resp_addr",  "resp_port",   "orig_pkts",       "orig_bytes",  "resp_pkts",
        "resp_bytes", "orig_flags", "resp_flags",  "state",           "cut",         "cutoff_time",
        "class",      "tunnel",     "stored_pkts", "packets_on_disk", "community_id"};
    for (size_t i = 0; i < std::size(cols); ++i) o += std::string(i ? "," : "") + cols[i];
    o += "\n";
    for (auto& r : rows) {
      auto j = flow_to_json(r);
      for (size_t i = 0; i < std::size(cols); ++i) {
        const auto& v = j[cols[i]];
        o += std::string(i ? "," : "") + (v.is_string() ? v.get<std::string>()
                                          : v.is_null() ? ""
                                                        : util::json_text(v));
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
      bool ports = shows_ports(f.proto);
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
