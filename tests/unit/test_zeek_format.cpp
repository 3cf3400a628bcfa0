#include <gtest/gtest.h>

#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "server/flow_format.h"
#include "server/zeek_format.h"
#include "test_addr.h"

using namespace tmach;

namespace {
constexpr uint8_t F = 0x01, S = 0x02, R = 0x04, P = 0x08, A = 0x10;

flow::FlowRecord tcp(uint8_t orig_flags, uint8_t resp_flags, uint64_t orig_pkts = 3, uint64_t resp_pkts = 3) {
  flow::FlowRecord r{};
  r.id = 0x1234567890abcdefull;
  r.first_ts = 1700000000123456789ull;
  r.last_ts = r.first_ts + 2500000000ull;
  r.orig = tmtest::A("10.0.0.1");
  r.resp = tmtest::A("10.0.0.2");
  r.orig_port = 40000;
  r.resp_port = 80;
  r.proto = 6;
  r.version = 4;
  r.tcp_flags[0] = orig_flags;
  r.tcp_flags[1] = resp_flags;
  r.pkts[0] = orig_pkts;
  r.pkts[1] = resp_pkts;
  r.bytes[0] = 300;
  r.bytes[1] = 5000;
  r.stored = 6;
  return r;
}

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::string cur;
  std::istringstream in(s);
  while (std::getline(in, cur, sep)) out.push_back(cur);
  if (!s.empty() && s.back() == sep) out.emplace_back();
  return out;
}
}  // namespace

TEST(ZeekFormat, UidIsBase62OfTheFlowIdAndStable) {
  EXPECT_EQ(server::zeek_uid(0), "C0");
  EXPECT_EQ(server::zeek_uid(61), "Cz");
  EXPECT_EQ(server::zeek_uid(62), "C10");
  EXPECT_EQ(server::zeek_uid(UINT64_MAX), "CLygHa16AHYF");  // 2^64-1 in base62
  EXPECT_EQ(server::zeek_uid(0x1234567890abcdefull), server::zeek_uid(0x1234567890abcdefull));
}

TEST(ZeekFormat, ConnStateFromTheFlagsOfEachSide) {
  struct Case {
    uint8_t o, r;
    uint64_t op, rp;
    const char* state;
    const char* history;
  } cases[] = {
      {S, 0, 2, 0, "S0", "S"},                                 // SYNs, no answer
      {S | A, S | A, 3, 2, "S1", "ShAa"},                      // established, still open
      {S | A | P | F, S | A | P | F, 5, 5, "SF", "ShAaDdFf"},  // normal open and close
      {S, R | A, 1, 1, "REJ", "Sar"},                          // refused
      {S | A | F, S | A, 4, 3, "S2", "ShAaF"},                 // originator closed, no answer
      {S | A, S | A | F, 4, 3, "S3", "ShAaf"},                 // responder closed
      {S | A | R, S | A, 4, 3, "RSTO", "ShAaR"},               // originator aborted
      {S | A, S | A | R, 4, 3, "RSTR", "ShAar"},               // responder aborted
      {S | R, 0, 2, 0, "RSTOS0", "SR"},                        // SYN then RST, no SYN-ACK
      {A, S | A | R, 1, 2, "RSTRH", "hAar"},                   // SYN-ACK then RST, no SYN seen
      {S | F, 0, 2, 0, "SH", "SF"},                            // SYN then FIN, no SYN-ACK
      {A, S | A | F, 1, 2, "SHR", "hAaf"},                     // SYN-ACK then FIN, no SYN seen
      {A | P, A | P, 5, 5, "OTH", "AaDd"},                     // midstream
  };
  for (const auto& c : cases) {
    auto r = tcp(c.o, c.r, c.op, c.rp);
    EXPECT_EQ(server::zeek_conn_state(r), c.state) << c.state;
    EXPECT_EQ(server::zeek_history(r), c.history) << c.state;
  }
  auto u = tcp(0, 0, 1, 1);
  u.proto = 17;
  EXPECT_EQ(server::zeek_conn_state(u), "SF");
  EXPECT_EQ(server::zeek_history(u), "Dd");
  u.pkts[1] = 0;
  EXPECT_EQ(server::zeek_conn_state(u), "S0");
  EXPECT_EQ(server::zeek_history(u), "D");
  u.proto = 1;
  EXPECT_EQ(server::zeek_conn_state(u), "OTH");
  EXPECT_EQ(server::zeek_history(u), "");
}

