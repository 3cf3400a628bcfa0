#include "cluster/flow_merge.h"

#include <arpa/inet.h>
#include <fmt/format.h>

#include <algorithm>
#include <cstring>
#include <sstream>

#include "server/flow_format.h"
#include "util/timespec.h"

namespace tmach::cluster {
namespace {

uint64_t time_of(const nlohmann::json& v, const char* what) {
  std::string err;
  auto t = util::parse_time(v.get<std::string>(), 0, &err);
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

uint8_t flags_of(const std::string& s) {
  uint8_t f = 0;
  for (char c : s) switch (c) {
      case 'S':
        f |= 0x02;
        break;
      case 'A':
        f |= 0x10;
        break;
      case 'P':
        f |= 0x08;
        break;
      case 'F':
        f |= 0x01;
        break;
      case 'R':
        f |= 0x04;
        break;
      case 'U':
        f |= 0x20;
        break;
      default:
        break;
    }
  return f;
}

uint8_t proto_of(const std::string& s) {
  static const std::pair<const char*, uint8_t> names[] = {
      {"tcp", 6}, {"udp", 17}, {"icmp", 1}, {"icmp6", 58}, {"sctp", 132}};
  for (auto& [n, v] : names)
    if (s == n) return v;
  return static_cast<uint8_t>(std::stoi(s));
}

uint8_t end_of(const std::string& s) {
  for (uint8_t e = 0; e <= 4; ++e)
    if (s == flow::to_string(static_cast<flow::EndState>(e))) return e;
  throw std::runtime_error("flow state: '" + s + "'");
}

}  // namespace

flow::FlowRow flow_row_from_json(const nlohmann::json& j) {
  flow::FlowRow r;
  flow::FlowRecord& f = r.rec;
  f = flow::FlowRecord{};
  f.id = j.at("id").get<uint64_t>();
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
  r.cls = j.at("class").get<std::string>();
  std::string p = j.at("packets_on_disk").get<std::string>();
  r.packets = p == "yes"    ? flow::FlowRow::Packets::kAll
              : p == "some" ? flow::FlowRow::Packets::kSome
                            : flow::FlowRow::Packets::kNone;
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
    rows.push_back(flow_row_from_json(j));
  }
  return rows;
}

std::vector<flow::FlowRow> merge_flows(std::vector<std::vector<flow::FlowRow>> parts, size_t top,
                                       const std::string& by) {
  std::vector<flow::FlowRow> all;
  for (auto& p : parts)
    all.insert(all.end(), std::make_move_iterator(p.begin()), std::make_move_iterator(p.end()));
  std::sort(all.begin(), all.end(), [](const flow::FlowRow& a, const flow::FlowRow& b) {
    return a.rec.first_ts != b.rec.first_ts ? a.rec.first_ts < b.rec.first_ts : a.rec.id < b.rec.id;
  });
  server::top_flows(all, top, by);
  return all;
}

}  // namespace tmach::cluster
