// Rebuilding what a crash or a damaged file left behind, from the pcap alone.
#pragma once

#include <string>

#include "store/catalog.h"

namespace tmach::store {

struct RecoveryResult {
  uint64_t packets = 0;
  uint64_t truncated_bytes = 0;  // incomplete last record cut off
  uint64_t sidecar_bytes = 0;
  bool removed_empty = false;  // the segment held no complete packet and was removed
  bool not_pcap = false;       // the file is no pcap (and not empty): nothing was changed
  std::string damaged;         // a damaged record before the end (what and where): nothing was changed
};

// Cuts `seg`'s pcap back to its last complete record (what a crash leaves past it: a record
// cut short, or zeros), rebuilds its directory and indexes, writes its sidecar, and updates
// `seg` to kSealed. A pcap with no complete packet (a crash before the first reached the
// disk) is removed; a file that is no pcap at all is left as it is (not_pcap: whoever called
// decides; StoreDir sets it aside). A pcap with a record tm never writes before its end
// (pcap_scan.h) is left as it is too, neither cut (that would lose what follows) nor renamed
// nor indexed: `damaged` says where, `seg` keeps its state (queries scan it up to there) and
// gets the packet count and last time of the records before the damage. Throws
// std::runtime_error on I/O errors.
RecoveryResult recover_segment(SegmentInfo& seg, uint32_t directory_every = 4096,
                               uint64_t directory_bytes = 4ull << 20);

// For a sealed segment at start: checks every section of its sidecar (verify_sidecar). A
// damaged one turns `seg` into kBadSidecar (its problem says why), for recover_segment to
// rebuild — unless its pcap has a damaged record before its end, which a rebuild would cut
// off: then `seg` stays as it is (queries scan it) and the returned text says so. Returns ""
// when the sidecar is sound or will be rebuilt.
std::string check_sealed_sidecar(SegmentInfo& seg);

}  // namespace tmach::store
