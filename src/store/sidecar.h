// The sidecar of a sealed segment ("NAME.idx" next to "NAME.pcap"): its metadata, the
// directory, every packet's file offset, and the indexes.
//
// Layout (little-endian):
//   128-byte header: magic "TMSIDE\0\0", version, header CRC, SegmentMeta fields, body sizes,
//                    body CRC — readable alone, so adopting a store reads 128 bytes per segment;
//   body (zstd):     directory, offsets (delta-coded), then per field: keys and portable
//                    roaring bitmaps.
// A sidecar of another version or with a bad CRC is refused (SidecarError), never trusted:
// the caller rebuilds it from the pcap.
#pragma once

#include <stdexcept>
#include <string>
#include <vector>

#include "store/index.h"
#include "store/segment_meta.h"

namespace tmach::store {

inline constexpr uint32_t kSidecarVersion = 2;  // 2: offsets delta-coded
inline constexpr size_t kSidecarHeaderSize = 128;

class SidecarError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct SidecarBody {
  std::vector<DirEntry> directory;
  std::vector<uint32_t> offsets;  // file offset of each packet's record header
  SegmentIndex index;
};

// Writes atomically: to "PATH.tmp", fsync, rename over PATH, fsync the directory.
// Returns the bytes written. Throws SidecarError on I/O failure.
uint64_t write_sidecar(const std::string& path, const SegmentMeta& meta, const SidecarBody& body);

// Reads and checks the header only (128 bytes).
SegmentMeta read_sidecar_meta(const std::string& path);
// Reads and checks everything.
SidecarBody read_sidecar_body(const std::string& path, SegmentMeta* meta = nullptr);

}  // namespace tmach::store
