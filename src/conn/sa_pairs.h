// Pairs IPsec security associations so that both directions of an ESP/AH exchange are one
// connection for the cutoff. An SA pair is A->B with SPI x and B->A with SPI y; nothing in
// the packets links x to y (IKE negotiated them, encrypted), so the pairing is a heuristic:
//
//   An SA (src, dst, protocol, outer path, SPI) seen for the first time pairs with the most
//   recent SA of the reverse direction (dst -> src, same protocol and outer path) that is
//   still unpaired and was seen within `ttl_ns`. The pair is named by the SPI of the SA seen
//   first; an SA that finds no partner is named by its own SPI (and waits for one).
//
// Limits (documented in docs/USAGE.md "Tunnels and layers"): several SAs opened at once between the
// same two hosts pair in arrival order, which may not be IKE's pairing; an SA idle longer
// than the ttl, or pushed out of the fixed table by a colliding one, is paired afresh when it
// resumes (it may then start a new connection); a one-way SA stays a connection of its own.
//
// Bounded: two fixed direct-mapped arrays (a new SA overwrites whatever shared its slot).
// No allocation after construction. Not thread-safe: one per packet-processing thread.
#pragma once

#include <cstdint>
#include <vector>

#include "packet/packet_info.h"

namespace tmach::conn {

class SaPairTable {
 public:
  explicit SaPairTable(size_t slots = 4096, uint64_t ttl_ns = 600'000'000'000ull);

  // The name of the SA pair that `l` (an ESP/AH layer with its SPI) belongs to, reached
  // through the outer path `path` (flow_key.h: path_hash()). Notes the SA.
  uint32_t pair_id(const packet::IpLayer& l, uint32_t path, uint64_t now_ns);

  uint64_t paired() const { return paired_; }  // SAs that found a reverse partner

 private:
  struct Dir {  // one direction between two hosts
    packet::IpAddr src, dst;
    uint32_t path = 0;
    uint8_t proto = 0;
    bool operator==(const Dir&) const = default;
  };
  struct Sa {
    Dir dir;
    uint32_t spi = 0;
    uint32_t pair = 0;     // the pair's name
    bool paired = false;   // a reverse SA joined it
    uint64_t expires = 0;  // 0: empty
  };
  struct Open {  // the latest unpaired SA of a direction
    Dir dir;
    uint32_t spi = 0;
    uint64_t expires = 0;
  };
  size_t sa_slot(const Dir& d, uint32_t spi) const;
  size_t open_slot(const Dir& d) const;
  Sa* find_sa(const Dir& d, uint32_t spi, uint64_t now);

  std::vector<Sa> sas_;
  std::vector<Open> open_;
  uint64_t ttl_;
  uint64_t paired_ = 0;
};

}  // namespace tmach::conn
