// The network layer as the link layers see it: one IP layer, then its transport header.
//
// Tunnels (a later issue) go here: after a layer, look at pl/proto (IP-in-IP, GRE, UDP
// ports of VXLAN/GENEVE/...), find the inner datagram's offset and loop, appending layers
// up to PacketInfo::kMaxIpLayers. decode_ipv4/decode_ipv6 already append rather than set
// ip[0], and decode_transport works on any layer.
#include "packet/decode_internal.h"

namespace tmach::packet::detail {

DecodeStatus decode_ip(const uint8_t* d, uint32_t cap, uint32_t off, uint8_t version, PacketInfo& out) {
  if (off >= cap) return truncated(out, "ip_truncated");
  if (version == 0) {
    version = d[off] >> 4;
    if (version != 4 && version != 6) return malformed(out, "ip_bad_version");
  }
  if (out.ethertype == 0) out.ethertype = version == 4 ? kEthIpv4 : kEthIpv6;
  if (out.ip_count >= PacketInfo::kMaxIpLayers) return malformed(out, "ip_too_many_layers");
  // Offsets are stored in 16 bits; only absurd frames (thousands of VLAN tags) get here.
  if (off > 0xffff) return malformed(out, "ip_offset_too_large");

  IpPayload pl;
  DecodeStatus s = version == 4 ? decode_ipv4(d, cap, off, out, pl) : decode_ipv6(d, cap, off, out, pl);
  if (s != DecodeStatus::kOk || !pl.has_transport) return s;
  return decode_transport(d, cap, pl, out.ip[out.ip_count - 1], out);
}

}  // namespace tmach::packet::detail
