// Transport headers: TCP, UDP, SCTP, DCCP (ports), ICMP and ICMPv6 (no ports).
//
// A header must fit both the captured bytes (else kTruncated) and the datagram as its IP
// length field says (else kMalformed: bytes past it are padding, not this header). Ports
// are kept as soon as their 4 bytes are there (has_ports), even if the rest of the header
// is cut; has_l4 means the whole header is there.
#include "packet/decode_internal.h"

namespace tmach::packet::detail {
namespace {

enum : uint8_t { kProtoDccp = 33 };

// 0 when [off, off + n) is inside the datagram and captured, else the status to report.
inline DecodeStatus fits(uint32_t off, uint32_t n, uint32_t cap, uint32_t lim) {
  if (off + n > lim) return DecodeStatus::kMalformed;
  if (off + n > cap) return DecodeStatus::kTruncated;
  return DecodeStatus::kOk;
}

inline bool ports(const uint8_t* d, uint32_t cap, const IpPayload& pl, IpLayer& l) {
  if (fits(pl.off, 4, cap, pl.lim) != DecodeStatus::kOk) return false;
  l.has_ports = true;
  l.sport = rd16(d + pl.off);
  l.dport = rd16(d + pl.off + 2);
  return true;
}

// Fails with "<proto>_truncated" or "<proto>_exceeds_ip_length".
inline DecodeStatus short_header(PacketInfo& out, DecodeStatus s, const char* trunc, const char* exceeds) {
  return s == DecodeStatus::kTruncated ? truncated(out, trunc) : malformed(out, exceeds);
}

}  // namespace

DecodeStatus decode_transport(const uint8_t* d, uint32_t cap, const IpPayload& pl, IpLayer& l,
                              PacketInfo& out) {
  const uint32_t off = pl.off;
  if (off > 0xffff) return malformed(out, "l4_offset_too_large");  // 64 KiB of extension headers
  if (off < cap) l.l4_offset = static_cast<uint16_t>(off);
  // Bytes of transport header + payload per the IP header(s).
  const uint32_t ip_len = pl.lim > off ? pl.lim - off : 0;
  DecodeStatus s;

  switch (l.proto) {
    case kProtoTcp: {
      ports(d, cap, pl, l);
      if ((s = fits(off, 20, cap, pl.lim)) != DecodeStatus::kOk)
        return short_header(out, s, "tcp_truncated", "tcp_exceeds_ip_length");
      uint32_t hlen = (d[off + 12] >> 4) * 4u;
      if (hlen < 20) return malformed(out, "tcp_bad_data_offset");
      l.tcp_flags = d[off + 13];
      if ((s = fits(off, hlen, cap, pl.lim)) != DecodeStatus::kOk)
        return short_header(out, s, "tcp_options_truncated", "tcp_exceeds_ip_length");
      l.has_l4 = true;
      l.l4_payload = ip_len > hlen ? ip_len - hlen : 0;
      return DecodeStatus::kOk;
    }
    case kProtoUdp: {
      ports(d, cap, pl, l);
      if ((s = fits(off, 8, cap, pl.lim)) != DecodeStatus::kOk)
        return short_header(out, s, "udp_truncated", "udp_exceeds_ip_length");
      uint32_t len = rd16(d + off + 4);
      if (len == 0 || len > ip_len) len = ip_len;  // 0: jumbogram (RFC 2675)
      l.has_l4 = true;
      l.l4_payload = len > 8 ? len - 8 : 0;
      return DecodeStatus::kOk;
    }
    case kProtoSctp:  // common header: ports(4) verification tag(4) checksum(4)
    case kProtoDccp:  // generic header: ports(4) ... 12 bytes at least
      ports(d, cap, pl, l);
      if ((s = fits(off, 12, cap, pl.lim)) != DecodeStatus::kOk)
        return l.proto == kProtoSctp ? short_header(out, s, "sctp_truncated", "sctp_exceeds_ip_length")
                                     : short_header(out, s, "dccp_truncated", "dccp_exceeds_ip_length");
      l.has_l4 = true;
      return DecodeStatus::kOk;
    case kProtoIcmp:
    case kProtoIcmp6:  // type(1) code(1) checksum(2)
      if ((s = fits(off, 4, cap, pl.lim)) != DecodeStatus::kOk)
        return l.proto == kProtoIcmp ? short_header(out, s, "icmp_truncated", "icmp_exceeds_ip_length")
                                     : short_header(out, s, "icmp6_truncated", "icmp6_exceeds_ip_length");
      l.has_l4 = true;
      return DecodeStatus::kOk;
    default:  // a protocol without a header we read (GRE, OSPF, ...): fine as it is
      return DecodeStatus::kOk;
  }
}

}  // namespace tmach::packet::detail
