// Frame decoding: link layer down to the transport header. Pure function over bytes.
//
// Contract:
// - never reads past data[caplen - 1]; never allocates; never throws;
// - `out` is reset (its FrameInfo part, and each IP layer as it is appended: layers at or
//   beyond ip_count are stale), then filled as far as the headers allow: what was decoded
//   before a problem stays valid (a frame truncated inside TCP still has its IP layer);
// - the return value equals out.status.
#pragma once

#include <cstdint>

#include "packet/packet_info.h"

namespace tmach::packet {

// Link types by their LINKTYPE_* numbers (pcap file header values).
enum : uint32_t {
  kLinkNull = 0,  // BSD loopback, host-order 4-byte family
  kLinkEthernet = 1,
  kLinkPpp = 9,
  kLinkFddi = 10,  // FDDI: frame control, destination and source MAC, then 802.2 LLC
  kLinkRaw = 101,  // raw IP (v4 or v6 by version nibble)
  kLinkCHdlc = 104,
  kLinkIeee80211 = 105,  // 802.11 frames without a radio header
  kLinkRadiotap = 127,   // radiotap header, then an 802.11 frame
  kLinkLoop = 108,       // OpenBSD loopback, network-order family
  kLinkLinuxSll = 113,
  kLinkIpv4 = 228,
  kLinkIpv6 = 229,
  kLinkNflog = 239,
  kLinkIpoib = 242,  // IP over InfiniBand (RFC 4391)
  kLinkLinuxSll2 = 276,
};

DecodeStatus decode(uint32_t linktype, const uint8_t* data, uint32_t caplen, PacketInfo& out) noexcept;
// Whether decode() reads frames of this link type (else every frame is kUnsupportedLink: no
// layer, no index key; a query hands such frames to libpcap). decode()'s own answer.
bool decodes_link(uint32_t linktype) noexcept;
// A radiotap header's Flags field (the byte after the presence words and TSFT, when present),
// or -1 when it has none or it was not captured whole. Reads d[0 .. cap-1] only.
int radiotap_flags(const uint8_t* d, uint32_t cap) noexcept;
inline constexpr uint8_t kRadiotapDataPad = 0x20;  // the 802.11 header is padded to 4 bytes

// BSD loopback (kLinkNull): the 4-byte family is in the byte order of the host that wrote the
// capture, which is the file's own (pcap's rule; libpcap's filters read it so). True when the
// family at `data` is one only when read in the other byte order than this host's: a frame
// from a capture of the other byte order, or copied out of one verbatim (tcpdump -r -w does),
// which libpcap's filters read as another family in a file of this host's order. Reads
// data[0..3] only; false when caplen < 4.
bool null_family_swapped(const uint8_t* data, uint32_t caplen) noexcept;

}  // namespace tmach::packet
