// The connection key of each packet, with the short memory that some packets need:
// - a non-first fragment gets its first fragment's key (FragmentTable);
// - an ESP/AH packet gets the key of its SA pair, so both directions are one connection
//   (SaPairTable).
// Everything else is make_key(). Use per packet, in capture order. Not thread-safe.
#pragma once

#include <cstdint>
#include <optional>

#include "conn/flow_key.h"
#include "conn/fragment_table.h"
#include "conn/sa_pairs.h"
#include "packet/packet_info.h"

namespace tmach::conn {

class ConnKeyer {
 public:
  // nullopt for frames without IP.
  std::optional<KeyedPacket> key(const packet::PacketInfo& p, uint64_t now_ns);
  // The same written straight into `out` (the recorder's batch array: no optional copied per
  // packet); false, `out` left as it was, for frames without IP.
  bool key(const packet::PacketInfo& p, uint64_t now_ns, KeyedPacket& out) {
    // Most packets: one IP layer, not a fragment, no SA: make_key() without the call here
    // (which kept a frame and five registers for the rare paths).
    if (p.ip_count == 1 && !p.ip[0].fragment && !has_sa(p.ip[0])) return make_key(p, out);
    return key_rare(p, now_ns, out);
  }

  const FragmentTable& fragments() const { return frags_; }
  const SaPairTable& sa_pairs() const { return sas_; }

 private:
  bool key_rare(const packet::PacketInfo& p, uint64_t now_ns, KeyedPacket& out);

  FragmentTable frags_;
  SaPairTable sas_;
};

}  // namespace tmach::conn
