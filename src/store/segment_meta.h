// What is known about a segment without reading its packets.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace tmach::store {

// A directory entry: the ordinal, file offset and timestamp of every n-th packet, so a time
// bound becomes an ordinal/offset range without reading packets.
struct DirEntry {
  uint32_t ordinal;
  uint32_t offset;
  uint64_t ts_ns;
};

// How much older than its segment's name a record may be: the name is the smallest time once
// sealed and a lower bound while written, but a power cut may lose a rename to an older name
// (tm makes one durable at once only past 30 minutes: docs/DESIGN.md, "Crash safety"), and tm
// before December 2026 named a segment by its first packet. A scan takes records this much
// older (pcap_scan.h), and a segment without a sound sidecar is skipped by time only past it.
inline constexpr uint64_t kNameSlackNs = 3600ull * 1000000000ull;

struct SegmentMeta {
  uint64_t seq = 0;       // per-class sequence number (also in the file name)
  uint64_t first_ts = 0;  // smallest packet timestamp
  uint64_t last_ts = 0;   // largest packet timestamp
  uint64_t packets = 0;
  uint64_t pcap_bytes = 0;  // size of the pcap file the sidecar describes
  uint64_t wire_bytes = 0;  // sum of the packets' original lengths
  uint32_t linktype = 0;
  bool monotonic = true;  // timestamps never decrease inside the segment
  // The segment may hold frames cut before their keys (the kNet key kNetCut, which every query
  // adds to its candidates): false only when its sidecar says it holds none (header flags).
  bool cut_frames = true;
};

}  // namespace tmach::store
