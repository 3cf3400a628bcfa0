// PPP (RFC 1661), optionally in HDLC-like framing (RFC 1662: ff 03 address/control), with
// or without protocol-field compression (a one-byte protocol has its low bit set). Carried
// by the PPP link types, PPPoE sessions, PPTP (GRE v1) and L2TPv2.
#include "packet/decode_internal.h"

namespace tmach::packet::detail {

DecodeStatus decode_ppp(const uint8_t* d, uint32_t cap, uint32_t off, PacketInfo& out) {
  if (off + 1 > cap) return truncated(out, "ppp_truncated");
  if (d[off] == 0xff) {  // the address byte (0xff is no protocol)
    if (off + 2 > cap) return truncated(out, "ppp_truncated");
    if (d[off + 1] == 0x03) off += 2;
  }
  if (off + 1 > cap) return truncated(out, "ppp_truncated");
  uint16_t proto;
  if (d[off] & 1) {
    proto = d[off];
    off += 1;
  } else {
    if (off + 2 > cap) return truncated(out, "ppp_truncated");
    proto = rd16(d + off);
    off += 2;
  }
  switch (proto) {
    case 0x0021:
      return decode_ip(d, cap, off, 4, out);
    case 0x0057:
      return decode_ip(d, cap, off, 6, out);
    case 0x0281:
      return decode_mpls(d, cap, off, kEthMplsUc, out);
    default:  // LCP, IPCP, ...: keeps the EtherType that carried PPP (PPPoE), 0 on a PPP link
      return not_ip(out, out.ethertype);
  }
}

}  // namespace tmach::packet::detail
