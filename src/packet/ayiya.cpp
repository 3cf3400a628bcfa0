// AYIYA ("anything in anything", UDP 5072): id length(4 bits, log2) id type(4) signature
// length(4, 4-byte words) hash method(4) auth method(4) opcode(4) next header(8)
// epoch(4), identity, signature. Opcode 1 forwards the datagram of `next header`.
#include "packet/decode_internal.h"

namespace tmach::packet::detail {

DecodeStatus parse_ayiya(const uint8_t* d, uint32_t lim, uint32_t off, PacketInfo& out, Encap& e) {
  if (off + 8 > lim) return truncated(out, "ayiya_truncated");
  const uint32_t hlen = 8 + (1u << (d[off] >> 4)) + (d[off + 1] >> 4) * 4u;
  const uint8_t opcode = d[off + 2] & 0x0f, next = d[off + 3];
  if (opcode != 1 || (next != kProtoIpv6 && next != kProtoIpIp)) return DecodeStatus::kOk;
  if (off + hlen > lim) return truncated(out, "ayiya_truncated");
  e.what = Encap::kIp;
  e.version = next == kProtoIpv6 ? 6 : 4;
  e.off = off + hlen;
  return DecodeStatus::kOk;
}

}  // namespace tmach::packet::detail
