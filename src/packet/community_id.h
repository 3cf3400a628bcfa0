// Community ID, version 1 (https://github.com/corelight/community-id-spec): the flow hash
// Zeek, Suricata, Arkime and others print next to each connection, so that their records of
// one connection can be joined. "1:" + base64(SHA-1(seed, addresses, protocol, ports)),
// the endpoints put in one order so that both directions hash the same.
//
// Contract: pure; noexcept except for the returned string's allocation.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "packet/packet_info.h"

namespace tmach::packet {

struct CommunityTuple {
  IpAddr src, dst;  // both IPv4 (v4-mapped) or both IPv6
  uint8_t proto = 0;
  // TCP, UDP, SCTP: the ports. ICMP/ICMPv6: type in src_port, code in dst_port (the
  // function maps them to the spec's port equivalents). Ignored for other protocols.
  uint16_t src_port = 0, dst_port = 0;
};

// "1:<base64 of 20 bytes>".
std::string community_id_v1(const CommunityTuple& t, uint16_t seed = 0);

// True when `s` has the form of a version-1 Community ID ("1:" and 28 base64 characters
// ending in '=').
bool is_community_id(std::string_view s) noexcept;

// A Community ID as tm writes and compares it (the base64 form), from either form Zeek's and
// Suricata's options write: "1:" and 28 base64 characters (the default), returned as it is, or
// "1:" and 40 hex digits of the same 20 bytes (base64 turned off: Zeek's do_base64 = F), either
// case; nullopt for anything else.
std::optional<std::string> community_id_base64(std::string_view s);

}  // namespace tmach::packet
