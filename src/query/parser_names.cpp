// The names and literals a filter may use, after libpcap's nametoaddr.c: the protocol
// qualifier keywords, tunnel names, IP protocol names (/etc/protocols), port names (the
// system's services database) and dotted IPv4 numbers. Contracts in parser_internal.h.
#include <arpa/inet.h>
#include <netdb.h>

#include <algorithm>
#include <string>

#include "query/parser_internal.h"

namespace tmach::query::detail {
namespace {

using lex::Kw;

// Port names are resolved through the system's services database, as libpcap's
// pcap_nametoport() does: a name listed for only one of tcp/udp then means that protocol only
// (`port http` is `tcp port 80`, `udp port http` is an error). "dhcp" is tm's own alias of
// bootps (not in Debian's netbase; libpcap rejects it).
int service_port(const std::string& name, const char* proto) {
  servent se, *res = nullptr;
  char buf[4096];
  if (getservbyname_r(name.c_str(), proto, &se, buf, sizeof buf, &res) != 0 || !res) return -1;
  return ntohs(static_cast<uint16_t>(res->s_port));
}

// IP protocol names and aliases as in /etc/protocols (case-sensitive, like getprotobyname).
struct ProtoName {
  const char* name;
  uint8_t num;
};
constexpr ProtoName kProtoNames[] = {
    {"ip", 0},
    {"IP", 0},
    {"hopopt", 0},
    {"HOPOPT", 0},
    {"icmp", 1},
    {"ICMP", 1},
    {"igmp", 2},
    {"IGMP", 2},
    {"ggp", 3},
    {"GGP", 3},
    {"ipencap", 4},
    {"IP-ENCAP", 4},
    {"st", 5},
    {"ST", 5},
    {"tcp", 6},
    {"TCP", 6},
    {"egp", 8},
    {"EGP", 8},
    {"igp", 9},
    {"IGP", 9},
    {"pup", 12},
    {"PUP", 12},
    {"udp", 17},
    {"UDP", 17},
    {"hmp", 20},
    {"HMP", 20},
    {"xns-idp", 22},
    {"XNS-IDP", 22},
    {"rdp", 27},
    {"RDP", 27},
    {"iso-tp4", 29},
    {"ISO-TP4", 29},
    {"dccp", 33},
    {"DCCP", 33},
    {"xtp", 36},
    {"XTP", 36},
    {"ddp", 37},
    {"DDP", 37},
    {"idpr-cmtp", 38},
    {"IDPR-CMTP", 38},
    {"ipv6", 41},
    {"IPv6", 41},
    {"ipv6-route", 43},
    {"IPv6-Route", 43},
    {"ipv6-frag", 44},
    {"IPv6-Frag", 44},
    {"idrp", 45},
    {"IDRP", 45},
    {"rsvp", 46},
    {"RSVP", 46},
    {"gre", 47},
    {"GRE", 47},
    {"esp", 50},
    {"IPSEC-ESP", 50},
    {"ah", 51},
    {"IPSEC-AH", 51},
    {"skip", 57},
    {"SKIP", 57},
    {"ipv6-icmp", 58},
    {"IPv6-ICMP", 58},
    {"ipv6-nonxt", 59},
    {"IPv6-NoNxt", 59},
    {"ipv6-opts", 60},
    {"IPv6-Opts", 60},
    {"rspf", 73},
    {"RSPF", 73},
    {"CPHB", 73},
    {"vmtp", 81},
    {"VMTP", 81},
    {"eigrp", 88},
    {"EIGRP", 88},
    {"ospf", 89},
    {"OSPFIGP", 89},
    {"ax.25", 93},
    {"AX.25", 93},
    {"ipip", 94},
    {"IPIP", 94},
    {"etherip", 97},
    {"ETHERIP", 97},
    {"encap", 98},
    {"ENCAP", 98},
    {"pim", 103},
    {"PIM", 103},
    {"ipcomp", 108},
    {"IPCOMP", 108},
    {"vrrp", 112},
    {"VRRP", 112},
    {"l2tp", 115},
    {"L2TP", 115},
    {"isis", 124},
    {"ISIS", 124},
    {"sctp", 132},
    {"SCTP", 132},
    {"fc", 133},
    {"FC", 133},
    {"mobility-header", 135},
    {"Mobility-Header", 135},
    {"udplite", 136},
    {"UDPLite", 136},
    {"mpls-in-ip", 137},
    {"MPLS-in-IP", 137},
    {"manet", 138},
    {"hip", 139},
    {"HIP", 139},
    {"shim6", 140},
    {"Shim6", 140},
    {"wesp", 141},
    {"WESP", 141},
    {"rohc", 142},
    {"ROHC", 142},
    {"ethernet", 143},
    {"Ethernet", 143},
};

}  // namespace

// Tunnel names of `tunnel NAME` and of the bare selectors (`vxlan`, `gtp`, ...).
bool tunnel_of(const std::string& s, uint8_t* kind) {
  for (uint8_t k = 1; k < packet::kTunnelKinds; ++k) {
    if (s == packet::tunnel_name(k)) {
      *kind = k;
      return true;
    }
  }
  if (s == "geneve" || s == "vxlan-gpe") {
    *kind = s == "geneve" ? packet::kTunnelGeneve : packet::kTunnelVxlan;
    return true;
  }
  return false;
}

const char* pq_name(PQ p) {
  switch (p) {
    case PQ::kDefault:
      return "";
    case PQ::kIp:
      return "ip";
    case PQ::kIp6:
      return "ip6";
    case PQ::kArp:
      return "arp";
    case PQ::kRarp:
      return "rarp";
    case PQ::kTcp:
      return "tcp";
    case PQ::kUdp:
      return "udp";
    case PQ::kSctp:
      return "sctp";
    case PQ::kIcmp:
      return "icmp";
    case PQ::kIcmp6:
      return "icmp6";
    case PQ::kIgmp:
      return "igmp";
    case PQ::kEsp:
      return "esp";
    case PQ::kAh:
      return "ah";
  }
  return "";
}

bool pq_of(Kw k, PQ* out) {
  switch (k) {
    case Kw::kIp:
      *out = PQ::kIp;
      return true;
    case Kw::kIp6:
      *out = PQ::kIp6;
      return true;
    case Kw::kArp:
      *out = PQ::kArp;
      return true;
    case Kw::kRarp:
      *out = PQ::kRarp;
      return true;
    case Kw::kTcp:
      *out = PQ::kTcp;
      return true;
    case Kw::kUdp:
      *out = PQ::kUdp;
      return true;
    case Kw::kSctp:
      *out = PQ::kSctp;
      return true;
    case Kw::kIcmp:
      *out = PQ::kIcmp;
      return true;
    case Kw::kIcmp6:
      *out = PQ::kIcmp6;
      return true;
    case Kw::kIgmp:
      *out = PQ::kIgmp;
      return true;
    case Kw::kEsp:
      *out = PQ::kEsp;
      return true;
    case Kw::kAh:
      *out = PQ::kAh;
      return true;
    default:
      return false;
  }
}

bool ip_proto_of(const std::string& s, uint8_t* num) {
  for (const auto& p : kProtoNames) {
    if (s == p.name) {
      *num = p.num;
      return true;
    }
  }
  return false;
}

// libpcap's __pcap_atoin(): 2 to 4 decimal parts of at most 255; *bits = 8 per part.
bool atoin(const std::string& s, uint32_t* v, int* bits) {
  uint32_t a = 0;
  int len = 0;
  size_t i = 0;
  for (;;) {
    uint32_t n = 0;
    size_t digits = 0;
    while (i < s.size() && s[i] != '.') {
      if (s[i] < '0' || s[i] > '9') return false;
      n = n * 10 + uint32_t(s[i] - '0');
      if (n > 255) return false;
      ++i;
      ++digits;
    }
    if (digits == 0) return false;
    a = (a << 8) | n;
    len += 8;
    if (i == s.size()) break;
    ++i;
  }
  *v = a;
  *bits = len;
  return true;
}

// (port, real protocol: 0 = tcp, udp or sctp; 6; 17), after libpcap's pcap_nametoport().
bool lookup_port(const std::string& s, uint32_t* port, uint8_t* real) {
  if (!s.empty() && s.size() <= 9 &&
      std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    *port = uint32_t(std::stoul(s));
    *real = 0;
    return true;
  }
  if (s == "dhcp") {
    *port = 67;
    *real = packet::kProtoUdp;
    return true;
  }
  int tcp = service_port(s, "tcp"), udp = service_port(s, "udp");
  if (tcp >= 0) {  // (as libpcap: the tcp port wins when the two differ)
    *port = uint32_t(tcp);
    *real = udp == tcp ? 0 : packet::kProtoTcp;
    return true;
  }
  if (udp >= 0) {
    *port = uint32_t(udp);
    *real = packet::kProtoUdp;
    return true;
  }
  return false;
}

}  // namespace tmach::query::detail
