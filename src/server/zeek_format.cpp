#include "server/zeek_format.h"

#include <fmt/format.h>

#include <ctime>
#include <nlohmann/json.hpp>

#include "flow/flow_record.h"
#include "server/flow_format.h"
#include "util/json_text.h"

namespace tmach::server {
namespace {

constexpr uint8_t kFin = 0x01, kSyn = 0x02, kRst = 0x04, kPsh = 0x08, kAck = 0x10;

// conn.log's columns: Zeek's own (in Zeek's order), then tm's.
struct Column {
  const char* name;
  const char* type;
};
constexpr Column kColumns[] = {
    {"ts", "time"},
    {"uid", "string"},
    {"id.orig_h", "addr"},
    {"id.orig_p", "port"},
    {"id.resp_h", "addr"},
    {"id.resp_p", "port"},
    {"proto", "enum"},
    {"service", "string"},
    {"duration", "interval"},
    {"orig_bytes", "count"},
    {"resp_bytes", "count"},
    {"conn_state", "string"},
    {"local_orig", "bool"},
    {"local_resp", "bool"},
    {"missed_bytes", "count"},
    {"history", "string"},
    {"orig_pkts", "count"},
    {"orig_ip_bytes", "count"},
    {"resp_pkts", "count"},
    {"resp_ip_bytes", "count"},
    {"tunnel_parents", "set[string]"},
    {"ip_proto", "count"},  // Zeek 7.1 and later (position: named columns, read by name)
    {"community_id", "string"},
    {"tm_orig_wire_bytes", "count"},
    {"tm_resp_wire_bytes", "count"},
    {"tm_cut", "bool"},
    {"tm_stored_pkts", "count"},
    {"tm_packets_on_disk", "string"},
    {"tm_class", "string"},
};
constexpr size_t kNumColumns = std::size(kColumns);

// One value: unset, or its TSV text and its JSON value.
struct Cell {
  bool set = false;
  std::string tsv;
  nlohmann::ordered_json js;
};

Cell unset() { return {}; }
Cell str(const std::string& s) {
  if (s.empty()) return unset();
  return {true, s, s};
}
Cell count(uint64_t v) { return {true, fmt::format("{}", v), v}; }
Cell boolean(bool b) { return {true, b ? "T" : "F", b}; }
// Zeek writes times and intervals with 6 decimals (microseconds); its JSON the double of
// seconds + microseconds / 1e6, so that a join of the two forms on `ts` holds (the double of
// the nanoseconds differs below the microsecond: 1308930691.0350442 against .035044).
Cell seconds(uint64_t ns) {
  const uint64_t s = ns / 1000000000, us = ns % 1000000000 / 1000;
  return {true, fmt::format("{}.{:06}", s, us), static_cast<double>(s) + static_cast<double>(us) / 1e6};
}

const char* zeek_proto(uint8_t p) {
  switch (p) {
    case 6:
      return "tcp";
    case 17:
      return "udp";
    case 1:
    case 58:
      return "icmp";
    default:
      return "unknown_transport";
  }
}

const char* packets_on_disk(flow::FlowRow::Packets p) {
  return p == flow::FlowRow::Packets::kAll ? "yes" : p == flow::FlowRow::Packets::kSome ? "some" : "no";
}

std::vector<Cell> cells(const flow::FlowRow& row) {
  const flow::FlowRecord& f = row.rec;
  uint64_t dur = f.last_ts > f.first_ts ? f.last_ts - f.first_ts : 0;
  std::vector<Cell> c;
  c.reserve(kNumColumns);
  c.push_back(seconds(f.first_ts));
  c.push_back(str(zeek_uid(f.id)));
  c.push_back(str(f.orig.str()));
  // Ports only where the protocol has them: Zeek's ICMP rows hold the type and code there,
  // which tm's record (one for the whole exchange, of any types) does not know: unset.
  const bool ports = shows_ports(f.proto);
  c.push_back(ports ? count(f.orig_port) : unset());
  c.push_back(str(f.resp.str()));
  c.push_back(ports ? count(f.resp_port) : unset());
  c.push_back(str(zeek_proto(f.proto)));
  c.push_back(unset());                       // service: tm does not identify protocols
  c.push_back(dur ? seconds(dur) : unset());  // as Zeek: no duration for a single instant
  c.push_back(unset());                       // orig_bytes: payload bytes, not recorded
  c.push_back(unset());                       // resp_bytes
  c.push_back(str(zeek_conn_state(f)));
  c.push_back(unset());  // local_orig: no Site::local_nets
  c.push_back(unset());  // local_resp
  c.push_back(unset());  // missed_bytes: needs sequence numbers
  c.push_back(str(zeek_history(f)));
  c.push_back(count(f.pkts[0]));
  c.push_back(unset());  // orig_ip_bytes: tm counts wire bytes (tm_*)
  c.push_back(count(f.pkts[1]));
  c.push_back(unset());  // resp_ip_bytes
  c.push_back(unset());  // tunnel_parents: tm keeps only a hash
  c.push_back(count(f.proto));
  c.push_back(str(flow::community_id(f)));
  c.push_back(count(f.bytes[0]));
  c.push_back(count(f.bytes[1]));
  c.push_back(boolean(f.cut != 0));
  c.push_back(count(f.stored));
  c.push_back(str(packets_on_disk(row.packets)));
  c.push_back(str(row.cls));
  return c;
}

std::string zeek_time(int64_t s) {
  std::time_t t = static_cast<std::time_t>(s);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%d-%H-%M-%S", &tm);
  return buf;
}

}  // namespace

std::string zeek_uid(uint64_t id) {
  static constexpr char kDigits[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
  std::string s;
  do {
    s.insert(s.begin(), kDigits[id % 62]);
    id /= 62;
  } while (id);
  return "C" + s;
}

std::string zeek_conn_state(const flow::FlowRecord& r) {
  const uint8_t o = r.tcp_flags[0], rf = r.tcp_flags[1];
  const bool o_pkts = r.pkts[0] > 0, r_pkts = r.pkts[1] > 0;
  if (r.proto == 17) return o_pkts ? (r_pkts ? "SF" : "S0") : (r_pkts ? "SHR" : "OTH");
  if (r.proto != 6) return "OTH";
  // Zeek's "inactive or partial": a side that sent nothing, or never a SYN (seen midstream).
  const bool o_inactive = !o_pkts || !(o & kSyn);
  const bool r_inactive = !r_pkts || !(rf & kSyn);
  if (rf & kRst) {
    if ((o & kSyn) && !(rf & kSyn)) return "REJ";  // the SYN answered by a reset, no SYN-ACK
    return o_inactive ? "RSTRH" : "RSTR";
  }
  if (o & kRst) {
    if (r_inactive) return (o & kSyn) ? "RSTOS0" : "OTH";
    return "RSTO";
  }
  if ((o & kFin) && (rf & kFin)) return "SF";
  if (o & kFin) return r_inactive ? "SH" : "S2";
  if (rf & kFin) return o_inactive ? "SHR" : "S3";
  if ((o & kSyn) && !r_pkts) return "S0";
  if ((o & kSyn) && (rf & kSyn) && (rf & kAck)) return "S1";
  return "OTH";
}

std::string zeek_history(const flow::FlowRecord& r) {
  const uint8_t o = r.tcp_flags[0], rf = r.tcp_flags[1];
  std::string h;
  if (r.proto == 17) {
    if (r.pkts[0]) h += 'D';
    if (r.pkts[1]) h += 'd';
    return h;
  }
  if (r.proto != 6) return h;
  if (o & kSyn) h += 'S';  // the originator's SYN; its ACK set holds its later segments too
  if (rf & kSyn) h += (rf & kAck) ? 'h' : 's';
  if (o & kAck) h += 'A';
  if (rf & kAck) h += 'a';
  if (o & kPsh) h += 'D';
  if (rf & kPsh) h += 'd';
  if (o & kFin) h += 'F';
  if (rf & kFin) h += 'f';
  if (o & kRst) h += 'R';
  if (rf & kRst) h += 'r';
  return h;
}

std::string render_zeek_tsv(const std::vector<flow::FlowRow>& rows, int64_t now_s) {
  std::string o =
      "#separator \\x09\n#set_separator\t,\n#empty_field\t(empty)\n#unset_field\t-\n#path\tconn\n";
  o += "#open\t" + zeek_time(now_s) + "\n#fields";
  for (const auto& c : kColumns) o += std::string("\t") + c.name;
  o += "\n#types";
  for (const auto& c : kColumns) o += std::string("\t") + c.type;
  o += "\n";
  for (const auto& row : rows) {
    auto cs = cells(row);
    for (size_t i = 0; i < cs.size(); ++i) {
      if (i) o += '\t';
      o += cs[i].set ? cs[i].tsv : "-";
    }
    o += '\n';
  }
  o += "#close\t" + zeek_time(now_s) + "\n";
  return o;
}

std::string render_zeek_json(const std::vector<flow::FlowRow>& rows) {
  std::string o;
  for (const auto& row : rows) {
    auto cs = cells(row);
    nlohmann::ordered_json j = nlohmann::ordered_json::object();
    for (size_t i = 0; i < cs.size(); ++i)
      if (cs[i].set) j[kColumns[i].name] = cs[i].js;
    o += util::json_text(j) + "\n";
  }
  return o;
}

}  // namespace tmach::server
