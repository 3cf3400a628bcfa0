// What the decoder learns about one frame. Plain data, filled by decode() (decoder.h),
// read by the connection table, the index builder and the query evaluator.
//
// Layers: `ip[0]` is the outermost IP header, `ip[ip_count-1]` the innermost. Without
// tunnels there is exactly one. Tunnel decapsulation appends layers;
// everything downstream already iterates over all of them, so "host X matches any layer"
// needs no change elsewhere.
#pragma once

#include <array>
#include <cstdint>
#include <cstring>
#include <string>

namespace tmach::packet {

// An IP address in one 16-byte form: IPv4 is stored v4-mapped (::ffff:a.b.c.d), so the
// index, CIDR matching and flow keys treat both families alike.
struct IpAddr {
  std::array<uint8_t, 16> b{};

  static IpAddr v4(const uint8_t* p) {
    IpAddr a;
    a.b[10] = 0xff;
    a.b[11] = 0xff;
    std::memcpy(&a.b[12], p, 4);
    return a;
  }
  static IpAddr v6(const uint8_t* p) {
    IpAddr a;
    std::memcpy(a.b.data(), p, 16);
    return a;
  }
  bool is_v4() const {
    static constexpr uint8_t kPrefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    return std::memcmp(b.data(), kPrefix, 12) == 0;
  }
  // True when the first `bits` bits equal those of `net` (bits counted in the 128-bit form:
  // an IPv4 /24 is 96 + 24).
  bool in_prefix(const IpAddr& net, unsigned bits) const {
    unsigned full = bits / 8, rest = bits % 8;
    if (std::memcmp(b.data(), net.b.data(), full) != 0) return false;
    if (rest == 0) return true;
    uint8_t mask = static_cast<uint8_t>(0xff00u >> rest);
    return (b[full] & mask) == (net.b[full] & mask);
  }
  // Two 64-bit words each (the byte order of a lexicographic compare: big-endian), not
  // memcmp calls: the connection key orders its two addresses for every packet.
  bool operator==(const IpAddr& o) const { return word(0) == o.word(0) && word(1) == o.word(1); }
  bool operator!=(const IpAddr& o) const { return !(*this == o); }
  bool operator<(const IpAddr& o) const {
    const uint64_t x = word(0), y = o.word(0);
    if (x != y) return __builtin_bswap64(x) < __builtin_bswap64(y);
    return __builtin_bswap64(word(1)) < __builtin_bswap64(o.word(1));
  }
  uint64_t word(int i) const {
    uint64_t w;
    std::memcpy(&w, b.data() + 8 * i, 8);
    return w;
  }
  std::string str() const;  // "10.0.0.1" or "2001:db8::1"
};

// IP protocol numbers used by name.
enum : uint8_t {
  kProtoIcmp = 1,
  kProtoIgmp = 2,
  kProtoIpIp = 4,
  kProtoTcp = 6,
  kProtoUdp = 17,
  kProtoDccp = 33,
  kProtoIpv6 = 41,
  kProtoGre = 47,
  kProtoEsp = 50,
  kProtoAh = 51,
  kProtoIcmp6 = 58,
  kProtoNoNext6 = 59,
  kProtoL2tp = 115,  // L2TPv3 over IP
  kProtoSctp = 132,
};

// The protocols whose ports tcpdump's `port` and `portrange` match: TCP, UDP and SCTP (libpcap:
// not DCCP, whose header has ports too). The one rule for the index's port keys, the query's
// verdict, flow records' port keys and an alert's ports.
constexpr bool port_protocol(uint8_t proto) noexcept {
  return proto == kProtoTcp || proto == kProtoUdp || proto == kProtoSctp;
}

// TCP flag bits as in the header's 13th byte.
enum : uint8_t {
  kTcpFin = 0x01,
  kTcpSyn = 0x02,
  kTcpRst = 0x04,
  kTcpPsh = 0x08,
  kTcpAck = 0x10,
  kTcpUrg = 0x20,
};

struct IpLayer {
  uint8_t version = 0;  // 4 or 6
  IpAddr src, dst;
  uint8_t header_proto = 0;  // IPv4 protocol field / IPv6 fixed header's next header
  uint8_t proto = 0;         // transport protocol after IPv6 extension headers
  bool fragment = false;     // part of a fragmented datagram (MF set or offset > 0)
  uint16_t frag_offset = 0;  // in 8-byte units; > 0 means no transport header here
  uint32_t frag_id = 0;      // IPv4 id or IPv6 fragment header identification
  uint16_t l3_offset = 0;    // byte offset of this IP header in the frame
  uint16_t l4_offset = 0;    // byte offset of the transport header (valid if has_l4)
  bool has_l4 = false;       // transport header fully present (ports/flags valid)
  bool has_ports = false;    // TCP, UDP, SCTP (and DCCP): sport/dport valid
  uint16_t sport = 0, dport = 0;
  uint8_t tcp_flags = 0;    // TCP only
  uint32_t l4_payload = 0;  // transport payload bytes present per the headers (TCP/UDP)
  // How this layer was reached: kTunnelNone for the outermost layer, else the encapsulation
  // between the previous layer and this one (see TunnelKind), with its identifier if it has
  // one (VXLAN/Geneve VNI, GTP TEID, GRE key, L2TPv2 tunnel << 16 | session, L2TPv3
  // session, PPTP call id).
  uint8_t tunnel = 0;
  uint32_t tunnel_id = 0;
  // ESP (proto 50) / AH (51): the Security Parameters Index, when its bytes are present.
  bool has_spi = false;
  uint32_t spi = 0;
};

// The IPv6 extension headers the decoder follows to the transport protocol (ipv6.cpp): an
// IpLayer's `proto` is never one of them (unless the chain was cut short), its `header_proto`
// may be.
constexpr bool is_ipv6_extension_header(uint8_t nh) {
  return nh == 0 || nh == 43 || nh == 44 || nh == 60 || nh == 135;
}

// What carried an IP layer inside the previous one (IpLayer::tunnel).
enum TunnelKind : uint8_t {
  kTunnelNone = 0,
  kTunnelIpIp,     // IPv4/IPv6 directly in IPv4/IPv6 (protocol 4 or 41)
  kTunnelGre,      // GRE (v0 and PPTP's v1, ERSPAN, WCCP), also GRE-in-UDP (4754)
  kTunnelVxlan,    // VXLAN (UDP 4789) and VXLAN-GPE (4790)
  kTunnelGeneve,   // Geneve (UDP 6081)
  kTunnelGtp,      // GTP-U v1 (UDP 2152)
  kTunnelTeredo,   // Teredo (UDP 3544)
  kTunnelAyiya,    // AYIYA (UDP 5072)
  kTunnelL2tp,     // L2TPv2 data (UDP 1701), L2TPv3 data (IP protocol 115 or UDP 1701)
  kTunnelMplsUdp,  // MPLS-in-UDP (UDP 6635)
  kTunnelKinds,
};
const char* tunnel_name(uint8_t kind);  // "gre", "vxlan", ...; "none" for 0

// Why a frame was not fully decoded. Anything but kOk is still stored and counted.
enum class DecodeStatus : uint8_t {
  kOk = 0,           // decoded down to the transport header (or a known non-IP payload)
  kNotIp,            // a link-layer frame without IP (ARP, LLDP, STP, ...): fine, counted by ethertype
  kTruncated,        // a header ran past the captured length
  kMalformed,        // a header field is impossible (bad version, header length, ...)
  kUnsupportedLink,  // a link type the decoder does not know
};
const char* to_string(DecodeStatus s);

// Everything decode() learns about a frame except its IP layers. decode() resets this part
// before each frame and each IP layer as it appends it (ipv4.cpp, ipv6.cpp), so a frame
// costs a reset of what it uses rather than of all kMaxIpLayers layers; layers at or beyond
// ip_count hold stale data and are never read.
struct FrameInfo {
  static constexpr int kMaxVlans = 4;

