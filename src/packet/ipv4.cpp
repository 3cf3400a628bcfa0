// IPv4 header (RFC 791): version, header length with options, total length, fragments.
#include "packet/decode_internal.h"

namespace tmach::packet::detail {

DecodeStatus decode_ipv4(const uint8_t* d, uint32_t cap, uint32_t off, PacketInfo& out, IpPayload& pl) {
  if (off + 1 > cap) return truncated(out, "ipv4_truncated");
  const uint8_t* p = d + off;
  const uint32_t hlen = (p[0] & 0x0f) * 4u;
  const char* bad = (p[0] >> 4) != 4 ? "ipv4_bad_version" : hlen < 20 ? "ipv4_bad_ihl" : nullptr;
  if (off + 20 > cap) return bad ? malformed(out, bad) : truncated(out, "ipv4_truncated");
  // Inside a tunnel such bytes are more likely a payload taken for the tunnel than an IP header
  // (junk on UDP 4789 that passed VXLAN's checks): the packet stays its outer layers, as before
  // (a layer of garbage addresses would be its innermost flow: the connection and cutoff).
  // libpcap's filters look at the outer headers only.
  if (bad && out.ip_count > 0) return malformed(out, bad);

  IpLayer& l = out.ip[out.ip_count++];
  l = IpLayer{};
  l.version = 4;
  l.l3_offset = static_cast<uint16_t>(off);
  l.src = IpAddr::v4(p + 12);
  l.dst = IpAddr::v4(p + 16);
  l.header_proto = l.proto = p[9];
  // An impossible version (for the EtherType, PPP protocol, ... that said IPv4) or header
  // length: the layer is its addresses and protocol at their fixed offsets, where libpcap's
  // `host`, `net`, `ip proto` read them, and nothing more — no fragment, no transport, no
  // tunnel (decode_ip() stops at the failure).
  if (bad) return malformed(out, bad);

  uint32_t total = rd16(p + 2);
  if (total == 0) {
    // Written by a sender with TCP segmentation offload before the NIC filled it in
    // (tcpdump and Wireshark guess the same): the datagram is what was captured.
    total = cap - off;
  } else if (total < hlen) {
    return malformed(out, "ipv4_bad_total_length");  // the same: addresses and protocol only
  }
  l.frag_id = rd16(p + 4);
  uint16_t frag = rd16(p + 6);
  l.frag_offset = frag & 0x1fff;
  l.fragment = (frag & 0x2000) || l.frag_offset != 0;
  if (off + hlen > cap) return truncated(out, "ipv4_options_truncated");

  pl.off = off + hlen;
  pl.lim = off + total;
  pl.has_transport = l.frag_offset == 0;
  return DecodeStatus::kOk;
}

}  // namespace tmach::packet::detail
