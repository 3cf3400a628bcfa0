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
// A query reads (pread) only the pieces its plan needs, checking the CRC of each
// piece it reads: per lookup the fence, one key block and one bitmap; per candidate the
// offset block holding it — so what a lookup costs barely depends on the segment's size.
// A sidecar of another version or with a bad CRC is refused (SidecarError), never trusted:
// the caller scans or rebuilds from the pcap.
#pragma once

#include <functional>
#include <memory>
#include <span>
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
// Returns the bytes written. Throws util::IoError on I/O failure (naming the file, with its errno).
// From postings (what the sealer has): each bitmap serialised straight from its ordinals.
uint64_t write_sidecar(const std::string& path, const SegmentMeta& meta,
                       const std::vector<DirEntry>& directory, const std::vector<uint32_t>& offsets,
                       const PostingIndex& index);
// The offsets sections (kSecOffsetTable, kSecOffsets) of a sidecar, encoded ahead: they
// depend on the offsets only, so a sealer may encode them while it builds the postings.
// `path` names the sidecar in errors. Throws SidecarError.
struct EncodedOffsets {
  UninitVector<uint8_t> table, blocks;  // (the table is sized, then written over)
};
// How the blocks are compressed (both are plain zstd frames, read alike): kRuns gives zstd
// the runs of one difference as matches (ZSTD_compressSequences, experimental API), and
// falls back to kStable (ZSTD_compressCCtx level 1) for a block it refuses; kStable is that
// fallback alone (for its test).
enum class OffsetsCoding { kRuns, kStable };
EncodedOffsets encode_offsets(const std::string& path, std::span<const uint32_t> offsets,
                              OffsetsCoding coding = OffsetsCoding::kRuns);
// The same bytes, from the offsets encoded ahead; with `two_threads`, the scalar fields'
// sections are serialised on a helper thread (a std::async task, joined before this
// returns) while this one serialises the addresses'.
uint64_t write_sidecar(const std::string& path, const SegmentMeta& meta,
                       const std::vector<DirEntry>& directory, EncodedOffsets offsets,
                       const PostingIndex& index, bool two_threads);
// The memory the write_sidecar above takes beyond its arguments: its write buffer (one per
// thread, 1 MiB) and the reference table of the field being written (16 bytes a key). The
// sidecar itself is written to its file as it is made, never held whole.
uint64_t sidecar_write_memory(const PostingIndex& index, bool two_threads);
// From Roaring bitmaps (e.g. an index read back, or made by hand): the same bytes for the
// same sets.
uint64_t write_sidecar(const std::string& path, const SegmentMeta& meta, const SidecarBody& body);

// Reads and checks the header only (128 bytes). `file_bytes`: set to the file's size (even
// when the header is then refused).
SegmentMeta read_sidecar_meta(const std::string& path, uint64_t* file_bytes = nullptr);
// Reads and checks everything.
SidecarBody read_sidecar_body(const std::string& path, SegmentMeta* meta = nullptr);
// Checks the header, the section table and every section's CRC (reading the whole file):
// "" when sound, else what is wrong. What `tm record` does to every sealed sidecar at start,
// so that damage past the header (which queries only meet piece by piece) gets rebuilt.
std::string verify_sidecar(const std::string& path);

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
  uint64_t addr_cost(const AddrKey& key) const override;
  uint64_t addr_prefix_cost(const packet::IpAddr& net, unsigned bits) const override;
  uint64_t scalar_cost(Field f, uint32_t lo, uint32_t hi) const override;
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
  struct BitmapRef {
    uint64_t offset;  // within the bitmap section, after the reference table
    uint32_t size;
    uint32_t crc;
  };

 private:
  SidecarView() = default;
  struct FreeDCtx {
    void operator()(ZSTD_DCtx* c) const;
  };
  // The sorted keys of one field: the fence read and checked at first use, each block of
  // keys read and checked when a lookup first lands in it.
  struct Keys {
    bool loaded = false;
    uint64_t offset = 0;         // of the keys section: n keys of klen bytes
    std::vector<uint8_t> fence;  // per block: first key, CRC of the block
    uint32_t n = 0, klen = 0;
    mutable std::vector<std::vector<uint8_t>> blocks;  // per block; empty until read
  };
  void read_at(uint64_t off, void* dst, size_t n) const;  // exactly n bytes or SidecarError
  const Section* section(uint32_t id) const;
  const Section& need(uint32_t id) const;
  std::vector<uint8_t> load(uint32_t id) const;  // a whole section, checked
  const Keys& keys(Field f) const;               // fence checked, cached
  const uint8_t* key_at(const Keys& k, uint32_t i) const;
  // First key not below `key` (addresses compare bytewise, scalars as little-endian uint32).
  uint32_t lower_bound(const Keys& k, const uint8_t* key, bool bytewise) const;
  std::pair<uint32_t, uint32_t> addr_keys(const AddrKey& key) const;  // [i, i + 1), or empty
  std::pair<uint32_t, uint32_t> addr_range(const packet::IpAddr& net, unsigned bits) const;
  std::pair<uint32_t, uint32_t> scalar_range(Field f, uint32_t lo, uint32_t hi) const;
  std::vector<BitmapRef> refs(Field f, uint32_t i0, uint32_t i1) const;  // unchecked
  uint64_t cost(Field f, uint32_t i0, uint32_t i1) const;
  // The bitmaps of keys i0..i1-1, read in one piece and each checked, in key order.
  void bitmaps(Field f, uint32_t i0, uint32_t i1, const std::function<void(uint32_t, Roaring&&)>& fn) const;
  Roaring union_of(Field f, uint32_t i0, uint32_t i1) const;
  void load_offset_block(uint32_t b) const;

  // Pieces are read with pread, not through a mapping: a narrow query reads a few KB from
  // each of many sidecars, and mapping them cost more in page-table work (fault-around,
  // munmap) than the reads (bench: see the commit that made the change).
  static constexpr size_t kHeadRead = 4096;  // header + section table (+ what follows)
  std::string path_;
  int fd_ = -1;
  uint64_t size_ = 0;
  std::vector<uint8_t> head_;  // the first kHeadRead bytes of the file
  SegmentMeta meta_;
  std::vector<Section> sections_;
  mutable std::vector<Keys> keys_ = std::vector<Keys>(8);
  mutable std::vector<uint8_t> offset_table_;
  mutable std::vector<uint32_t> block_offsets_;
  mutable uint32_t block_ = UINT32_MAX;
  struct CachedRef {
    Field f;
    uint32_t i;
    BitmapRef ref;
  };
  mutable std::vector<CachedRef> ref_cache_;
  mutable std::vector<uint8_t> raw_, zbuf_, blobs_;
};

}  // namespace tmach::store
