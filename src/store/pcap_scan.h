// Walks the records of a pcap file the store wrote (or any classic pcap), stopping at the
// first record that is incomplete or that tm never writes. Used by recovery and by queries of
// segments without a sidecar.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

namespace tmach::store {

// What tm never stores, and so what a scan of a segment takes as damage (docs/FORMAT.md,
// "Damaged files"):
//  - a captured length larger than its wire length (every source stores max(wire, captured));
//  - a captured length larger than 16 MiB (the most a recorder ever stored; since records
//    are cut to util::pcap::kSnaplen a longer one is accepted only when the record after it
//    is sound, or it ends the file, as one written before the cut would be);
//  - a timestamp older than the segment's name (ScanOptions::min_ts): the name is a lower
//    bound of every timestamp in the file while it is written (a packet older than it renames
//    the file before it is written) and exact once sealed;
//  - a record whose length leads to a header that is no record by the rules above (its
//    length, or that header, is damaged: the record is not trusted) — unless that header's
//    time is within an hour of the record's (and not older than the name): then it is taken
//    for the next record, damaged itself, and the record before it is sound.
// A 0-byte record is no damage (tm stores an empty frame as it came), nor are timestamps out
// of order (input is stored in the order it came).
struct ScanOptions {
  uint64_t min_ts = 0;          // no record is older (the segment's name); 0: no bound
  uint64_t limit = UINT64_MAX;  // bytes of the file to scan (a segment being written: its listed size)
};

struct ScanResult {
  uint32_t linktype = 0;
  uint64_t packets = 0;
  uint64_t valid_end = 0;    // file offset just past the last good record
  uint64_t file_size = 0;    // the file's size (not bounded by ScanOptions::limit)
  uint64_t scanned_end = 0;  // the end of what was scanned: min(file_size, limit)
  bool header_ok = false;    // false: not a pcap file we can read (nothing was visited)
  // A file shorter than a pcap file header whose bytes are the start of the one tm writes
  // (magic and version): a segment being created. Any other short file is not a segment.
  bool header_begun = false;
  enum class End : uint8_t {
    kClean,       // every byte up to scanned_end was read
    kIncomplete,  // from valid_end: one record cut short (a crash, or a write under way), or
                  // zero bytes to the end (space the file system gave but a crash left unwritten)
    kDamaged,     // the record at valid_end is none tm writes (damage): the rest is not read
  };
  End end = End::kClean;
  std::string damage;  // kDamaged: what is wrong with the record at valid_end
  uint64_t unread() const { return scanned_end > valid_end ? scanned_end - valid_end : 0; }
};

// Calls visit(offset, ts_ns, caplen, wirelen, data) for every good record in order.
// Throws std::runtime_error when the file cannot be opened.
using RecordVisitor = std::function<void(uint64_t offset, uint64_t ts_ns, uint32_t caplen, uint32_t wirelen,
                                         const uint8_t* data)>;
ScanResult scan_pcap(const std::string& path, const RecordVisitor& visit, const ScanOptions& opts = {});

// The lower bound of a segment's timestamps its file name says (0 when it is no segment name).
uint64_t name_min_ts(const std::string& pcap_path);

}  // namespace tmach::store
