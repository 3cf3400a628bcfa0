// IPv6 fixed header (RFC 8200) and its extension-header chain.
#include "packet/decode_internal.h"

namespace tmach::packet::detail {
namespace {

enum : uint8_t {
  kHopByHop = 0,
  kRouting = 43,
  kFragment = 44,
  kDestOpts = 60,
  kMobility = 135,
};

}  // namespace

DecodeStatus decode_ipv6(const uint8_t* d, uint32_t cap, uint32_t off, PacketInfo& out, IpPayload& pl) {
  if (off + 1 > cap) return truncated(out, "ipv6_truncated");
  const uint8_t* p = d + off;
  const bool bad_version = (p[0] >> 4) != 6;
  if (off + 40 > cap)
    return bad_version ? malformed(out, "ipv6_bad_version") : truncated(out, "ipv6_truncated");
  if (bad_version && out.ip_count > 0) return malformed(out, "ipv6_bad_version");  // (as IPv4's)

  IpLayer& l = out.ip[out.ip_count++];
  l = IpLayer{};
  l.version = 6;
  l.l3_offset = static_cast<uint16_t>(off);
  l.src = IpAddr::v6(p + 8);
  l.dst = IpAddr::v6(p + 24);
  uint8_t nh = p[6];
  l.header_proto = l.proto = nh;
  // Another version under IPv6's EtherType (PPP protocol, ...): the layer is its addresses and
  // the fixed header's next header, where libpcap's `host`, `net`, `ip6 proto` read them, and
  // nothing more — no extension header walked, no transport, no tunnel.
  if (bad_version) return malformed(out, "ipv6_bad_version");

  uint32_t plen = rd16(p + 4);
  // A jumbogram (RFC 2675: payload length 0, real length in a hop-by-hop option) or a
  // BIG TCP segment: the datagram is what was captured.
  uint32_t lim = plen == 0 && nh == kHopByHop ? cap : off + 40 + plen;
  off += 40;

  // Each extension header is at least 8 bytes, so the chain ends with the captured bytes.
  for (;;) {
    switch (nh) {
      case kHopByHop:
      case kRouting:
      case kDestOpts:
      case kMobility: {  // next header(1) length in 8-byte units, not counting the first 8
        if (off + 2 > lim) return malformed(out, "ipv6_ext_exceeds_length");
        if (off + 2 > cap) return truncated(out, "ipv6_ext_truncated");
        uint32_t len = (d[off + 1] + 1u) * 8;
        if (off + len > lim) return malformed(out, "ipv6_ext_exceeds_length");
        if (off + len > cap) return truncated(out, "ipv6_ext_truncated");
        nh = d[off];
        off += len;
        break;
      }
      case kFragment: {  // next header(1) reserved(1) offset(13) res(2) M(1) identification(4)
        if (off + 8 > lim) return malformed(out, "ipv6_ext_exceeds_length");
        if (off + 8 > cap) return truncated(out, "ipv6_frag_truncated");
        uint16_t frag = rd16(d + off + 2);
        l.frag_offset = frag >> 3;
        l.fragment = (frag & 1) || l.frag_offset != 0;
        l.frag_id = rd32(d + off + 4);
        nh = d[off];
        off += 8;
        if (l.frag_offset != 0) {  // the rest of the chain is in the first fragment
          l.proto = nh;
          pl.off = off;
          pl.lim = lim;
          pl.has_transport = false;
          return DecodeStatus::kOk;
        }
        break;
      }
      default:  // transport, or a stop: AH (51), ESP (50), no next header (59)
        l.proto = nh;
        pl.off = off;
        pl.lim = lim;
        pl.has_transport = nh != kProtoAh && nh != kProtoEsp && nh != kProtoNoNext6;
        return DecodeStatus::kOk;
    }
    l.proto = nh;
  }
}

}  // namespace tmach::packet::detail
