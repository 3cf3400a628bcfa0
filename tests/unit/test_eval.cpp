// Exact evaluation: hand-built PacketInfo values against many filters. The libpcap oracle:
// test_eval_oracle.cpp.

#include "eval_frames.h"
#include "packet/decoder.h"
#include "query/packet_filter.h"
#include "store/index_keys.h"

namespace tmach::query {
namespace {

using namespace eval_frames;

// ---------------------------------------------------------------------------------------
// hand-built packets

TEST(Eval, TcpIpv4) {
  const PacketInfo p = v4("tcp4", "10.0.0.1", "192.168.1.2", tcp(12345, 80)).info;
  EXPECT_TRUE(M("", p));
  EXPECT_TRUE(M("host 10.0.0.1", p));
  EXPECT_TRUE(M("src host 10.0.0.1", p));
  EXPECT_FALSE(M("dst host 10.0.0.1", p));
  EXPECT_FALSE(M("src and dst host 10.0.0.1", p));
  EXPECT_TRUE(M("ip host 192.168.1.2", p));
  EXPECT_FALSE(M("arp host 10.0.0.1", p));
  EXPECT_FALSE(M("host 10.0.0.2", p));
  EXPECT_TRUE(M("net 10.0.0.0/8", p));
  EXPECT_TRUE(M("dst net 192.168", p));
  EXPECT_FALSE(M("src net 192.168.0.0/16", p));
  EXPECT_TRUE(M("net 0.0.0.0/0", p));
  EXPECT_FALSE(M("net ::/0", p));
  EXPECT_TRUE(M("port 80", p));
  EXPECT_TRUE(M("tcp port 80", p));
  EXPECT_FALSE(M("udp port 80", p));
  EXPECT_TRUE(M("dst port 80", p));
  EXPECT_FALSE(M("src port 80", p));
  EXPECT_TRUE(M("src port 12345", p));
  EXPECT_FALSE(M("src and dst port 80", p));
  EXPECT_TRUE(M("portrange 70-90", p));
  EXPECT_TRUE(M("tcp src portrange 10000-20000", p));
  EXPECT_FALSE(M("portrange 81-12344", p));
  EXPECT_TRUE(M("port http", p));
  EXPECT_TRUE(M("tcp", p));
  EXPECT_TRUE(M("ip proto 6", p));
  EXPECT_FALSE(M("ip6 proto 6", p));
  EXPECT_FALSE(M("udp or icmp", p));
  EXPECT_TRUE(M("ip", p));
  EXPECT_FALSE(M("ip6", p));
  EXPECT_FALSE(M("arp", p));
  EXPECT_FALSE(M("vlan", p));
  EXPECT_TRUE(M("not vlan 100", p));
  EXPECT_TRUE(M("host 10.0.0.1 and port 80", p));
  EXPECT_TRUE(M("host 10.0.0.9 or port 80 and tcp", p));
  EXPECT_FALSE(M("host 10.0.0.9 or port 80 and udp", p));
  EXPECT_TRUE(M("host 10.0.0.9 or (port 80 and tcp)", p));
  EXPECT_FALSE(M("not tcp", p));
  EXPECT_TRUE(M("not not tcp", p));
  EXPECT_TRUE(M("host 10.0.0.9 or 10.0.0.1", p));
  EXPECT_FALSE(M("host 10.0.0.1 and not 192.168.1.2", p));
  EXPECT_TRUE(M("tcp port 443 or 80", p));
}

TEST(Eval, UdpIpv6) {
  const PacketInfo p = v6("udp6", "2001:db8::1", "2001:db8:1::53", udp(40000, 53)).info;
  EXPECT_TRUE(M("host 2001:db8::1", p));
  EXPECT_TRUE(M("ip6 src host 2001:db8::1", p));
  EXPECT_FALSE(M("dst host 2001:db8::1", p));
  EXPECT_TRUE(M("net 2001:db8::/32", p));
  EXPECT_TRUE(M("dst net 2001:db8:1::/48", p));
  EXPECT_FALSE(M("src net 2001:db8:1::/48", p));
  EXPECT_TRUE(M("net ::/0", p));
  EXPECT_FALSE(M("net 0.0.0.0/0", p));
  EXPECT_TRUE(M("udp port 53", p));
  EXPECT_TRUE(M("port domain", p));
  EXPECT_FALSE(M("tcp port 53", p));
  EXPECT_TRUE(M("udp", p));
  EXPECT_TRUE(M("ip6 proto 17", p));
  EXPECT_FALSE(M("ip proto 17", p));
  EXPECT_TRUE(M("ip6 and udp", p));
  EXPECT_FALSE(M("ip", p));
  EXPECT_FALSE(M("host ::ffff:10.0.0.1", p));
}

TEST(Eval, Ipv4MappedLiteralMatchesOnlyIpv6Headers) {
  const PacketInfo p4 = v4("tcp4", "10.0.0.1", "10.0.0.2", tcp(1, 2)).info;
  const PacketInfo p6 = v6("tcp6", "::ffff:10.0.0.1", "::1", tcp(1, 2)).info;
  EXPECT_TRUE(M("host 10.0.0.1", p4));
  EXPECT_FALSE(M("host ::ffff:10.0.0.1", p4));
  EXPECT_FALSE(M("host 10.0.0.1", p6));
  EXPECT_TRUE(M("host ::ffff:10.0.0.1", p6));
  EXPECT_TRUE(M("net ::ffff:0:0/96", p6));
  EXPECT_FALSE(M("net ::ffff:0:0/96", p4));
}

TEST(Eval, Arp) {
  const PacketInfo p = arp("arp", 1, "10.0.0.1", "10.0.0.254").info;
  EXPECT_TRUE(M("arp", p));
  EXPECT_FALSE(M("rarp", p));  // (an ARP frame; `rarp` is RARP frames only, as libpcap's)
  EXPECT_TRUE(M("host 10.0.0.1", p));
  EXPECT_TRUE(M("src host 10.0.0.1", p));  // sender protocol address
  EXPECT_FALSE(M("dst host 10.0.0.1", p));
  EXPECT_TRUE(M("dst host 10.0.0.254", p));  // target protocol address
  EXPECT_TRUE(M("arp host 10.0.0.254", p));
  EXPECT_FALSE(M("ip host 10.0.0.1", p));  // `ip host` excludes ARP
  EXPECT_TRUE(M("net 10.0.0.0/24", p));
  EXPECT_FALSE(M("ip net 10.0.0.0/24", p));
  EXPECT_TRUE(M("src and dst net 10.0.0.0/24", p));
  EXPECT_FALSE(M("ip or ip6", p));
  EXPECT_FALSE(M("port 80 or tcp or udp or icmp", p));
  EXPECT_TRUE(M("not ip", p));
}

TEST(Eval, Ipv4NonFirstFragmentHasNoPorts) {
  V4Opts o;
  o.frag_offset = 185;
  // The payload's first bytes look like ports 53/53: they must not be taken for ports.
  const PacketInfo p = v4("frag", "10.0.0.7", "10.0.0.8", opaque(17, {0, 53, 0, 53, 0, 0, 0, 0}), o).info;
  EXPECT_FALSE(M("port 53", p));
  EXPECT_FALSE(M("udp port 53", p));
  EXPECT_FALSE(M("portrange 1-65535", p));
  EXPECT_TRUE(M("udp", p));  // ip proto matches fragments
  EXPECT_TRUE(M("ip proto 17", p));
  EXPECT_TRUE(M("host 10.0.0.7 and dst host 10.0.0.8", p));
  // Ports filled in for a later fragment (inherited from its first fragment by
  // FragmentLayers, as the query re-check does) are used: it is its datagram's packet.
  PacketInfo inherited = p;
  inherited.ip[0].has_ports = true;
  inherited.ip[0].sport = inherited.ip[0].dport = 53;
  EXPECT_TRUE(M("port 53", inherited));
  V4Opts first;
  first.more_fragments = true;
  const PacketInfo f = v4("first", "10.0.0.7", "10.0.0.8", udp(4000, 53), first).info;
  EXPECT_TRUE(M("udp port 53", f));
  EXPECT_TRUE(M("src port 4000", f));
}

TEST(Eval, DccpPortsNeverMatchPort) {
  const PacketInfo p = v4("dccp", "10.0.0.1", "10.0.0.2", dccp(80, 80)).info;
  ASSERT_TRUE(p.ip[0].has_ports);
  EXPECT_FALSE(M("port 80", p));
  EXPECT_FALSE(M("portrange 1-1000", p));
  EXPECT_TRUE(M("proto 33", p));
}

TEST(Eval, Vlan) {
  const PacketInfo p = v4("vlan", "10.0.0.1", "10.0.0.2", tcp(1234, 80), {{100}}).info;
  EXPECT_TRUE(M("vlan", p));
  EXPECT_TRUE(M("vlan 100", p));
  EXPECT_FALSE(M("vlan 200", p));
  EXPECT_TRUE(M("vlan 100 and tcp port 80", p));
  EXPECT_TRUE(M("tcp and host 10.0.0.1", p));  // tm decodes through the tag
  PacketInfo qinq = v6("qinq", "::1", "::2", udp(1, 2), {100, 200}).info;
  EXPECT_TRUE(M("vlan 100", qinq));
  EXPECT_TRUE(M("vlan 200", qinq));  // any tag, not only the outer one
  EXPECT_FALSE(M("vlan 300", qinq));
  // More tags than kept: only the kept ones are compared.
  qinq.vlan_count = 6;
  qinq.vlans[2] = 300;
  qinq.vlans[3] = 400;
  EXPECT_TRUE(M("vlan", qinq));
  EXPECT_TRUE(M("vlan 400", qinq));
  EXPECT_FALSE(M("vlan 500", qinq));
}

TEST(Eval, AnyIpLayerMatches) {
  // IPv4 GRE tunnel carrying IPv6 TCP: predicates hold on either layer.
  PacketInfo p;
  p.ip_count = 2;
  IpLayer& outer = p.ip[0];
  outer.version = 4;
  outer.src = A("198.51.100.1");
  outer.dst = A("198.51.100.2");
  outer.header_proto = outer.proto = packet::kProtoGre;
  IpLayer& inner = p.ip[1];
  inner.version = 6;
  inner.src = A("2001:db8::1");
  inner.dst = A("2001:db8::2");
  inner.header_proto = inner.proto = packet::kProtoTcp;
  inner.has_l4 = inner.has_ports = true;
  inner.sport = 443;
  inner.dport = 50000;
  EXPECT_TRUE(M("host 198.51.100.1", p));
  EXPECT_TRUE(M("host 2001:db8::2", p));
  EXPECT_TRUE(M("gre", p));
  EXPECT_TRUE(M("tcp port 443", p));
  EXPECT_TRUE(M("ip and ip6", p));
  EXPECT_TRUE(M("src net 198.51.100.0/24 and src port 443", p));
  EXPECT_FALSE(M("udp", p));
  // Layers past ip_count or kMaxIpLayers are not looked at.
  p.ip_count = 1;
  EXPECT_FALSE(M("host 2001:db8::2", p));
  p.ip[3] = inner;
  p.ip_count = 200;
  EXPECT_TRUE(M("host 2001:db8::2", p));
}

TEST(Eval, Ipv6ExtensionHeadersAreFollowed) {
  // Documented difference: TCP behind a hop-by-hop header is `tcp` to tm.
  PacketInfo p = v6("hbh", "2001:db8::1", "2001:db8::2", tcp(1, 80)).info;
  p.ip[0].header_proto = 0;
  EXPECT_TRUE(M("tcp", p));
  EXPECT_TRUE(M("ip6 proto 6", p));
  EXPECT_TRUE(M("tcp port 80", p));
  // And, as libpcap's, `ip6 proto 0`: the fixed header's next header is the hop-by-hop header.
  EXPECT_TRUE(M("ip6 proto 0", p));
  EXPECT_FALSE(M("ip6 proto 43", p));
}

TEST(Eval, EmptyOperands) {
  PacketInfo p;
  Expr e;
  e.op = Expr::Op::kAnd;
  EXPECT_TRUE(matches(e, p));
  e.op = Expr::Op::kOr;
  EXPECT_FALSE(matches(e, p));
  EXPECT_TRUE(matches(Expr::truth(), p));
}

}  // namespace
}  // namespace tmach::query

