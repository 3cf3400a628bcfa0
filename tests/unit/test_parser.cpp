// Parser of tcpdump filter syntax: every planned construct, libpcap's precedence and
// implied qualifiers, the hand-off of unplanned syntax to libpcap, errors with positions,
// canonical text round trips, and agreement with libpcap on what is valid at all.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <pcap.h>  // (sorts before pcap/namedb.h, which needs its macros)
#include <pcap/namedb.h>

#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "query/parser.h"
#include "test_addr.h"

namespace tmach::query {
namespace {

using packet::IpAddr;
using Kind = Predicate::Kind;
using RK = ParseResult::Kind;

using tmtest::A;

Expr E(std::string_view s) {
  ParseResult r = parse_expr(s);
  EXPECT_EQ(r.kind, RK::kIndexed) << "'" << s << "': " << r.error << r.unplanned;
  return r.expr;
}

// The single predicate a filter parses to.
Predicate Pred(std::string_view s) {
  Expr e = E(s);
  EXPECT_EQ(e.op, Expr::Op::kPred) << s << " -> " << e.str();
  return e.pred;
}

std::string S(std::string_view s) { return E(s).str(); }

Predicate Host(const char* a, Dir d = Dir::kAny, uint8_t family = 0) {
  Predicate p;
  p.kind = Kind::kHost;
  p.addr = A(a);
  p.dir = d;
  p.family = family;
  return p;
}

Predicate Net(const char* a, unsigned bits, Dir d = Dir::kAny, uint8_t family = 0) {
  Predicate p = Host(a, d, family);
  p.kind = Kind::kNet;
  p.prefix_bits = uint8_t(bits);
  return p;
}

Predicate Port(uint16_t lo, uint16_t hi, uint8_t l4 = 0, Dir d = Dir::kAny, bool range = false) {
  Predicate p;
  p.kind = range ? Kind::kPortRange : Kind::kPort;
  p.port_lo = lo;
  p.port_hi = hi;
  p.l4 = l4;
  p.dir = d;
  return p;
}

Predicate Proto(uint8_t n, uint8_t family) {
  Predicate p;
  p.kind = Kind::kProto;
  p.proto = n;
  p.family = family;
  return p;
}

// ---------------------------------------------------------------------------------------
// host

TEST(Parser, Empty) {
  EXPECT_EQ(E("").op, Expr::Op::kTrue);
  EXPECT_EQ(E("  \t\n").op, Expr::Op::kTrue);
}

TEST(Parser, Host) {
  EXPECT_EQ(Pred("host 10.0.0.1"), Host("10.0.0.1"));
  EXPECT_EQ(Pred("src host 10.0.0.1"), Host("10.0.0.1", Dir::kSrc));
  EXPECT_EQ(Pred("dst host 10.0.0.1"), Host("10.0.0.1", Dir::kDst));
  EXPECT_EQ(Pred("src or dst host 10.0.0.1"), Host("10.0.0.1", Dir::kAny));
  EXPECT_EQ(Pred("dst or src host 10.0.0.1"), Host("10.0.0.1", Dir::kAny));
  EXPECT_EQ(Pred("src and dst host 10.0.0.1"), Host("10.0.0.1", Dir::kSrcAndDst));
  EXPECT_EQ(Pred("dst and src host 10.0.0.1"), Host("10.0.0.1", Dir::kSrcAndDst));
  EXPECT_EQ(Pred("src 10.0.0.1"), Host("10.0.0.1", Dir::kSrc));  // dir without `host`
  EXPECT_EQ(Pred("ip host 10.0.0.1"), Host("10.0.0.1", Dir::kAny, 4));
  EXPECT_EQ(Pred("ip src host 10.0.0.1"), Host("10.0.0.1", Dir::kSrc, 4));
  EXPECT_EQ(Pred("host 2001:db8::1"), Host("2001:db8::1", Dir::kAny, 6));
  EXPECT_EQ(Pred("ip6 host 2001:db8::1"), Host("2001:db8::1", Dir::kAny, 6));
  EXPECT_EQ(Pred("ip6 dst host ::1"), Host("::1", Dir::kDst, 6));
  EXPECT_EQ(Pred("host ::1/128"), Host("::1", Dir::kAny, 6));
  // A v4-mapped IPv6 literal stays IPv6 (libpcap matches it in IPv6 headers only).
  Predicate mapped = Pred("host ::ffff:1.2.3.4");
  EXPECT_EQ(mapped.family, 6);
  EXPECT_EQ(mapped.addr, A("1.2.3.4"));
  // libpcap's number forms: one 32-bit number, and a short dotted form covering the rest.
  EXPECT_EQ(Pred("host 167772161"), Host("10.0.0.1"));
  EXPECT_EQ(Pred("host 10"), Host("0.0.0.10"));
  EXPECT_EQ(Pred("host 10.0.0"), Net("10.0.0.0", 96 + 24));
  // A bare address means host (tm's rule; libpcap needs a keyword first).
  EXPECT_EQ(Pred("10.0.0.1"), Host("10.0.0.1"));
  EXPECT_EQ(Pred("2001:db8::1"), Host("2001:db8::1", Dir::kAny, 6));
}

TEST(Parser, ArpHostIsArpAndHost) {
  EXPECT_EQ(E("arp host 10.0.0.1"), E("arp and host 10.0.0.1"));
  EXPECT_EQ(E("rarp host 10.0.0.1"), E("rarp and host 10.0.0.1"));
  EXPECT_NE(E("rarp host 10.0.0.1"), E("arp and host 10.0.0.1"));
  EXPECT_EQ(E("arp src host 10.0.0.1"), E("arp and src host 10.0.0.1"));
  EXPECT_EQ(E("arp net 10.0.0.0/8"), E("arp and net 10.0.0.0/8"));
}

// ---------------------------------------------------------------------------------------
// net

TEST(Parser, Net) {
  EXPECT_EQ(Pred("net 10.0.0.0/8"), Net("10.0.0.0", 104));
  EXPECT_EQ(Pred("net 192.168.1.0/24"), Net("192.168.1.0", 120));
  EXPECT_EQ(Pred("net 0.0.0.0/0"), Net("0.0.0.0", 96));
  EXPECT_EQ(Pred("net 10.0.0"), Net("10.0.0.0", 120));
  EXPECT_EQ(Pred("net 172.16"), Net("172.16.0.0", 112));
  EXPECT_EQ(Pred("net 10.0.0.0/8"), Pred("net 10.0/8"));
  EXPECT_EQ(Pred("net 10"), Net("10.0.0.0", 104));  // libpcap promotes a short net number
  EXPECT_EQ(Pred("net 10.0.0.1"), Net("10.0.0.1", 128));
  EXPECT_EQ(Pred("net 10.0.0.0 mask 255.0.0.0"), Net("10.0.0.0", 104));
  EXPECT_EQ(Pred("net 10.1.0.0 mask 255.255.0.0"), Net("10.1.0.0", 112));
  EXPECT_EQ(Pred("net 10.1.0.0 mask 255.255"), Net("10.1.0.0", 112));
  EXPECT_EQ(Pred("net 2001:db8::/32"), Net("2001:db8::", 32, Dir::kAny, 6));
  EXPECT_EQ(Pred("net ::/0"), Net("::", 0, Dir::kAny, 6));
  EXPECT_EQ(Pred("net 2001:db8::"), Net("2001:db8::", 128, Dir::kAny, 6));
  EXPECT_EQ(Pred("src net 10.0.0.0/8"), Net("10.0.0.0", 104, Dir::kSrc));
  EXPECT_EQ(Pred("dst net 2001:db8::/32"), Net("2001:db8::", 32, Dir::kDst, 6));
  EXPECT_EQ(Pred("src and dst net 10.0.0.0/8"), Net("10.0.0.0", 104, Dir::kSrcAndDst));
  EXPECT_EQ(Pred("ip net 10.0.0.0/8"), Net("10.0.0.0", 104, Dir::kAny, 4));
  EXPECT_EQ(Pred("ip6 net 2001:db8::/32"), Net("2001:db8::", 32, Dir::kAny, 6));
}

// ---------------------------------------------------------------------------------------
// port, portrange

TEST(Parser, Port) {
  EXPECT_EQ(Pred("port 80"), Port(80, 80));
  EXPECT_EQ(Pred("port 0x50"), Port(80, 80));
  EXPECT_EQ(Pred("port 0120"), Port(80, 80));  // octal, as in libpcap
  EXPECT_EQ(Pred("port 0"), Port(0, 0));
  EXPECT_EQ(Pred("port 65535"), Port(65535, 65535));
  EXPECT_EQ(Pred("port (80)"), Port(80, 80));
  EXPECT_EQ(Pred("src port 80"), Port(80, 80, 0, Dir::kSrc));
  EXPECT_EQ(Pred("dst port 80"), Port(80, 80, 0, Dir::kDst));
  EXPECT_EQ(Pred("src or dst port 80"), Port(80, 80, 0, Dir::kAny));
  EXPECT_EQ(Pred("src and dst port 80"), Port(80, 80, 0, Dir::kSrcAndDst));
  EXPECT_EQ(Pred("tcp port 80"), Port(80, 80, 6));
  EXPECT_EQ(Pred("udp src port 53"), Port(53, 53, 17, Dir::kSrc));
  EXPECT_EQ(Pred("tcp dst port 443"), Port(443, 443, 6, Dir::kDst));
  EXPECT_EQ(Pred("sctp port 3868"), Port(3868, 3868, 132));
}

// Every name and alias of /etc/services means what libpcap's own pcap_nametoport() says.
TEST(Parser, EveryServicesNameAsLibpcapResolvesIt) {
  std::ifstream in("/etc/services");
  ASSERT_TRUE(in) << "/etc/services (Debian's netbase) is missing";
  std::set<std::string> names;
  std::string line, w;
  while (std::getline(in, line)) {
    std::istringstream ls(line.substr(0, line.find('#')));
    for (int i = 0; ls >> w; ++i)
      if (i != 1) names.insert(w);  // (the second word is port/proto)
  }
  size_t checked = 0;
  pcap_t* dead = pcap_open_dead(DLT_EN10MB, 65535);
  for (const auto& name : names) {
    int port = -1, proto = -1;
    if (!pcap_nametoport(name.c_str(), &port, &proto)) continue;  // e.g. sctp-only
    bpf_program prog;
    std::string f = "port " + name;
    if (pcap_compile(dead, &prog, f.c_str(), 1, PCAP_NETMASK_UNKNOWN) != 0) continue;  // a keyword (ipx)
    pcap_freecode(&prog);
    auto r = parse_expr("port " + name);
    ASSERT_EQ(r.kind, RK::kIndexed) << name;
    uint8_t real = proto == IPPROTO_TCP ? 6 : proto == IPPROTO_UDP ? 17 : 0;
    EXPECT_EQ(Pred("port " + name), Port(uint32_t(port), uint32_t(port), real)) << name;
    ++checked;
  }
  pcap_close(dead);
  EXPECT_GT(checked, 100u);
}

TEST(Parser, PortNamesFollowTheServicesDatabase) {
  // Names listed for tcp only mean tcp only, as libpcap resolves them.
  EXPECT_EQ(Pred("port http"), Port(80, 80, 6));
  EXPECT_EQ(Pred("port ssh"), Port(22, 22, 6));
  EXPECT_EQ(Pred("port https"), Port(443, 443, 0));
  EXPECT_EQ(Pred("port domain"), Port(53, 53, 0));
  EXPECT_EQ(Pred("udp port domain"), Port(53, 53, 17));
  EXPECT_EQ(Pred("sctp port domain"), Port(53, 53, 132));
  EXPECT_EQ(Pred("port ntp"), Port(123, 123, 17));
  EXPECT_EQ(Pred("port bootps"), Port(67, 67, 17));
  EXPECT_EQ(Pred("port dhcp"), Port(67, 67, 17));
  EXPECT_EQ(Pred("port bootpc"), Port(68, 68, 17));
  EXPECT_EQ(Pred("port tftp"), Port(69, 69, 17));
  EXPECT_EQ(Pred("port syslog"), Port(514, 514, 0));  // udp's syslog and an alias of tcp's shell
  EXPECT_EQ(Pred("port snmp"), Port(161, 161, 0));
  EXPECT_EQ(Pred("port ldap"), Port(389, 389, 0));
  EXPECT_EQ(Pred("port ftp"), Port(21, 21, 6));
  EXPECT_EQ(Pred("port smtp"), Port(25, 25, 6));
  EXPECT_EQ(Pred("port telnet"), Port(23, 23, 6));
  EXPECT_EQ(Pred("port bgp"), Port(179, 179, 6));
  EXPECT_EQ(Pred("port imap"), Port(143, 143, 6));
  EXPECT_EQ(Pred("port finger"), Port(79, 79, 6));  // (not in the hand table of old)
  EXPECT_EQ(Pred("port pop3"), Port(110, 110, 6));
  EXPECT_EQ(Pred("tcp port \\http"), Port(80, 80, 6));
}

TEST(Parser, PortRange) {
  EXPECT_EQ(Pred("portrange 1-1024"), Port(1, 1024, 0, Dir::kAny, true));
  EXPECT_EQ(Pred("portrange 1024-1"), Port(1, 1024, 0, Dir::kAny, true));  // swapped, as libpcap
  EXPECT_EQ(Pred("portrange 80"), Port(80, 80, 0, Dir::kAny, true));
  EXPECT_EQ(Pred("tcp portrange 6000-6010"), Port(6000, 6010, 6, Dir::kAny, true));
  EXPECT_EQ(Pred("udp src portrange 1-1024"), Port(1, 1024, 17, Dir::kSrc, true));
  EXPECT_EQ(Pred("sctp dst portrange 1-2"), Port(1, 2, 132, Dir::kDst, true));
  EXPECT_EQ(Pred("portrange http-https"), Port(80, 443, 0, Dir::kAny, true));
  EXPECT_EQ(Pred("portrange ssh-http"), Port(22, 80, 6, Dir::kAny, true));  // both tcp-only
}

// ---------------------------------------------------------------------------------------
// protocols, vlan

TEST(Parser, ProtocolKeywords) {
  EXPECT_EQ(Pred("tcp"), Proto(6, 0));
  EXPECT_EQ(Pred("udp"), Proto(17, 0));
  EXPECT_EQ(Pred("sctp"), Proto(132, 0));
  EXPECT_EQ(Pred("icmp"), Proto(1, 4));
  EXPECT_EQ(Pred("icmp6"), Proto(58, 6));
  EXPECT_EQ(Pred("igmp"), Proto(2, 4));
  EXPECT_EQ(Pred("esp"), Proto(50, 0));
  EXPECT_EQ(Pred("ah"), Proto(51, 0));
  EXPECT_EQ(Pred("gre"), Proto(47, 0));
  EXPECT_EQ(Pred("ip").kind, Kind::kFamily);
  EXPECT_EQ(Pred("ip").family, 4);
  EXPECT_EQ(Pred("ip6").kind, Kind::kFamily);
  EXPECT_EQ(Pred("ip6").family, 6);
  EXPECT_EQ(Pred("arp").kind, Kind::kArp);
  EXPECT_EQ(Pred("rarp").kind, Kind::kArp);
  EXPECT_FALSE(Pred("arp").rarp);
  EXPECT_TRUE(Pred("rarp").rarp);
}

TEST(Parser, ProtoNumbersAndNames) {
  EXPECT_EQ(Pred("proto 6"), Proto(6, 0));
  EXPECT_EQ(Pred("proto (47)"), Proto(47, 0));
  EXPECT_EQ(Pred("ip proto 17"), Proto(17, 4));
  EXPECT_EQ(Pred("ip6 proto 58"), Proto(58, 6));
  EXPECT_EQ(Pred("ip proto \\tcp"), Proto(6, 4));
  EXPECT_EQ(Pred("ip6 proto \\udp"), Proto(17, 6));
  EXPECT_EQ(Pred("proto \\gre"), Proto(47, 0));
  EXPECT_EQ(Pred("proto gre"), Proto(47, 0));
  EXPECT_EQ(Pred("proto \\TCP"), Proto(6, 0));  // /etc/protocols alias
  EXPECT_EQ(Pred("ip6 proto \\ipv6-icmp"), Proto(58, 6));
  EXPECT_EQ(Pred("proto \\dccp"), Proto(33, 0));
  EXPECT_EQ(Pred("ip proto tcp"), Proto(6, 4));  // tm also takes the keyword unescaped
  EXPECT_EQ(Pred("ip6 proto icmp6"), Proto(58, 6));
}

TEST(Parser, Vlan) {
  EXPECT_EQ(Pred("vlan").kind, Kind::kVlan);
  EXPECT_EQ(Pred("vlan").vlan, -1);
  EXPECT_EQ(Pred("vlan 100").vlan, 100);
  EXPECT_EQ(Pred("vlan 0").vlan, 0);
  EXPECT_EQ(Pred("vlan 4095").vlan, 4095);
  EXPECT_EQ(Pred("vlan (100)").vlan, 100);
  EXPECT_EQ(Pred("vlan 0x10").vlan, 16);
  EXPECT_EQ(S("vlan 100 and tcp"), "(vlan 100 and tcp)");
  EXPECT_EQ(S("vlan and host 10.0.0.1"), "(vlan and host 10.0.0.1)");
}

// ---------------------------------------------------------------------------------------
// precedence: `not` binds tightest; `and` and `or` are equal and left-associative

TEST(Parser, AndOrHaveEqualPrecedenceLeftToRight) {
  Expr e = E("tcp or udp and icmp");
  ASSERT_EQ(e.op, Expr::Op::kAnd);
  ASSERT_EQ(e.kids.size(), 2u);
  EXPECT_EQ(e.kids[0], E("tcp or udp"));
  EXPECT_EQ(e.kids[1], E("icmp"));
  EXPECT_EQ(E("tcp or udp and icmp"), E("(tcp or udp) and icmp"));
  EXPECT_NE(E("tcp or udp and icmp"), E("tcp or (udp and icmp)"));
  EXPECT_EQ(E("tcp and udp or icmp"), E("(tcp and udp) or icmp"));
  EXPECT_EQ(E("host 10.0.0.1 or port 80 and tcp"), E("(host 10.0.0.1 or port 80) and tcp"));
  EXPECT_EQ(E("tcp or udp and not icmp or sctp"), E("((tcp or udp) and (not icmp)) or sctp"));
  EXPECT_EQ(E("tcp || udp && icmp"), E("(tcp or udp) and icmp"));
}

TEST(Parser, NotBindsTightest) {
  EXPECT_EQ(E("not tcp and udp"), E("(not tcp) and udp"));
  EXPECT_EQ(E("! tcp or udp"), E("(not tcp) or udp"));
  EXPECT_EQ(E("not host 10.0.0.1 and port 80"), E("(not host 10.0.0.1) and port 80"));
  EXPECT_NE(E("not (tcp or udp)"), E("not tcp or udp"));
  Expr nn = E("not not tcp");
  ASSERT_EQ(nn.op, Expr::Op::kNot);
  ASSERT_EQ(nn.kids[0].op, Expr::Op::kNot);
  EXPECT_EQ(nn.kids[0].kids[0], E("tcp"));
  EXPECT_EQ(E("!tcp"), E("not tcp"));
}

TEST(Parser, RunsOfTheSameOperatorAreFlattened) {
  Expr e = E("tcp and port 80 and host 10.0.0.1");
  ASSERT_EQ(e.op, Expr::Op::kAnd);
  EXPECT_EQ(e.kids.size(), 3u);
  EXPECT_EQ(E("tcp and (udp and icmp)"), E("tcp and udp and icmp"));
  EXPECT_EQ(S("host 10.0.0.1 and (port 80 or port 443)"), "(host 10.0.0.1 and (port 80 or port 443))");
}

// ---------------------------------------------------------------------------------------
// implied qualifiers: an id after and/or without a keyword reuses the previous ones

TEST(Parser, ImpliedQualifiers) {
  EXPECT_EQ(E("host 10.0.0.1 or 10.0.0.2"), E("host 10.0.0.1 or host 10.0.0.2"));
  EXPECT_EQ(E("host 10.0.0.1 or 10.0.0.2 or 10.0.0.3"), E("host 10.0.0.1 or host 10.0.0.2 or host 10.0.0.3"));
  EXPECT_EQ(E("port 80 or 443"), E("port 80 or port 443"));
  EXPECT_EQ(E("src host 10.0.0.1 and 10.0.0.2"), E("src host 10.0.0.1 and src host 10.0.0.2"));
  EXPECT_EQ(E("tcp port 80 or 443"), E("tcp port 80 or tcp port 443"));
  EXPECT_EQ(E("udp dst port 53 or 5353"), E("udp dst port 53 or udp dst port 5353"));
  EXPECT_EQ(E("net 10.0.0.0/8 or 192.168.0.0/16"), E("net 10.0.0.0/8 or net 192.168.0.0/16"));
  EXPECT_EQ(E("ip6 host ::1 or ::2"), E("ip6 host ::1 or ip6 host ::2"));
  EXPECT_EQ(E("ip host 10.0.0.1 or 10.0.0.2"), E("ip host 10.0.0.1 or ip host 10.0.0.2"));
  EXPECT_EQ(E("arp host 10.0.0.1 or 10.0.0.2"), E("arp host 10.0.0.1 or arp host 10.0.0.2"));
  EXPECT_EQ(E("ip proto 6 or 17"), E("ip proto 6 or ip proto 17"));
  EXPECT_EQ(E("portrange 1-5 or 10-20"), E("portrange 1-5 or portrange 10-20"));
  EXPECT_EQ(E("port 80 or http"), E("port 80 or port http"));
  // through `not` and inside parentheses
  EXPECT_EQ(E("host 10.0.0.1 and not 10.0.0.2"), E("host 10.0.0.1 and not host 10.0.0.2"));
  EXPECT_EQ(E("host 10.0.0.1 or (10.0.0.2 and 10.0.0.3)"),
            E("host 10.0.0.1 or (host 10.0.0.2 and host 10.0.0.3)"));
  EXPECT_EQ(E("host (10.0.0.1 or 10.0.0.2)"), E("host 10.0.0.1 or host 10.0.0.2"));
  EXPECT_EQ(E("port (80 or 443) and tcp"), E("(port 80 or port 443) and tcp"));
  EXPECT_EQ(E("tcp port 80 and (host 10.0.0.1 or 10.0.0.2)"),
            E("tcp port 80 and (host 10.0.0.1 or host 10.0.0.2)"));
  // the qualifiers come from the last id, across a parenthesized term (libpcap's $<blk>0)
  EXPECT_EQ(E("host 10.0.0.1 and (tcp) or 10.0.0.2"), E("(host 10.0.0.1 and tcp) or host 10.0.0.2"));
  EXPECT_EQ(E("not host 10.0.0.1 or 10.0.0.2"), E("(not host 10.0.0.1) or host 10.0.0.2"));
  // a new keyword starts afresh
  EXPECT_EQ(E("port 80 or host 10.0.0.1 or 10.0.0.2"), E("port 80 or host 10.0.0.1 or host 10.0.0.2"));
  // an address with nothing to reuse means host
  EXPECT_EQ(E("tcp or 10.0.0.1"), E("tcp or host 10.0.0.1"));
  EXPECT_EQ(E("10.0.0.1 or 10.0.0.2"), E("host 10.0.0.1 or host 10.0.0.2"));
}

// ---------------------------------------------------------------------------------------
// unplanned (but valid) tcpdump syntax is handed to libpcap

TEST(Parser, BpfOnly) {
  const std::pair<const char*, const char*> cases[] = {
      {"ether host 00:11:22:33:44:55", "ether"},
      {"ether proto 0x88cc", "ether"},
      {"ether src 00:11:22:33:44:55 and tcp", "ether"},
      {"host 10.0.0.1 and ether dst ff:ff:ff:ff:ff:ff", "ether"},
      {"greater 1000", "greater"},
      {"less 64", "less"},
      {"len > 1000", "len"},
      {"tcp[13] & 2 != 0", "tcp["},
      {"tcp[tcpflags] & tcp-syn != 0", "tcp["},
      {"icmp[icmptype] = icmp-echo", "icmp["},
      {"ip[6:2] & 0x1fff = 0", "ip["},
      {"ip multicast", "multicast"},
      {"ip broadcast", "broadcast"},
      {"broadcast", "broadcast"},
      {"gateway 10.0.0.1", "gateway"},
      {"ip6 protochain 6", "protochain"},
      {"inbound", "inbound"},
      {"mpls", "mpls"},
      {"vlan and mpls 100", "mpls"},
      {"pppoes 3", "pppoes"},
      {"link proto \\ip", "link"},
      {"stp", "stp"},
      {"port tcp-syn", "tcp-syn"},
      {"net 10.0.0.0 mask 255.0.255.0", "mask"},  // non-contiguous mask: not a prefix
  };
  for (auto [text, kw] : cases) {
    ParseResult r = parse_expr(text);
    EXPECT_EQ(r.kind, RK::kBpfOnly) << text << ": " << r.error;
    EXPECT_EQ(r.unplanned, kw) << text;
  }
}

// A filter libpcap must read is split into the terms tm plans and the rest where it is a
// top-level conjunction whose terms each mean alone what they mean in it.
TEST(Parser, BpfOnlyConjunctionsAreSplit) {
  const std::tuple<const char*, const char*, const char*> split[] = {
      {"host 10.0.0.1 and greater 100", "host 10.0.0.1", "(greater 100)"},
      {"tcp and host 10.0.0.1 and tcp[13] & 2 != 0", "(tcp and host 10.0.0.1)", "(tcp[13] & 2 != 0)"},
      {"len > 100 && not port 22", "not port 22", "(len > 100)"},
      {"(host 10.0.0.1 or host 10.0.0.2) and not greater 100 and ether broadcast",
       "(host 10.0.0.1 or host 10.0.0.2)", "(not greater 100) and (ether broadcast)"},
      {"ether src 00:11:22:33:44:55 and tcp", "tcp", "(ether src 00:11:22:33:44:55)"},
  };
  for (auto [text, planned, libpcap] : split) {
    ParseResult r = parse_expr(text);
    ASSERT_EQ(r.kind, RK::kBpfOnly) << text;
    EXPECT_TRUE(r.split()) << text;
    EXPECT_EQ(r.planned.str(), planned) << text;
    EXPECT_EQ(r.libpcap, libpcap) << text;
  }
  for (const char* whole : {
           "greater 100 or host 10.0.0.1",                // a top-level or
           "greater 1 and less 100",                      // nothing tm plans
           "port 80 and 443 and greater 1",               // 443 takes `port` from the term before it
           "host 10.0.0.1 and not 10.0.0.2 and less 9",   // (after `not` too)
           "host 10.0.0.1 and (10.0.0.2 or greater 9)",   // (and in parentheses)
           "vlan 100 and tcp[13] = 2",                    // vlan moves where libpcap reads the TCP header
           "host 10.0.0.1 and mpls and ip[8] = 1",        // (as mpls does)
           "(host 10.0.0.1 and greater 100)",             // one term at the top level
           "port 80 and tcp-syn",                         // a named constant is a number: port 2
           "host 10.0.0.1 and not icmp-echo and less 9",  // (host 0.0.0.8)
       }) {
    ParseResult r = parse_expr(whole);
    ASSERT_EQ(r.kind, RK::kBpfOnly) << whole;
    EXPECT_FALSE(r.split()) << whole;
    EXPECT_EQ(r.libpcap, whole) << whole;
  }
}

// ---------------------------------------------------------------------------------------
// errors, with the offending token's byte offset

TEST(Parser, Errors) {
  struct Case {
    const char* text;
    size_t pos;
    const char* says;  // part of the message
  };
  const Case cases[] = {
      {"(host 10.0.0.1", 0, "unbalanced '('"},
      {"host 10.0.0.1)", 13, "unbalanced ')'"},
      {"(tcp or udp", 0, "unbalanced '('"},
      {"tcp and (udp or (icmp)", 8, "unbalanced '('"},
      {"host", 4, "expected an address"},
      {"src", 3, "expected an address"},
      {"port", 4, "expected a port"},
      {"host 10.0.0.1 and", 17, "after 'and'"},
      {"tcp or", 6, "after 'or'"},
      {"not", 3, "after 'not'"},
      {"and tcp", 0, "unexpected 'and'"},
      {"tcp udp", 4, "unexpected 'udp'"},
      {"host 10.0.0.1 10.0.0.2", 14, "unexpected '10.0.0.2'"},
      {"()", 1, "empty parentheses"},
      {"port 99999", 5, "illegal port number 99999 > 65535"},
      {"portrange 1-99999", 10, "illegal port number 99999 > 65535"},
      {"net 10.0.0.1/33", 13, "mask length must be <= 32"},
      {"net 10.0.0.1/8", 4, "non-network bits set"},
      {"net 2001:db8::1/32", 4, "non-network bits set"},
      {"net 2001:db8::/129", 15, "mask length must be <= 128"},
      {"net 10.0.0.1 mask 255.0.0.0", 4, "non-network bits set"},
      {"host 10.0.0.0/8", 5, "networks only"},
      {"host 10.0.0.256", 5, "invalid IPv4 address"},
      {"host foo", 5, "not host names"},
      {"host 10.0.0.1 or foo.example.com", 17, "not host names"},
      {"port foo", 5, "unknown port 'foo'"},
      {"udp port http", 9, "port 'http' is tcp"},
      {"tcp port ntp", 9, "port 'ntp' is udp"},
      {"portrange 80", 10, nullptr},  // valid: checked below instead
      {"portrange foo-bar", 10, "unknown port in range"},
      {"ip proto \\nosuch", 9, "unknown ip proto 'nosuch'"},
      {"proto 300", 6, "> 255"},
      {"vlan 4096", 5, "greater than maximum 4095"},
      {"vlan 100 or 200", 12, "a number needs a keyword"},
      {"tcp or 80", 7, "a number needs a keyword"},
      {"port 80 or 10.0.0.1", 11, "'port' modifier applied to IP address"},
      {"ip6 host 10.0.0.1", 9, "'ip6' modifier applied to an IPv4 address"},
      {"ip host ::1", 8, "'ip' modifier applied to an IPv6 address"},
      {"arp host ::1", 9, "'arp' modifier applied to an IPv6 address"},
      {"tcp host 10.0.0.1", 0, "'tcp' modifier applied to host"},
      {"icmp net 10.0.0.0/8", 0, "'icmp' modifier applied to net"},
      {"ip port 80", 0, "illegal qualifier of 'port'"},
      {"icmp proto 1", 0, "'icmp proto' is bogus"},
      {"arp proto 1", 0, "arp does not encapsulate another protocol"},
      {"src proto 6", 4, "'proto' cannot take"},
      {"src or port 80", 7, "expected 'dst'"},
      {"port 080", 5, "non-octal digit"},
      {"port 4294967296", 5, "overflows 32 bits"},
      {"host 10.0.0.1 $", 14, "illegal character '$'"},
      {"host 10.0.0.1 # x", 14, "illegal character '#'"},
      {"host 00:11:22:33:44:55", 5, "Ethernet address"},
      {"host 1::2::3", 9, "unexpected"},
      {"net 10/8", 6, "unexpected '/'"},
      {"host 10.0.0.1 mask", 18, "expected a netmask"},
      {"tcp mask 255.0.0.0", 4, "unexpected 'mask'"},
      {"tcp and \\", 8, "stray"},
  };
  int checked = 0;
  for (const Case& c : cases) {
    ParseResult r = parse_expr(c.text);
    if (!c.says) continue;
    ++checked;
    EXPECT_EQ(r.kind, RK::kError) << c.text;
    EXPECT_EQ(r.error_pos, c.pos) << c.text << ": " << r.error;
    EXPECT_NE(r.error.find(c.says), std::string::npos) << c.text << ": '" << r.error << "'";
  }
  EXPECT_GE(checked, 15);
  EXPECT_EQ(parse_expr("portrange 80").kind, RK::kIndexed);
}

TEST(Parser, DeepNestingIsAnErrorNotACrash) {
  std::string deep(5000, '(');
  deep += "tcp";
  deep += std::string(5000, ')');
  ParseResult r = parse_expr(deep);
  EXPECT_EQ(r.kind, RK::kError);
  std::string nots;
  for (int i = 0; i < 5000; ++i) nots += "not ";
  EXPECT_EQ(parse_expr(nots + "tcp").kind, RK::kError);
  EXPECT_EQ(parse_expr("((((tcp))))").kind, RK::kIndexed);
}

TEST(Parser, FormatError) {
  const char* text = "host 1.2.3.4 foo";
  ParseResult r = parse_expr(text);
  ASSERT_EQ(r.kind, RK::kError);
  EXPECT_EQ(r.error_pos, 13u);
  EXPECT_EQ(format_error(text, r),
            "filter: unexpected 'foo' at 13\n"
            "  host 1.2.3.4 foo\n"
            "               ^");
  // At the end of the input the caret sits after the last character; tabs become spaces.
  const char* dangling = "tcp\tand";
  r = parse_expr(dangling);
  ASSERT_EQ(r.kind, RK::kError);
  EXPECT_EQ(format_error(dangling, r),
            "filter: expected an expression after 'and' at 7\n"
            "  tcp and\n"
            "         ^");
  EXPECT_EQ(format_error("tcp", parse_expr("tcp")), "");
}

// ---------------------------------------------------------------------------------------
// canonical text

TEST(Parser, CanonicalText) {
  EXPECT_EQ(S("host 10.0.0.1 and (port 80 or port 443)"), "(host 10.0.0.1 and (port 80 or port 443))");
  EXPECT_EQ(S("src or dst host 10.0.0.1"), "host 10.0.0.1");
  EXPECT_EQ(S("dst and src port 53"), "src and dst port 53");
  EXPECT_EQ(S("net 10.0.0"), "net 10.0.0.0/24");
  EXPECT_EQ(S("net 10.0.0.0 mask 255.255.0.0"), "net 10.0.0.0/16");
  EXPECT_EQ(S("tcp port 80 or 443"), "(tcp port 80 or tcp port 443)");
  EXPECT_EQ(S("ip proto \\tcp"), "ip proto 6");
  EXPECT_EQ(S("proto 6"), "tcp");
  EXPECT_EQ(S("ip6 proto 58"), "icmp6");
  EXPECT_EQ(S("proto 1"), "proto 1");
  EXPECT_EQ(S("gre"), "proto 47");
  EXPECT_EQ(S("ip host 10.0.0.1"), "ip host 10.0.0.1");
  EXPECT_EQ(S("ip6 host 2001:DB8::1"), "host 2001:db8::1");
  EXPECT_EQ(S("host ::ffff:10.0.0.1"), "host ::ffff:10.0.0.1");
  EXPECT_EQ(S("arp host 10.0.0.1"), "(arp and host 10.0.0.1)");
  EXPECT_EQ(S("not (tcp or udp)"), "not (tcp or udp)");
  EXPECT_EQ(S("portrange http-https"), "portrange 80-443");
  EXPECT_EQ(S("vlan"), "vlan");
  EXPECT_EQ(S(""), "");
}

const char* const kRoundTrip[] = {
    "host 10.0.0.1",
    "src host 10.0.0.1 and 10.0.0.2",
    "src and dst host 2001:db8::1",
    "ip host 10.0.0.1 or ip6 host ::1",
    "arp host 10.0.0.1 or 10.0.0.2",
    "host ::ffff:1.2.3.4",
    "host 10.0.0",
    "net 10.0.0.0/8 or 2001:db8::/32",
    "dst net 10 and not src net 172.16",
    "ip net 0.0.0.0/0",
    "net ::/0",
    "port 80 or 443 and tcp",
    "tcp dst port 80 or udp src portrange 1-1024",
    "sctp port domain",
    "port http",
    "src and dst port 80",
    "tcp or udp or icmp or icmp6 or sctp or igmp or esp or ah or gre",
    "ip or ip6 or arp or rarp",
    "proto 47 or ip proto 4 or ip6 proto 0",
    "vlan or vlan 100",
    "not not (tcp and not udp)",
    "tcp or udp and not icmp or sctp",
    "(host 10.0.0.1 or 10.0.0.2) and (port 53 or 5353) and not vlan",
    "host 10.0.0.1 and (tcp) or 10.0.0.2",
};

TEST(Parser, RoundTrip) {
  for (const char* text : kRoundTrip) {
    Expr e = E(text);
    std::string s = e.str();
    ParseResult again = parse_expr(s);
    ASSERT_EQ(again.kind, RK::kIndexed) << text << " -> " << s << ": " << again.error;
    EXPECT_EQ(again.expr, e) << text << " -> " << s << " -> " << again.expr.str();
    EXPECT_EQ(again.expr.str(), s);
  }
}

// ---------------------------------------------------------------------------------------
// libpcap agrees on what is a filter: what tm plans or hands over compiles, what tm
// rejects does not (except the documented extensions and differences).

bool pcap_compiles(const std::string& text) {
  pcap_t* p = pcap_open_dead(DLT_EN10MB, 65535);
  bpf_program prog;
  // Unoptimized: the optimizer rejects filters that can never match ("tcp and udp").
  bool ok = pcap_compile(p, &prog, text.c_str(), 0, PCAP_NETMASK_UNKNOWN) == 0;
  if (ok) pcap_freecode(&prog);
  pcap_close(p);
  return ok;
}

TEST(Parser, LibpcapAgreesOnValidity) {
  // tm extensions libpcap rejects
  const std::vector<std::string> extensions = {
      "10.0.0.1",        "2001:db8::1",          "gre",
      "port dhcp",       "ip proto tcp",         "ip6 proto icmp6",
      "tcp or 10.0.0.1", "10.0.0.1 or 10.0.0.2", "host ((10.0.0.1 or 10.0.0.2) and 10.0.0.3)",
  };
  for (const auto& text : extensions) {
    EXPECT_EQ(parse_expr(text).kind, RK::kIndexed) << text;
    EXPECT_FALSE(pcap_compiles(text)) << text;
  }
  const std::vector<std::string> indexed = {
      "host 10.0.0.1",
      "src or dst host 10.0.0.1",
      "src and dst host 10.0.0.1",
      "ip host 10.0.0.1",
      "ip6 host ::1",
      "arp host 10.0.0.1",
      "rarp host 10.0.0.1",
      "net 10.0.0.0/8",
      "net 10.0.0",
      "net 10.0.0.0 mask 255.0.0.0",
      "net 2001:db8::/32",
      "port 80",
      "tcp port 80 or 443",
      "udp src port domain",
      "sctp port 9",
      "portrange 1-1024",
      "tcp portrange http-https",
      "proto \\gre",
      "ip proto \\tcp",
      "ip6 proto 58",
      "vlan",
      "vlan 100",
      "vlan (100)",
      "not not tcp",
      "host 10.0.0.1 and (tcp) or 10.0.0.2",
      "host (10.0.0.1 or 10.0.0.2)",
      "port (80 or 443)",
      "host 10",
      "net 10",
      "port 0x50",
      "esp or ah or igmp or icmp or icmp6",
      "ip or ip6 or arp",
      "proto gre",
  };
  for (const auto& text : indexed) {
    EXPECT_EQ(parse_expr(text).kind, RK::kIndexed) << text;
    EXPECT_TRUE(pcap_compiles(text)) << text;
  }
  for (const char* text : kRoundTrip) {
    std::string canon = E(text).str();
    EXPECT_TRUE(pcap_compiles(canon)) << canon;
  }
  const std::vector<std::string> bpf_only = {
      "ether host 00:11:22:33:44:55",
      "tcp[13] & 2 != 0",
      "greater 100",
      "ip multicast",
      "ip6 protochain 6",
      "inbound",
      "mpls",
      "net 10.0.0.0 mask 255.0.255.0",
      "len > 100",
  };
  for (const auto& text : bpf_only) {
    EXPECT_EQ(parse_expr(text).kind, RK::kBpfOnly) << text;
    EXPECT_TRUE(pcap_compiles(text)) << text;
  }
  const std::vector<std::string> errors = {
      "(host 10.0.0.1",    "host 10.0.0.1)",    "host",
      "tcp and",           "port 99999",        "net 10.0.0.1/33",
      "net 10.0.0.1/8",    "udp port http",     "port foo",
      "vlan 4096",         "vlan 100 or 200",   "tcp or 80",
      "ip6 host 10.0.0.1", "tcp host 10.0.0.1", "ip port 80",
      "arp proto 1",       "port 080",          "net 10/8",
      "host 10.0.0.0/8",   "portrange 1-99999", "()",
      "src or port 80",    "src proto 6",       "host 00:11:22:33:44:55",
  };
  for (const auto& text : errors) {
    EXPECT_EQ(parse_expr(text).kind, RK::kError) << text;
    EXPECT_FALSE(pcap_compiles(text)) << text;
  }
}

}  // namespace
TEST(Parser, LayersTunnelsAndSpi) {
  using Layer = Predicate::Layer;
  Predicate p = Pred("inner host 10.0.0.1");
  EXPECT_EQ(p.kind, Kind::kHost);
  EXPECT_EQ(p.layer, Layer::kInner);
  EXPECT_EQ(Pred("outer tcp port 80").layer, Layer::kOuter);
  EXPECT_EQ(Pred("outer ip").layer, Layer::kOuter);
  // The layer is reused with the other qualifiers: "inner host A or B".
  EXPECT_EQ(S("inner host 10.0.0.1 or 10.0.0.2"), "(inner host 10.0.0.1 or inner host 10.0.0.2)");
  EXPECT_EQ(S("inner (host 10.0.0.1 or port 53)"), "(inner host 10.0.0.1 or inner port 53)");
  EXPECT_EQ(S("tunnel"), "tunnel");
  EXPECT_EQ(S("vxlan"), "tunnel vxlan");
  EXPECT_EQ(S("vxlan 123"), "tunnel vxlan 123");
  EXPECT_EQ(S("tunnel geneve 7"), "tunnel geneve 7");
  EXPECT_EQ(S("gtp and teredo or ipip"), "((tunnel gtp and tunnel teredo) or tunnel ipip)");
  EXPECT_EQ(S("gre"), "proto 47");
  EXPECT_EQ(S("tunnel gre"), "tunnel gre");
  EXPECT_EQ(S("spi 0x1234"), "spi 4660");
  EXPECT_EQ(S("esp and spi 5"), "(esp and spi 5)");
  for (const char* t : {"inner host 10.0.0.1 and outer net 192.168.0.0/16", "tunnel vxlan 5 or spi 9",
                        "not inner ip6", "outer udp port 4789"}) {
    EXPECT_EQ(E(E(t).str()), E(t)) << t;
  }
  EXPECT_EQ(parse_expr("spi").kind, RK::kError);
  EXPECT_EQ(parse_expr("inner").kind, RK::kError);
  // An identifier no packet can carry is an error, not a filter that never matches.
  EXPECT_EQ(S("vxlan 16777215"), "tunnel vxlan 16777215");
  EXPECT_EQ(S("gtp 4294967295"), "tunnel gtp 4294967295");
  for (const char* t : {"vxlan 16777216", "geneve 0x1000000", "tunnel vxlan 99999999"}) {
    auto r = parse_expr(t);
    EXPECT_EQ(r.kind, RK::kError) << t;
    EXPECT_NE(r.error.find("greater than maximum 16777215"), std::string::npos) << t << ": " << r.error;
  }
  for (const char* t : {"teredo 5", "ipip 1", "tunnel ayiya 2"}) {
    auto r = parse_expr(t);
    EXPECT_EQ(r.kind, RK::kError) << t;
    EXPECT_NE(r.error.find("takes no identifier"), std::string::npos) << t << ": " << r.error;
  }
}

}  // namespace tmach::query
