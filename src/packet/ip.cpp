// The network layer as the link layers see it: one IP layer, its transport header, then
// whatever tunnel it carries (tunnel.cpp), which comes back here for the inner datagram.
#include "packet/decode_internal.h"

namespace tmach::packet::detail {

DecodeStatus decode_ip(const uint8_t* d, uint32_t cap, uint32_t off, uint8_t version, PacketInfo& out) {
  if (off >= cap) return truncated(out, "ip_truncated");
  if (version == 0) {
    version = d[off] >> 4;
    if (version != 4 && version != 6) return malformed(out, "ip_bad_version");
  }
  if (out.ethertype == 0) out.ethertype = version == 4 ? kEthIpv4 : kEthIpv6;
  if (out.ip_count >= PacketInfo::kMaxIpLayers) return malformed(out, "tunnel_too_deep");
  // Offsets are stored in 16 bits; only absurd frames (thousands of VLAN tags) get here.
  if (off > 0xffff) return malformed(out, "ip_offset_too_large");

  IpPayload pl;
  DecodeStatus s = version == 4 ? decode_ipv4(d, cap, off, out, pl) : decode_ipv6(d, cap, off, out, pl);
  if (s != DecodeStatus::kOk) return s;
  const IpLayer& l = out.ip[out.ip_count - 1];
  if (pl.has_transport) {
    s = decode_transport(d, cap, pl, out.ip[out.ip_count - 1], out);
    if (s != DecodeStatus::kOk) return s;
  }
  // Only these protocols can lead further (the common TCP case returns here).
  switch (l.proto) {
    case kProtoUdp:
    case kProtoIpIp:
    case kProtoIpv6:
    case kProtoGre:
    case kProtoEsp:
    case kProtoAh:
    case kProtoL2tp:
      return decode_tunnel(d, cap, pl, out);
    default:
      return s;
  }
}

}  // namespace tmach::packet::detail
