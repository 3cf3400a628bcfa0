// Ethernet and the EtherType chain: 802.1Q/802.1ad VLAN tags (any depth), 802.1ah PBB,
// VN-Tag, Cisco FabricPath and MetaData, 802.3 length frames with LLC/SNAP, MPLS label
// stacks, PPPoE sessions, ARP/RARP, then IPv4/IPv6.
#include "packet/decode_internal.h"

namespace tmach::packet::detail {
namespace {

// ARP/RARP (RFC 826): hardware type(2) protocol type(2) hardware length(1) protocol
// length(1) operation(2), then sender hardware and protocol address, target hardware and
// protocol address. Every frame of these EtherTypes is `arp`, whatever its lengths or cut;
// the protocol addresses are kept for IPv4 (protocol length 4) with a 6-byte hardware
// address (Ethernet, 802 LANs), or the 20-byte one of IP over InfiniBand (RFC 4391).
DecodeStatus decode_arp(const uint8_t* d, uint32_t cap, uint32_t off, uint16_t type, PacketInfo& out) {
  constexpr uint16_t kHrdInfiniband = 32;
  out.ethertype = type;
  out.arp = true;
  if (off + 8 > cap) return truncated(out, "arp_truncated");
  const uint8_t* p = d + off;
  const uint32_t hlen = p[4], plen = p[5];
  if (off + 8 + 2 * (hlen + plen) > cap) return truncated(out, "arp_truncated");
  if (rd16(p + 2) == kEthIpv4 && plen == 4 && (hlen == 6 || (rd16(p) == kHrdInfiniband && hlen == 20))) {
    out.arp_addrs = true;
    out.arp_spa = IpAddr::v4(p + 8 + hlen);
    out.arp_tpa = IpAddr::v4(p + 8 + 2 * hlen + 4);
  }
  return not_ip(out, type);
}

}  // namespace

DecodeStatus decode_ethernet(const uint8_t* d, uint32_t cap, uint32_t off, PacketInfo& out) {
  if (off + 14 > cap) return truncated(out, "ethernet_truncated");
  if (!out.has_eth && off <= 0xffff) {  // the outermost Ethernet header (not one inside a tunnel)
    out.has_eth = true;
    out.eth_offset = static_cast<uint16_t>(off);
  }
  return decode_ethertype(d, cap, off + 14, rd16(d + off + 12), out);
}

DecodeStatus decode_ethertype(const uint8_t* d, uint32_t cap, uint32_t off, uint16_t type, PacketInfo& out) {
  // Every pass consumes at least 4 bytes, so the loop ends with the captured bytes.
  for (;;) {
    switch (type) {
      case kEthIpv4:
        out.ethertype = type;
        return decode_ip(d, cap, off, 4, out);
      case kEthIpv6:
        out.ethertype = type;
        return decode_ip(d, cap, off, 6, out);
      case kEthVlan:
      case kEthQinQ:
      case kEthQinQOld: {
        // A tag whose TCI was captured is recorded even when what follows is cut: the frame is
        // of that VLAN (`vlan 100`), as libpcap and Wireshark read it.
        if (off + 2 > cap) return truncated(out, "vlan_truncated");
        uint16_t vid = rd16(d + off) & 0x0fff;
        if (out.vlan_count < PacketInfo::kMaxVlans) out.vlans[out.vlan_count] = vid;
        if (out.vlan_count < 0xff) ++out.vlan_count;
        if (off + 4 > cap) return truncated(out, "vlan_truncated");
        type = rd16(d + off + 2);
        off += 4;
        continue;
      }
      case kEthMplsUc:
      case kEthMplsMc:
        return decode_mpls(d, cap, off, type, out);
      case kEthArp:
      case kEthRarp:
        return decode_arp(d, cap, off, type, out);
      case kEthPbb:  // I-TAG: flags and I-SID (4), customer destination and source MAC (12), type
        if (off + 18 > cap) return truncated(out, "pbb_truncated");
        type = rd16(d + off + 16);
        off += 18;
        continue;
      case kEthVnTag:  // tag (4), then the EtherType
        if (off + 6 > cap) return truncated(out, "vntag_truncated");
        type = rd16(d + off + 4);
        off += 6;
        continue;
      case kEthFabricPath:  // FTAG/TTL (2), then the classic Ethernet frame: destination, source, type
        if (off + 16 > cap) return truncated(out, "fabricpath_truncated");
        type = rd16(d + off + 14);
        off += 16;
        continue;
      case kEthCmd:  // version(1) length(1) option length/type(2) SGT(2), then the EtherType
        if (off + 8 > cap) return truncated(out, "cmd_truncated");
        type = rd16(d + off + 6);
        off += 8;
        continue;
      case kEthPppoeSess:  // version/type(1) code(1) session(2) length(2), then PPP's protocol
        if (off + 6 > cap) return truncated(out, "pppoe_truncated");
        if (d[off] != 0x11 || d[off + 1] != 0) return not_ip(out, type);
        out.ethertype = type;
        return decode_ppp(d, cap, off + 6, out);
      default:
        break;
    }
    if (type >= 0x0600) return not_ip(out, type);
    // An 802.3 length: LLC follows. SNAP (aa aa 03) with an EtherType OUI (000000 RFC 1042,
    // 0000f8 802.1H) carries an EtherType; other OUIs carry their own protocol ids.
    if (off + 3 > cap) return truncated(out, "llc_truncated");
    if (d[off] != 0xaa || d[off + 1] != 0xaa || d[off + 2] != 0x03) return not_ip(out, 0);
    if (off + 8 > cap) return truncated(out, "snap_truncated");
    if (d[off + 3] != 0 || d[off + 4] != 0 || (d[off + 5] != 0 && d[off + 5] != 0xf8)) return not_ip(out, 0);
    type = rd16(d + off + 6);
    off += 8;
  }
}

DecodeStatus decode_mpls(const uint8_t* d, uint32_t cap, uint32_t off, uint16_t type, PacketInfo& out) {
  // Label(20) TC(3) S(1) TTL(8); pop until the bottom-of-stack bit.
  for (;;) {
    if (off + 4 > cap) return truncated(out, "mpls_truncated");
    if (out.mpls_count < 0xff) ++out.mpls_count;
    bool bottom = d[off + 2] & 0x01;
    off += 4;
    if (bottom) break;
  }
  if (off + 1 > cap) return truncated(out, "mpls_truncated");
  switch (d[off] >> 4) {
    case 4:
      out.ethertype = kEthIpv4;
      return decode_ip(d, cap, off, 4, out);
    case 6:
      out.ethertype = kEthIpv6;
      return decode_ip(d, cap, off, 6, out);
    default:  // pseudowire (control word 0), or something else
      return not_ip(out, type);
  }
}

}  // namespace tmach::packet::detail
