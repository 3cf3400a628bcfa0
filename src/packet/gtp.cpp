// GTP-U version 1 (3GPP TS 29.281, UDP 2152): flags(1: version 3 bits, PT, E, S, PN)
// message type(1) length(2) TEID(4), then sequence number(2) N-PDU(1) next extension
// type(1) when any of E/S/PN is set, then extension headers (length in 4-byte words, the
// last byte names the next one). A G-PDU (type 255) carries an IPv4 or IPv6 datagram.
#include "packet/decode_internal.h"

namespace tmach::packet::detail {

DecodeStatus parse_gtpu(const uint8_t* d, uint32_t lim, uint32_t off, PacketInfo& out, Encap& e) {
  if (off + 8 > lim) return truncated(out, "gtp_truncated");
  const uint8_t flags = d[off];
  if ((flags >> 5) != 1 || !(flags & 0x10)) return DecodeStatus::kOk;  // not GTPv1 (GTP' or v2)
  if (d[off + 1] != 0xff) return DecodeStatus::kOk;                    // signalling (echo, ...)
  e.id = rd32(d + off + 4);
  uint32_t p = off + 8;
  if (flags & 0x07) {
    if (p + 4 > lim) return truncated(out, "gtp_truncated");
    uint8_t next = d[p + 3];
    p += 4;
    while (next != 0) {
      if (p + 1 > lim) return truncated(out, "gtp_extension_truncated");
      uint32_t n = d[p] * 4u;
      if (n == 0) return malformed(out, "gtp_bad_extension_length");
      if (p + n > lim) return truncated(out, "gtp_extension_truncated");
      next = d[p + n - 1];
      p += n;
    }
  }
  const uint8_t v = p < lim ? d[p] >> 4 : 4;  // an empty G-PDU, or a cut one: the caller tells

  if (v != 4 && v != 6) return DecodeStatus::kOk;  // PPP or another PDU type: not decoded
  e.what = Encap::kIp;
  e.version = v;
  e.off = p;
  return DecodeStatus::kOk;
}

}  // namespace tmach::packet::detail
