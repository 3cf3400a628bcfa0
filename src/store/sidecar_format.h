// Internal to the sidecar (src/store/sidecar_*.cpp): the on-disk layout the writer
// (sidecar_writer.cpp) and the reader (sidecar_reader.cpp) share. sidecar.h describes the
// file as a whole; here are the header struct, the section ids and what each section holds:
//
//   kSecDirectory        the segment's DirEntry array
//   kSecOffsetTable      an OffsetBlock per kOffsetsPerBlock packets
//   kSecOffsets          the offset blocks: each zstd over the differences of successive
//                        offsets (uint16; 0xffff then a uint32 for a larger one), the first
//                        from 0, so that a block decodes alone
//   kSecKeys + field     the field's keys, sorted, key_len(field) bytes each (addresses as
//                        16 bytes compared bytewise, scalars as little-endian uint32)
//   kSecFence + field    per block of kKeysPerBlock keys: its first key, the CRC of the block
//   kSecBitmaps + field  a SidecarView::BitmapRef per key, then the portable CRoaring blobs
//
// Every integer is little-endian (the structs are written as they are in memory).
#pragma once

#include <cstddef>
#include <cstdint>

#include "store/index.h"
#include "store/sidecar.h"

namespace tmach::store::sidecar_format {

inline constexpr char kMagic[8] = {'T', 'M', 'S', 'I', 'D', 'E', 0, 0};

// The first kSidecarHeaderSize bytes of the file.
struct Header {
  char magic[8];                                                     // kMagic
  uint32_t version;                                                  // kSidecarVersion
  uint32_t header_crc;                                               // of the header, with this field 0
  uint64_t seq, first_ts, last_ts, packets, pcap_bytes, wire_bytes;  // SegmentMeta
  uint32_t linktype;                                                 // SegmentMeta
  uint32_t flags;                                                    // kFlag*
  uint64_t body_raw, body_zstd;  // despite the names: the number of sections; the bytes after the header
  uint32_t body_crc;             // of the section table (a SidecarView::Section per section)
  uint8_t reserved[kSidecarHeaderSize - 8 - 4 - 4 - 6 * 8 - 4 - 4 - 16 - 4];
};
static_assert(sizeof(Header) == kSidecarHeaderSize);

// Header::flags. kFlagCutKnown: the writer set kFlagCutFrames, which says whether the kNet
// index holds the key kNetCut (writers before it did not, and some of their sidecars hold it:
// SegmentMeta::cut_frames is true for them).
inline constexpr uint32_t kFlagMonotonic = 1, kFlagCutKnown = 2, kFlagCutFrames = 4;

inline constexpr uint32_t kSecDirectory = 1, kSecOffsets = 2, kSecOffsetTable = 3, kSecKeys = 16,
                          kSecBitmaps = 32, kSecFence = 48;

// Keys are checked in blocks: a lookup verifies the small fence of its field (first key and
// CRC of every block) and then one block, instead of every key of the field.
inline constexpr uint32_t kKeysPerBlock = 256;
// Offsets are zstd-compressed in blocks of 4096 packets, each with its position and CRC in a
// table: a narrow query decodes only the blocks holding its candidates. Measured on the 5 GB
// bench store (perf stat task-clock, `tm query 'host X'`, 27,694 packets): raw uint16 lengths
// in blocks of 256 took 108 ms against 169 ms here, but at 2.3 instead of 0.9 bytes per
// packet they took the index from 4.7 % to 5.2 % of the pcap at cutoff 15k (target 5 %).
inline constexpr uint32_t kOffsetsPerBlock = 4096;

inline size_t key_len(Field f) { return f == Field::kAddr ? 16 : 4; }

struct OffsetBlock {
  uint64_t pos;  // within the offsets section
  uint32_t stored, raw, crc, pad;
};

}  // namespace tmach::store::sidecar_format
