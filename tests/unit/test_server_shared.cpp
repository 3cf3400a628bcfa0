// The pieces tm serve, tm frontend and the clients share: HOST:PORT parsing, the loopback
// rule, token files, admission control, flow parameters and the flow-record JSON codec.
#include <gtest/gtest.h>
#include <httplib.h>

#include <fstream>
#include <stdexcept>

#include "server/flow_format.h"
#include "server/http_common.h"
#include "server/listen.h"
#include "temp_dir.h"
#include "test_addr.h"

namespace tmach::server {
namespace {

TEST(HostPort, ParsesNamesV4AndBracketedV6) {
  auto a = parse_host_port("127.0.0.1:8910", "--listen");
  EXPECT_EQ(a.host, "127.0.0.1");
  EXPECT_EQ(a.port, 8910);
  a = parse_host_port("[::1]:9", "listen");
  EXPECT_EQ(a.host, "::1");
  EXPECT_EQ(a.port, 9);
  a = parse_host_port("localhost:0", "listen");
  EXPECT_EQ(a.host, "localhost");
  EXPECT_EQ(a.port, 0);
}

TEST(HostPort, RejectsMissingOrBadPortNamingTheOption) {
  try {
    parse_host_port("127.0.0.1", "--listen");
    FAIL() << "no port accepted";
  } catch (const std::runtime_error& e) {
    EXPECT_STREQ(e.what(), "--listen: expected HOST:PORT");
  }
  for (std::string bad :
       {"h:", "h:x", "h:80x", "h:-1", "h:65536", "h:99999", "h:+80", "h: 80", "h:0080000"}) {
    try {
      parse_host_port(bad, "listen");
      FAIL() << bad << " accepted";
    } catch (const std::runtime_error& e) {
      EXPECT_EQ(std::string(e.what()), "listen: bad port '" + bad.substr(2) + "' in " + bad +
                                           ": expected 0 to 65535 (0: any free port)");
    }
  }
  EXPECT_EQ(format_host_port("::1", 8910), "[::1]:8910");
  EXPECT_EQ(format_host_port("127.0.0.1", 0), "127.0.0.1:0");
}

TEST(Loopback, OnlyLoopbackAddressesCount) {
  for (const char* h : {"localhost", "::1", "127.0.0.1", "127.1.2.3"}) EXPECT_TRUE(is_loopback(h)) << h;
  for (const char* h : {"0.0.0.0", "::", "10.0.0.1", "128.0.0.1", "example.org", "", "::ffff:127.0.0.1"})
    EXPECT_FALSE(is_loopback(h)) << h;
}

TEST(Loopback, OffLoopbackNeedsAToken) {
  EXPECT_NO_THROW(require_token_off_loopback("127.0.0.1:8910", "", "--listen", "--token-file"));
  EXPECT_NO_THROW(require_token_off_loopback("[::1]:8910", "", "--listen", "--token-file"));
  EXPECT_NO_THROW(require_token_off_loopback("0.0.0.0:8910", "secret", "--listen", "--token-file"));
  try {
    require_token_off_loopback("0.0.0.0:8910", "", "--listen", "--token-file");
    FAIL() << "an open API off loopback was allowed";
  } catch (const std::runtime_error& e) {
    EXPECT_STREQ(e.what(), "--listen 0.0.0.0:8910 is not a loopback address: give --token-file");
  }
  EXPECT_THROW(require_token_off_loopback("[::]:1", "", "listen", "a token_file"), std::runtime_error);
}

TEST(Via, AChainThatCameBackOrRanLongIsALoop) {
  const std::string me = instance_id();
  EXPECT_EQ(via_loop(""), "");
  EXPECT_EQ(via_loop("a1, b2"), "");
  // Sent by this frontend itself: its own address in its worker list.
  EXPECT_NE(via_loop(me).find("one of its own workers"), std::string::npos);
  EXPECT_NE(via_loop("a1," + me).find("one of its own workers"), std::string::npos);
  // Back through others: front-ends listing each other; ids found with or without spaces.
  EXPECT_NE(via_loop(me + ", b2").find("through 1 other front-end(s)"), std::string::npos);
  EXPECT_NE(via_loop("a1 ," + me + " ,b2,c3").find("through 2 other front-end(s)"), std::string::npos);
  // An id is matched whole, not as a part of another.
  EXPECT_EQ(via_loop(me + "x, x" + me), "");
  // A chain as long as the limit stops.
  std::string chain = "h0";
  for (size_t i = 1; i + 1 < kMaxViaHops; ++i) chain += ", h" + std::to_string(i);
  EXPECT_EQ(via_loop(chain), "");
  EXPECT_NE(via_loop(chain + ", last").find("has passed 8 tm front-ends"), std::string::npos);
  // What a frontend sends on: no request served on this thread, its own id alone.
  EXPECT_EQ(via_chain(), me);
}

TEST(TokenFile, FirstLineTrimmedAndErrorsNamed) {
  TempDir d;
  auto p = (d.p / "tok").string();
  std::ofstream(p) << "s3cret  \r\nignored\n";
  EXPECT_EQ(read_token_file(p, "--token-file"), "s3cret");
  std::ofstream(p) << " \n";
  try {
    read_token_file(p, "token_file");
    FAIL() << "an empty token was accepted";
  } catch (const std::runtime_error& e) {
    EXPECT_EQ(std::string(e.what()), "token_file: " + p + " is empty");
  }
  try {
    read_token_file((d.p / "none").string(), "--token-file");
    FAIL();
  } catch (const std::runtime_error& e) {
    EXPECT_EQ(std::string(e.what()), "--token-file: cannot read " + (d.p / "none").string());
  }
}

TEST(Admission, RefusesBeyondTheLimitWith503) {
  Admission a("concurrent queries", 2);
  a.admit();
  a.admit();
  try {
    a.admit();
    FAIL() << "a third query was admitted";
  } catch (const ApiError& e) {
    EXPECT_EQ(e.status, 503);
    EXPECT_STREQ(e.what(), "too many concurrent queries (limit 2); try again later");
  }
  EXPECT_EQ(a.active(), 2);
  EXPECT_EQ(a.rejected(), 1u);
  a.release();
  EXPECT_NO_THROW(a.admit());
}

TEST(FlowParams, DefaultsAndErrors) {
  httplib::Request req;
  FlowParams p = flow_params(req);
  EXPECT_EQ(p.format, "json");
  EXPECT_EQ(p.by, "bytes");
  EXPECT_EQ(p.top, 0u);
  req.params = {{"format", "csv"}, {"by", "duration"}, {"top", "7"}};
  p = flow_params(req);
  EXPECT_EQ(p.format, "csv");
  EXPECT_EQ(p.by, "duration");
  EXPECT_EQ(p.top, 7u);
  for (auto [k, v] : {std::pair{"format", "xml"}, std::pair{"by", "size"}, std::pair{"top", "-1"},
                      std::pair{"top", "3x"}}) {
    httplib::Request bad;
    bad.params = {{k, v}};
    try {
      flow_params(bad);
      FAIL() << k << "=" << v << " accepted";
    } catch (const ApiError& e) {
      EXPECT_EQ(e.status, 400);
    }
  }
  EXPECT_STREQ(flow_content_type("json"), "application/x-ndjson");
  EXPECT_STREQ(flow_content_type("csv"), "text/csv");
  EXPECT_STREQ(flow_content_type("text"), "text/plain");
}

flow::FlowRow row(uint64_t id, const char* a, const char* b, uint8_t proto) {
  flow::FlowRow r;
  r.rec = flow::FlowRecord{};  // (a plain struct: its fields are not set otherwise)
  r.rec.id = id;
  r.rec.first_ts = 1700000000123456789ull + id;
  r.rec.last_ts = r.rec.first_ts + 2500000000ull;
  r.rec.proto = proto;
  r.rec.orig = tmtest::A(a);
  r.rec.resp = tmtest::A(b);
  r.rec.version = r.rec.orig.is_v4() ? 4 : 6;
  r.rec.orig_port = 40000;
  r.rec.resp_port = 443;
  r.rec.pkts[0] = 10;
  r.rec.pkts[1] = 12;
  r.rec.bytes[0] = 1000;
  r.rec.bytes[1] = 99999;
  r.rec.tcp_flags[0] = 0x02 | 0x10 | 0x08 | 0x01;
  r.rec.tcp_flags[1] = 0x04 | 0x20;
  r.rec.end = static_cast<uint8_t>(id % 5);
  r.rec.cut = id % 2;
  r.rec.cutoff_ts = r.rec.cut ? r.rec.first_ts + 7 : 0;
  r.rec.tunnel = static_cast<uint32_t>(id % 3);
  r.rec.stored = 9;
  r.cls = id % 2 ? "default" : "web";
  r.packets = id % 3 == 0   ? flow::FlowRow::Packets::kAll
              : id % 3 == 1 ? flow::FlowRow::Packets::kSome
                            : flow::FlowRow::Packets::kNone;
  return r;
}

TEST(FlowCodec, RoundTripsEveryField) {
  std::vector<flow::FlowRow> rows = {
      row(1, "10.0.0.1", "10.0.0.2", 6),   row(2, "2001:db8::1", "2001:db8::2", 17),
      row(3, "192.0.2.1", "192.0.2.9", 1), row(4, "fe80::1", "ff02::1", 58),
      row(5, "10.1.1.1", "10.2.2.2", 47),  row(6, "10.1.1.1", "10.2.2.2", 50),
      row(7, "10.1.1.1", "10.2.2.2", 51)};
  // ESP and AH: the SA pair's second SPI, kept where the record has it (an older one has not).
  rows[5].rec.flags = flow::kFlowSaPartner | uint64_t{0x87654321} << flow::kFlowSaPartnerShift;
  rows[5].rec.orig_port = rows[5].rec.resp_port = 0;
  rows[6].rec.orig_port = rows[6].rec.resp_port = 0;
  EXPECT_EQ(flow_to_json(rows[5]).at("sa_partner_spi"), 0x87654321u);
  EXPECT_FALSE(flow_to_json(rows[6]).contains("sa_partner_spi"));
  for (auto& r : rows) {
    flow::FlowRow back = flow_from_json(flow_to_json(r));
    EXPECT_EQ(flow_to_json(back), flow_to_json(r)) << r.rec.id;
    EXPECT_EQ(back.rec.proto, r.rec.proto);
    EXPECT_EQ(back.rec.tcp_flags[0], r.rec.tcp_flags[0]);
    EXPECT_EQ(back.rec.tcp_flags[1], r.rec.tcp_flags[1]);
    EXPECT_EQ(back.rec.cutoff_ts, r.rec.cutoff_ts);
    EXPECT_EQ(back.rec.version, r.rec.version);
    EXPECT_EQ(back.packets, r.packets);
    EXPECT_EQ(back.rec.flags & (flow::kFlowSaPartner | ~uint64_t{0} << flow::kFlowSaPartnerShift),
              r.rec.flags & (flow::kFlowSaPartner | ~uint64_t{0} << flow::kFlowSaPartnerShift));
  }
  // The JSON-lines answer reads back into the same rows, rendered alike in every format.
  auto back = parse_flow_lines(render_flows(rows, "json"));
  for (const char* f : {"json", "csv", "text"}) EXPECT_EQ(render_flows(back, f), render_flows(rows, f)) << f;
}

TEST(FlowCodec, IdsAreStringsExactBeyond2To53) {
  flow::FlowRow r = row(1, "10.0.0.1", "10.0.0.2", 6);
  r.rec.id = 18446744073709551557ull;  // a double would round it to ...551616
  auto j = flow_to_json(r);
  ASSERT_TRUE(j["id"].is_string());
  EXPECT_EQ(j["id"], "18446744073709551557");
  EXPECT_EQ(flow_from_json(j).rec.id, r.rec.id);
  j["id"] = 12345;  // as earlier versions wrote it
  EXPECT_EQ(flow_from_json(j).rec.id, 12345u);
  for (const char* bad : {"", "12a", "-1", "99999999999999999999"}) {
    j["id"] = bad;
    EXPECT_ANY_THROW(flow_from_json(j)) << bad;
  }
}

TEST(FlowCodec, RejectsBadFields) {
  auto j = flow_to_json(row(1, "10.0.0.1", "10.0.0.2", 6));
  for (auto [k, v] : {std::pair{"state", "sideways"}, std::pair{"orig_addr", "10.0.0"},
                      std::pair{"packets_on_disk", "maybe"}, std::pair{"proto", "tcpx"},
                      std::pair{"first", "yesterday-ish"}}) {
    auto bad = j;
    bad[k] = v;
    EXPECT_ANY_THROW(flow_from_json(bad)) << k;
  }
  EXPECT_THROW(parse_flow_lines("[1,2]\n"), std::runtime_error);
}

}  // namespace
}  // namespace tmach::server
