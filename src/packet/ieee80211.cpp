// IEEE 802.11 data frames, with or without a radiotap header in front: the 802.11 MAC
// header, then LLC/SNAP with an EtherType. Management and control frames, null data and
// protected (encrypted) frames carry nothing to decode: stored and counted as non-IP.
#include "packet/decode_internal.h"
#include "packet/decoder.h"

namespace tmach::packet::detail {

// Radiotap: version(1) pad(1) length(2, little-endian) present flags ..., then 802.11.
DecodeStatus decode_radiotap(const uint8_t* d, uint32_t cap, PacketInfo& out) {
  if (cap < 4) return truncated(out, "radiotap_truncated");
  if (d[0] != 0) return malformed(out, "radiotap_bad_version");
  uint32_t len = rd16le(d + 2);
  if (len < 8) return malformed(out, "radiotap_bad_length");
  if (len > cap) return truncated(out, "radiotap_truncated");
  const int flags = radiotap_flags(d, len);
  return decode_ieee80211(d, cap, len, out, flags >= 0 && (flags & kRadiotapDataPad));
}

DecodeStatus decode_ieee80211(const uint8_t* d, uint32_t cap, uint32_t off, PacketInfo& out, bool datapad) {
  // Frame control(2) duration(2) addr1 addr2 addr3 (18) sequence(2) [addr4 (6)] [QoS (2)] [HT (4)]
  if (off + 2 > cap) return truncated(out, "ieee80211_truncated");
  const uint8_t fc0 = d[off], fc1 = d[off + 1];
  const uint8_t type = (fc0 >> 2) & 3, subtype = fc0 >> 4;
  if ((fc0 & 3) != 0) return malformed(out, "ieee80211_bad_version");
  if (type != 2) return not_ip(out, 0);                        // management, control
  if ((subtype & 0x4) || (fc1 & 0x40)) return not_ip(out, 0);  // no data, or protected
  uint32_t hlen = 24;
  if ((fc1 & 3) == 3) hlen += 6;  // to and from the DS: a fourth address
  if (subtype & 0x8) {            // QoS data
    hlen += 2;
    if (fc1 & 0x80) hlen += 4;  // +HTC
  }
  if (datapad) hlen = (hlen + 3) & ~3u;  // (as libpcap reads it)
  off += hlen;
  if (off + 8 > cap) return truncated(out, "ieee80211_truncated");
  if (d[off] != 0xaa || d[off + 1] != 0xaa || d[off + 2] != 0x03) return not_ip(out, 0);
  return decode_ethertype(d, cap, off + 8, rd16(d + off + 6), out);
}

}  // namespace tmach::packet::detail

namespace tmach::packet {

int radiotap_flags(const uint8_t* d, uint32_t cap) noexcept {
  // version(1) pad(1) length(2) present(4) [more present words while bit 31 is set], then the
  // fields in bit order, each aligned to its size: TSFT (bit 0, 8 bytes), Flags (bit 1, 1 byte).
  if (cap < 8) return -1;
  const uint32_t len = detail::rd16le(d + 2) < cap ? detail::rd16le(d + 2) : cap;
  const uint32_t present = detail::rd32le(d + 4);
  uint32_t off = 8;
  for (uint32_t word = present; word & 0x80000000u; off += 4) {
    if (off + 4 > len) return -1;
    word = detail::rd32le(d + off);
  }
  if (!(present & 2)) return -1;
  if (present & 1) off = ((off + 7) & ~7u) + 8;
  return off < len ? d[off] : -1;
}

}  // namespace tmach::packet
