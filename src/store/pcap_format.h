// The classic pcap file format as the store writes it: nanosecond magic, native (little-endian) order.
#pragma once

#include <cstdint>

namespace tmach::store {

inline constexpr uint32_t kPcapMagicNsec = 0xa1b23c4d;
inline constexpr uint32_t kSnaplen = 262144;

struct PcapFileHeader {
  uint32_t magic = kPcapMagicNsec;
  uint16_t version_major = 2;
  uint16_t version_minor = 4;
  int32_t thiszone = 0;
  uint32_t sigfigs = 0;
  uint32_t snaplen = kSnaplen;
  uint32_t linktype = 1;
};
static_assert(sizeof(PcapFileHeader) == 24);

struct PcapRecordHeader {
  uint32_t ts_sec;
  uint32_t ts_nsec;
  uint32_t caplen;
  uint32_t wirelen;
};
static_assert(sizeof(PcapRecordHeader) == 16);

}  // namespace tmach::store