// A BPF filter libpcap cannot compile for a link type (NFLOG: libpcap filters nothing there,
// tcpdump refuses the file) matches none of its frames, and says so: a query answering 0 for
// them would be silently wrong.
TEST(PacketFilter, ALinkTypeLibpcapCannotFilterIsReported) {
  const char* text = "tcp[13] & 2 != 0";
  tmach::query::ParseResult parsed = tmach::query::parse_expr(text);
  ASSERT_EQ(parsed.kind, tmach::query::ParseResult::Kind::kBpfOnly);
  tmach::query::PacketFilter f(text, parsed);
  const std::vector<uint8_t> frame(64, 0);
  EXPECT_FALSE(f.matches(1, frame.data(), 64, 64));  // Ethernet: compiled, evaluated
  EXPECT_TRUE(f.problems().empty());
  EXPECT_FALSE(f.matches(239, frame.data(), 64, 64));  // NFLOG
  EXPECT_FALSE(f.matches(239, frame.data(), 64, 64));
  ASSERT_EQ(f.problems().size(), 1u);
  EXPECT_NE(f.problems()[0].find("link type 239 (libpcap: "), std::string::npos) << f.problems()[0];
  EXPECT_NE(f.problems()[0].find("NFLOG"), std::string::npos) << f.problems()[0];
}

