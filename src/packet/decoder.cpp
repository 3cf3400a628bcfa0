// decode(): reset, then dispatch on the link type. Each link head below strips its own
// header and hands the rest to the EtherType chain (ethernet.cpp) or the IP step (ip.cpp).
#include "packet/decoder.h"

#include <cstring>

#include "packet/decode_internal.h"

namespace tmach::packet {
namespace {

using namespace detail;

// Address families as the BSDs write them in a NULL/LOOP header. IPv6 differs per OS:
// 24 NetBSD/OpenBSD/BSD/OS, 28 FreeBSD, 30 macOS.
uint8_t bsd_family_version(uint32_t family) {
  switch (family) {
    case 2:
      return 4;
    case 24:
    case 28:
    case 30:
      return 6;
    default:
      return 0;
  }
}

// NULL: the family in the capturing host's byte order; LOOP: in network order.
DecodeStatus decode_loopback(const uint8_t* d, uint32_t cap, bool host_order, PacketInfo& out) {
  if (cap < 4) return truncated(out, "loopback_truncated");
  uint32_t family = rd32(d);
  // A family is a small number: if the big-endian reading is not, the host was little-endian.
  if (host_order && family > 0xffff) family = rd32le(d);
  uint8_t version = bsd_family_version(family);
  if (version == 0) return not_ip(out, 0);
  return decode_ip(d, cap, 4, version, out);
}

// Cisco HDLC: address, control, EtherType. Only IP and MPLS go through: other values
// (0x8035 SLARP, 0x2000 CDP) are not what they mean on Ethernet.
DecodeStatus decode_chdlc(const uint8_t* d, uint32_t cap, PacketInfo& out) {
  if (cap < 4) return truncated(out, "chdlc_truncated");
  uint16_t type = rd16(d + 2);
  switch (type) {
    case kEthIpv4:
    case kEthIpv6:
    case kEthMplsUc:
    case kEthMplsMc:
      return decode_ethertype(d, cap, 4, type, out);
    default:
      return not_ip(out, type);
  }
}

// FDDI: frame control(1) destination(6) source(6), then LLC (SNAP carries the EtherType).
// Only LLC frames (frame control format bits 01) carry data; SMT and MAC frames do not.
DecodeStatus decode_fddi(const uint8_t* d, uint32_t cap, PacketInfo& out) {
  if (cap < 13) return truncated(out, "fddi_truncated");
  if ((d[0] & 0x30) != 0x10) return not_ip(out, 0);
  out.has_eth = true;  // 48-bit MAC addresses, as Ethernet's
  out.eth_offset = 1;
  return decode_llc(d, cap, 13, out);
}

// NFLOG: family(1) version(1) resource id(2), then TLVs: length(2, little-endian,
// including the 4-byte TLV header), type(2), value, padded to 4 bytes. Type 9 is the packet.
DecodeStatus decode_nflog(const uint8_t* d, uint32_t cap, PacketInfo& out) {
  constexpr uint16_t kNfulaPayload = 9;
  if (cap < 4) return truncated(out, "nflog_truncated");
  uint8_t version = d[0] == 2 ? 4 : d[0] == 10 ? 6 : 0;
  if (version == 0) return not_ip(out, 0);
  uint32_t off = 4;
  while (off < cap) {
    if (off + 4 > cap) return truncated(out, "nflog_truncated");
    uint32_t len = rd16le(d + off);
    uint16_t type = rd16le(d + off + 2) & 0x3fff;  // top bits are netlink flags
    if (len < 4) return malformed(out, "nflog_bad_tlv_length");
    if (type == kNfulaPayload) {
      uint32_t end = off + len;
      return decode_ip(d, end < cap ? end : cap, off + 4, version, out);
    }
    if (off + len > cap) return truncated(out, "nflog_truncated");
    off += (len + 3) & ~3u;
  }
  return not_ip(out, 0);  // a log message without the packet
}

}  // namespace

bool decodes_link(uint32_t linktype) noexcept {
  static const uint8_t none = 0;
  PacketInfo p;
  return decode(linktype, &none, 0, p) != DecodeStatus::kUnsupportedLink;
}

bool null_family_swapped(const uint8_t* data, uint32_t caplen) noexcept {
  if (caplen < 4) return false;
  uint32_t host;
  std::memcpy(&host, data, 4);
  return host > 0xffff && __builtin_bswap32(host) <= 0xffff;
}

DecodeStatus decode(uint32_t linktype, const uint8_t* data, uint32_t caplen, PacketInfo& out) noexcept {
  static_cast<FrameInfo&>(out) = FrameInfo{};  // the IP layers are reset as they are appended
  out.linktype = linktype;
  switch (linktype) {
    case kLinkEthernet:
      return decode_ethernet(data, caplen, 0, out);
    case kLinkNull:
      return decode_loopback(data, caplen, true, out);
    case kLinkFddi:
      return decode_fddi(data, caplen, out);
    case kLinkLoop:
      return decode_loopback(data, caplen, false, out);
    case kLinkPpp:
    case 50:  // PPP_HDLC (PPP in HDLC-like framing)
      return decode_ppp(data, caplen, 0, out);
    case kLinkRaw:
    case 12:  // DLT_RAW on most systems (what libpcap reports for LINKTYPE_RAW files)
    case 14:  // DLT_RAW on OpenBSD/BSD/OS
      return decode_ip(data, caplen, 0, 0, out);
    case kLinkIpv4:
      return decode_ip(data, caplen, 0, 4, out);
    case kLinkIpv6:
      return decode_ip(data, caplen, 0, 6, out);
    case kLinkCHdlc:
      return decode_chdlc(data, caplen, out);
    case kLinkLinuxSll:  // type(2) hatype(2) addrlen(2) addr(8) protocol(2)
      if (caplen < 16) return truncated(out, "sll_truncated");
      return decode_ethertype(data, caplen, 16, rd16(data + 14), out);
    case kLinkLinuxSll2:  // protocol(2) reserved(2) ifindex(4) hatype(2) pkttype(1) addrlen(1) addr(8)
      if (caplen < 20) return truncated(out, "sll2_truncated");
      return decode_ethertype(data, caplen, 20, rd16(data), out);
    case kLinkNflog:
      return decode_nflog(data, caplen, out);
    case kLinkIeee80211:
      return decode_ieee80211(data, caplen, 0, out);
    case kLinkRadiotap:
      return decode_radiotap(data, caplen, out);
    case kLinkIpoib:  // 40 bytes of InfiniBand addresses, then type(2) reserved(2)
      if (caplen < 44) return truncated(out, "ipoib_truncated");
      return decode_ethertype(data, caplen, 44, rd16(data + 40), out);
    default:
      return fail(out, DecodeStatus::kUnsupportedLink, "unsupported_link");
  }
}

}  // namespace tmach::packet