TEST(ZeekFormat, TsvHasZeeksHeaderAndUnsetPayloadBytes) {
  flow::FlowRow row;
  row.rec = tcp(S | A | P | F, S | A | P | F, 5, 5);
  row.cls = "web";
  row.packets = flow::FlowRow::Packets::kAll;
  std::string log = server::render_flows({row}, "zeek");
  auto lines = split(log, '\n');
  lines.pop_back();  // after the last newline
  ASSERT_GE(lines.size(), 10u);
  EXPECT_EQ(lines[0], "#separator \\x09");
  EXPECT_EQ(lines[1], "#set_separator\t,");
  EXPECT_EQ(lines[2], "#empty_field\t(empty)");
  EXPECT_EQ(lines[3], "#unset_field\t-");
  EXPECT_EQ(lines[4], "#path\tconn");
  EXPECT_EQ(lines[5].rfind("#open\t", 0), 0u);
  auto fields = split(lines[6], '\t'), types = split(lines[7], '\t'), row0 = split(lines[8], '\t');
  ASSERT_EQ(fields[0], "#fields");
  ASSERT_EQ(types[0], "#types");
  ASSERT_EQ(fields.size(), types.size());
  ASSERT_EQ(row0.size(), fields.size() - 1);
  EXPECT_EQ(lines[9].rfind("#close\t", 0), 0u);
  std::map<std::string, std::string> v;
  for (size_t i = 1; i < fields.size(); ++i) v[fields[i]] = row0[i - 1];
  EXPECT_EQ(v["ts"], "1700000000.123456");
  EXPECT_EQ(v["uid"], server::zeek_uid(row.rec.id));
  EXPECT_EQ(v["id.orig_h"], "10.0.0.1");
  EXPECT_EQ(v["id.resp_p"], "80");
  EXPECT_EQ(v["proto"], "tcp");
  EXPECT_EQ(v["duration"], "2.500000");
  EXPECT_EQ(v["orig_bytes"], "-");  // Zeek's payload bytes: not known, never wire bytes
  EXPECT_EQ(v["resp_ip_bytes"], "-");
  EXPECT_EQ(v["conn_state"], "SF");
  EXPECT_EQ(v["history"], "ShAaDdFf");
  EXPECT_EQ(v["orig_pkts"], "5");
  EXPECT_EQ(v["ip_proto"], "6");
  EXPECT_EQ(v["tm_orig_wire_bytes"], "300");
  EXPECT_EQ(v["tm_resp_wire_bytes"], "5000");
  EXPECT_EQ(v["tm_cut"], "F");
  EXPECT_EQ(v["tm_class"], "web");
  EXPECT_EQ(v["tm_packets_on_disk"], "yes");
  EXPECT_EQ(v["community_id"].rfind("1:", 0), 0u);

  // Zeek's order, as Zeek writes its JSON logs: ts, uid, id.orig_h, ... (a dump through a sorting
  // nlohmann::json began with community_id).
  const std::string line = server::render_flows({row}, "zeek-json");
  EXPECT_EQ(line.rfind("{\"ts\":", 0), 0u) << line;
  EXPECT_LT(line.find("\"uid\""), line.find("\"id.orig_h\"")) << line;
  auto j = nlohmann::json::parse(line);
  // The JSON's ts is the TSV's microseconds, as Zeek's (a join of the two on ts holds).
  EXPECT_EQ(j["ts"].get<double>(), std::stod(v["ts"]));
  EXPECT_EQ(j["duration"].get<double>(), std::stod(v["duration"]));
  EXPECT_EQ(j["id.orig_h"], "10.0.0.1");
  EXPECT_EQ(j["id.orig_p"], 40000);
  EXPECT_EQ(j["conn_state"], "SF");
  EXPECT_EQ(j["tm_cut"], false);
  EXPECT_FALSE(j.contains("orig_bytes"));  // unset fields are left out, as Zeek's JSON logs do
  for (size_t i = 1; i < fields.size(); ++i)
    if (v[fields[i]] != "-") {
      EXPECT_TRUE(j.contains(fields[i])) << fields[i];
    }
  EXPECT_STREQ(server::flow_content_type("zeek-json"), "application/x-ndjson");
}

// ICMP: tm's record holds no type or code (one record for the exchange, of any types), where
// Zeek's conn.log puts them in the port columns: unset, never 0/0 (which reads "echo reply").
TEST(ZeekFormat, IcmpRowsLeaveThePortColumnsUnset) {
  flow::FlowRow row;
  row.rec = tcp(0, 0, 5, 5);
  row.rec.proto = 1;
  row.rec.orig_port = row.rec.resp_port = 0;
  row.rec.first_ts = 1308930691035044200ull;  // a time whose double is not its microseconds'
  auto lines = split(server::render_flows({row}, "zeek"), '\n');
  auto fields = split(lines[6], '\t'), row0 = split(lines[8], '\t');
  std::map<std::string, std::string> v;
  for (size_t i = 1; i < fields.size(); ++i) v[fields[i]] = row0[i - 1];
  EXPECT_EQ(v["proto"], "icmp");
  EXPECT_EQ(v["id.orig_p"], "-");
  EXPECT_EQ(v["id.resp_p"], "-");
  EXPECT_EQ(v["ts"], "1308930691.035044");
  auto j = nlohmann::json::parse(server::render_flows({row}, "zeek-json"));
  EXPECT_FALSE(j.contains("id.orig_p"));
  EXPECT_FALSE(j.contains("id.resp_p"));
  EXPECT_EQ(j["ts"].dump(), "1308930691.035044");
}
