// L2TP data messages.
//
// L2TPv2 (RFC 2661, UDP 1701): flags/version(2: T L . . S . O P . . . . ver) [length(2)]
// tunnel id(2) session id(2) [Ns(2) Nr(2)] [offset size(2) offset pad], then PPP. Control
// messages (T set) carry no user data.
//
// L2TPv3 (RFC 3931) over IP (protocol 115): session id(4), 0 meaning a control message;
// over UDP (1701): flags/version(2, ver 3) reserved(2), then the same session id. A data
// message's session id is followed by a cookie of 0, 4 or 8 bytes and an optional 4-byte
// L2-specific sublayer, then the pseudowire's frame. Neither length is in the packet (both
// are per-session configuration, agreed in control messages tm may never see), so the
// decoder guesses: it tries the frame at 0, 4, 8 and 12 bytes after the session id (cookie +
// sublayer, smallest first) and takes the first that holds a plausible Ethernet frame (an
// IPv4 header with a valid checksum, an IPv6 header whose length fits, ARP for IPv4 on
// Ethernet, or one of these behind VLAN tags). Other pseudowire types (PPP, HDLC, Frame
// Relay, ATM) are not decoded: the packet is its outer layers, as is a session whose frame
// matched no guess.
#include "packet/decode_internal.h"

namespace tmach::packet::detail {
namespace {

constexpr uint32_t kL2tpv3MaxGuess = 12;  // 8-byte cookie + 4-byte sublayer

bool ipv4_header_ok(const uint8_t* d, uint32_t lim, uint32_t off) {
  if (off + 20 > lim || (d[off] >> 4) != 4) return false;
  const uint32_t ihl = (d[off] & 0x0f) * 4u;
  if (ihl < 20 || off + ihl > lim || rd16(d + off + 2) < ihl) return false;
  uint32_t sum = 0;
  for (uint32_t i = 0; i < ihl; i += 2) sum += rd16(d + off + i);
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return sum == 0xffff;
}

bool ipv6_header_ok(const uint8_t* d, uint32_t lim, uint32_t off) {
  return off + 40 <= lim && (d[off] >> 4) == 6 && off + 40 + rd16(d + off + 4) <= lim;
}

// An Ethernet frame at `off` carrying IPv4, IPv6 or ARP (after at most two VLAN tags).
bool plausible_ethernet(const uint8_t* d, uint32_t lim, uint32_t off) {
  uint32_t p = off + 12;
  for (int tags = 0;; ++tags) {
    if (p + 2 > lim) return false;
    const uint16_t type = rd16(d + p);
    p += 2;
    switch (type) {
      case kEthIpv4:
        return ipv4_header_ok(d, lim, p);
      case kEthIpv6:
        return ipv6_header_ok(d, lim, p);
      case kEthArp:  // hardware type Ethernet, protocol IPv4, lengths 6 and 4
        return p + 8 <= lim && rd16(d + p) == 1 && rd16(d + p + 2) == kEthIpv4 && d[p + 4] == 6 &&
               d[p + 5] == 4;
      case kEthVlan:
      case kEthQinQ:
        if (tags == 2) return false;
        p += 2;
        break;
      default:
        return false;
    }
  }
}

}  // namespace

DecodeStatus parse_l2tpv3_session(const uint8_t* d, uint32_t lim, uint32_t off, PacketInfo& out, Encap& e) {
  if (off + 4 > lim) return truncated(out, "l2tp_truncated");
  const uint32_t session = rd32(d + off);
  if (session == 0) return DecodeStatus::kOk;  // control message
  for (uint32_t guess = 0; guess <= kL2tpv3MaxGuess; guess += 4) {
    if (plausible_ethernet(d, lim, off + 4 + guess)) {
      e.what = Encap::kEthernet;
      e.off = off + 4 + guess;
      e.id = session;
      return DecodeStatus::kOk;
    }
  }
  return DecodeStatus::kOk;  // not a frame tm can find: the packet is its outer layers
}

DecodeStatus parse_l2tp(const uint8_t* d, uint32_t lim, uint32_t off, PacketInfo& out, Encap& e) {
  if (off + 2 > lim) return truncated(out, "l2tp_truncated");
  const uint16_t flags = rd16(d + off);
  if (flags & 0x8000) return DecodeStatus::kOk;  // control
  if ((flags & 0x000f) == 3) return parse_l2tpv3_session(d, lim, off + 4, out, e);
  if ((flags & 0x000f) != 2) return DecodeStatus::kOk;
  uint32_t p = off + 2;
  if (flags & 0x4000) p += 2;  // length
  if (p + 4 > lim) return truncated(out, "l2tp_truncated");
  e.id = rd32(d + p);  // tunnel id << 16 | session id
  p += 4;
  if (flags & 0x0800) p += 4;  // Ns, Nr
  if (flags & 0x0200) {        // offset size, then that many bytes of padding
    if (p + 2 > lim) return truncated(out, "l2tp_truncated");
    p += 2 + rd16(d + p);
  }
  if (p > lim) return truncated(out, "l2tp_truncated");
  e.what = Encap::kPpp;
  e.off = p;
  return DecodeStatus::kOk;
}

}  // namespace tmach::packet::detail
