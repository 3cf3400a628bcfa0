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
  bool key(const packet::PacketInfo& p, uint64_t now_ns, KeyedPacket& out);

  const FragmentTable& fragments() const { return frags_; }
  const SaPairTable& sa_pairs() const { return sas_; }

 private:
  FragmentTable frags_;
  SaPairTable sas_;
};

}  // namespace tmach::conn
