// The sidecar of a sealed segment ("NAME.idx" next to "NAME.pcap"): its metadata, the
// directory, every packet's file offset, and the indexes.
//
// Layout (little-endian), version 4:
//   128-byte header: magic "TMSIDE\0\0", version, header CRC, SegmentMeta fields, and the
//                    size and CRC of the section table — readable alone, so adopting a store
//                    reads 128 bytes per segment;
//   section table:   per section its id, offset, length, flags (unused), CRC;
//   sections:        the directory; the offsets (record lengths, zstd, in blocks of 4096
//                    packets) with a table of each block's position and CRC;
//                    per field the sorted keys, a fence (first key and CRC of every block of
//                    256 keys) and the bitmaps (portable CRoaring, each with size and CRC).
// A query maps the file and reads only the pieces its plan needs, checking the CRC of each
// piece it reads: per lookup the fence, one key block and one bitmap; per candidate the
// offset block holding it — so what a lookup costs barely depends on the segment's size.
// A sidecar of another version or with a bad CRC is refused (SidecarError), never trusted:
// the caller scans or rebuilds from the pcap.
#pragma once

#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "store/index.h"
#include "store/index_lookup.h"
#include "store/segment_meta.h"

struct ZSTD_DCtx_s;
typedef struct ZSTD_DCtx_s ZSTD_DCtx;

namespace tmach::store {

inline constexpr uint32_t kSidecarVersion = 4;  // 3: sections, read lazily; 4: keys and offsets in blocks
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
  std::vector<uint32_t> offsets() const;    // all of them (decodes every block)
  uint32_t offset(uint32_t ordinal) const;  // one; fastest for ascending ordinals
  Roaring addr(const AddrKey& key) const override;
  Roaring addr_prefix(const packet::IpAddr& net, unsigned bits) const override;
  Roaring scalar(Field f, uint32_t lo, uint32_t hi) const override;
  SegmentIndex all() const;  // every bitmap (tests, tools)
  // Every key of a scalar field with the number of packets carrying it (statistics).
  std::vector<std::pair<uint32_t, uint64_t>> counts(Field f) const;
  // Checks the CRC of every section (what a full read needs; lookups check only their pieces).
  void verify_all() const;

  struct Section {
    uint32_t id, flags;
    uint64_t offset, stored, raw;
    uint32_t crc, pad;
  };

 private:
  SidecarView() = default;
  // The sorted keys of one field, checked lazily block by block.
  struct Keys {
    bool loaded = false;
    const uint8_t* base = nullptr;   // n keys of klen bytes
    const uint8_t* fence = nullptr;  // per block: first key, CRC of the block
    uint32_t n = 0, klen = 0;
    mutable std::vector<uint8_t> checked;  // per block
  };
  const Section* section(uint32_t id) const;
  const Section& need(uint32_t id) const;
  std::vector<uint8_t> load(uint32_t id) const;  // a whole section, checked
  const Keys& keys(Field f) const;               // fence checked, cached
  const uint8_t* key_at(const Keys& k, uint32_t i) const;
  // First key not below `key` (addresses compare bytewise, scalars as little-endian uint32).
  uint32_t lower_bound(const Keys& k, const uint8_t* key, bool bytewise) const;
  Roaring bitmap(Field f, uint32_t i) const;
  void load_offset_block(uint32_t b) const;

  std::string path_;
  const uint8_t* base_ = nullptr;
  size_t size_ = 0;
  SegmentMeta meta_;
  std::vector<Section> sections_;
  mutable std::vector<Keys> keys_ = std::vector<Keys>(8);
  mutable std::vector<uint8_t> offset_table_;
  mutable std::vector<uint32_t> block_offsets_;
  mutable uint32_t block_ = UINT32_MAX;
  struct FreeDCtx {
    void operator()(ZSTD_DCtx* c) const;
  };
  mutable std::unique_ptr<ZSTD_DCtx, FreeDCtx> dctx_;  // reused for every offset block
  mutable std::vector<uint8_t> raw_;
};

}  // namespace tmach::store
