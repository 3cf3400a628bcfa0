// The direction-free key of a connection: both directions of a 5-tuple map to one key.
#pragma once

#include <cstdint>
#include <cstring>
#include <optional>

#include "packet/packet_info.h"

namespace tmach::conn {

struct FlowKey {
  packet::IpAddr a, b;  // a <= b (ordered with their ports, so the key is symmetric)
  uint16_t port_a = 0, port_b = 0;
  uint8_t proto = 0;
  uint8_t pad[3] = {0, 0, 0};
  uint32_t tunnel = 0;  // hash of the outer layers' path (and of the SPI for ESP/AH); 0 for plain traffic

  // Bytewise, as five words and one half-word, loaded straight from both keys (words copied
  // into local arrays first were spilled to the stack and read back).
  bool operator==(const FlowKey& o) const {
    const auto* x = reinterpret_cast<const uint8_t*>(this);
    const auto* y = reinterpret_cast<const uint8_t*>(&o);
    auto w = [](const uint8_t* p) {
      uint64_t v;
      std::memcpy(&v, p, 8);
      return v;
    };
    uint32_t s, t;
    std::memcpy(&s, x + 40, 4);
    std::memcpy(&t, y + 40, 4);
    return ((w(x) ^ w(y)) | (w(x + 8) ^ w(y + 8)) | (w(x + 16) ^ w(y + 16)) | (w(x + 24) ^ w(y + 24)) |
            (w(x + 32) ^ w(y + 32)) | (s ^ t)) == 0;
  }
};
static_assert(sizeof(FlowKey) == 44);

struct KeyedPacket {
  FlowKey key;
  uint64_t hash;
  bool src_is_a;  // the packet travels from side a to side b
  // A later fragment whose first fragment the keyer did not find (not seen, or forgotten):
  // keyed without its ports, so its connection is not known (FragmentTable::key).
  bool orphan_fragment;
  // An ESP/AH packet keyed by its SA pair (ConnKeyer) whose own SA is not the one that names
  // the pair: its SPI, the pair's other SA (the flow record keeps it). 0 otherwise.
  uint32_t sa_partner;
};

// Builds the key of the innermost IP layer. Returns nullopt for frames without IP.
// - Tunnelled packets: `tunnel` is a direction-free hash of every outer layer (its address
//   pair, the tunnel kind that led inward, and the VXLAN/Geneve VNI or GRE key, which are
//   the same both ways), so one inner 5-tuple in two tunnels is two connections. Outer UDP
//   ports are left out (VXLAN/Geneve senders vary them per flow), and so are per-direction
//   ids (GTP TEIDs, L2TP sessions, PPTP call ids).
// - ESP/AH: ports stay 0 and the SPI is mixed into `tunnel`: one connection per security
//   association. make_sa_key() mixes in a given SA name instead, which is how the two
//   directions of an SA pair share a connection (SaPairTable, sa_pairs.h; ConnKeyer).
// - Non-first fragments carry no ports: they get ports 0 unless the caller fills them from
//   a FragmentTable (fragment_table.h) and pass them to the second form.
// An ESP or AH layer with its SPI: keyed by its SA (make_sa_key), not by ports.
inline bool has_sa(const packet::IpLayer& l) {
  return l.has_spi && (l.proto == packet::kProtoEsp || l.proto == packet::kProtoAh);
}
std::optional<KeyedPacket> make_key(const packet::PacketInfo& p);
// The same written straight into `out` (no optional to copy out of); false, `out` left as it
// was, for frames without IP.
bool make_key(const packet::PacketInfo& p, KeyedPacket& out);
// The same with the innermost layer's ports given (a non-first fragment whose first
// fragment was seen: FragmentTable::lookup()).
std::optional<KeyedPacket> make_key(const packet::PacketInfo& p, uint16_t sport, uint16_t dport);
// The tunnel hash alone (0 for a packet with one IP layer and no SPI).
uint32_t tunnel_hash(const packet::PacketInfo& p);
// The outer path part of it alone (0 for a packet with one IP layer): what an SA pair's two
// directions have in common.
uint32_t path_hash(const packet::PacketInfo& p);
// make_key() of an ESP/AH packet whose SA is named `sa` (SaPairTable::pair_id()) rather
// than by its own SPI.
std::optional<KeyedPacket> make_sa_key(const packet::PacketInfo& p, uint32_t sa);

// hash_key() of a key given as its five 8-byte words and its tunnel (w[5]).
inline uint64_t hash_words(const uint64_t (&w)[6]) {
  uint64_t h = 0x9e3779b97f4a7c15ull;
  for (uint64_t v : w) {
    h ^= v;
    h *= 0xbf58476d1ce4e5b9ull;
    h ^= h >> 31;
  }
  return h;
}

inline uint64_t hash_key(const FlowKey& k) {
  uint64_t w[6];
  std::memcpy(w, &k, 40);
  uint32_t t;
  std::memcpy(&t, reinterpret_cast<const uint8_t*>(&k) + 40, 4);
  w[5] = t;
  return hash_words(w);
}

}  // namespace tmach::conn
