// Names of things in a store directory:
//   STORE                                   marker with the store format version
//   LOCK                                    flock()ed by the recorder that owns the store (so is
//                                           the directory itself: a LOCK deleted by hand locks nothing)
//   VERIFIED                                the sidecars known sound (store/verified.h)
//   quarantine/<class>/                     set aside: files named as segments that are no pcap,
//                                           sidecars whose pcap is missing
//   <class>/<seq:08>-<first_ns>-lt<linktype>.pcap   a segment (nanosecond pcap)
//   <class>/<seq:08>-<first_ns>-lt<linktype>.idx    its sidecar, present once sealed
// The sequence number orders a class's segments; first_ns is the smallest packet timestamp
// in the segment (a lower bound while it is written: see SegmentWriter, docs/FORMAT.md).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace tmach::store {

inline constexpr const char* kStoreMarker = "STORE";
inline constexpr const char* kLockFile = "LOCK";
// Files named as segments that are no pcap, and sidecars whose pcap is missing, go to
// <store>/quarantine/<class>/, never deleted.
inline constexpr const char* kQuarantineDir = "quarantine";
inline constexpr int kStoreFormat = 1;
// The smallest segment (store.segment_size; what a class whose budget is smaller than its
// segment size gets cut to at least), and the smallest disk budget: room for a few of them,
// each with its sidecar and the packet that ends it (less deleted every segment once sealed).
inline constexpr uint64_t kMinSegmentSize = 4096;
inline constexpr uint64_t kMinDiskBudget = 64 * 1024;

struct SegmentName {
  uint64_t seq = 0;
  uint64_t first_ns = 0;
  uint32_t linktype = 0;
};

// What a store's own entry named `name` is for (STORE, LOCK, VERIFIED, quarantine, flows:
// "the store's marker", "flow records", ...), or nullptr: a class's directory is named after the class, so
// no class may take one of these names (config.cpp refuses it).
const char* reserved_entry(std::string_view name);

std::string segment_base_name(const SegmentName& n);
// Parses a base name (without extension); nullopt if it is not one of ours.
std::optional<SegmentName> parse_segment_name(std::string_view base);

}  // namespace tmach::store
