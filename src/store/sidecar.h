// The sidecar of a sealed segment ("NAME.idx" next to "NAME.pcap"): its metadata, the
// directory, every packet's file offset, and the indexes.
//
// Layout (little-endian), version 3:
//   128-byte header: magic "TMSIDE\0\0", version, header CRC, SegmentMeta fields, and the
//                    size and CRC of the section table — readable alone, so adopting a store
//                    reads 128 bytes per segment;
//   section table:   per section its id, offset, stored and raw length, zstd flag, CRC;
//   sections:        directory; offsets (delta-coded, zstd); per field the sorted keys, and
//                    the bitmaps (portable CRoaring), each with its own size and CRC.
// A query maps the file and reads only the sections and bitmaps its plan needs, checking
// the CRC of each piece it reads. A sidecar of another version or with a bad CRC is refused
// (SidecarError), never trusted: the caller scans or rebuilds from the pcap.
#pragma once

#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "store/index.h"
#include "store/index_lookup.h"
#include "store/segment_meta.h"

namespace tmach::store {

inline constexpr uint32_t kSidecarVersion = 3;  // 3: sections, read lazily
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

// A sidecar mapped read-only; pieces are read and checked on demand. Throws SidecarError
// (from open() or any accessor) when what it reads is damaged.
class SidecarView : public IndexLookup {
 public:
  static std::unique_ptr<SidecarView> open(const std::string& path);
  ~SidecarView() override;

  const SegmentMeta& meta() const { return meta_; }
  std::vector<DirEntry> directory() const;
  std::vector<uint32_t> offsets() const;
  Roaring addr(const AddrKey& key) const override;
  Roaring addr_prefix(const packet::IpAddr& net, unsigned bits) const override;
  Roaring scalar(Field f, uint32_t lo, uint32_t hi) const override;
  SegmentIndex all() const;  // every bitmap (tests, tools)
  // Every key of a scalar field with the number of packets carrying it (statistics).
  std::vector<std::pair<uint32_t, uint64_t>> counts(Field f) const;

  struct Section {
    uint32_t id, flags;
    uint64_t offset, stored, raw;
    uint32_t crc, pad;
  };

 private:
  SidecarView() = default;
  const Section* section(uint32_t id) const;
  std::vector<uint8_t> load(uint32_t id) const;     // checked, decompressed
  const uint8_t* keys(Field f, uint32_t& n) const;  // checked once, cached
  Roaring bitmap(Field f, uint32_t i) const;

  std::string path_;
  const uint8_t* base_ = nullptr;
  size_t size_ = 0;
  SegmentMeta meta_;
  std::vector<Section> sections_;
  mutable std::vector<int8_t> keys_checked_ = std::vector<int8_t>(8, 0);
};

}  // namespace tmach::store
