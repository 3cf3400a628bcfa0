// IEEE 802.11 data frames, with or without a radiotap header in front: the 802.11 MAC
// header, then LLC/SNAP with an EtherType. Management and control frames, null data and
// protected (encrypted) frames carry nothing to decode: stored and counted as non-IP.
#include "packet/decode_internal.h"

namespace tmach::packet::detail {

// Radiotap: version(1) pad(1) length(2, little-endian) present flags ..., then 802.11.
DecodeStatus decode_radiotap(const uint8_t* d, uint32_t cap, PacketInfo& out) {
  if (cap < 4) return truncated(out, "radiotap_truncated");
  if (d[0] != 0) return malformed(out, "radiotap_bad_version");
  uint32_t len = rd16le(d + 2);
  if (len < 8) return malformed(out, "radiotap_bad_length");
  if (len > cap) return truncated(out, "radiotap_truncated");
  return decode_ieee80211(d, cap, len, out);
}

DecodeStatus decode_ieee80211(const uint8_t* d, uint32_t cap, uint32_t off, PacketInfo& out) {
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
  off += hlen;
  if (off + 8 > cap) return truncated(out, "ieee80211_truncated");
  if (d[off] != 0xaa || d[off + 1] != 0xaa || d[off + 2] != 0x03) return not_ip(out, 0);
  return decode_ethertype(d, cap, off + 8, rd16(d + off + 6), out);
}

}  // namespace tmach::packet::detail
