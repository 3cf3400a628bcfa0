// Tests of packet/decoder.h on real and cut-short packets: every packet of the corpus (no
// crash, sane offsets), every prefix of a few real packets (truncation), and tcpdump as an
// oracle for addresses and ports. Hand-built frames: test_decoder.cpp.

#include "decoder_frames.h"

namespace {

using namespace decoder_frames;

// ---------------------------------------------------------------- corpus

struct Packet {
  Bytes data;
  uint32_t linktype = 0;
};

// Every packet of a capture file; nullopt if libpcap refuses the file.
std::optional<std::vector<Packet>> read_pcap(const std::string& path) {
  char err[PCAP_ERRBUF_SIZE];
  pcap_t* p = pcap_open_offline(path.c_str(), err);
  if (!p) return std::nullopt;
  std::vector<Packet> out;
  uint32_t lt = static_cast<uint32_t>(pcap_datalink(p));
  pcap_pkthdr* h;
  const u_char* d;
  while (pcap_next_ex(p, &h, &d) == 1) out.push_back({Bytes(d, d + h->caplen), lt});
  pcap_close(p);
  return out;
}

std::string corpus(const char* rel) { return std::string(TM_CORPUS_DIR) + "/" + rel; }

void check_sane(const PacketInfo& pi, uint32_t caplen, const std::string& where) {
  SCOPED_TRACE(where);
  EXPECT_LE(pi.ip_count, PacketInfo::kMaxIpLayers);
  if (pi.has_eth) {
    EXPECT_LT(pi.eth_offset, caplen);
  }
  bool problem = pi.status == DecodeStatus::kTruncated || pi.status == DecodeStatus::kMalformed ||
                 pi.status == DecodeStatus::kUnsupportedLink;
  EXPECT_EQ(pi.anomaly != nullptr, problem);
  if (pi.status == DecodeStatus::kOk) {
    EXPECT_GE(pi.ip_count, 1);
  }
  for (int i = 0; i < pi.ip_count && i < PacketInfo::kMaxIpLayers; ++i) {
    const IpLayer& l = pi.ip[i];
    EXPECT_TRUE(l.version == 4 || l.version == 6);
    EXPECT_LT(l.l3_offset, caplen);
    EXPECT_EQ(l.src.is_v4(), l.version == 4);
    if (l.has_l4 || l.has_ports) {
      EXPECT_LT(l.l4_offset, caplen);
      EXPECT_GT(l.l4_offset, l.l3_offset);
      EXPECT_LE(l.l4_offset + 4u, caplen);
    }
    if (l.has_l4 && l.frag_offset) {
      ADD_FAILURE() << "transport header in a non-first fragment";
    }
  }
}

TEST(DecoderCorpus, EveryPacketOfEveryFile) {
  ASSERT_TRUE(fs::is_directory(TM_CORPUS_DIR)) << TM_CORPUS_DIR;
  size_t files = 0, packets = 0, refused = 0, with_ip = 0;
  for (const auto& e : fs::recursive_directory_iterator(TM_CORPUS_DIR)) {
    if (!e.is_regular_file()) continue;
    std::string path = e.path().string();
    auto pkts = read_pcap(path);
    if (!pkts) {
      ++refused;
      continue;
    }
    ++files;
    for (size_t i = 0; i < pkts->size(); ++i) {
      const Packet& p = (*pkts)[i];
      // The exact-size copy in dec() lets ASan catch any read past caplen.
      PacketInfo pi = dec(p.linktype, p.data);
      check_sane(pi, static_cast<uint32_t>(p.data.size()), path + " #" + std::to_string(i + 1));
      ++packets;
      with_ip += pi.ip_count > 0;
    }
  }
  EXPECT_GE(files, 140u);
  EXPECT_GE(packets, 118000u);
  EXPECT_GT(with_ip, packets * 9 / 10);
  std::printf("corpus: %zu files, %zu packets (%zu with IP), %zu files refused by libpcap\n", files, packets,
              with_ip, refused);
}

// ---------------------------------------------------------------- truncation

uint32_t transport_header_len(const Bytes& f, const IpLayer& l) {
  switch (l.proto) {
    case tmach::packet::kProtoTcp:
      return (f[l.l4_offset + 12] >> 4) * 4u;
    case tmach::packet::kProtoUdp:
      return 8;
    case tmach::packet::kProtoSctp:
    case 33:
      return 12;
    default:
      return 4;
  }
}

void expect_same_layer(const IpLayer& a, const IpLayer& b) {
  EXPECT_EQ(a.version, b.version);
  EXPECT_EQ(a.src, b.src);
  EXPECT_EQ(a.dst, b.dst);
  EXPECT_EQ(a.header_proto, b.header_proto);
  EXPECT_EQ(a.proto, b.proto);
  EXPECT_EQ(a.fragment, b.fragment);
  EXPECT_EQ(a.frag_offset, b.frag_offset);
  EXPECT_EQ(a.frag_id, b.frag_id);
  EXPECT_EQ(a.l3_offset, b.l3_offset);
  EXPECT_EQ(a.l4_offset, b.l4_offset);
  EXPECT_EQ(a.has_l4, b.has_l4);
  EXPECT_EQ(a.has_ports, b.has_ports);
  EXPECT_EQ(a.sport, b.sport);
  EXPECT_EQ(a.dport, b.dport);
  EXPECT_EQ(a.tcp_flags, b.tcp_flags);
  EXPECT_EQ(a.l4_payload, b.l4_payload);
}

// Decodes every prefix 0..caplen of `full` and checks it against the full decode.
void check_prefixes(const Packet& p) {
  const Bytes& f = p.data;
  const uint32_t caplen = static_cast<uint32_t>(f.size());
  PacketInfo full = dec(p.linktype, f);
  ASSERT_EQ(full.status, DecodeStatus::kOk);
  ASSERT_EQ(full.ip_count, 1);
  const IpLayer& fl = full.ip[0];
  ASSERT_TRUE(fl.has_l4);
  const uint32_t ip_fixed_end = fl.l3_offset + (fl.version == 4 ? 20u : 40u);
  const uint32_t hdr_end = fl.l4_offset + transport_header_len(f, fl);
  ASSERT_LE(hdr_end, caplen);

  for (uint32_t len = 0; len <= caplen; ++len) {
    SCOPED_TRACE("prefix " + std::to_string(len) + " of " + std::to_string(caplen));
    PacketInfo pi = dec(p.linktype, f, len);
    check_sane(pi, len, "prefix");
    if (p.linktype == tmach::packet::kLinkNflog && len < fl.l3_offset && pi.status == DecodeStatus::kNotIp) {
      // Cut at a TLV boundary before the packet TLV: a log message without a packet.
      EXPECT_EQ(pi.ip_count, 0);
    } else if (len < hdr_end) {
      EXPECT_EQ(pi.status, DecodeStatus::kTruncated) << to_string(pi.status);
    } else {
      EXPECT_EQ(pi.status, DecodeStatus::kOk);
      EXPECT_EQ(pi.anomaly, nullptr);
    }
    // What the prefix holds completely decodes as in the full packet.
    EXPECT_EQ(pi.has_eth, full.has_eth && len >= full.eth_offset + 14u);
    if (pi.has_eth) {
      EXPECT_EQ(pi.eth_offset, full.eth_offset);
    }
    EXPECT_LE(pi.vlan_count, full.vlan_count);
    for (int i = 0; i < pi.vlan_count && i < PacketInfo::kMaxVlans; ++i)
      EXPECT_EQ(pi.vlans[i], full.vlans[i]);
    EXPECT_LE(pi.mpls_count, full.mpls_count);
    EXPECT_EQ(pi.ip_count, len >= ip_fixed_end ? 1 : 0);
    if (len >= fl.l3_offset + 1u) {
      EXPECT_EQ(pi.ethertype, full.ethertype);
    }
    if (pi.ip_count == 1) {
      const IpLayer& l = pi.ip[0];
      EXPECT_EQ(l.version, fl.version);
      EXPECT_EQ(l.src, fl.src);
      EXPECT_EQ(l.dst, fl.dst);
      EXPECT_EQ(l.header_proto, fl.header_proto);
      EXPECT_EQ(l.l3_offset, fl.l3_offset);
      EXPECT_EQ(l.has_ports, fl.has_ports && len >= fl.l4_offset + 4u);
      if (l.has_ports) {
        EXPECT_EQ(l.sport, fl.sport);
        EXPECT_EQ(l.dport, fl.dport);
      }
      EXPECT_EQ(l.has_l4, len >= hdr_end);
      if (len >= fl.l4_offset) {
        EXPECT_EQ(l.proto, fl.proto);
      }
    }
    if (len >= hdr_end) {
      EXPECT_EQ(pi.vlan_count, full.vlan_count);
      EXPECT_EQ(pi.mpls_count, full.mpls_count);
      EXPECT_EQ(pi.ethertype, full.ethertype);
      expect_same_layer(pi.ip[0], fl);
    }
  }
}

// The first packet of a corpus file for which `want` holds.
std::optional<Packet> find_packet(const char* rel, const std::function<bool(const PacketInfo&)>& want) {
  auto pkts = read_pcap(corpus(rel));
  if (!pkts) return std::nullopt;
  for (const Packet& p : *pkts) {
    PacketInfo pi;
    decode(p.linktype, p.data.data(), static_cast<uint32_t>(p.data.size()), pi);
    if (pi.status == DecodeStatus::kOk && want(pi)) return p;
  }
  return std::nullopt;
}

TEST(DecoderTruncation, TcpIpv4) {
  auto p = find_packet("mixed/wikipedia.pcap", [](const PacketInfo& pi) {
    return pi.ip[0].version == 4 && pi.ip[0].proto == tmach::packet::kProtoTcp && pi.ip[0].has_l4 &&
           pi.ip[0].l4_payload > 0 && pi.ip[0].tcp_flags & tmach::packet::kTcpPsh;
  });
  ASSERT_TRUE(p);
  check_prefixes(*p);
}

TEST(DecoderTruncation, Ipv6WithExtensionHeaders) {
  for (const char* rel : {"ipv6/ipv6-http-atomic-frag.pcap", "ipv6/ipv6-hbh-routing0.pcap"}) {
    SCOPED_TRACE(rel);
    auto p = find_packet(rel, [](const PacketInfo& pi) {
      return pi.ip[0].version == 6 && pi.ip[0].header_proto != pi.ip[0].proto && pi.ip[0].has_l4;
    });
    ASSERT_TRUE(p);
    check_prefixes(*p);
  }
}

TEST(DecoderTruncation, Vlan) {
  auto p = find_packet("link/vlan-qinqinq.pcap",
                       [](const PacketInfo& pi) { return pi.vlan_count >= 2 && pi.ip[0].has_l4; });
  ASSERT_TRUE(p);
  check_prefixes(*p);
}

TEST(DecoderTruncation, Mpls) {
  auto p = find_packet("link/mpls-in-vlan.pcap",
                       [](const PacketInfo& pi) { return pi.mpls_count >= 2 && pi.ip[0].has_l4; });
  ASSERT_TRUE(p);
  check_prefixes(*p);
}

TEST(DecoderTruncation, OtherLinkTypes) {
  for (const char* rel : {"link/nflog-http.pcap", "link/linux_dlt_sll2.pcap", "link/connect-with-header.pcap",
                          "ipv4/sctp.pcap"}) {
    SCOPED_TRACE(rel);
    auto p = find_packet(rel, [](const PacketInfo& pi) { return pi.ip[0].has_l4; });
    ASSERT_TRUE(p);
    check_prefixes(*p);
  }
}

// ---------------------------------------------------------------- tcpdump as oracle

// What tcpdump printed for one packet.
struct Seen {
  int version = 0;  // 4 or 6; 0: no IP line (or one we do not parse)
  IpAddr src, dst;
  int sport = -1, dport = -1;
  bool arp_request = false;  // "ARP, Request who-has T tell S"
  IpAddr arp_spa, arp_tpa;
};

// "1.2.3.4.80", "1.2.3.4", "2001:db8::1.21", "::1" -> address and port (-1 if none).
bool parse_endpoint(std::string tok, IpAddr& a, int& port) {
  if (!tok.empty() && tok.back() == ':') tok.pop_back();
  uint8_t buf[16];
  port = -1;
  auto addr = [&](const std::string& s) {
    if (inet_pton(AF_INET, s.c_str(), buf) == 1) {
      a = IpAddr::v4(buf);
      return true;
    }
    if (inet_pton(AF_INET6, s.c_str(), buf) == 1) {
      a = IpAddr::v6(buf);
      return true;
    }
    return false;
  };
  if (addr(tok)) return true;
  size_t dot = tok.rfind('.');
  if (dot == std::string::npos || dot + 1 == tok.size()) return false;
  std::string p = tok.substr(dot + 1);
  if (p.find_first_not_of("0123456789") != std::string::npos) return false;
  if (!addr(tok.substr(0, dot))) return false;
  port = std::stoi(p);
  return true;
}

Seen parse_tcpdump_line(const std::string& line) {
  Seen s;
  std::vector<std::string> t;
  for (size_t i = 0; i < line.size();) {
    size_t j = line.find(' ', i);
    if (j == std::string::npos) j = line.size();
    if (j > i) t.push_back(line.substr(i, j - i));
    i = j + 1;
  }
  for (size_t i = 1; i < t.size(); ++i) {
    // "ARP, Request who-has T tell S", with the target's hardware address after T when
    // it is not all zeros: "who-has T (00:ff:...) tell S" (IP over InfiniBand).
    const size_t hw = i + 4 < t.size() && t[i + 4].front() == '(' ? 1 : 0;
    if (t[i] == "ARP," && i + 5 + hw < t.size() && t[i + 1] == "Request" && t[i + 2] == "who-has" &&
        t[i + 4 + hw] == "tell") {
      int port;
      std::string sender = t[i + 5 + hw];
      if (sender.back() == ',') sender.pop_back();
      s.arp_request = parse_endpoint(t[i + 3], s.arp_tpa, port) && parse_endpoint(sender, s.arp_spa, port);
      return s;
    }
    if (t[i] != "IP" && t[i] != "IP6") continue;
    if (i + 3 < t.size() && t[i + 2] == ">" && parse_endpoint(t[i + 1], s.src, s.sport) &&
        parse_endpoint(t[i + 3], s.dst, s.dport))
      s.version = t[i] == "IP" ? 4 : 6;
    // After IPv6 extension headers tcpdump prints the ports apart:
    // "IP6 a > b: DSTOPT 36951 > 80: Flags ...", "IP6 a > b: frag (0|1232) 53 > 5353: ...".
    auto digits = [](const std::string& x) {
      return !x.empty() && x.find_first_not_of("0123456789") == std::string::npos;
    };
    for (size_t k = i + 4; s.version == 6 && s.sport < 0 && k + 2 < t.size() && k < i + 24; ++k) {
      if (digits(t[k]) && t[k + 1] == ">" && t[k + 2].back() == ':' &&
          digits(t[k + 2].substr(0, t[k + 2].size() - 1))) {
        s.sport = std::stoi(t[k]);
        s.dport = std::stoi(t[k + 2]);
      }
    }
    return s;  // only the first (outermost) IP header of the line
  }
  return s;
}

// tcpdump -nn -tt: one line per packet, each starting with the timestamp; continuation
// lines (some printers use them) start with white space.
std::vector<std::string> tcpdump_lines(const std::string& path) {
  std::vector<std::string> lines;
  std::string cmd = "tcpdump -nn -tt -r '" + path + "' 2>/dev/null";
  FILE* f = popen(cmd.c_str(), "r");
  if (!f) return lines;
  char buf[65536];
  while (std::fgets(buf, sizeof buf, f)) {
    std::string l(buf);
    if (!l.empty() && l.back() == '\n') l.pop_back();
    if (!l.empty() && l[0] >= '0' && l[0] <= '9') lines.push_back(l);
  }
  pclose(f);
  return lines;
}

TEST(DecoderOracle, MatchesTcpdump) {
  if (std::system("tcpdump --version >/dev/null 2>&1") != 0) GTEST_SKIP() << "tcpdump not installed";
  const char* files[] = {
      "mixed/wikipedia.pcap",
      "ipv6/ftp-ipv6.pcap",
      "link/linux_dlt_sll2.pcap",
      "link/vlan-qinqinq.pcap",
      "link/mpls-in-vlan.pcap",
      "link/nflog-http.pcap",
      "link/connect-with-header.pcap",
      "link/rotation.pcap",
      "ipv4/fragmented-1.pcap",
      "ipv4/sctp.pcap",
      "ipv4/dccp_partial_csum_v4_simple.pcap",
      "link/linuxsll-arp.pcap",
      "ipv6/ipv6-http-atomic-frag.pcap",
      "ipv6/ipv6-fragmented-dns.pcap",
      "link/LINKTYPE_IPV6.pcap",
      "mixed/bro.org.pcap",
      "link/HDLC.pcap",
      "link/quic_handshake.pcap",
      "link/icmp_dot1q.pcap",
      "link/snap-tcp.pcap",
      "link/mixed-vlan-mpls.pcap",
      "link/q-in-q.pcap",
      "link/LINKTYPE_IPV4.pcap",
      "ipv4/forces1.pcap",
      "ipv4/options.pcap",
      "ipv6/ipv6-routing-header.pcap",
      "ipv6/ipv6-srh-ext-header.pcap",
      "pcapng/bgp-role.pcapng",
      "pcapng/start-with-server.pcapng",
      "nonip/ip6_esp.pcap",
      "link/ipoib.pcap",         // ARP with 20-byte hardware addresses
      "pcapng/snap-arp.pcapng",  // ARP behind LLC/SNAP, hardware type 6
  };
  size_t total = 0;
  for (const char* rel : files) {
    SCOPED_TRACE(rel);
    auto pkts = read_pcap(corpus(rel));
    ASSERT_TRUE(pkts);
    std::vector<std::string> lines = tcpdump_lines(corpus(rel));
    ASSERT_EQ(lines.size(), pkts->size());
    size_t compared = 0;
    for (size_t i = 0; i < lines.size(); ++i) {
      SCOPED_TRACE("packet " + std::to_string(i + 1) + ": " + lines[i]);
      const Packet& p = (*pkts)[i];
      PacketInfo pi = dec(p.linktype, p.data);
      Seen s = parse_tcpdump_line(lines[i]);
      if (s.arp_request) {
        EXPECT_TRUE(pi.arp);
        EXPECT_TRUE(pi.arp_addrs);
        EXPECT_EQ(pi.arp_spa, s.arp_spa);
        EXPECT_EQ(pi.arp_tpa, s.arp_tpa);
        ++compared;
        continue;
      }
      if (s.version == 0) {
        EXPECT_EQ(pi.ip_count, 0);
        continue;
      }
      ASSERT_GE(pi.ip_count, 1);
      const IpLayer& l = pi.ip[0];
      EXPECT_EQ(l.version, s.version);
      EXPECT_EQ(l.src, s.src) << l.src.str();
      EXPECT_EQ(l.dst, s.dst) << l.dst.str();
      EXPECT_EQ(l.has_ports, s.sport >= 0);
      if (s.sport >= 0 && l.has_ports) {
        EXPECT_EQ(l.sport, s.sport);
        EXPECT_EQ(l.dport, s.dport);
      }
      ++compared;
    }
    EXPECT_GT(compared, 0u);
    total += compared;
  }
  std::printf("tcpdump oracle: %zu packets compared\n", total);
}

}  // namespace