// libpcap's compile time grows faster than a filter's length (a 600-term `or`: 10 s): a filter
// it would compile whole is refused beyond kLibpcapMaxFilter bytes, naming the limit, before
// libpcap sees it; up to it, compiled as before.
TEST(PacketFilter, AFilterTooLongForLibpcapIsRefusedBeforeItCompiles) {
  using tmach::query::kLibpcapMaxFilter;
  using tmach::query::libpcap_filter_error;
  std::string terms = "tcp[13] & 2 != 0 and (host 10.0.0.1";
  for (int i = 2; terms.size() < kLibpcapMaxFilter - 40; ++i)
    terms += " or host 10.0." + std::to_string(i / 250) + "." + std::to_string(i % 250 + 1);
  const std::string fits = terms + ")";
  ASSERT_LE(fits.size(), kLibpcapMaxFilter);
  EXPECT_EQ(libpcap_filter_error(fits), "");
  std::string longer = terms;
  while (longer.size() <= kLibpcapMaxFilter) longer += " or host 10.9.9.9";
  longer += ")";
  std::string err = libpcap_filter_error(longer);
  EXPECT_EQ(err.rfind("filter: " + std::to_string(longer.size()) + " bytes, and a part tm does not index", 0),
            0u)
      << err;
  EXPECT_NE(err.find("libpcap is given at most 4096"), std::string::npos) << err;
  EXPECT_EQ(libpcap_filter_error(longer, {1, 127}), err);  // (whatever the link types)
}

