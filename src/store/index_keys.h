// The keys one packet contributes to its segment's indexes, computed by ONE function
// (index_keys) for every path that indexes packets: the recorder's capture thread (which has
// decoded the packet already and hands the keys to the writer through the RAM ring, so the
// writer never decodes), recovery's re-index of a segment from its pcap, and flow files.
//
// What each field holds is defined in index.h. The form here is flat and cheap to copy:
// IPv4 addresses (v4-mapped keys) as 4 bytes, other addresses as 16, and every scalar key
// (port, protocol, VLAN, network-layer kind) as one encoded uint32_t. pack()/unpack() give
// the compact byte form the ring carries (4 + 4 per IPv4 address + 16 per other address +
// 4 per scalar: 28 bytes for a plain IPv4 TCP packet).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>

#include "packet/packet_info.h"

namespace tmach::store {

// Scalar keys, encoded: ports as themselves, protocols and VLANs above them (one direct
// table in the builder covers all three), network-layer kinds flagged by the top bit.
inline constexpr uint32_t kScalarProtoBase = 0x10000;                  // + protocol (0..255)
inline constexpr uint32_t kScalarVlanBase = kScalarProtoBase + 0x100;  // + VLAN id (0..4095), + 4096 = tagged
inline constexpr uint32_t kScalarDirectEnd = kScalarVlanBase + 4097;   // direct-table size
inline constexpr uint32_t kScalarNetFlag = 0x80000000u;                // | Field::kNet value

struct IndexKeys {
  static constexpr int kMaxAddrs = 2 * packet::PacketInfo::kMaxIpLayers + 2;  // + ARP sender/target
  // Per IP layer: protocol, network kind, tunnel kind, two ports; then ARP or EtherType; VLANs + "tagged";
  // cut short; a fragment.
  static constexpr int kMaxScalars =
      5 * packet::PacketInfo::kMaxIpLayers + 1 + packet::PacketInfo::kMaxVlans + 1 + 1 + 1;
  static constexpr size_t kMaxPackedBytes = 4 + 4 * kMaxAddrs + 16 * kMaxAddrs + 4 * kMaxScalars;

  uint8_t n_v4 = 0, n_v6 = 0, n_scalars = 0;
  uint32_t v4[kMaxAddrs];                 // the last 4 bytes of a v4-mapped address, as in memory
  std::array<uint8_t, 16> v6[kMaxAddrs];  // every other address, 16-byte form
  uint32_t scalars[kMaxScalars];          // encoded as above; duplicates allowed

  size_t packed_bytes() const { return 4 + 4 * size_t{n_v4} + 16 * size_t{n_v6} + 4 * size_t{n_scalars}; }
  // Writes packed_bytes() bytes at `out` (any alignment).
  void pack(uint8_t* out) const;
  // The same where kMaxPackedBytes are writable at `out` (the bytes past packed_bytes() are
  // left undefined: the ring writes the frame there next): the usual two IPv4 addresses and
  // up to eight scalars as one fixed-size copy each rather than a loop.
  void pack_with_slack(uint8_t* out) const;
  // Reads what pack() wrote; `avail` bytes are readable at `in`. False (keys left empty) when
  // they do not hold a whole packed form.
  bool unpack(const uint8_t* in, size_t avail);
};

// pack()'s bytes read where they are (the store writer indexes straight from the RAM ring,
// with no copy into an IndexKeys), or an IndexKeys' arrays: the counts and where each kind of
// key starts, unaligned (read with memcpy).
struct KeysView {
  uint8_t n_v4 = 0, n_v6 = 0, n_scalars = 0;
  const uint8_t* v4 = nullptr;       // n_v4 * 4 bytes
  const uint8_t* v6 = nullptr;       // n_v6 * 16 bytes
  const uint8_t* scalars = nullptr;  // n_scalars * 4 bytes

  static KeysView of(const IndexKeys& k) {
    return {k.n_v4,
            k.n_v6,
            k.n_scalars,
            reinterpret_cast<const uint8_t*>(k.v4),
            reinterpret_cast<const uint8_t*>(k.v6),
            reinterpret_cast<const uint8_t*>(k.scalars)};
  }
  // Views what pack() wrote; `avail` bytes are readable at `in`. False (the view left empty)
  // when they do not hold a whole packed form (IndexKeys::unpack's checks).
  bool read(const uint8_t* in, size_t avail) {
    *this = {};
    if (avail < 4 || in[0] > IndexKeys::kMaxAddrs || in[1] > IndexKeys::kMaxAddrs ||
        in[2] > IndexKeys::kMaxScalars)
      return false;
    const size_t nv4 = in[0], nv6 = in[1], ns = in[2];
    if (4 + 4 * nv4 + 16 * nv6 + 4 * ns > avail) return false;
    *this = {in[0], in[1], in[2], in + 4, in + 4 + 4 * nv4, in + 4 + 4 * nv4 + 16 * nv6};
    return true;
  }
};

// The keys of a decoded packet (the only place that decides them).
void index_keys(const packet::PacketInfo& p, IndexKeys& out);

// A frame cut short (a snaplen) before what the index and the exact evaluator read of it:
// decoded as kTruncated with no IP layer (cut inside its IP header, or before its EtherType),
// an ARP frame without its addresses, or an innermost IP layer (not a later fragment) of TCP,
// UDP or SCTP without its ports, or of IPv6 cut inside its extension headers. Such a frame
// carries the kNet key kNetCut, and a query's re-check judges it (query::PacketFilter). A
// frame cut later (inside TCP options, in its payload) is read as a whole one: nothing a
// filter of the index reads is missing.
bool cut_before_its_keys(const packet::PacketInfo& p);
// What index_keys() adds for one IP layer (its two addresses, then its protocol, network kind,
// tunnel kind and ports), appended to `k`: also how a flow file indexes the one layer its
// record describes (flow::index_keys).
void add_layer_keys(const packet::IpLayer& l, IndexKeys& k);

// index_keys() then pack() in one step, for the capture thread: writes the packed form of p's
// keys straight at `out` (where kMaxPackedBytes are writable: a ring record) and returns its
// size, with no IndexKeys in between to fill and copy for the usual packet (one IPv4 layer;
// others go through index_keys()). The same bytes as pack() of index_keys() (tested), so the
// layout KeysView reads is unchanged.
size_t pack_index_keys(const packet::PacketInfo& p, uint8_t* out);

}  // namespace tmach::store
