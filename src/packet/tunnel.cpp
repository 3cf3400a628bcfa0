// The step after an IP layer: IPsec SPIs, and tunnels, decapsulated to the innermost flow.
//
// Which tunnel: IP protocol 4/41 (IP-in-IP), 47 (GRE), 115 (L2TPv3); UDP by well-known
// port, the destination port first, then the source port: 4789 VXLAN, 4790 VXLAN-GPE,
// 6081 Geneve, 2152 GTP-U, 3544 Teredo, 5072 AYIYA, 1701 L2TPv2/v3, 4754 GRE-in-UDP,
// 6635 MPLS-in-UDP. ESP in UDP on port 4500 (IPsec NAT traversal, RFC 3948) is no tunnel tm
// looks into (its payload is encrypted), but its SPI is the UDP layer's, as ESP's is its IP layer's.
// A UDP payload that does not look like its port's tunnel stays plain UDP. The depth is
// bounded by PacketInfo::kMaxIpLayers: a tunnel beyond it is "tunnel_too_deep" (kMalformed)
// with the layers so far intact. Every tunnel starts from an IP layer, so the recursion
// (decode_ip -> decode_tunnel -> decode_ip ...) is at most kMaxIpLayers deep.
#include "packet/decode_internal.h"

namespace tmach::packet::detail {
namespace {

enum : uint16_t {
  kPortL2tp = 1701,
  kPortGtpu = 2152,
  kPortIpsecNatT = 4500,
  kPortTeredo = 3544,
  kPortGreUdp = 4754,
  kPortVxlan = 4789,
  kPortVxlanGpe = 4790,
  kPortAyiya = 5072,
  kPortGeneve = 6081,
  kPortMplsUdp = 6635,
};

// MPLS-in-UDP (RFC 7510): the label stack follows the UDP header directly.
DecodeStatus parse_mpls_udp(const uint8_t*, uint32_t, uint32_t off, PacketInfo&, Encap& e) {
  e.what = Encap::kMpls;
  e.type = kEthMplsUc;
  e.off = off;
  return DecodeStatus::kOk;
}

// The tunnels UDP ports stand for: the kind counted and indexed, and its header's parser.
struct UdpTunnel {
  uint16_t port;
  uint8_t kind;
  DecodeStatus (*parse)(const uint8_t* d, uint32_t lim, uint32_t off, PacketInfo& out, Encap& e);
};
constexpr UdpTunnel kUdpTunnels[] = {
    {kPortL2tp, kTunnelL2tp, parse_l2tp},           {kPortGtpu, kTunnelGtp, parse_gtpu},
    {kPortTeredo, kTunnelTeredo, parse_teredo},     {kPortGreUdp, kTunnelGre, parse_gre},
    {kPortVxlan, kTunnelVxlan, parse_vxlan},        {kPortVxlanGpe, kTunnelVxlan, parse_vxlan_gpe},
    {kPortAyiya, kTunnelAyiya, parse_ayiya},        {kPortGeneve, kTunnelGeneve, parse_geneve},
    {kPortMplsUdp, kTunnelMplsUdp, parse_mpls_udp},
};

const UdpTunnel* udp_tunnel(uint16_t port) {
  for (const auto& t : kUdpTunnels)
    if (t.port == port) return &t;
  return nullptr;
}

// ESP: SPI(4) sequence(4); AH: next header(1) length(1) reserved(2) SPI(4).
DecodeStatus ipsec_spi(const uint8_t* d, uint32_t cap, uint32_t off, IpLayer& l, PacketInfo& out) {
  const uint32_t at = l.proto == kProtoEsp ? off : off + 4;
  if (at + 4 > cap) return truncated(out, l.proto == kProtoEsp ? "esp_truncated" : "ah_truncated");
  l.has_spi = true;
  l.spi = rd32(d + at);
  return DecodeStatus::kOk;
}

// UDP on port 4500 (RFC 3948): ESP, SPI(4) sequence(4), unless its first 4 bytes are zero (the
// non-ESP marker of IKE) or it is a 1-byte NAT keepalive.
void nat_t_spi(const uint8_t* d, uint32_t cap, uint32_t off, IpLayer& l) {
  if (l.l4_payload < 8 || off + 4 > cap) return;
  const uint32_t spi = rd32(d + off);
  if (spi == 0) return;
  l.has_spi = true;
  l.spi = spi;
}

}  // namespace

DecodeStatus decode_tunnel(const uint8_t* d, uint32_t cap, const IpPayload& pl, PacketInfo& out) {
  IpLayer& l = out.ip[out.ip_count - 1];
  if (l.frag_offset != 0) return DecodeStatus::kOk;  // the tunnel header is in the first fragment
  // The inner frame ends with the outer datagram (bytes past it are link padding).
  const uint32_t lim = pl.lim < cap ? pl.lim : cap;
  Encap e;
  uint8_t kind = kTunnelNone;
  DecodeStatus s = DecodeStatus::kOk;
  switch (l.proto) {
    case kProtoEsp:
    case kProtoAh:
      return ipsec_spi(d, cap, pl.off, l, out);
    case kProtoIpIp:
    case kProtoIpv6:
      if (!pl.has_transport) return DecodeStatus::kOk;
      kind = kTunnelIpIp;
      e.what = Encap::kIp;
      e.version = l.proto == kProtoIpIp ? 4 : 6;
      e.off = pl.off;
      break;
    case kProtoGre:
      if (!pl.has_transport) return DecodeStatus::kOk;
      kind = kTunnelGre;
      s = parse_gre(d, lim, pl.off, out, e);
      break;
    case kProtoL2tp:
      if (!pl.has_transport) return DecodeStatus::kOk;
      kind = kTunnelL2tp;
      s = parse_l2tpv3_session(d, lim, pl.off, out, e);
      break;
    case kProtoUdp: {
      if (!l.has_l4) return DecodeStatus::kOk;
      // (The destination port first, as for the tunnels: a tunnel's packet from port 4500 is the tunnel's.)
      if (l.dport == kPortIpsecNatT || (l.sport == kPortIpsecNatT && !udp_tunnel(l.dport))) {
        nat_t_spi(d, lim, pl.off + 8, l);
        return DecodeStatus::kOk;
      }
      const UdpTunnel* t = udp_tunnel(l.dport);
      if (!t) t = udp_tunnel(l.sport);
      if (!t) return DecodeStatus::kOk;
      kind = t->kind;
      const uint32_t end = pl.off + 8 + l.l4_payload;
      s = t->parse(d, end < lim ? end : lim, pl.off + 8, out, e);
      break;
    }
    default:
      return DecodeStatus::kOk;
  }
  if (s != DecodeStatus::kOk || e.what == Encap::kNone) return s;
  if (e.off >= lim)  // nothing inside: fine if the datagram ends here, else the capture was cut
    return lim < pl.lim ? truncated(out, "tunnel_payload_truncated") : s;
  if (out.ip_count >= PacketInfo::kMaxIpLayers) return malformed(out, "tunnel_too_deep");

  const uint16_t ethertype = out.ethertype;  // the outermost network layer's stays
  const uint8_t first = out.ip_count;
  switch (e.what) {
    case Encap::kIp:
      s = decode_ip(d, lim, e.off, e.version, out);
      break;
    case Encap::kEthernet:
      s = decode_ethernet(d, lim, e.off, out);
      break;
    case Encap::kEthertype:
      s = decode_ethertype(d, lim, e.off, e.type, out);
      break;
    case Encap::kMpls:
      s = decode_mpls(d, lim, e.off, e.type, out);
      break;
    case Encap::kPpp:
      s = decode_ppp(d, lim, e.off, out);
      break;
    case Encap::kIeee80211:
      s = decode_ieee80211(d, lim, e.off, out);
      break;
    case Encap::kNone:
      break;
  }
  if (out.ip_count > first) {
    out.ip[first].tunnel = kind;
    out.ip[first].tunnel_id = e.id;
  }
  out.ethertype = ethertype;
  if (s == DecodeStatus::kNotIp) {  // ARP, LCP, ... inside: the packet is its outer layers
    out.status = DecodeStatus::kOk;
    s = DecodeStatus::kOk;
  }
  return s;
}

}  // namespace tmach::packet::detail