  uint32_t linktype = 0;  // LINKTYPE_* of the frame
  DecodeStatus status = DecodeStatus::kOk;
  const char* anomaly = nullptr;  // short static name of what went wrong ("ipv4_bad_ihl"), or null

  // Link layer.
  bool has_eth = false;     // Ethernet addresses present at frame offset eth_offset
  uint16_t eth_offset = 0;  // offset of the destination MAC (source MAC follows)
  uint16_t ethertype = 0;   // the EtherType that carried the network layer (after VLAN/MPLS), 0 if none
  uint8_t vlan_count = 0;
  uint16_t vlans[kMaxVlans] = {};  // VLAN ids, outermost first
  uint8_t mpls_count = 0;

  // ARP / RARP: `arp` for every frame of EtherType 0x0806 or 0x8035 (whatever its hardware
  // and protocol, even cut short); `arp_addrs` when it also gave the sender and target
  // protocol addresses (IPv4 with 6-byte hardware addresses, or IP over InfiniBand's 20).
  bool arp = false;
  bool arp_addrs = false;
  IpAddr arp_spa, arp_tpa;  // valid if arp_addrs

  uint8_t ip_count = 0;
};

struct PacketInfo : FrameInfo {
  static constexpr int kMaxIpLayers = 4;

  IpLayer ip[kMaxIpLayers];  // ip[0 .. ip_count - 1]

  const IpLayer* inner() const { return ip_count ? &ip[ip_count - 1] : nullptr; }
  bool tunnelled() const { return ip_count > 1; }
};

}  // namespace tmach::packet
