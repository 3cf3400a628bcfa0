// IDS alerts in (Suricata EVE JSON, Zeek notice.log/conn.log in JSON and TSV), the log follower
// (growth, rotation, truncation) and the evidence writer over a fake Service.
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "ids/alert.h"
#include "ids/evidence.h"
#include "ids/keep.h"
#include "ids/log_follower.h"
#include "packet/community_id.h"
#include "server/flow_format.h"
#include "server/service.h"
#include "temp_dir.h"
#include "util/pcap.h"
#include "util/timespec.h"

namespace tmach::ids {
namespace {

packet::IpAddr v4(const char* s) {
  uint8_t b[4];
  EXPECT_EQ(sscanf(s, "%hhu.%hhu.%hhu.%hhu", &b[0], &b[1], &b[2], &b[3]), 4);
  return packet::IpAddr::v4(b);
}

struct Reader {
  std::vector<std::string> warnings;
  AlertReader r;
  explicit Reader(AlertReader::Format f)
      : r(f, "log", [this](const std::string& w) { warnings.push_back(w); }) {}
  std::vector<Alert> lines(const std::string& text) {
    std::vector<Alert> out;
    std::istringstream in(text);
    std::string line;
    size_t n = 0;
    while (std::getline(in, line))
      if (auto a = r.line(line, ++n)) out.push_back(*a);
    return out;
  }
};

// The layout of Suricata's documented alert (docs.suricata.io, "Eve JSON Format"), with the
// community_id Suricata adds when community-id is enabled.
const char* kEveAlert =
    R"({"timestamp":"2017-04-07T22:24:37.251547+0100","flow_id":586497171462735,"pcap_cnt":53381,)"
    R"("event_type":"alert","src_ip":"192.168.2.14","src_port":50096,"dest_ip":"209.53.113.5",)"
    R"("dest_port":80,"proto":"TCP","community_id":"1:abc","metadata":{"flowbits":["http.dottedquadhost"]},)"
    R"("tx_id":4,"alert":{"action":"allowed","gid":1,"signature_id":2018358,"rev":10,)"
    R"("signature":"ET HUNTING GENERIC SUSPICIOUS POST to Dotted Quad with Fake Browser 1",)"
    R"("category":"Potentially Bad Traffic","severity":2},"app_proto":"http"})";

TEST(EveReader, ReadsAnAlertsTupleTimeIdAndSignature) {
  Reader rd(AlertReader::Format::kEve);
  auto a = rd.lines(kEveAlert);
  ASSERT_EQ(a.size(), 1u);
  EXPECT_EQ(a[0].source, Alert::Source::kSuricata);
  EXPECT_EQ(a[0].id, "586497171462735");
  EXPECT_EQ(a[0].ts_ns, 1491600277251547000ull);  // +0100 taken into account
  EXPECT_TRUE(a[0].has_tuple);
  EXPECT_EQ(a[0].src, v4("192.168.2.14"));
  EXPECT_EQ(a[0].dst, v4("209.53.113.5"));
  EXPECT_EQ(a[0].src_port, 50096);
  EXPECT_EQ(a[0].dst_port, 80);
  EXPECT_EQ(a[0].proto, 6);
  EXPECT_EQ(a[0].community_id, "1:abc");
  EXPECT_EQ(a[0].signature_id, 2018358u);
  EXPECT_EQ(a[0].severity, 2);
  EXPECT_EQ(a[0].name, "ET HUNTING GENERIC SUSPICIOUS POST to Dotted Quad with Fake Browser 1");
  EXPECT_EQ(a[0].line, 1u);
  EXPECT_EQ(evidence_name(a[0]), "586497171462735");
  EXPECT_TRUE(rd.warnings.empty());
  // Community ID in its hex form (Suricata's community-id with base64 off): taken in base64,
  // as tm computes it, so that it is compared (not flagged as another connection's).
  std::string hex = kEveAlert;
  hex.replace(hex.find("1:abc"), 5, "1:c026f7386ef200559e95a53276ed03fb5db908b3");
  Reader rd2(AlertReader::Format::kEve);
  a = rd2.lines(hex);
  ASSERT_EQ(a.size(), 1u);
  EXPECT_EQ(a[0].community_id, "1:wCb3OG7yAFWelaUydu0D+125CLM=");
}

TEST(EveReader, IcmpAndIpv6AlertsOtherEventsIgnoredBadLinesSkippedWithFileAndLine) {
  Reader rd(AlertReader::Format::kEve);
  auto a = rd.lines(
      R"({"timestamp":"2026-11-25T13:00:00.5+0000","flow_id":1,"event_type":"flow","src_ip":"10.0.0.1","dest_ip":"10.0.0.2","proto":"UDP"})"
      "\n"
      R"({"timestamp":"2026-11-25T13:00:01.000000+0000","flow_id":2,"event_type":"alert","src_ip":"10.0.0.1","dest_ip":"10.0.0.2","proto":"ICMP","icmp_type":8,"icmp_code":0,"alert":{"signature":"ping","signature_id":1,"severity":3}})"
      "\n"
      "{\"timestamp\": broken\n"
      "\n"
      R"({"timestamp":"2026-11-25T13:00:02+0000","event_type":"alert","src_ip":"10.0.0.1","proto":"TCP"})"
      "\n"
      R"({"timestamp":"2026-11-25T13:00:03.25+0000","flow_id":18446744073709551615,"event_type":"alert","src_ip":"2001:0db8:0000:0000:0000:0000:0000:0001","src_port":53,"dest_ip":"2001:db8::2","dest_port":5353,"proto":"UDP","alert":{"signature":"v6"}})"
      "\n"
      R"({"timestamp":"2026-11-25T13:00:04+0000","event_type":"alert","src_ip":"10.0.0.1","src_port":1,"dest_ip":"10.0.0.2","proto":"TCP"})"
      "\n");
  ASSERT_EQ(a.size(), 2u);
  EXPECT_EQ(a[0].proto, 1);
  EXPECT_EQ(a[0].src_port, 8);  // ICMP type and code in the ports' place, as the Community ID has them
  EXPECT_EQ(a[0].dst_port, 0);
  EXPECT_EQ(a[0].line, 2u);
  EXPECT_EQ(a[1].proto, 17);
  EXPECT_FALSE(a[1].src.is_v4());
  EXPECT_EQ(a[1].src.str(), "2001:db8::1");
  EXPECT_EQ(a[1].id, "18446744073709551615");
  EXPECT_EQ(a[1].ts_ns % 1000000000ull, 250000000ull);
  const auto& c = rd.r.counts();
  EXPECT_EQ(c.lines, 7u);
  EXPECT_EQ(c.alerts, 2u);
  EXPECT_EQ(c.ignored, 2u);  // the flow event, the empty line
  EXPECT_EQ(c.skipped, 3u);
  ASSERT_EQ(rd.warnings.size(), 3u);
  EXPECT_EQ(rd.warnings[0].rfind("log:3: ", 0), 0u) << rd.warnings[0];
  EXPECT_EQ(rd.warnings[1].rfind("log:5: ", 0), 0u) << rd.warnings[1];
  EXPECT_NE(rd.warnings[2].find("log:7: TCP alert without dest_port"), std::string::npos) << rd.warnings[2];
}

// Zeek's ASCII writer: the header, then tab-separated fields; '-' unset, '(empty)' empty.
const char* kNoticeTsv =
    "#separator \\x09\n"
    "#set_separator\t,\n"
    "#empty_field\t(empty)\n"
    "#unset_field\t-\n"
    "#path\tnotice\n"
    "#open\t2020-02-01-00-00-00\n"
    "#fields\tts\tuid\tid.orig_h\tid.orig_p\tid.resp_h\tid.resp_p\tfuid\tfile_mime_type\tfile_"
    "desc\tproto\tnote\t"
    "msg\tsub\tsrc\tdst\tp\tn\tpeer_descr\tactions\temail_dest\tsuppress_for\n"
    "#types\ttime\tstring\taddr\tport\taddr\tport\tstring\tstring\tstring\tenum\tenum\tstring\tstring\taddr\t"
    "addr\tport\tcount\tstring\tset[enum]\tset[string]\tinterval\n"
    "1580515200.123456\tCHhAvVGS1DHFjwGM9\t10.0.0.5\t49152\t192.0.2.7\t443\t-\t-\t-\ttcp\t"
    "SSL::Invalid_Server_Cert\tSSL certificate validation failed\\x09(unable to get local "
    "issuer)\tCN=example\t"
    "10.0.0.5\t192.0.2.7\t443\t-\t-\tNotice::ACTION_LOG\t(empty)\t3600.000000\n"
    "1580515300.000000\t-\t-\t-\t-\t-\t-\t-\t-\t-\tScan::Port_Scan\t10.0.0.9 scanned at least 15 unique "
    "ports\t"
    "local\t10.0.0.9\t192.0.2.8\t-\t-\t-\tNotice::ACTION_LOG\t(empty)\t3600.000000\n"
    "1580515400.000000\tCfoo\t10.0.0.5\n"
    "#close\t2020-02-01-01-00-00\n";

TEST(ZeekReader, NoticeTsvWithAConnectionAndAHostOnlyNotice) {
  Reader rd(AlertReader::Format::kZeek);
  auto a = rd.lines(kNoticeTsv);
  ASSERT_EQ(a.size(), 2u);
  EXPECT_EQ(a[0].source, Alert::Source::kZeekNotice);
  EXPECT_EQ(a[0].id, "CHhAvVGS1DHFjwGM9");
  EXPECT_EQ(a[0].ts_ns, 1580515200123456000ull);
  EXPECT_TRUE(a[0].has_tuple);
  EXPECT_EQ(a[0].src, v4("10.0.0.5"));
  EXPECT_EQ(a[0].src_port, 49152);
  EXPECT_EQ(a[0].dst, v4("192.0.2.7"));
  EXPECT_EQ(a[0].dst_port, 443);
  EXPECT_EQ(a[0].proto, 6);
  EXPECT_EQ(a[0].name, "SSL::Invalid_Server_Cert");
  EXPECT_EQ(a[0].message, "SSL certificate validation failed\t(unable to get local issuer)");
  EXPECT_EQ(a[0].event["email_dest"], "");    // (empty)
  EXPECT_FALSE(a[0].event.contains("fuid"));  // unset
  EXPECT_FALSE(a[1].has_tuple);
  EXPECT_EQ(a[1].src, v4("10.0.0.9"));
  EXPECT_EQ(a[1].id, "");
  EXPECT_EQ(evidence_name(a[1]), "Scan__Port_Scan_10.0.0.9_1580515300");
  EXPECT_EQ(rd.r.counts().skipped, 1u);
  ASSERT_EQ(rd.warnings.size(), 1u);
  EXPECT_NE(rd.warnings[0].find("log:11: 3 fields where the #fields header names 21"), std::string::npos)
      << rd.warnings[0];
  EXPECT_EQ(rd.r.counts().ignored, 9u);  // header lines
}

TEST(ZeekReader, ConnTsvAndJsonLinesAndALineBeforeAnyHeader) {
  Reader rd(AlertReader::Format::kZeek);
  auto a = rd.lines(
      "1580515200.1\tCx\t10.0.0.5\n"
      "#separator \\x09\n"
      "#path\tconn\n"
      "#fields\tts\tuid\tid.orig_h\tid.orig_p\tid.resp_h\tid.resp_p\tproto\tservice\tduration\torig_bytes\t"
      "resp_bytes\tconn_state\tlocal_orig\tlocal_resp\tmissed_bytes\thistory\torig_pkts\torig_ip_bytes\tresp_"
      "pkts\t"
      "resp_ip_bytes\ttunnel_parents\n"
      "1580515200.100000\tC4J4Th3PJpwUYZZ6gc\t2001:db8::5\t5353\tff02::fb\t5353\tudp\tdns\t-\t-\t-\tS0\t-\t-"
      "\t0\tD\t"
      "1\t100\t0\t0\t(empty)\n"
      R"({"ts":1580515201.25,"uid":"CjSNGy1Rq0AG3oSl0f","id.orig_h":"10.0.0.7","id.orig_p":33000,"id.resp_h":"10.0.0.8","id.resp_p":22,"proto":"tcp","conn_state":"SF"})"
      "\n"
      R"({"ts":"2020-02-01T00:00:02.000001Z","uid":"N1","id.orig_h":"10.0.0.7","id.orig_p":8,"id.resp_h":"10.0.0.8","id.resp_p":0,"proto":"icmp","note":"Weird::Activity","msg":"x"})"
      "\n"
      R"({"ts":1580515203,"note":"Software::Vulnerable_Version","msg":"no host"})"
      "\n");
  ASSERT_EQ(a.size(), 3u);
  EXPECT_EQ(a[0].source, Alert::Source::kZeekConn);
  EXPECT_EQ(a[0].proto, 17);
  EXPECT_EQ(a[0].src.str(), "2001:db8::5");
  EXPECT_EQ(a[0].dst_port, 5353);
  EXPECT_EQ(a[1].id, "CjSNGy1Rq0AG3oSl0f");
  EXPECT_EQ(a[1].ts_ns, 1580515201250000000ull);
  EXPECT_EQ(a[1].dst_port, 22);
  EXPECT_EQ(a[2].source, Alert::Source::kZeekNotice);
  EXPECT_EQ(a[2].proto, 1);
  EXPECT_EQ(a[2].ts_ns, 1580515202000001000ull);
  ASSERT_EQ(rd.warnings.size(), 2u);
  EXPECT_NE(rd.warnings[0].find("log:1: a Zeek log line before any #fields header"), std::string::npos);
  EXPECT_NE(rd.warnings[1].find("log:8: notice names neither a connection"), std::string::npos);
}

// An address there but not one is said so (it was "alert without src_ip and dest_ip"); a
// An alert's time is absolute: "now" or "15m ago" in a log is refused, not read as 1970 (it
// was, with the hint that those forms are accepted).
TEST(AlertReader, ARelativeTimeIsRefusedAsNoAlertTime) {
  Reader eve(AlertReader::Format::kEve);
  auto a = eve.lines(
      R"({"timestamp":"now","event_type":"alert","src_ip":"10.0.0.1","src_port":1,"dest_ip":"10.0.0.2","dest_port":2,"proto":"TCP"})"
      "\n"
      R"({"timestamp":"15m ago","event_type":"alert","src_ip":"10.0.0.1","src_port":1,"dest_ip":"10.0.0.2","dest_port":2,"proto":"TCP"})"
      "\n"
      R"({"timestamp":"yesterday","event_type":"alert","src_ip":"10.0.0.1","src_port":1,"dest_ip":"10.0.0.2","dest_port":2,"proto":"TCP"})"
      "\n");
  EXPECT_TRUE(a.empty());
  ASSERT_EQ(eve.warnings.size(), 3u);
  for (size_t i = 0; i < 2; ++i)
    EXPECT_NE(
        eve.warnings[i].find("expected an absolute time: ISO-8601 (2026-11-25T13:00:00Z) or epoch seconds"),
        std::string::npos)
        << eve.warnings[i];
  EXPECT_NE(
      eve.warnings[2].find("bad time 'yesterday': expected ISO-8601 (2026-11-25T13:00:00Z) or epoch seconds"),
      std::string::npos)
      << eve.warnings[2];
  EXPECT_EQ(eve.warnings[2].find("'now'"), std::string::npos) << eve.warnings[2];
}

// A line that is not JSON says where and why (it was "not a JSON object" for a cut line or
// invalid UTF-8 alike); an address with a NUL is not an address (inet_pton stopped at it); a
// flow_id a pipeline rewrote as a float is its integer (it became a file name "1.5e+15").
TEST(AlertReader, BadJsonSaysWhyANulIsNoAddressAndAFloatFlowIdIsItsInteger) {
  Reader eve(AlertReader::Format::kEve);
  const std::string ok =
      R"("event_type":"alert","src_port":1,"dest_ip":"10.0.0.2","dest_port":2,"proto":"TCP")";
  auto a = eve.lines(
      "{\"timestamp\":\"2026-11-25T13:00:01Z\",\"src_ip\":\"10.0.0.1\xff\"," + ok + "}\n" +
      R"({"timestamp":"2026-11-25T13:00:01Z","src_ip":"10.0.0.1\u0000x",)" + ok + "}\n" + R"([1, 2])" + "\n" +
      R"({"timestamp":"2026-11-25T13:00:01Z","src_ip":"10.0.0.1","flow_id":1.5e15,)" + ok + "}\n" +
      R"({"timestamp":"2026-11-25T13:00:01Z","src_ip":"10.0.0.1","flow_id":0.5,)" + ok + "}\n" +
      R"({"timestamp":"2026-11-25T13:00:01Z","src_ip":"10.0.0.1","flow_id":1.2345678901234567e17,)" + ok +
      "}\n");
  ASSERT_EQ(a.size(), 3u);
  EXPECT_EQ(a[0].id, "1500000000000000");
  EXPECT_EQ(a[1].id, "");
  EXPECT_EQ(a[2].id, "");  // (beyond 2^53: digits lost)
  ASSERT_EQ(eve.warnings.size(), 3u);
  EXPECT_NE(
      eve.warnings[0].find("log:1: not JSON (column 55: syntax error while parsing value - invalid string: "
                           "ill-formed UTF-8 byte)"),
      std::string::npos)
      << eve.warnings[0];
  EXPECT_NE(eve.warnings[1].find("log:2: src_ip \"10.0.0.1\\u0000x\" is not an IPv4 or IPv6 address"),
            std::string::npos)
      << eve.warnings[1];
  EXPECT_NE(eve.warnings[2].find("log:3: not a JSON object"), std::string::npos) << eve.warnings[2];
}

// Zeek TCP or UDP connection without a port is skipped, as a Suricata alert is (it was taken
// as port 0, and found no flow record).
TEST(AlertReader, ABadAddressIsNamedAndAZeekConnectionWithoutItsPortsIsSkipped) {
  Reader eve(AlertReader::Format::kEve);
  auto a = eve.lines(
      R"({"timestamp":"2026-11-25T13:00:01+0000","event_type":"alert","src_ip":"10.0.2.999","src_port":1,"dest_ip":"10.0.0.2","dest_port":2,"proto":"TCP"})"
      "\n");
  EXPECT_TRUE(a.empty());
  ASSERT_EQ(eve.warnings.size(), 1u);
  EXPECT_NE(eve.warnings[0].find("log:1: src_ip \"10.0.2.999\" is not an IPv4 or IPv6 address"),
            std::string::npos)
      << eve.warnings[0];
  Reader zeek(AlertReader::Format::kZeek);
  a = zeek.lines(
      R"({"ts":1580515201,"uid":"C1","id.orig_h":"10.0.0.7","id.resp_h":"10.0.0.8","id.resp_p":22,"proto":"tcp"})"
      "\n"
      R"({"ts":1580515201,"uid":"C2","id.orig_h":"10.0.0.7","id.orig_p":5,"id.resp_h":"10.0.0.8","proto":"udp"})"
      "\n"
      R"({"ts":1580515201,"uid":"C3","id.orig_h":"10.0.0.7","id.resp_h":"10.0.0.8","proto":"icmp"})"
      "\n");
  ASSERT_EQ(a.size(), 1u);  // (ICMP: its type and code stand for the ports, unset or not)
  EXPECT_EQ(a[0].id, "C3");
  ASSERT_EQ(zeek.warnings.size(), 2u);
  EXPECT_NE(zeek.warnings[0].find("log:1: tcp connection without id.orig_p"), std::string::npos)
      << zeek.warnings[0];
  EXPECT_NE(zeek.warnings[1].find("log:2: udp connection without id.resp_p"), std::string::npos)
      << zeek.warnings[1];
}

TEST(EvidenceName, KeepsFileNameCharactersOnly) {
  Alert a;
  a.id = "../x y/z";
  EXPECT_EQ(evidence_name(a), "_._x_y_z");
  a.id = "";
  a.community_id = "1:LQU9qZlK+B5F3KDmev6m5PMibrg=";
  EXPECT_EQ(evidence_name(a), "1_LQU9qZlK_B5F3KDmev6m5PMibrg_");
  a.id = std::string(300, 'C');
  EXPECT_EQ(evidence_name(a).size(), 128u);
}

void append(const std::filesystem::path& p, const std::string& s) {
  std::ofstream f(p, std::ios::app | std::ios::binary);
  f << s;
}

struct Lines {
  std::vector<std::pair<std::string, size_t>> got;
  std::vector<std::string> news;
  size_t poll(LogFollower& f) {
    return f.poll(
        [&](std::string_view l, size_t n, uint64_t too_long) {
          got.emplace_back(too_long ? fmt::format("<{} bytes>", too_long) : std::string(l), n);
        },
        [&](const std::string& why) { news.push_back(why); });
  }
};

TEST(LogFollower, GrowsHoldsAPartialLineSurvivesRenameAndTruncation) {
  TempDir t;
  auto p = t.p / "eve.json";
  LogFollower f(p.string(), true);
  Lines l;
  EXPECT_EQ(l.poll(f), 0u);  // not there yet: waited for
  append(p, "a\nb");
  EXPECT_EQ(l.poll(f), 1u);
  append(p, "c\n");
  EXPECT_EQ(l.poll(f), 1u);
  ASSERT_EQ(l.got.size(), 2u);
  EXPECT_EQ(l.got[1], (std::pair<std::string, size_t>{"bc", 2}));
  // Rotation: renamed (written to once more), then a new file.
  std::filesystem::rename(p, t.p / "eve.json.1");
  append(t.p / "eve.json.1", "d\n");
  EXPECT_EQ(l.poll(f), 1u);  // the old file, still read
  append(t.p / "eve.json.1", "e");
  append(p, "new1\nnew2\n");
  EXPECT_EQ(l.poll(f), 3u);  // e (the old file's last line), then the new file
  ASSERT_EQ(l.news.size(), 1u);
  EXPECT_EQ(l.news[0], "rotated");
  EXPECT_EQ(l.got[3], (std::pair<std::string, size_t>{"e", 4}));
  EXPECT_EQ(l.got[4], (std::pair<std::string, size_t>{"new1", 1}));
  // Truncated in place (copytruncate).
  std::filesystem::resize_file(p, 0);
  append(p, "t\n");
  EXPECT_EQ(l.poll(f), 1u);
  EXPECT_EQ(l.news.back(), "truncated");
  EXPECT_EQ(l.got.back(), (std::pair<std::string, size_t>{"t", 1}));
  EXPECT_EQ(l.poll(f), 0u);
  // Truncated and written past where it was read before the next poll: its size does not show
  // it (the lines from the start were lost: read from where the old file ended).
  append(p, "u\n");
  EXPECT_EQ(l.poll(f), 1u);  // the file is "t\nu\n" (4 bytes read)
  std::filesystem::resize_file(p, 0);
  append(p, "{\"x\":1}\n{\"x\":2}\n");
  EXPECT_EQ(l.poll(f), 2u);
  EXPECT_EQ(l.news.back(), "truncated");
  EXPECT_EQ(l.got[l.got.size() - 2], (std::pair<std::string, size_t>{"{\"x\":1}", 1}));
  EXPECT_EQ(l.got.back(), (std::pair<std::string, size_t>{"{\"x\":2}", 2}));
  EXPECT_EQ(l.poll(f), 0u);
}

// A line longer than kMaxLine is one line, given by its length (its bytes not held), however
// it arrives: the lines after it keep their numbers.
TEST(LogFollower, ALineTooLongIsOneLineGivenByItsLength) {
  for (bool follow : {false, true}) {
    SCOPED_TRACE(follow ? "follow" : "once");
    TempDir t;
    auto p = t.p / "eve.json";
    const std::string big(LogFollower::kMaxLine + 100000, 'A');
    append(p, "first\n" + big.substr(0, 3000000));
    LogFollower f(p.string(), follow);
    Lines l;
    if (follow) l.poll(f);                               // the long line's first part: held
    append(p, big.substr(3000000) + "\nthird\n" + big);  // and a last one without newline
    l.poll(f);
    std::vector<std::pair<std::string, size_t>> want = {
        {"first", 1}, {fmt::format("<{} bytes>", big.size()), 2}, {"third", 3}};
    if (!follow) want.emplace_back(fmt::format("<{} bytes>", big.size()), 4);  // (once: the last line too)
    EXPECT_EQ(l.got, want);
  }
}

TEST(LogFollower, OnceReadsTheLastLineWithoutNewlineAndThrowsOnAMissingFile) {
  TempDir t;
  auto p = t.p / "notice.log";
  append(p, "x\ny");
  LogFollower f(p.string(), false);
  Lines l;
  EXPECT_EQ(l.poll(f), 2u);
  LogFollower missing((t.p / "none").string(), false);
  EXPECT_THROW(l.poll(missing), std::runtime_error);
}

// A Service answering from a fixed set of flow records and, for any query, `packets` packets.
class FakeService : public server::Service {
 public:
  std::vector<flow::FlowRow> rows;
  size_t packets = 3;
  std::vector<server::QueryRequest> queries;
  std::vector<server::FlowRequest> flow_requests;
  std::string query_warning, flows_warning;  // given to the Warn of each query / flows call
  std::string query(const server::QueryRequest& q, const server::ByteSink& out,
                    const server::Warn& warn) override {
    queries.push_back(q);
    if (!query_warning.empty()) warn(query_warning);
    util::pcap::Writer w(out);
    uint8_t frame[60] = {};
    for (size_t i = 0; i < packets; ++i)
      w.write(1000 + i, util::pcap::kLinkEthernet, sizeof(frame), sizeof(frame), frame);
    w.finish();
    return "";
  }
  std::string flows(const server::FlowRequest& q, const server::ByteSink& out,
                    const server::Warn& warn) override {
    flow_requests.push_back(q);
    if (!flows_warning.empty()) warn(flows_warning);
    std::string s = server::render_flows(rows, "json");
    out(s.data(), s.size());
    return "";
  }
  // --keep: the server's stats (its classes), and the class and control requests, recorded;
  // `refuse` (a status): class_set and control throw that ServiceError.
  nlohmann::json stats_body = {
      {"live", true},
      {"capture", {{"classes", {{"default", {{"cutoff", 15360}}}, {"suspect", {{"cutoff", "none"}}}}}}}};
  std::vector<server::ClassRequest> class_sets;
  std::vector<server::ControlRequest> controls;
  nlohmann::json dynamic_classes = nlohmann::json::array();  // what class_list() answers
  size_t lists = 0;
  bool list_fails = false;
  int refuse = 0;
  server::Reply stats(const server::ApiCounters&) override { return {stats_body, {}}; }
  server::Reply class_set(const server::ClassRequest& r) override {
    if (refuse) server::throw_for_status(refuse, "refused");
    class_sets.push_back(r);
    return {{{"host", r.host}, {"class", r.cls}, {"expires", "2026-12-02T12:00:00Z"}}, {}};
  }
  server::Reply control(const server::ControlRequest& r) override {
    if (refuse) server::throw_for_status(refuse, "refused");
    controls.push_back(r);
    return {{{"connections", 1}}, {}};
  }
  // The rest of the interface: evidence does not ask for it.
  [[noreturn]] static void unused() { throw std::logic_error("FakeService: not used by evidence"); }
  std::unique_ptr<server::Stream> open_subscription(const server::SubscribeRequest&) override { unused(); }
  server::Reply health() override { unused(); }
  std::string metrics(const server::ApiCounters&) override { unused(); }
  server::Reply class_list() override {
    ++lists;
    if (list_fails) throw std::runtime_error("cannot list");
    return {dynamic_classes, {}};
  }
  server::Reply class_remove(const std::string&) override { unused(); }
  server::Reply connections(const server::ConnectionsRequest&) override { unused(); }
};

flow::FlowRow row(uint64_t id, uint64_t first, uint64_t last) {
  flow::FlowRow r;
  r.rec = flow::FlowRecord{};
  r.rec.id = id;
  r.rec.first_ts = first;
  r.rec.last_ts = last;
  r.rec.orig = v4("10.0.0.5");
  r.rec.resp = v4("192.0.2.7");
  r.rec.orig_port = 49152;
  r.rec.resp_port = 443;
  r.rec.proto = 6;
  r.rec.version = 4;
  r.rec.end = 1;
  r.rec.stored = 3;
  r.rec.pkts[0] = 2;
  r.rec.pkts[1] = 1;
  r.cls = "default";
  r.packets = flow::FlowRow::Packets::kAll;
  return r;
}

Alert alert(const std::string& id, uint64_t ts, const std::string& sig) {
  Alert a;
  a.source = Alert::Source::kSuricata;
  a.id = id;
  a.ts_ns = ts;
  a.has_tuple = true;
  a.src = v4("192.0.2.7");  // the responder's packet raised it: either direction joins
  a.dst = v4("10.0.0.5");
  a.src_port = 443;
  a.dst_port = 49152;
  a.proto = 6;
  a.name = sig;
  a.event = {{"alert", {{"signature", sig}}}, {"timestamp", ts}};
  return a;
}

nlohmann::json read_json(const std::filesystem::path& p) {
  std::ifstream in(p);
  return nlohmann::json::parse(in);
}

std::string slurp(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

constexpr uint64_t kS = 1000000000ull;

// An EvidenceWriter into a fresh directory (t.p / "out") over a FakeService with `rows`, its
// warnings kept.
struct Writing {
  explicit Writing(std::vector<flow::FlowRow> rows) { svc.rows = std::move(rows); }
  TempDir t;
  FakeService svc;
  std::vector<std::string> warnings;
  EvidenceWriter w{svc, EvidenceOptions{.out_dir = (t.p / "out").string()},
                   [this](const std::string& s) { warnings.push_back(s); }};
};

TEST(EvidenceWriter, JoinsByCommunityIdWritesPcapAndJsonOnceForRepeatedAlertsAndIsIdempotent) {
  TempDir t;
  FakeService svc;
  auto other = row(7, 100 * kS, 200 * kS);
  other.rec.resp_port = 444;  // another connection of the same hosts: not joined
  svc.rows = {other, row(8, 1000 * kS, 1010 * kS), row(9, 1200 * kS, 1300 * kS)};
  std::vector<std::string> warnings;
  EvidenceOptions o;
  o.out_dir = (t.p / "out").string();
  EvidenceWriter w(svc, o, [&](const std::string& s) { warnings.push_back(s); });
  std::vector<Alert> alerts = {alert("42", 1005 * kS, "one"), alert("42", 1006 * kS, "two")};
  alerts[0].community_id = packet::community_id_v1({alerts[0].src, alerts[0].dst, 6, 443, 49152});
  EXPECT_EQ(w.write("42", alerts, true), EvidenceWriter::Outcome::kWritten);
  EXPECT_TRUE(warnings.empty()) << warnings[0];
  ASSERT_EQ(svc.queries.size(), 1u);
  EXPECT_EQ(svc.queries[0].filter,
            "host 192.0.2.7 and host 10.0.0.5 and proto 6 and port 443 and port 49152");
  EXPECT_EQ(svc.queries[0].from, "1000.000000000");  // the record's span
  EXPECT_EQ(svc.queries[0].to, "1010.000000001");
  EXPECT_EQ(svc.flow_requests[0].from, "705.000000000");  // the alerts ± 5 minutes
  auto j = read_json(t.p / "out" / "42.json");
  EXPECT_EQ(j["id"], "42");
  EXPECT_EQ(j["flow"]["id"], "8");
  EXPECT_EQ(j["connection"]["community_id"], alerts[0].community_id);
  EXPECT_EQ(j["alerts"].size(), 2u);
  EXPECT_EQ(j["evidence"]["found"], true);
  EXPECT_EQ(j["evidence"]["packets"], 3u);
  EXPECT_EQ(j["evidence"]["pcap"], "42.pcap");
  EXPECT_EQ(j["evidence"]["cut_off"], false);
  EXPECT_EQ(j["evidence"]["other_flows"],
            nlohmann::json::array({"9"}));  // within the window, further away in time
  EXPECT_EQ(slurp(t.p / "out" / "42.pcap").size(), 24u + 3 * (16 + 60));
  std::string first_json = slurp(t.p / "out" / "42.json");
  // Again, and once more with one alert seen before: nothing doubled, the same files.
  EXPECT_EQ(w.write("42", alerts, true), EvidenceWriter::Outcome::kWritten);
  EXPECT_EQ(w.write("42", {alerts[1]}, true), EvidenceWriter::Outcome::kWritten);
  EXPECT_EQ(slurp(t.p / "out" / "42.json"), first_json);
  EXPECT_EQ(w.write("42", {alert("42", 1007 * kS, "three")}, true), EvidenceWriter::Outcome::kWritten);
  EXPECT_EQ(read_json(t.p / "out" / "42.json")["alerts"].size(), 3u);
  EXPECT_FALSE(std::filesystem::exists(t.p / "out" / "42.pcap.tmp"));
  EXPECT_FALSE(std::filesystem::exists(t.p / "out" / "42.json.tmp"));
}

// No flow record near the alert (yet: a UDP connection's comes at its inactivity timeout): it
// waits, then takes its tuple's packets in the alert ± window, saying there was no record; none
// there either is "not found", saying both.
TEST(EvidenceWriter, NoFlowRecordWaitsThenTakesTheTuplesPacketsInTheWindow) {
  TempDir t;
  FakeService svc;
  svc.rows = {row(8, 1000 * kS, 1010 * kS)};
  svc.packets = 0;
  EvidenceOptions o;
  o.out_dir = (t.p / "out").string();
  EvidenceWriter w(svc, o, [](const std::string&) {});
  Alert a = alert("43", 9000 * kS, "late");  // far from the record
  EXPECT_EQ(w.write("43", {a}, false), EvidenceWriter::Outcome::kWaiting);
  EXPECT_FALSE(std::filesystem::exists(t.p / "out" / "43.json"));
  EXPECT_TRUE(svc.queries.empty());
  EXPECT_EQ(w.write("43", {a}, true), EvidenceWriter::Outcome::kNotFound);
  auto j = read_json(t.p / "out" / "43.json");
  EXPECT_EQ(j["evidence"]["found"], false);
  const std::string why = j["evidence"]["why"].get<std::string>();
  EXPECT_NE(why.find("no flow record"), std::string::npos) << why;
  EXPECT_NE(why.find("no packet of its tuple"), std::string::npos) << why;
  EXPECT_TRUE(j["flow"].is_null());
  EXPECT_FALSE(std::filesystem::exists(t.p / "out" / "43.pcap"));
  ASSERT_EQ(svc.queries.size(), 1u);
  for (const char* part : {"10.0.0.5", "192.0.2.7", "49152", "443"})  // the alert's tuple
    EXPECT_NE(svc.queries[0].filter.find(part), std::string::npos) << svc.queries[0].filter;
  EXPECT_EQ(svc.queries[0].from, util::epoch_text(9000 * kS - o.window_ns));
  EXPECT_EQ(svc.queries[0].to, util::epoch_text(9000 * kS + o.window_ns + 1));
  EXPECT_EQ(w.stats().not_found, 1u);
  // A front-end's worker that may hold them did not answer the packet query: unknown, not "no packet".
  svc.query_warning = tmach::server::missing_workers_warning("http://w2:1 (connection refused)");
  EXPECT_EQ(w.write("43", {a}, true), EvidenceWriter::Outcome::kNotFound);
  j = read_json(t.p / "out" / "43.json");
  EXPECT_EQ(j["evidence"]["unknown"], true);
  EXPECT_NE(j["evidence"]["why"].get<std::string>().find("unknown"), std::string::npos);
  svc.query_warning.clear();
  // Its packets on disk: written, with the note.
  svc.packets = 2;
  EXPECT_EQ(w.write("43", {a}, true), EvidenceWriter::Outcome::kWritten);
  j = read_json(t.p / "out" / "43.json");
  EXPECT_EQ(j["evidence"]["found"], true);
  EXPECT_EQ(j["evidence"]["packets"], 2u);
  EXPECT_NE(j["evidence"]["note"].get<std::string>().find("no flow record"), std::string::npos);
  EXPECT_TRUE(std::filesystem::exists(t.p / "out" / "43.pcap"));
}

// Through a front-end: a worker missing from the flow answer, the flow record found at another
// worker with no packets left is "no longer on disk", not "unknown" (the flow query's missing
// worker says nothing of its packets); a worker missing from the packet answer makes it
// unknown, and found packets with a worker missing are marked as perhaps partial.
TEST(EvidenceWriter, OnlyThePacketQuerysMissingWorkersMakePacketsUnknown) {
  TempDir t;
  FakeService svc;
  svc.rows = {row(8, 1000 * kS, 1010 * kS)};
  svc.packets = 0;
  svc.flows_warning = tmach::server::missing_workers_warning("http://w2:1 (connection refused)");
  EvidenceOptions o;
  o.out_dir = (t.p / "out").string();
  EvidenceWriter w(svc, o, [](const std::string&) {});
  w.write("1", {alert("1", 1005 * kS, "s")}, true);
  auto j = read_json(t.p / "out" / "1.json");
  EXPECT_FALSE(j["evidence"].contains("unknown")) << j.dump();
  EXPECT_NE(j["evidence"]["why"].get<std::string>().find("no longer on disk"), std::string::npos) << j.dump();

  svc.flows_warning.clear();
  svc.query_warning = tmach::server::missing_workers_warning("http://w2:1 (connection refused)");
  w.write("2", {alert("2", 1005 * kS, "s")}, true);
  j = read_json(t.p / "out" / "2.json");
  EXPECT_EQ(j["evidence"]["unknown"], true) << j.dump();
  EXPECT_NE(j["evidence"]["why"].get<std::string>().find("http://w2:1"), std::string::npos) << j.dump();

  svc.packets = 2;
  w.write("3", {alert("3", 1005 * kS, "s")}, true);
  j = read_json(t.p / "out" / "3.json");
  EXPECT_EQ(j["evidence"]["packets"], 2);
  EXPECT_NE(j["evidence"]["workers_missing"].get<std::string>().find("http://w2:1"), std::string::npos)
      << j.dump();
}

// The warnings a front-end's answer names its missing workers in are made and recognised by
// one pair of functions (server/service.h); a worker's own warning passed on by the front-end
// ("worker URL: ...") names no missing worker.
TEST(MissingWorkers, TheWarningsMadeAreTheWarningsRecognised) {
  using namespace tmach::server;
  EXPECT_EQ(missing_workers_of(missing_workers_warning("http://w2:1: connection refused")),
            "http://w2:1: connection refused");
  std::string failed = worker_failed_warning("http://w2:1", "answer cut after 3 packets");
  EXPECT_EQ(missing_workers_of(failed), failed);
  EXPECT_FALSE(
      missing_workers_of("worker http://w2:1: /s/default/1.pcap: missing (its sidecar /s/default/1.idx "
                         "is there)"));
  EXPECT_FALSE(missing_workers_of("3 packets of another link type left out"));
}

TEST(EvidenceWriter, AMismatchingCommunityIdIsWarnedAndEvictedPacketsKeepTheEarlierPcap) {
  Writing x({row(8, 1000 * kS, 1010 * kS)});
  auto& [t, svc, warnings, w] = x;
  Alert a = alert("44", 1000 * kS, "x");
  a.community_id = "1:AAAAAAAAAAAAAAAAAAAAAAAAAAA=";
  EXPECT_EQ(w.write("44", {a}, true), EvidenceWriter::Outcome::kWritten);
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_NE(warnings[0].find("community_id 1:AAAAAAAAAAAAAAAAAAAAAAAAAAA= is not"), std::string::npos);
  std::string pcap = slurp(t.p / "out" / "44.pcap");
  svc.packets = 1;  // evicted since
  EXPECT_EQ(w.write("44", {a}, true), EvidenceWriter::Outcome::kWritten);
  EXPECT_EQ(slurp(t.p / "out" / "44.pcap"), pcap);
  auto j = read_json(t.p / "out" / "44.json");
  EXPECT_EQ(j["evidence"]["packets"], 3u);
  EXPECT_NE(j["evidence"]["note"].get<std::string>().find("the store now has 1"), std::string::npos);
  EXPECT_EQ(w.stats().kept_earlier, 1u);
}

TEST(EvidenceWriter, IcmpJoinsByHostsAndAnUnknownProtocolByTheRecordsOwn) {
  TempDir t;
  FakeService svc;
  auto icmp = row(10, 1000 * kS, 1001 * kS);
  icmp.rec.proto = 1;
  icmp.rec.orig_port = icmp.rec.resp_port = 0;
  svc.rows = {icmp, row(11, 1000 * kS, 1010 * kS)};
  EvidenceOptions o;
  o.out_dir = (t.p / "out").string();
  EvidenceWriter w(svc, o, [](const std::string&) {});
  Alert ping = alert("p", 1000 * kS, "ping");
  ping.proto = 1;
  ping.src_port = 8;  // echo request
  ping.dst_port = 0;
  EXPECT_EQ(w.write("p", {ping}, true), EvidenceWriter::Outcome::kWritten);
  EXPECT_EQ(svc.queries.back().filter, "host 192.0.2.7 and host 10.0.0.5 and proto 1");
  EXPECT_EQ(read_json(t.p / "out" / "p.json")["flow"]["id"], "10");
  // Its reply (type 0, the other way) under the same id is the same connection: one evidence
  // (ICMP's type and code stand for ports in the alert, not in tm's connection), not p-2.
  Alert pong = ping;
  std::swap(pong.src, pong.dst);
  pong.src_port = 0;
  pong.name = "pong";
  pong.event["alert"]["signature"] = "pong";
  EXPECT_EQ(w.write("p", {pong}, true), EvidenceWriter::Outcome::kWritten);
  EXPECT_FALSE(std::filesystem::exists(t.p / "out" / "p-2.json"));
  EXPECT_EQ(read_json(t.p / "out" / "p.json")["alerts"].size(), 2u);
  Alert notice = alert("n", 1005 * kS, "");
  notice.source = Alert::Source::kZeekNotice;
  notice.proto = 0;  // the notice does not say: the record that joins does
  EXPECT_EQ(w.write("n", {notice}, true), EvidenceWriter::Outcome::kWritten);
  EXPECT_EQ(svc.flow_requests.back().filter, "host 192.0.2.7 and host 10.0.0.5 and port 443 and port 49152");
  EXPECT_EQ(svc.queries.back().filter,
            "host 192.0.2.7 and host 10.0.0.5 and proto 6 and port 443 and port 49152");
  EXPECT_EQ(read_json(t.p / "out" / "n.json")["flow"]["id"], "11");
}

// A Zeek notice that does not say its protocol and the conn.log line of its uid (that does) are
// one connection: one evidence, whichever came first, never N and N-2.
TEST(EvidenceWriter, ANoticeWithoutProtocolAndItsConnLineAreOneEvidence) {
  for (bool notice_first : {true, false}) {
    Writing x({row(11, 1000 * kS, 1010 * kS)});
    auto& [t, svc, warnings, w] = x;
    Alert notice = alert("C1", 1005 * kS, "SSH::Password_Guessing");
    notice.source = Alert::Source::kZeekNotice;
    notice.proto = 0;
    Alert conn = alert("C1", 1000 * kS, "");
    conn.source = Alert::Source::kZeekConn;
    std::swap(conn.src, conn.dst);  // (the other way round)
    std::swap(conn.src_port, conn.dst_port);
    for (const Alert& x : notice_first ? std::vector<Alert>{notice, conn} : std::vector<Alert>{conn, notice})
      EXPECT_EQ(w.write("C1", {x}, true), EvidenceWriter::Outcome::kWritten);
    EXPECT_FALSE(std::filesystem::exists(t.p / "out" / "C1-2.json")) << notice_first;
    auto j = read_json(t.p / "out" / "C1.json");
    EXPECT_EQ(j["alerts"].size(), 2u) << notice_first;
    EXPECT_EQ(j["connection"]["proto"], "tcp") << notice_first;
    EXPECT_TRUE(warnings.empty()) << notice_first << ": " << warnings.front();
  }
  // Waiting together: the notice joins the first waiting connection of its id it may be.
  Writing x({});
  EvidenceRun run(x.w, std::chrono::hours(1), [](const std::string&) {});
  run.add(alert("C1", 1000 * kS, ""));
  Alert udp = alert("C1", 1000 * kS, "");
  udp.proto = 17;  // (another connection: its own entry)
  run.add(udp);
  EXPECT_EQ(run.waiting(), 2u);
  Alert notice = alert("C1", 1005 * kS, "n");
  notice.proto = 0;
  run.add(notice);
  EXPECT_EQ(run.waiting(), 2u);
  EXPECT_EQ(run.waiting_alerts(), 3u);
  Alert elsewhere = notice;
  elsewhere.dst_port = 1;  // (not the same connection, protocol or not)
  run.add(elsewhere);
  EXPECT_EQ(run.waiting(), 3u);
}

TEST(EvidenceWriter, AHostOnlyNoticeGetsItsPacketsWithinTheWindow) {
  TempDir t;
  FakeService svc;
  EvidenceOptions o;
  o.out_dir = (t.p / "out").string();
  o.window_ns = 60 * kS;
  EvidenceWriter w(svc, o, [](const std::string&) {});
  Alert a;
  a.source = Alert::Source::kZeekNotice;
  a.ts_ns = 1000 * kS;
  a.src = v4("10.0.0.9");
  a.name = "Scan::Port_Scan";
  EXPECT_EQ(w.write("scan", {a}, true), EvidenceWriter::Outcome::kWritten);
  ASSERT_EQ(svc.queries.size(), 1u);
  EXPECT_TRUE(svc.flow_requests.empty());
  EXPECT_EQ(svc.queries[0].filter, "host 10.0.0.9");
  EXPECT_EQ(svc.queries[0].from, "940.000000000");
  EXPECT_EQ(svc.queries[0].to, "1060.000000001");
  auto j = read_json(t.p / "out" / "scan.json");
  EXPECT_EQ(j["connection"]["host"], "10.0.0.9");
}

TEST(EvidenceRun, GroupsByNameRunsActionsPerAlertAndRetriesUntilTheWait) {
  Writing x({});
  auto& [t, svc, warnings, w] = x;
  EvidenceRun run(w, std::chrono::hours(1), [](const std::string&) {});
  size_t acted = 0;
  run.add_action([&](const Alert&) {
    ++acted;
    return nlohmann::json();
  });
  run.add(alert("50", 1000 * kS, "a"));
  run.add(alert("50", 1001 * kS, "b"));
  EXPECT_EQ(acted, 2u);
  EXPECT_EQ(run.process(EvidenceRun::Pass::kFollow), 1u);  // no flow record yet: waits
  EXPECT_EQ(svc.flow_requests.size(), 1u);
  EXPECT_EQ(run.process(EvidenceRun::Pass::kFollow), 1u);  // too soon to ask again
  EXPECT_EQ(svc.flow_requests.size(), 1u);
  svc.rows = {row(8, 999 * kS, 1010 * kS)};
  EXPECT_EQ(run.process(EvidenceRun::Pass::kFinal), 0u);
  auto j = read_json(t.p / "out" / "50.json");
  EXPECT_EQ(j["alerts"].size(), 2u);
  EXPECT_EQ(j["evidence"]["found"], true);
}

TEST(EvidenceRun, ASinglePassWaitsOnlyForTheRecordAKeepControlWillWrite) {
  Writing x({});
  auto& [t, svc, warnings, w] = x;
  EvidenceRun run(w, std::chrono::hours(1), [](const std::string&) {});
  bool controlled = false;
  run.add_action([&](const Alert&) {
    return controlled ? nlohmann::json{{"kept", {{"connections_suspended", 1}}}} : nlohmann::json();
  });
  run.add(alert("60", 1000 * kS, "plain"));
  controlled = true;
  run.add(alert("61", 1000 * kS, "kept"));
  // The one without a control is written at once (not found: no record, no packet); the kept one waits.
  EXPECT_EQ(run.process(EvidenceRun::Pass::kOnce), 1u);
  EXPECT_TRUE(std::filesystem::exists(t.p / "out" / "60.json"));
  EXPECT_FALSE(std::filesystem::exists(t.p / "out" / "61.json"));
  svc.rows = {row(8, 999 * kS, 1010 * kS)};
  std::this_thread::sleep_for(std::chrono::milliseconds(600));  // (the first pause: 0.5 s)
  EXPECT_EQ(run.process(EvidenceRun::Pass::kOnce), 0u);
  EXPECT_EQ(read_json(t.p / "out" / "61.json")["evidence"]["found"], true);
  // A kept alert whose record does not come still waits in a single pass (kOnce: up to
  // kRecordComing), and the end of the run writes it as not found (kFinal).
  svc.rows.clear();
  run.add(alert("62", 1000 * kS, "kept, no record"));
  EXPECT_EQ(run.process(EvidenceRun::Pass::kOnce), 1u);
  EXPECT_EQ(run.process(EvidenceRun::Pass::kFinal), 0u);
  EXPECT_TRUE(std::filesystem::exists(t.p / "out" / "62.json"));
}

KeepOptions keep_opts(uint64_t keep_ns, KeepOptions::Scope scope = KeepOptions::Scope::kHost) {
  KeepOptions o;
  o.keep_ns = keep_ns;
  o.scope = scope;
  return o;
}

TEST(Keeper, TakesTheFirstClassWithoutCutoffAndRefusesAServerWithoutOneOrWithoutLiveCapture) {
  FakeService svc;
  std::vector<std::string> warnings;
  auto warn = [&](const std::string& w) { warnings.push_back(w); };
  EXPECT_EQ(Keeper(svc, keep_opts(3600 * kS), warn).start(), "suspect");
  KeepOptions named = keep_opts(3600 * kS);
  named.cls = "nosuch";
  try {
    Keeper(svc, named, warn).start();
    FAIL() << "an unknown --keep-class accepted";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("no class 'nosuch' (its classes: default (cutoff 15360), suspect"),
              std::string::npos)
        << e.what();
  }
  named.cls = "default";  // has a cutoff: taken, with a warning
  EXPECT_EQ(Keeper(svc, named, warn).start(), "default");
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_NE(warnings[0].find("has a cutoff"), std::string::npos);
  svc.stats_body["capture"]["classes"].erase("suspect");
  try {
    Keeper(svc, keep_opts(3600 * kS), warn).start();
    FAIL() << "a server without a class without cutoff accepted";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("[[class]] name = \"suspect\""), std::string::npos) << e.what();
  }
  svc.stats_body = {{"live", false}};
  EXPECT_THROW(Keeper(svc, keep_opts(3600 * kS, KeepOptions::Scope::kConn), warn).start(),
               std::runtime_error);
  EXPECT_TRUE(svc.class_sets.empty());
}

TEST(Keeper, ConnectionFilterTakesBothDirectionsWithTheirOwnPorts) {
  Alert a = alert("1", 0, "x");
  EXPECT_EQ(Keeper::connection_filter(a),
            "(tcp and ((src host 192.0.2.7 and src port 443 and dst host 10.0.0.5 and dst port 49152) or "
            "(src host 10.0.0.5 and src port 49152 and dst host 192.0.2.7 and dst port 443)))");
  a.proto = 1;
  EXPECT_EQ(Keeper::connection_filter(a), "(ip proto 1 and host 192.0.2.7 and host 10.0.0.5)");
  a.proto = 0;  // a notice that does not say: TCP, UDP or SCTP
  std::string f = Keeper::connection_filter(a);
  EXPECT_NE(f.find(" or (tcp and"), std::string::npos);
  EXPECT_NE(f.find(" or (udp and"), std::string::npos);
  EXPECT_NE(f.find("(sctp and"), std::string::npos);  // sorted terms
}

TEST(Keeper, ABurstOfAlertsOnOneHostMakesOneClassEntryRefreshedAtMostEveryTenthOfKeep) {
  FakeService svc;
  Keeper k(svc, keep_opts(100 * kS), [](const std::string&) {});
  k.start();
  auto t0 = Keeper::Clock::time_point{} + std::chrono::hours(1);
  auto j = k.keep(alert("1", 0, "a"), t0);
  ASSERT_EQ(svc.class_sets.size(), 2u);  // both hosts of the alert
  EXPECT_EQ(svc.class_sets[0].host, "192.0.2.7");
  EXPECT_EQ(svc.class_sets[1].host, "10.0.0.5");
  EXPECT_EQ(svc.class_sets[0].cls, "suspect");
  EXPECT_EQ(svc.class_sets[0].for_text, "100s");
  ASSERT_EQ(svc.controls.size(), 1u);  // and the live connection's cutoff suspended
  EXPECT_EQ(svc.controls[0].suspend_cutoff, 1);
  EXPECT_EQ(svc.controls[0].suspend_timeout, -1);
  EXPECT_EQ(svc.controls[0].filter, Keeper::connection_filter(alert("1", 0, "a")));
  EXPECT_EQ(j["hosts"], nlohmann::json::array({"192.0.2.7", "10.0.0.5"}));
  EXPECT_EQ(j["class"], "suspect");
  EXPECT_EQ(j["until"], "2026-12-02T12:00:00Z");
  EXPECT_EQ(j["requests"], 4u);  // the list of dynamic classes, two class sets, one control
  EXPECT_FALSE(j.contains("error"));
  for (int i = 1; i < 50; ++i) j = k.keep(alert("1", 0, "a"), t0 + std::chrono::milliseconds(100 * i));
  EXPECT_EQ(svc.class_sets.size(), 2u);  // within keep/10: nothing asked again
  EXPECT_EQ(svc.controls.size(), 1u);
  EXPECT_EQ(j["requests"], 0u);
  EXPECT_EQ(j["hosts"].size(), 2u);  // still reported as kept
  EXPECT_EQ(j["until"], "2026-12-02T12:00:00Z");
  k.keep(alert("1", 0, "a"), t0 + std::chrono::seconds(10));  // keep/10 later: refreshed once
  EXPECT_EQ(svc.class_sets.size(), 4u);
  EXPECT_EQ(svc.controls.size(), 2u);
  EXPECT_EQ(k.stats().class_requests, 4u);
  EXPECT_EQ(k.stats().hosts_raised, 2u);  // the refreshes raised no new host
  EXPECT_EQ(k.stats().controls, 2u);
}

// A keep never shortens a host's stay in the keep class: one there for good, or until later than
// the keep would, is left as it is (the set made an operator's "never" expire with the keep).
TEST(Keeper, AHostInTheKeepClassForLongerIsLeftAsItIs) {
  FakeService svc;
  const uint64_t later = util::now_ns() + 3600 * kS;
  svc.dynamic_classes = {
      {{"host", "192.0.2.7"}, {"class", "suspect"}, {"expires_ns", 0}, {"expires", nullptr}},
      {{"host", "10.0.0.5"}, {"class", "suspect"}, {"expires_ns", later}, {"expires", "later"}}};
  Keeper k(svc, keep_opts(100 * kS), [](const std::string&) {});
  k.start();
  auto j = k.keep(alert("1", 0, "a"));
  EXPECT_TRUE(svc.class_sets.empty());
  EXPECT_EQ(svc.lists, 1u);  // once for both hosts
  EXPECT_EQ(j["hosts"], nlohmann::json::array({"192.0.2.7", "10.0.0.5"}));
  EXPECT_EQ(j["until"], "never");
  // Until sooner than the keep, or in another class: set (as before).
  svc.dynamic_classes[0]["expires_ns"] = util::now_ns() + 10 * kS;
  svc.dynamic_classes[1]["class"] = "default";
  auto t1 = Keeper::Clock::now() + std::chrono::hours(1);
  j = k.keep(alert("1", 0, "a"), t1);
  ASSERT_EQ(svc.class_sets.size(), 2u);
  EXPECT_EQ(j["until"], "2026-12-02T12:00:00Z");
  // A list that cannot be had, or a front-end's (entries name their workers: maybe not all),
  // stands for nothing: the hosts are set.
  svc.dynamic_classes[0]["expires_ns"] = 0;
  svc.dynamic_classes[0]["workers"] = nlohmann::json::array({"http://w1"});
  svc.dynamic_classes[1] = svc.dynamic_classes[0];
  svc.dynamic_classes[1]["host"] = "10.0.0.5";
  j = k.keep(alert("1", 0, "a"), t1 + std::chrono::hours(1));
  EXPECT_EQ(svc.class_sets.size(), 4u);
  svc.list_fails = true;
  j = k.keep(alert("1", 0, "a"), t1 + std::chrono::hours(2));
  EXPECT_EQ(svc.class_sets.size(), 6u);
  EXPECT_FALSE(j.contains("error")) << j.dump();
}

TEST(Keeper, ConnectionScopeSuspendsOnlyTheConnectionAndAHostNoticeKeepsNothing) {
  FakeService svc;
  std::vector<std::string> warnings;
  Keeper k(svc, keep_opts(100 * kS, KeepOptions::Scope::kConn),
           [&](const std::string& w) { warnings.push_back(w); });
  k.start();
  auto j = k.keep(alert("1", 0, "a"));
  EXPECT_TRUE(svc.class_sets.empty());
  ASSERT_EQ(svc.controls.size(), 1u);
  EXPECT_EQ(j["scope"], "conn");
  EXPECT_EQ(j["connections_suspended"], 1u);
  Alert host;
  host.source = Alert::Source::kZeekNotice;
  host.src = v4("10.0.0.9");
  j = k.keep(host);
  EXPECT_EQ(svc.controls.size(), 1u);
  EXPECT_NE(j["error"].get<std::string>().find("names no connection"), std::string::npos);
}

TEST(Keeper, ServerErrorsAreReportedPerAlertInTheEvidenceJsonAndOnStderrNeverThrown) {
  TempDir t;
  FakeService svc;
  EvidenceOptions o;
  o.out_dir = (t.p / "out").string();
  std::vector<std::string> warnings;
  auto warn = [&](const std::string& w) { warnings.push_back(w); };
  EvidenceWriter w(svc, o, warn);
  EvidenceRun run(w, std::chrono::hours(1), warn);
  Keeper k(svc, keep_opts(3600 * kS), warn);
  k.start();
  run.add_action([&](const Alert& a) { return nlohmann::json{{"kept", k.keep(a)}}; });
  svc.rows = {row(8, 999 * kS, 1010 * kS)};
  svc.refuse = 409;  // a read-only store
  run.add(alert("60", 1000 * kS, "a"));
  svc.refuse = 0;
  run.add(alert("61", 1000 * kS, "b"));  // the same hosts: now kept
  EXPECT_EQ(run.process(EvidenceRun::Pass::kFinal), 0u);
  auto bad = read_json(t.p / "out" / "60.json")["kept"];
  ASSERT_TRUE(bad["error"].is_array()) << bad.dump();
  EXPECT_EQ(bad["error"].size(), 3u);  // two hosts, one connection
  EXPECT_NE(bad["error"][0].get<std::string>().find("refused (409)"), std::string::npos) << bad.dump();
  EXPECT_TRUE(bad["hosts"].empty());
  EXPECT_TRUE(bad["until"].is_null());
  EXPECT_EQ(std::count_if(warnings.begin(), warnings.end(),
                          [](const std::string& s) { return s.rfind("60: --keep: ", 0) == 0; }),
            3);
  auto good = read_json(t.p / "out" / "61.json")["kept"];
  EXPECT_FALSE(good.contains("error"));
  EXPECT_EQ(good["hosts"].size(), 2u);  // failed ones are asked again at the next alert
  EXPECT_EQ(good["requests"], 4u);      // (with the list of dynamic classes)
  EXPECT_EQ(good["class"], "suspect");
  EXPECT_EQ(k.stats().failed, 3u);
}

}  // namespace
}  // namespace tmach::ids