// A frame cut short inside its headers (a snaplen) is judged as libpcap judges it where tm and
// libpcap read it alike: `not port 80` of a TCP frame cut before its ports is false (libpcap
// rejects a frame whose filter reads past its bytes), `ip` of one cut inside its IP header is
// true. Behind a VLAN tag (which tm reads through and libpcap does not), or with a filter of tm's
// own (`vlan`), tm's reading stands: no ports, no IP layer. tests/e2e/test_snaplen.py holds the
// same against tcpdump on corpus captures.
TEST(PacketFilter, AFrameCutInItsHeadersIsJudgedAsLibpcapJudgesIt) {
  using namespace tmach::query;
  using eval_frames::tcp;
  using eval_frames::v4;
  using eval_frames::V4Opts;
  auto verdict = [](const char* text, const std::vector<uint8_t>& bytes, uint32_t caplen) {
    ParseResult parsed = parse_expr(text);
    EXPECT_EQ(parsed.kind, ParseResult::Kind::kIndexed) << text;
    PacketFilter f(text, parsed);
    return f.matches(1, bytes.data(), caplen, static_cast<uint32_t>(bytes.size()));
  };
  const auto plain = v4("plain", "10.0.0.1", "10.0.0.2", tcp(1234, 80)).bytes;
  const auto tagged = v4("tagged", "10.0.0.1", "10.0.0.2", tcp(1234, 80), V4Opts{.vlans = {7}}).bytes;
  // Whole: the same answer either way.
  EXPECT_FALSE(verdict("not port 80", plain, static_cast<uint32_t>(plain.size())));
  EXPECT_TRUE(verdict("port 80", plain, static_cast<uint32_t>(plain.size())));
  // Cut after the IP header (34 bytes): no ports to read.
  EXPECT_FALSE(verdict("not port 80", plain, 34));
  EXPECT_FALSE(verdict("port 80", plain, 34));
  EXPECT_TRUE(verdict("host 10.0.0.1 and tcp", plain, 34));
  // Cut after the source port (36 bytes): libpcap reads it.
  EXPECT_TRUE(verdict("src port 1234", plain, 36));
  // Cut inside the IP header (30 bytes: the source address, not the destination): `ip` and
  // the source are read.
  EXPECT_TRUE(verdict("ip", plain, 30));
  EXPECT_TRUE(verdict("src host 10.0.0.1", plain, 30));
  EXPECT_FALSE(verdict("dst host 10.0.0.2", plain, 30));
  EXPECT_FALSE(verdict("not dst host 10.0.0.9", plain, 30));
  // Behind a VLAN tag: tm's reading of what was captured (no ports: `not port 80` holds).
  EXPECT_TRUE(verdict("not port 80", tagged, 38));
  EXPECT_TRUE(verdict("host 10.0.0.1", tagged, 38));
  // A filter of tm's own: tm's reading.
  EXPECT_TRUE(verdict("not port 80 and not vlan 5", plain, 34));
  // Only a frame cut before its keys is set apart (indexed under kNetCut, judged by libpcap): one
  // cut after its ports, inside the rest of its TCP header, is read as a whole one.
  auto cut = [&](const std::vector<uint8_t>& bytes, uint32_t caplen) {
    tmach::packet::PacketInfo p;
    tmach::packet::decode(1, bytes.data(), caplen, p);
    return tmach::store::cut_before_its_keys(p);
  };
  EXPECT_FALSE(cut(plain, static_cast<uint32_t>(plain.size())));
  EXPECT_FALSE(cut(plain, 50));
  EXPECT_TRUE(cut(plain, 36));
  EXPECT_TRUE(cut(plain, 34));
  EXPECT_TRUE(cut(plain, 26));
  EXPECT_TRUE(cut(plain, 10));
  // IPv6 cut inside its first extension header (a fragment header at 54): libpcap's `tcp`
  // reads that header's next header (byte 40 of IPv6), rejecting the frame when it is not there.
  const auto frag6 = eval_frames::v6("frag6", "2001:db8::1", "2001:db8::2", tcp(1234, 80), {}, true).bytes;
  EXPECT_TRUE(cut(frag6, 54));
  EXPECT_TRUE(cut(frag6, 58));
  EXPECT_FALSE(verdict("tcp", frag6, 54));
  EXPECT_FALSE(verdict("not tcp", frag6, 54));
  EXPECT_TRUE(verdict("tcp", frag6, 58));
  EXPECT_FALSE(verdict("udp", frag6, 58));
  EXPECT_FALSE(libpcap_alike(parse_expr("host 10.0.0.1 and vlan 5").expr));
  EXPECT_TRUE(libpcap_alike(parse_expr("host 10.0.0.1 and not (port 80 or arp or ip6)").expr));
}

