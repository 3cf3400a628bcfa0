// An oracle test that compiles each filter with libpcap and runs the BPF program over
// synthetic Ethernet frames built together with the PacketInfo a decoder gives for them: tm
// must agree with BPF on every (filter, frame) pair. Hand-built cases: test_eval.cpp.

#include <random>

#include "eval_frames.h"

namespace tmach::query {
namespace {

using namespace eval_frames;

// ---------------------------------------------------------------------------------------
// Oracle: libpcap's BPF on the bytes against tm on the PacketInfo.

std::vector<Frame> plain_frames() {
  std::vector<Frame> f;
  f.push_back(v4("tcp4 syn", "10.0.0.1", "192.168.1.2", tcp(12345, 80)));
  f.push_back(v4("tcp4 synack", "192.168.1.2", "10.0.0.1", tcp(80, 12345, 0x12)));
  f.push_back(v4("udp4 dns query", "10.0.0.5", "8.8.8.8", udp(5353, 53)));
  f.push_back(v4("udp4 dns reply", "8.8.8.8", "10.0.0.5", udp(53, 5353)));
  f.push_back(v4("udp4 sport 80", "10.0.0.1", "10.0.0.2", udp(80, 9999)));
  f.push_back(v4("tcp4 80-80 to self", "10.0.0.1", "10.0.0.1", tcp(80, 80, 0x10)));
  f.push_back(v4("tcp4 https", "10.0.0.3", "172.16.5.5", tcp(50000, 443)));
  f.push_back(v4("icmp4", "10.1.2.3", "10.0.0.1", icmp(8)));
  f.push_back(v4("udp4 from 0.0.0.10", "0.0.0.10", "255.255.255.255", udp(68, 67)));
  f.push_back(v4("sctp4", "172.16.0.1", "172.16.0.2", sctp(2905, 3868)));
  f.push_back(v4("igmp", "10.0.0.9", "224.0.0.1", opaque(2, {0x11, 0, 0, 0, 0, 0, 0, 0})));
  f.push_back(v4("esp4", "10.0.0.1", "10.0.0.2", opaque(50, {0, 0, 0, 1, 0, 0, 0, 1})));
  f.push_back(v4("gre4", "10.0.0.1", "10.0.0.3", opaque(47, {0, 0, 0x08, 0})));
  f.push_back(v4("dccp4 80", "10.0.0.1", "10.0.0.2", dccp(80, 80)));
  V4Opts opts;
  opts.option_words = 2;
  f.push_back(v4("tcp4 with options", "10.9.9.9", "10.0.0.2", tcp(22, 40000), opts));
  V4Opts first;
  first.more_fragments = true;
  f.push_back(v4("udp4 first fragment", "10.0.0.7", "10.0.0.8", udp(4000, 53), first));
  V4Opts later;
  later.frag_offset = 185;
  f.push_back(
      v4("udp4 later fragment", "10.0.0.7", "10.0.0.8", opaque(17, {0, 53, 0, 53, 0, 0, 0, 0}), later));
  f.push_back(v6("tcp6", "2001:db8::1", "2001:db8:1::2", tcp(443, 50000, 0x18)));
  f.push_back(v6("udp6 dhcp", "fe80::1", "ff02::1:2", udp(546, 547)));
  f.push_back(v6("icmp6", "2001:db8::1", "2001:db8::2", icmp6(128)));
  f.push_back(v6("sctp6", "2001:db8::5", "2001:db8::6", sctp(3868, 3868)));
  f.push_back(v6("ah6", "2001:db8::1", "2001:db8::3", opaque(51, {6, 4, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1})));
  f.push_back(v6("esp6", "2001:db8::3", "2001:db8::1", opaque(50, {0, 0, 0, 1, 0, 0, 0, 1})));
  f.push_back(v6("udp6 dns", "2001:db8::53", "2001:db8::1", udp(53, 33333)));
  f.push_back(
      v6("udp6 later fragment", "2001:db8::7", "2001:db8::8", opaque(17, {0, 53, 0, 53}), {}, true, 100));
  f.push_back(v6("mapped", "::ffff:10.0.0.1", "::1", tcp(1, 2)));
  f.push_back(arp("arp request", 1, "10.0.0.1", "10.0.0.254"));
  f.push_back(arp("arp reply", 2, "192.168.1.2", "10.0.0.1"));
  Frame lldp = ethernet("lldp", 0x88cc, std::vector<uint8_t>(30, 0), {});
  lldp.info.status = packet::DecodeStatus::kNotIp;
  f.push_back(lldp);
  return f;
}

std::vector<Frame> tagged_frames() {
  std::vector<Frame> f;
  f.push_back(v4("vlan100 tcp4", "10.0.0.1", "10.0.0.2", tcp(1234, 80), V4Opts{{100}}));
  f.push_back(v6("vlan200 udp6", "2001:db8::1", "2001:db8::2", udp(53, 53), {200}));
  f.push_back(arp("vlan100 arp", 1, "10.0.0.1", "10.0.0.2", {100}));
  return f;
}

// `f` with byte `at` of its IP header set to `value` (and cut to `cut` bytes), and the
// PacketInfo the decoder gives for the result rather than the one built with it.
Frame malformed(std::string name, Frame f, size_t at, uint8_t value, size_t cut = SIZE_MAX) {
  f.name = std::move(name);
  f.bytes[14 + at] = value;
  if (cut < f.bytes.size()) f.bytes.resize(cut);
  f.info = PacketInfo{};
  packet::decode(packet::kLinkEthernet, f.bytes.data(), uint32_t(f.bytes.size()), f.info);
  return f;
}

// Fixed IP headers with an impossible version (for their EtherType) or IPv4 header length,
// each complete (20 / 40 bytes). The ports are where no filter below looks for them: tm reads
// none behind such a header, libpcap reads them where the header length puts them
// (DocumentedDifferences).
std::vector<Frame> malformed_frames() {
  std::vector<Frame> f;
  f.push_back(malformed("ipv4 version 6", v4("", "10.0.0.1", "192.168.1.2", tcp(12345, 443)), 0, 0x65));
  f.push_back(malformed("ipv4 version 0 udp", v4("", "10.0.0.5", "8.8.8.8", udp(5353, 5353)), 0, 0x05));
  f.push_back(malformed("ipv4 version 15 igmp",
                        v4("", "172.16.0.1", "10.0.0.1", opaque(2, {0x11, 0, 0, 0, 0, 0, 0, 0})), 0, 0xf5));
  // libpcap's ports at IP + 16 (the destination address): 2560 > 1.
  f.push_back(malformed("ipv4 ihl 4", v4("", "192.168.1.2", "10.0.0.1", tcp(80, 12345)), 0, 0x44));
  // libpcap's ports at IP + 0: 16384 > 32.
  f.push_back(malformed("ipv4 ihl 0 udp", v4("", "10.0.0.9", "10.0.0.1", udp(80, 80)), 0, 0x40));
  f.push_back(malformed("ipv4 ihl 1 icmp", v4("", "10.0.0.1", "10.0.0.1", icmp(8)), 0, 0x41));
  f.push_back(
      malformed("ipv6 version 4", v6("", "2001:db8::1", "2001:db8:1::2", tcp(443, 50000, 0x18)), 0, 0x40));
  f.push_back(malformed("ipv6 version 0 udp", v6("", "fe80::1", "2001:db8::1", udp(546, 547)), 0, 0x00));
  f.push_back(malformed("ipv6 version 7 icmp6", v6("", "2001:db8::2", "2001:db8::99", icmp6(128)), 0, 0x70));
  return f;
}

const char* const kMalformedFilters[] = {
    "host 10.0.0.1",
    "src host 10.0.0.1",
    "dst host 10.0.0.1",
    "src host 192.168.1.2",
    "net 10.0.0.0/24",
    "src net 192.168.1.0/24",
    "ip host 10.0.0.1",
    "ip proto 6",
    "ip proto 17",
    "ip proto 2",
    "icmp",
    "tcp",
    "udp",
    "ip",
    "ip6",
    "not ip",
    "ip6 host 2001:db8::1",
    "host 2001:db8::1",
    "src host fe80::1",
    "net 2001:db8::/32",
    "ip6 proto 58",
    "icmp6",
    "ip6 and tcp",
    "tcp port 80",
};

const char* const kPlainFilters[] = {
    "host 10.0.0.1",
    "src host 10.0.0.1",
    "dst host 10.0.0.1",
    "src and dst host 10.0.0.1",
    "src or dst host 10.0.0.1",
    "ip host 10.0.0.1",
    "arp host 10.0.0.1",
    "arp src host 192.168.1.2",
    "host 10.0.0.1 or 8.8.8.8",
    "src 10.0.0.1",
    "host 2001:db8::1",
    "src host 2001:db8::1",
    "ip6 host 2001:db8::2",
    "host ::ffff:10.0.0.1",
    "net 10.0.0.0/8",
    "src net 192.168.0.0/16",
    "dst net 10.0.0.0/24",
    "net 10.0.0",
    "net 172.16",
    "net 10",
    "host 10.0.0",
    "net 10.0.0.0 mask 255.255.255.0",
    "ip net 10.0.0.0/8",
    "src and dst net 10.0.0.0/8",
    "net 2001:db8::/32",
    "net 2001:db8:1::/48",
    "net 0.0.0.0/0",
    "net ::/0",
    "port 80",
    "tcp port 80",
    "udp port 80",
    "udp port 53",
    "src port 80",
    "dst port 53",
    "src and dst port 80",
    "port 80 or 443",
    "tcp port 80 or 443",
    "portrange 50-100",
    "tcp portrange 1-1024",
    "udp portrange 1-1024",
    "portrange 3000-4000",
    "sctp port 3868",
    "sctp src port 2905",
    "port http",
    "port domain",
    "udp port domain",
    "port 4000",
    "port 3868 and not udp",
    "tcp",
    "udp",
    "icmp",
    "icmp6",
    "sctp",
    "igmp",
    "esp",
    "ah",
    "ip",
    "ip6",
    "arp",
    "proto 47",
    "proto \\gre",
    "ip proto 17",
    "ip6 proto 58",
    "ip6 proto 44",  // libpcap's fragment test: the fixed header's next header
    "proto 44",
    "ip proto \\tcp",
    "ip6 proto \\udp",
    "proto 33",
    "proto 50 or proto 51",
    "not tcp",
    "tcp and not port 80",
    "host 10.0.0.1 and port 80",
    "host 10.0.0.1 or host 8.8.8.8 and udp",
    "not host 10.0.0.1 or 10.0.0.8",
    "(tcp or udp) and not src net 10.0.0.0/8",
    "udp port 4000 or dst port 53",
    "icmp or arp",
    "ip and udp port 53",
    "host 10.0.0.1 and port (80 or 443)",
    "tcp port 80 and (host 10.0.0.1 or 192.168.1.2)",
    "dst 10.0.0.8 and dst port 53",
    "ip6 and tcp",
    "not ip6 and not arp",
    "not (ip or ip6 or arp)",
    "vlan",
    "vlan 100",
    "not vlan",
    "host 10",
};

const char* const kVlanFilters[] = {
    "vlan",
    "vlan 100",
    "vlan 200",
    "not vlan 100",
    "vlan 100 and tcp",
    "vlan and host 10.0.0.1",
    "vlan 100 and port 80",
    "vlan 200 and ip6",
    "vlan and udp port 53",
    "vlan 100 and arp host 10.0.0.2",
};

struct Bpf {
  pcap_t* pcap = pcap_open_dead(DLT_EN10MB, 65535);
  bpf_program prog{};
  bool ok = false;
  explicit Bpf(const char* filter) { ok = pcap_compile(pcap, &prog, filter, 1, PCAP_NETMASK_UNKNOWN) == 0; }
  ~Bpf() {
    if (ok) pcap_freecode(&prog);
    pcap_close(pcap);
  }
  std::string error() const { return pcap_geterr(pcap); }
  bool match(const std::vector<uint8_t>& b) const {
    pcap_pkthdr h{};
    h.caplen = h.len = uint32_t(b.size());
    return pcap_offline_filter(&prog, &h, b.data()) != 0;
  }
};

int check_against_bpf(const char* filter, const std::vector<Frame>& frames) {
  Bpf bpf(filter);
  EXPECT_TRUE(bpf.ok) << filter << ": " << bpf.error();
  ParseResult r = parse_expr(filter);
  EXPECT_EQ(r.kind, ParseResult::Kind::kIndexed) << filter << ": " << r.error;
  if (!bpf.ok || r.kind != ParseResult::Kind::kIndexed) return 0;
  int bpf_hits = 0;
  for (const Frame& f : frames) {
    bool want = bpf.match(f.bytes);
    bpf_hits += want;
    EXPECT_EQ(matches(r.expr, f.info), want) << "filter '" << filter << "' (" << r.expr.str()
                                             << ") on frame '" << f.name << "': libpcap says " << want;
  }
  return bpf_hits;
}

TEST(EvalOracle, AgreesWithLibpcapOnUntaggedFrames) {
  const std::vector<Frame> frames = plain_frames();
  ASSERT_GE(frames.size(), 20u);
  ASSERT_GE(std::size(kPlainFilters), 20u);
  // The frames exercise the filters: each matches some frames and not others (except
  // the few that hold for none of them: vlan on untagged frames).
  for (const char* filter : kPlainFilters) {
    int hits = check_against_bpf(filter, frames);
    if (std::string_view(filter) == "vlan" || std::string_view(filter) == "vlan 100") {
      EXPECT_EQ(hits, 0) << filter;
    } else if (std::string_view(filter) == "not vlan") {
      EXPECT_EQ(hits, int(frames.size())) << filter;
    } else {
      EXPECT_GT(hits, 0) << filter;
      EXPECT_LT(hits, int(frames.size())) << filter;
    }
  }
}

TEST(EvalOracle, AgreesWithLibpcapOnVlanFilters) {
  std::vector<Frame> frames = plain_frames();
  for (Frame& f : tagged_frames()) frames.push_back(std::move(f));
  for (const char* filter : kVlanFilters) EXPECT_GT(check_against_bpf(filter, frames), 0) << filter;
}

// A malformed fixed IP header (a version nibble other than its EtherType's, an IPv4 header
// length below 5) is found by its addresses and protocol byte, as libpcap finds it: libpcap's
// `host`, `net`, `ip proto`, `ip`, `ip6` read the EtherType and fixed offsets only.
TEST(EvalOracle, MalformedIpHeadersAgreeWithLibpcap) {
  const std::vector<Frame> bad = malformed_frames();
  std::vector<Frame> frames = bad;
  for (Frame& f : plain_frames()) frames.push_back(std::move(f));
  for (const Frame& f : bad) {
    EXPECT_EQ(f.info.status, packet::DecodeStatus::kMalformed) << f.name;
    EXPECT_EQ(f.info.ip_count, 1) << f.name;
  }
  for (const char* filter : kMalformedFilters) {
    check_against_bpf(filter, frames);
    // Each filter but the port one finds some of the malformed frames (and not all).
    const int hits = check_against_bpf(filter, bad);
    if (std::string_view(filter) == "tcp port 80") {
      EXPECT_EQ(hits, 0);
    } else {
      EXPECT_GT(hits, 0) << filter;
      EXPECT_LT(hits, int(bad.size())) << filter;
    }
  }
}

// ARP and RARP frames of every shape, decoded by the decoder: tm's `arp` is libpcap's `arp or
// rarp` (the EtherType alone), and `host` finds the protocol addresses libpcap finds in the
// 6/4 form (libpcap reads them at fixed offsets; tm reads no addresses at other lengths).
TEST(EvalOracle, ArpOfAnyShapeIsArp) {
  struct Shape {
    uint16_t ethertype, htype, ptype;
    uint8_t hlen, plen;
    size_t cut;  // bytes of the ARP body kept
  };
  const Shape shapes[] = {
      {0x0806, 1, 0x0800, 6, 4, 28},   {0x8035, 1, 0x0800, 6, 4, 28},  {0x0806, 6, 0x0800, 6, 4, 28},
      {0x0806, 1, 0x0800, 8, 4, 32},   {0x8035, 1, 0x0800, 14, 4, 36}, {0x0806, 0x3030, 0x0800, 14, 4, 44},
      {0x0806, 32, 0x0800, 20, 4, 56}, {0x0806, 1, 0x86dd, 6, 16, 52}, {0x0806, 1, 0x0800, 6, 4, 7},
  };
  int arp_hits = 0;
  for (const Shape& sh : shapes) {
    std::vector<uint8_t> b = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11};
    put16(b, sh.ethertype);
    put16(b, sh.htype);
    put16(b, sh.ptype);
    b.push_back(sh.hlen);
    b.push_back(sh.plen);
    put16(b, 1);
    for (int i = 0; i < 2; ++i) {  // sender, then target: hardware address, then 10.0.0.1 / 10.0.0.2
      b.insert(b.end(), sh.hlen, 0xaa);
      for (int k = 0; k < sh.plen; ++k) b.push_back(k == 0 ? 10 : k == sh.plen - 1 ? uint8_t(1 + i) : 0);
    }
    b.resize(14 + std::min<size_t>(sh.cut, b.size() - 14));
    PacketInfo p;
    packet::decode(packet::kLinkEthernet, b.data(), uint32_t(b.size()), p);
    const std::string what = "ethertype " + std::to_string(sh.ethertype) + " hlen " +
                             std::to_string(sh.hlen) + " plen " + std::to_string(sh.plen) + " cut " +
                             std::to_string(sh.cut);
    EXPECT_TRUE(M("arp", p)) << what;
    EXPECT_EQ(M("arp", p), Bpf("arp or rarp").match(b)) << what;
    EXPECT_EQ(M("rarp", p), Bpf("rarp").match(b)) << what;
    EXPECT_EQ(M("rarp host 10.0.0.1", p), Bpf("rarp host 10.0.0.1").match(b)) << what;
    EXPECT_TRUE(M("not ip and not ip6", p)) << what;
    arp_hits += M("arp", p);
    const bool usual = sh.hlen == 6 && sh.plen == 4 && sh.ptype == 0x0800 && sh.cut >= 28;
    EXPECT_EQ(p.arp_addrs, usual || (sh.htype == 32 && sh.cut >= 56)) << what;
    if (usual) {
      for (const char* f : {"host 10.0.0.1", "src host 10.0.0.1", "dst host 10.0.0.2", "host 10.0.0.3"})
        EXPECT_EQ(M(f, p), Bpf(f).match(b)) << f << " on " << what;
    }
  }
  EXPECT_EQ(arp_hits, int(std::size(shapes)));
}

// Random token strings over a vocabulary aimed at the frames above: every one that both
// tm plans and libpcap compiles must give the same answers.
TEST(EvalOracle, RandomFiltersAgree) {
  const std::vector<Frame> frames = plain_frames();
  const char* const vocab[] = {"host",      "net",         "port",
                               "portrange", "src",         "dst",
                               "and",       "or",          "not",
                               "(",         ")",           "(",
                               ")",         "tcp",         "udp",
                               "icmp",      "icmp6",       "ip",
                               "ip6",       "arp",         "sctp",
                               "esp",       "ah",          "igmp",
                               "proto",     "10.0.0.1",    "192.168.1.2",
                               "8.8.8.8",   "10.0.0",      "10.0.0.0/8",
                               "172.16",    "2001:db8::1", "2001:db8::/32",
                               "fe80::1",   "80",          "53",
                               "443",       "3868",        "4000",
                               "12345",     "1-1024",      "50000-60000",
                               "http",      "domain",      "17",
                               "6",         "58",          "vlan"};
  std::mt19937 rng(12345);
  int compared = 0;
  for (int i = 0; i < 20000 && compared < 1500; ++i) {
    std::string text;
    int len = 1 + int(rng() % 8);
    for (int k = 0; k < len; ++k) text += std::string(k ? " " : "") + vocab[rng() % std::size(vocab)];
    ParseResult r = parse_expr(text);
    if (r.kind != ParseResult::Kind::kIndexed) continue;
    Bpf bpf(text.c_str());
    if (!bpf.ok) continue;  // tm's extensions (a bare address, ...)
    ++compared;
    for (const Frame& f : frames)
      ASSERT_EQ(matches(r.expr, f.info), bpf.match(f.bytes))
          << "filter '" << text << "' (" << r.expr.str() << ") on frame '" << f.name << "'";
  }
  EXPECT_GE(compared, 500);
}

// Where tm knowingly answers differently from tcpdump; if one of these starts to agree,
// docs/USAGE.md's "Query language and its semantics" section needs updating too.
TEST(EvalOracle, DocumentedDifferences) {
  auto differs = [](const char* filter, const Frame& f) {
    Bpf bpf(filter);
    EXPECT_TRUE(bpf.ok) << filter;
    bool tm = matches(parse_expr(filter).expr, f.info);
    EXPECT_NE(tm, bpf.match(f.bytes)) << filter << " on " << f.name;
    return tm;
  };
  // tm decodes through VLAN tags; libpcap needs `vlan` before the rest.
  Frame tagged = v4("vlan100 tcp4", "10.0.0.1", "10.0.0.2", tcp(1234, 80), V4Opts{{100}});
  EXPECT_TRUE(differs("tcp", tagged));
  EXPECT_TRUE(differs("host 10.0.0.1", tagged));
  // tm's `vlan N` looks at every tag, libpcap's at the outer one.
  Frame qinq = v6("qinq", "::1", "::2", udp(1, 2), {100, 200});
  EXPECT_TRUE(differs("vlan 200", qinq));
  // tm follows the IPv6 extension-header chain: a first fragment still shows its ports.
  Frame frag6 = v6("udp6 first fragment", "2001:db8::7", "2001:db8::8", udp(4000, 53), {}, true, 0);
  EXPECT_TRUE(differs("udp port 53", frag6));
  // `arp` is ARP or RARP.
  Frame rarp = arp("rarp", 3, "10.0.0.1", "10.0.0.2", {}, true);
  EXPECT_TRUE(differs("arp", rarp));
  // Behind a malformed IP header tm reads no transport header; libpcap reads the ports where the
  // header length, even an impossible one, puts them.
  Frame bad_version = malformed("ipv4 version 5", v4("", "10.0.0.1", "10.0.0.2", tcp(1234, 80)), 0, 0x55);
  EXPECT_FALSE(differs("tcp port 80", bad_version));
  EXPECT_TRUE(M("host 10.0.0.1 and tcp", bad_version.info));
  Frame bad_ihl = malformed("ipv4 ihl 4", v4("", "10.0.0.1", "0.80.0.1", tcp(1, 2)), 0, 0x44);
  EXPECT_FALSE(differs("tcp port 80", bad_ihl));  // libpcap's ports: the destination address, 80 > 1
  Frame bad_v6 = malformed("ipv6 version 0", v6("", "2001:db8::1", "2001:db8::2", tcp(80, 1234)), 0, 0x00);
  EXPECT_FALSE(differs("tcp port 80", bad_v6));
  // A frame cut inside its fixed IP header has no IP layer; libpcap's `ip` / `ip6` are the
  // EtherType, and its tests of the bytes that were captured still hold.
  Frame cut4 = malformed("ipv4 version 5 cut", v4("", "10.0.0.1", "10.0.0.2", tcp(1, 2)), 0, 0x55, 14 + 19);
  EXPECT_EQ(cut4.info.ip_count, 0);
  EXPECT_FALSE(differs("ip", cut4));
  EXPECT_FALSE(differs("ip proto 6", cut4));
  EXPECT_FALSE(differs("src host 10.0.0.1", cut4));
  Frame cut6 = malformed("ipv6 cut", v6("", "2001:db8::1", "2001:db8::2", tcp(1, 2)), 0, 0x60, 14 + 39);
  EXPECT_EQ(cut6.info.ip_count, 0);
  EXPECT_FALSE(differs("ip6", cut6));
  EXPECT_FALSE(differs("ip6 src host 2001:db8::1", cut6));
}

}  // namespace
}  // namespace tmach::query
