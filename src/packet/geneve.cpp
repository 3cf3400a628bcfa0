// Geneve (RFC 8926, UDP 6081): version(2) option length(6, 4-byte words) flags(1)
// protocol type(2) VNI(3) reserved(1), options, then the payload by EtherType.
#include "packet/decode_internal.h"

namespace tmach::packet::detail {

DecodeStatus parse_geneve(const uint8_t* d, uint32_t lim, uint32_t off, PacketInfo& out, Encap& e) {
  if (off + 8 > lim) return truncated(out, "geneve_truncated");
  if ((d[off] >> 6) != 0) return DecodeStatus::kOk;  // an unknown version: not decoded
  const uint32_t hlen = 8 + (d[off] & 0x3fu) * 4;
  const uint16_t proto = rd16(d + off + 2);
  if (off + hlen > lim) return truncated(out, "geneve_options_truncated");
  e.id = rd32(d + off + 4) >> 8;
  e.off = off + hlen;
  if (proto == kEthTeb) {
    e.what = Encap::kEthernet;
  } else {
    e.what = Encap::kEthertype;
    e.type = proto;
  }
  return DecodeStatus::kOk;
}

}  // namespace tmach::packet::detail
