// Teredo (RFC 4380, UDP 3544): IPv6 in UDP, optionally behind an authentication indicator
// (00 01, id length, auth length, id, auth, nonce(8), confirmation(1)) and/or an origin
// indicator (00 00, port(2), address(4)).
#include "packet/decode_internal.h"

namespace tmach::packet::detail {

DecodeStatus parse_teredo(const uint8_t* d, uint32_t lim, uint32_t off, PacketInfo& out, Encap& e) {
  if (off + 2 <= lim && d[off] == 0 && d[off + 1] == 1) {
    if (off + 4 > lim) return truncated(out, "teredo_truncated");
    off += 4 + d[off + 2] + d[off + 3] + 9u;
  }
  if (off + 2 <= lim && d[off] == 0 && d[off + 1] == 0) off += 8;
  if (off + 40 > lim) return DecodeStatus::kOk;  // too short for IPv6: not Teredo data
  if ((d[off] >> 4) != 6) return DecodeStatus::kOk;
  // The UDP payload is exactly one IPv6 datagram.
  if (off + 40 + rd16(d + off + 4) < lim) return DecodeStatus::kOk;
  e.what = Encap::kIp;
  e.version = 6;
  e.off = off;
  return DecodeStatus::kOk;
}

}  // namespace tmach::packet::detail
