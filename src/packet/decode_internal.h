// Internal to the decoder (src/packet/*.cpp): byte readers and the per-protocol steps.
//
// Conventions shared by every step:
// - `d` is the frame, `cap` the end of the readable bytes (<= caplen; smaller only when a
//   container such as an NFLOG TLV ends earlier). A step checks `off + n <= cap` before it
//   reads n bytes at `off`, and never reads at or beyond `cap`.
// - A step fills `out` as far as it gets and returns the final status; on a problem it
//   calls fail() with a short static anomaly name and returns at once, so what was filled
//   before stays valid.
// - Offsets are uint32_t; header lengths are at most 16 bits, so `off + n` cannot overflow.
#pragma once

#include <cstdint>

#include "packet/decoder.h"
#include "packet/packet_info.h"

namespace tmach::packet::detail {

// EtherTypes the decoder knows.
enum : uint16_t {
  kEthIpv4 = 0x0800,
  kEthArp = 0x0806,
  kEthRarp = 0x8035,
  kEthVlan = 0x8100,
  kEthIpv6 = 0x86dd,
  kEthMplsUc = 0x8847,
  kEthMplsMc = 0x8848,
  kEthQinQ = 0x88a8,
  kEthQinQOld = 0x9100,
  kEthPppoeDisc = 0x8863,
  kEthPppoeSess = 0x8864,
  kEthPbb = 0x88e7,  // 802.1ah I-TAG: I-SID, then the customer frame
  kEthVnTag = 0x8926,
  kEthTeb = 0x6558,      // transparent Ethernet bridging: an Ethernet frame follows
  kEthErspan2 = 0x88be,  // ERSPAN type I (no header) / II (GRE with sequence number)
  kEthErspan3 = 0x22eb,
  kEthPpp = 0x880b,   // PPP (PPTP's enhanced GRE)
  kEthWccp = 0x883e,  // WCCP redirect header, then IPv4
  kEthNsh = 0x894f,
  kEthFabricPath = 0x8903,  // Cisco FabricPath: FTAG/TTL, then the classic Ethernet frame
  kEthCmd = 0x8909,         // Cisco MetaData (security group tag), then an EtherType
};

inline uint16_t rd16(const uint8_t* p) { return static_cast<uint16_t>(p[0] << 8 | p[1]); }
inline uint16_t rd16le(const uint8_t* p) { return static_cast<uint16_t>(p[1] << 8 | p[0]); }
inline uint32_t rd32(const uint8_t* p) {
  return uint32_t{p[0]} << 24 | uint32_t{p[1]} << 16 | uint32_t{p[2]} << 8 | p[3];
}
inline uint32_t rd32le(const uint8_t* p) {
  return uint32_t{p[3]} << 24 | uint32_t{p[2]} << 16 | uint32_t{p[1]} << 8 | p[0];
}

inline DecodeStatus fail(PacketInfo& out, DecodeStatus s, const char* anomaly) {
  out.status = s;
  out.anomaly = anomaly;
  return s;
}
inline DecodeStatus truncated(PacketInfo& out, const char* anomaly) {
  return fail(out, DecodeStatus::kTruncated, anomaly);
}
inline DecodeStatus malformed(PacketInfo& out, const char* anomaly) {
  return fail(out, DecodeStatus::kMalformed, anomaly);
}
inline DecodeStatus not_ip(PacketInfo& out, uint16_t ethertype) {
  out.ethertype = ethertype;
  out.status = DecodeStatus::kNotIp;
  return DecodeStatus::kNotIp;
}

// What one IP layer leaves to the step after it (transport, or later a tunnel).
struct IpPayload {
  uint32_t off = 0;            // first byte after the IP header (and IPv6 extension headers)
  uint32_t lim = 0;            // end of the datagram per its length field (may exceed `cap`: the
                               // capture was cut; equals `cap` when the length is unknown: jumbogram, TSO)
  bool has_transport = false;  // false for a non-first fragment or a stop (ESP, AH, no next header)
};

// --- ethernet.cpp: Ethernet and what an EtherType can carry.
// Ethernet II / 802.3 frame at `off`.
DecodeStatus decode_ethernet(const uint8_t* d, uint32_t cap, uint32_t off, PacketInfo& out);
// The payload of EtherType `type` at `off`: VLAN tags, LLC/SNAP, MPLS, ARP, IPv4, IPv6.
// Used by Ethernet and by link types that carry an EtherType (Linux SLL/SLL2).
DecodeStatus decode_ethertype(const uint8_t* d, uint32_t cap, uint32_t off, uint16_t type, PacketInfo& out);
// An 802.2 LLC header at `off` (a frame without an EtherType: 802.3, FDDI): SNAP with an
// EtherType OUI continues down the EtherType chain; other LLC frames are non-IP.
inline DecodeStatus decode_llc(const uint8_t* d, uint32_t cap, uint32_t off, PacketInfo& out) {
  return decode_ethertype(d, cap, off, 0, out);  // a type below 0x0600 is an 802.3 length: LLC follows
}
// An MPLS label stack at `off`, then IPv4/IPv6 by the version nibble.
DecodeStatus decode_mpls(const uint8_t* d, uint32_t cap, uint32_t off, uint16_t type, PacketInfo& out);

// --- ppp.cpp: a PPP frame at `off` (optional ff 03 address/control, 1- or 2-byte
// protocol), then IPv4/IPv6/MPLS. Used by the PPP link types, PPPoE, PPTP and L2TP.
DecodeStatus decode_ppp(const uint8_t* d, uint32_t cap, uint32_t off, PacketInfo& out);

// --- ip.cpp: network layer and below.
// The IP datagram at `off` (version by the first nibble, or forced 4/6 with `version`),
// then its transport header. The only entry the link layers use.
DecodeStatus decode_ip(const uint8_t* d, uint32_t cap, uint32_t off, uint8_t version, PacketInfo& out);

// --- ipv4.cpp / ipv6.cpp: one IP header (with IPv6 extension headers), appended as
// out.ip[out.ip_count++]. On success `pl` says where the payload is.
DecodeStatus decode_ipv4(const uint8_t* d, uint32_t cap, uint32_t off, PacketInfo& out, IpPayload& pl);
DecodeStatus decode_ipv6(const uint8_t* d, uint32_t cap, uint32_t off, PacketInfo& out, IpPayload& pl);

// --- transport.cpp: TCP, UDP, SCTP, DCCP, ICMP, ICMPv6 at pl.off for layer `l`.
DecodeStatus decode_transport(const uint8_t* d, uint32_t cap, const IpPayload& pl, IpLayer& l,
                              PacketInfo& out);

// --- tunnel.cpp: after an IP layer (the innermost so far, out.ip[out.ip_count - 1]):
// ESP/AH SPI, IP-in-IP, GRE, and the UDP tunnels by port. Decodes the inner frame
// (appending layers) and marks the first new layer with the tunnel kind. A payload that
// does not look like the tunnel its port suggests is left alone (plain UDP, kOk).
DecodeStatus decode_tunnel(const uint8_t* d, uint32_t cap, const IpPayload& pl, PacketInfo& out);

// What a tunnel header says follows it.
struct Encap {
  enum What : uint8_t { kNone, kIp, kEthernet, kEthertype, kMpls, kPpp, kIeee80211 };
  What what = kNone;    // kNone: not this tunnel after all (or nothing decodable inside)
  uint32_t off = 0;     // offset of the inner frame
  uint16_t type = 0;    // kEthertype / kMpls: the EtherType
  uint8_t version = 0;  // kIp: 4, 6, or 0 (by the version nibble)
  uint32_t id = 0;      // VNI, TEID, key, ... (IpLayer::tunnel_id)
};

// One file per tunnel header. Each reads [off, lim) (lim <= cap), fills `e` and returns
// kOk, or fails with a named anomaly when the header is cut or impossible.
DecodeStatus parse_gre(const uint8_t* d, uint32_t lim, uint32_t off, PacketInfo& out, Encap& e);
DecodeStatus parse_vxlan(const uint8_t* d, uint32_t lim, uint32_t off, PacketInfo& out, Encap& e);
DecodeStatus parse_vxlan_gpe(const uint8_t* d, uint32_t lim, uint32_t off, PacketInfo& out, Encap& e);
DecodeStatus parse_geneve(const uint8_t* d, uint32_t lim, uint32_t off, PacketInfo& out, Encap& e);
DecodeStatus parse_gtpu(const uint8_t* d, uint32_t lim, uint32_t off, PacketInfo& out, Encap& e);
DecodeStatus parse_teredo(const uint8_t* d, uint32_t lim, uint32_t off, PacketInfo& out, Encap& e);
DecodeStatus parse_ayiya(const uint8_t* d, uint32_t lim, uint32_t off, PacketInfo& out, Encap& e);
DecodeStatus parse_l2tp(const uint8_t* d, uint32_t lim, uint32_t off, PacketInfo& out, Encap& e);
// L2TPv3 from its session id at `off` (IP protocol 115, or after the UDP form's 4 bytes).
DecodeStatus parse_l2tpv3_session(const uint8_t* d, uint32_t lim, uint32_t off, PacketInfo& out, Encap& e);

// --- ieee80211.cpp: radiotap header (LINKTYPE 127) and/or an 802.11 frame (105).
DecodeStatus decode_radiotap(const uint8_t* d, uint32_t cap, PacketInfo& out);
// `datapad`: radiotap's Flags say the 802.11 header is padded to a multiple of 4 bytes
// (kRadiotapDataPad: Atheros drivers pad a QoS header of 26 bytes to 28).
DecodeStatus decode_ieee80211(const uint8_t* d, uint32_t cap, uint32_t off, PacketInfo& out,
                              bool datapad = false);

}  // namespace tmach::packet::detail