// 802.11 frames cut inside their IP headers are judged by libpcap where both read the header
// alike (three addresses: `ip` is read from the SNAP type, as tcpdump reads it), and by tm's
// reading where libpcap does not read the header as tm does (four addresses: libpcap reads 24
// bytes of header, tm 30): no IP layer, as tm reads such a frame cut there.
TEST(PacketFilter, A80211FrameCutShortIsJudgedByLibpcapOnlyWhereItReadsTheHeaderAsTmDoes) {
  using namespace tmach::query;
  const auto plain = eval_frames::v4("plain", "10.0.0.1", "10.0.0.2", eval_frames::tcp(1234, 80)).bytes;
  const std::vector<uint8_t> ip(plain.begin() + 14, plain.end());
  const std::vector<uint8_t> snap = {0xaa, 0xaa, 0x03, 0x00, 0x00, 0x00, 0x08, 0x00};
  auto frame = [&](uint8_t fc1, size_t header) {
    std::vector<uint8_t> f(header, 0);  // (built so, GCC 12 saw a memcpy past a 2-byte start: -Warray-bounds)
    f[0] = 0x08;
    f[1] = fc1;
    f.insert(f.end(), snap.begin(), snap.end());
    f.insert(f.end(), ip.begin(), ip.end());
    return f;
  };
  auto verdict = [](const char* text, const std::vector<uint8_t>& f, uint32_t caplen) {
    ParseResult parsed = parse_expr(text);
    PacketFilter pf(text, parsed);
    return pf.matches(105, f.data(), caplen, static_cast<uint32_t>(f.size()));
  };
  const auto three = frame(0x01, 24), four = frame(0x03, 30);
  const uint32_t whole3 = static_cast<uint32_t>(three.size()), whole4 = static_cast<uint32_t>(four.size());
  EXPECT_TRUE(verdict("ip", three, whole3));
  EXPECT_TRUE(verdict("ip", four, whole4));
  EXPECT_TRUE(verdict("ip", three, 24 + 8 + 10));  // libpcap reads the SNAP type
  EXPECT_FALSE(verdict("not ip", three, 24 + 8 + 10));
  EXPECT_FALSE(verdict("ip", four, 30 + 8 + 10));  // tm's reading: cut inside its IP header
  EXPECT_TRUE(verdict("not ip", four, 30 + 8 + 10));
  // Cut at 31 bytes: libpcap's type (at 24 + 6) is not all there, and it rejects the frame, also
  // for `not ip`; for the four-address frame that is not where its type is (tm: after 30 + 6).
  EXPECT_FALSE(verdict("not ip", three, 31));
  EXPECT_TRUE(verdict("not ip", four, 31));
}

