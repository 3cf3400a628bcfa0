// GRE (RFC 2784, keys and sequence numbers RFC 2890), PPTP's enhanced GRE v1 (RFC 2637)
// with PPP inside, and what GRE carries besides IP: transparent Ethernet bridging, ERSPAN
// type I/II/III (mirrored Ethernet), WCCP redirection, Cisco MetaData, Aruba's 802.11
// frames, MPLS and any EtherType.
#include "packet/decode_internal.h"

namespace tmach::packet::detail {
namespace {

enum : uint8_t { kC = 0x80, kR = 0x40, kK = 0x20, kS = 0x10 };
enum : uint8_t { kAck = 0x80 };  // second byte, v1 only

// Aruba access points tunnel 802.11 frames to their controller in GRE with protocol types
// 0x8200, 0x8210, ... 0x8370 (as Wireshark's packet-gre.h lists them).
bool aruba_80211(uint16_t proto) { return proto >= 0x8200 && proto <= 0x8370 && (proto & 0x000f) == 0; }

}  // namespace

DecodeStatus parse_gre(const uint8_t* d, uint32_t lim, uint32_t off, PacketInfo& out, Encap& e) {
  if (off + 4 > lim) return truncated(out, "gre_truncated");
  const uint8_t flags = d[off], version = d[off + 1] & 0x07;
  const uint16_t proto = rd16(d + off + 2);
  uint32_t hlen = 4;
  if (version == 0) {
    if (flags & kR) return DecodeStatus::kOk;  // source routing (RFC 1701): obsolete, left undecoded
    if (flags & kC) hlen += 4;                 // checksum and reserved
    if (flags & kK) {
      if (off + hlen + 4 > lim) return truncated(out, "gre_truncated");
      e.id = rd32(d + off + hlen);
      hlen += 4;
    }
    if (flags & kS) hlen += 4;
  } else if (version == 1) {
    // Enhanced GRE: key is payload length(2) and call id(2); always PPP.
    if (proto != kEthPpp || !(flags & kK)) return malformed(out, "gre_v1_bad_header");
    if (off + 8 > lim) return truncated(out, "gre_truncated");
    e.id = rd16(d + off + 6);
    hlen = 8;
    if (flags & kS) hlen += 4;
    if (d[off + 1] & kAck) hlen += 4;
  } else {
    return malformed(out, "gre_bad_version");
  }
  if (off + hlen > lim) return truncated(out, "gre_truncated");
  off += hlen;
  // No payload (a PPTP acknowledgement, a keepalive) ends here; the caller tells it from a cut.
  if (off >= lim) {
    e.what = Encap::kEthertype;
    e.off = off;
    return DecodeStatus::kOk;
  }

  switch (proto) {
    case kEthTeb:
      e.what = Encap::kEthernet;
      break;
    case kEthErspan2:  // type II has a sequence number and an 8-byte header; type I neither
      if (flags & kS) {
        if (off + 8 > lim) return truncated(out, "erspan_truncated");
        off += 8;
      }
      e.what = Encap::kEthernet;
      break;
    case kEthErspan3: {  // 12-byte header, then an 8-byte platform subheader when O is set
      if (off + 12 > lim) return truncated(out, "erspan_truncated");
      uint32_t n = d[off + 11] & 0x01 ? 20 : 12;
      if (off + n > lim) return truncated(out, "erspan_truncated");
      off += n;
      e.what = Encap::kEthernet;
      break;
    }
    case kEthPpp:
      e.what = Encap::kPpp;
      break;
    case kEthCmd:  // in GRE the next protocol comes first: type(2) version(1) length(1) option(2) SGT(2)
      if (off + 8 > lim) return truncated(out, "cmd_truncated");
      e.what = Encap::kEthertype;
      e.type = rd16(d + off);
      off += 8;
      break;
    case kEthWccp:  // a 4-byte redirect header, unless IPv4 follows at once (older routers)
      if ((d[off] >> 4) != 4) off += 4;
      e.what = Encap::kIp;
      e.version = 4;
      break;
    default:  // IPv4, IPv6, MPLS, VLAN, ARP, ...: the EtherType chain
      e.what = aruba_80211(proto) ? Encap::kIeee80211 : Encap::kEthertype;
      e.type = proto;
      break;
  }
  e.off = off;
  return DecodeStatus::kOk;
}

}  // namespace tmach::packet::detail
