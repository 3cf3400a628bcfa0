// Walks the records of a pcap file the store wrote (or any classic pcap), stopping at the
// first incomplete record. Used by recovery and by queries of segments without a sidecar.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

namespace tmach::store {

struct ScanResult {
  uint32_t linktype = 0;
  uint64_t packets = 0;
  uint64_t valid_end = 0;  // file offset just past the last complete record
  uint64_t file_size = 0;
  bool header_ok = false;  // false: not a pcap file we can read (nothing was visited)
};

// Calls visit(offset, ts_ns, caplen, wirelen, data) for every complete record in order.
// Throws std::runtime_error when the file cannot be opened.
using RecordVisitor = std::function<void(uint64_t offset, uint64_t ts_ns, uint32_t caplen, uint32_t wirelen,
                                         const uint8_t* data)>;
ScanResult scan_pcap(const std::string& path, const RecordVisitor& visit);

}  // namespace tmach::store