// A link type tm does not decode is answered by libpcap, but not with a filter longer than
// libpcap is given (kLibpcapMaxFilter): none of its frames matches, and that is said.
TEST(PacketFilter, AnUndecodedLinkTypeIsLibpcapsUpToItsFilterSize) {
  using namespace tmach::query;
  const auto plain = eval_frames::v4("plain", "10.0.0.1", "10.0.0.2", eval_frames::tcp(1234, 80)).bytes;
  std::vector<uint8_t> pflog = {0x3d, 0x02};
  pflog.resize(64, 0);
  pflog.insert(pflog.end(), plain.begin() + 14, plain.end());
  const uint32_t n = static_cast<uint32_t>(pflog.size());
  {
    const char* text = "host 10.0.0.1";
    ParseResult parsed = parse_expr(text);
    PacketFilter f(text, parsed);
    EXPECT_TRUE(f.matches(117, pflog.data(), n, n));
    EXPECT_TRUE(f.problems().empty());
  }
  std::string text = "host 10.0.0.1";
  for (int i = 2; text.size() <= kLibpcapMaxFilter; ++i)
    text += " or host 10.1." + std::to_string(i / 250) + "." + std::to_string(i % 250 + 1);
  ParseResult parsed = parse_expr(text);
  ASSERT_EQ(parsed.kind, ParseResult::Kind::kIndexed);
  PacketFilter f(text, parsed);
  EXPECT_FALSE(f.matches(117, pflog.data(), n, n));
  ASSERT_EQ(f.problems().size(), 1u);
  EXPECT_NE(f.problems()[0].find("link type 117, which tm does not decode (libpcap is given at most 4096"),
            std::string::npos)
      << f.problems()[0];
}
