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
