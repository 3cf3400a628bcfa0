// The sidecar writer: a sealed segment's directory, offsets and indexes to "NAME.idx", from
// the sealer's postings or from Roaring bitmaps, the same bytes for the same sets. Layout in
// sidecar_format.h.
#include <fmt/format.h>
// For ZSTD_compressSequences (encode_offsets): experimental API, so this file must be built
// against the libzstd it runs with (as a distribution's packages are).
#define ZSTD_STATIC_LINKING_ONLY
#include <zstd.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <functional>
#include <future>
#include <memory>

#include "store/roaring_writer.h"
#include "store/sidecar.h"
#include "store/sidecar_format.h"
#include "util/crc32.h"
#include "util/file_io.h"

namespace tmach::store {
namespace {

using namespace sidecar_format;

class Writer {
 public:
  template <class T>
  void put(const T& v) {
    const auto* p = reinterpret_cast<const uint8_t*>(&v);
    buf.insert(buf.end(), p, p + sizeof(T));
  }
  void bytes(const void* p, size_t n) {
    const auto* b = static_cast<const uint8_t*>(p);
    buf.insert(buf.end(), b, b + n);
  }
  UninitVector<uint8_t> buf;
};

using BitmapRef = SidecarView::BitmapRef;

// A section's place in the file and its checksum, once written.
struct Placed {
  uint32_t id;
  uint64_t pos, size;
  uint32_t crc = 0;
};

// Writes a section's bytes at their place in the file as they are made, through a buffer of
// its own written out (pwrite) whenever it is full: the sidecar is not built whole in memory
// first (a 256 MiB segment of minimum-size frames has ~25 MB of bitmaps, fresh pages at
// every seal). The CRC runs over what is written.
class SectionOut {
 public:
  static constexpr size_t kBuffer = size_t{1} << 20;
  SectionOut(int fd, const std::string& tmp) : fd_(fd), tmp_(tmp), buf_(kBuffer) {}
  void start(uint64_t pos) {
    pos_ = pos;
    used_ = 0;
    crc_ = 0;
    written_ = 0;
  }
  // Room for `n` bytes, to be written in place and then kept with commit(n).
  uint8_t* room(size_t n) {
    if (used_ + n > buf_.size()) {
      flush();
      if (n > buf_.size()) buf_.resize(n);
    }
    return buf_.data() + used_;
  }
  void commit(size_t n) {
    used_ += n;
    written_ += n;
  }
  void bytes(const void* p, size_t n) {
    if (!n) return;  // (an empty field: `p` may be null)
    std::memcpy(room(n), p, n);
    commit(n);
  }
  // Writes out what is buffered; the CRC of everything since start(), whose length must be
  // `planned`, the section's size in the layout (else the sidecar is not made: it would be
  // wrong where the section overran, or left a gap).
  uint32_t finish(uint64_t planned) {
    flush();
    if (written_ != planned)
      throw SidecarError(
          fmt::format("{}: a section of {} bytes where {} were planned", tmp_, written_, planned));
    return crc_;
  }
  int fd() const { return fd_; }
  const std::string& path() const { return tmp_; }

 private:
  void flush() {
    if (!used_) return;
    crc_ = util::crc32(buf_.data(), used_, crc_);
    util::pwrite_all(fd_, buf_.data(), used_, pos_, tmp_);
    pos_ += used_;
    used_ = 0;
  }
  int fd_;
  const std::string& tmp_;
  UninitVector<uint8_t> buf_;
  uint64_t pos_ = 0, written_ = 0;
  size_t used_ = 0;
  uint32_t crc_ = 0;
};

// One field's three sections (keys, fences, bitmaps), sized from its keys up front and
// written later at the places the layout gives them. `items` is a sequence of (key, bitmap)
// of any kind, `put_key(Writer&, key)` writes a key, `blob_size(bitmap)` and
// `write_blob(bitmap, uint8_t* out)` serialise its bitmap (portable CRoaring), in place.
// `prefetch(bitmap)` is called a few keys ahead of write_blob: key order is not the order of
// the bitmaps in memory.
struct FieldSections {
  std::array<Placed, 3> secs;  // keys, fence, bitmaps
  std::function<void(SectionOut&, std::array<Placed, 3>&)> write;
};

template <class Items, class KeyWriter, class BlobSize, class BlobWrite, class Prefetch>
FieldSections field_sections(Field f, const Items& items, KeyWriter put_key, BlobSize blob_size,
                             BlobWrite write_blob, Prefetch prefetch) {
  const size_t klen = key_len(f), n = std::size(items);
  uint64_t blob_bytes = 0;
  for (const auto& [k, b] : items) blob_bytes += blob_size(b);
  const auto field = static_cast<uint32_t>(f);
  FieldSections fs;
  fs.secs = {Placed{kSecKeys + field, 0, n * klen},
             Placed{kSecFence + field, 0, (n + kKeysPerBlock - 1) / kKeysPerBlock * (klen + 4)},
             Placed{kSecBitmaps + field, 0, n * sizeof(BitmapRef) + blob_bytes}};
  fs.write = [&items, klen, n, put_key, blob_size, write_blob, prefetch](SectionOut& out,
                                                                         std::array<Placed, 3>& secs) {
    // The keys, and per block of them its first key and CRC (the fence, written whole after).
    Writer block, fence;
    fence.buf.reserve(secs[1].size);
    out.start(secs[0].pos);
    size_t in_block = 0;
    auto end_block = [&] {
      fence.bytes(block.buf.data(), klen);
      fence.put<uint32_t>(util::crc32(block.buf.data(), block.buf.size()));
      out.bytes(block.buf.data(), block.buf.size());
      block.buf.clear();
      in_block = 0;
    };
    for (const auto& [k, b] : items) {
      put_key(block, k);
      if (++in_block == kKeysPerBlock) end_block();
    }
    if (in_block) end_block();
    secs[0].crc = out.finish(secs[0].size);
    out.start(secs[1].pos);
    out.bytes(fence.buf.data(), fence.buf.size());
    secs[1].crc = out.finish(secs[1].size);
    // The bitmap section: a reference (offset after the table, size, CRC) per key, then the
    // blobs. The blobs are written first, behind the table's place; the table, complete once
    // every blob's CRC is known, then at its place; the section's CRC from the two parts'.
    std::vector<BitmapRef> refs;
    refs.reserve(n);
    const uint64_t table = n * sizeof(BitmapRef);
    out.start(secs[2].pos + table);
    constexpr size_t kAhead = 8;
    auto ahead = std::begin(items);
    for (size_t a = 0; a < kAhead && ahead != std::end(items); ++a, ++ahead) prefetch(ahead->second);
    uint64_t offset = 0;
    for (const auto& [k, b] : items) {
      if (ahead != std::end(items)) prefetch((ahead++)->second);
      const size_t size = blob_size(b);
      uint8_t* blob = out.room(size);
      write_blob(b, blob);
      refs.push_back(BitmapRef{offset, static_cast<uint32_t>(size), util::crc32(blob, size)});
      out.commit(size);
      offset += size;
    }
    const uint32_t blobs_crc = out.finish(secs[2].size - table);
    if (table) util::pwrite_all(out.fd(), refs.data(), table, secs[2].pos, out.path());
    secs[2].crc = util::crc32_combine(util::crc32(refs.data(), table), blobs_crc, offset);
  };
  return fs;
}

void put_addr_key(Writer& w, const AddrKey& k) { w.bytes(k.data(), 16); }
void put_scalar_key(Writer& w, uint32_t k) { w.put<uint32_t>(k); }

// Offsets as differences from the previous one (record lengths): two bytes each, which
// zstd then packs further; 0xffff escapes a full 4-byte value. Each block starts from 0,
// so it decodes alone. Writes to `out` (room for 6 bytes an offset); returns the bytes.
//
// zstd is told the matches rather than left to search for them (see encode_offsets): the
// only ones looked for are runs of one difference (fixed-size records, e.g. the flows
// file's), each a match at the distance of one entry. `seqs` gets one sequence per run of
// kMinRun or more repeats (shorter ones cost more as a sequence than as Huffman-coded
// literals), then the block's closing one (its remaining literals, no match).
constexpr size_t kMinRun = 8;

// The sequence of the run of `run` repeats of the difference `d` that ends at byte `p`, with
// the literals from `lit` before it; `lit` then moves to `p`.
void add_run(std::vector<ZSTD_Sequence>& seqs, size_t p, size_t& lit, size_t run, uint32_t d) {
  const size_t entry = d < 0xffff ? 2 : 6, match = run * entry;
  seqs.push_back(ZSTD_Sequence{static_cast<unsigned>(entry), static_cast<unsigned>(p - match - lit),
                               static_cast<unsigned>(match), 0});
  lit = p;
}

// Not inlined: within encode_offsets the loop's variables were spilled to the stack (25
// instructions an offset against 20 here; without the runs, 11).
__attribute__((noinline)) size_t delta_code(const uint32_t* off, size_t n, uint8_t* out,
                                            std::vector<ZSTD_Sequence>& seqs) {
  seqs.clear();
  size_t p = 0, lit = 0;                               // bytes written; the first byte not yet in a sequence
  size_t run = 0;                                      // repeats of prev_d just written (after its first)
  uint32_t prev = 0, prev_d = n > 0 ? off[0] + 1 : 0;  // (not the first difference)
  for (size_t i = 0; i < n; ++i) {
    const uint32_t d = off[i] - prev;
    prev = off[i];
    if (d == prev_d) {
      ++run;
    } else {
      if (run >= kMinRun) add_run(seqs, p, lit, run, prev_d);
      run = 0;
      prev_d = d;
    }
    if (d < 0xffff) {
      const auto d16 = static_cast<uint16_t>(d);
      std::memcpy(out + p, &d16, 2);
      p += 2;
    } else {
      const uint16_t esc = 0xffff;
      std::memcpy(out + p, &esc, 2);
      std::memcpy(out + p + 2, &d, 4);
      p += 6;
    }
  }
  if (run >= kMinRun) add_run(seqs, p, lit, run, prev_d);
  seqs.push_back(ZSTD_Sequence{0, static_cast<unsigned>(p - lit), 0, 0});
  return p;
}

struct FreeCCtx {
  void operator()(ZSTD_CCtx* c) const { ZSTD_freeCCtx(c); }
};

// Writes a sidecar: the header, the section table, the directory and offsets sections, then
// the index sections of `fields`, each written in place (field_sections). With `two_threads`
// the first field's sections are written on this thread while a helper writes the others'
// (the file's regions are disjoint; each has its own buffer; the fields' sources are only
// read).
uint64_t write_sections(const std::string& path, const SegmentMeta& meta,
                        const std::vector<DirEntry>& directory, const EncodedOffsets& offsets,
                        std::vector<FieldSections> fields, bool cut_frames, bool two_threads) {
  std::vector<Placed> secs{{kSecDirectory, 0, directory.size() * sizeof(DirEntry)},
                           {kSecOffsetTable, 0, offsets.table.size()},
                           {kSecOffsets, 0, offsets.blocks.size()}};
  const size_t nsecs = secs.size() + 3 * fields.size();
  uint64_t pos = kSidecarHeaderSize + nsecs * sizeof(SidecarView::Section);
  for (Placed& p : secs) pos += (p.pos = pos, p.size);
  for (FieldSections& f : fields)
    for (Placed& p : f.secs) pos += (p.pos = pos, p.size);

  // (util::IoError as it is: its errno tells a full disk from other failures, StoreWriter::make_room)
  util::replace_file_atomic(path, [&](int fd, const std::string& tmp) {
    const void* data[] = {directory.data(), offsets.table.data(), offsets.blocks.data()};
    for (size_t i = 0; i < secs.size(); ++i) {
      util::pwrite_all(fd, data[i], secs[i].size, secs[i].pos, tmp);
      secs[i].crc = util::crc32(data[i], secs[i].size);
    }
    std::future<void> rest;
    size_t here = fields.size();
    if (two_threads && fields.size() > 1) {
      here = 1;
      rest = std::async(std::launch::async, [&] {
        SectionOut out(fd, tmp);
        for (size_t f = 1; f < fields.size(); ++f) fields[f].write(out, fields[f].secs);
      });
    }
    {
      SectionOut out(fd, tmp);
      for (size_t f = 0; f < here; ++f) fields[f].write(out, fields[f].secs);
    }
    if (rest.valid()) rest.get();  // (rethrows the helper's failure)
    for (FieldSections& f : fields)
      for (Placed& p : f.secs) secs.push_back(p);

    std::vector<SidecarView::Section> table;
    table.reserve(secs.size());
    for (const Placed& p : secs)
      table.push_back(SidecarView::Section{p.id, 0, p.pos, p.size, p.size, p.crc, 0});
    Header h{};
    std::memcpy(h.magic, kMagic, 8);
    h.version = kSidecarVersion;
    h.seq = meta.seq;
    h.first_ts = meta.first_ts;
    h.last_ts = meta.last_ts;
    h.packets = meta.packets;
    h.pcap_bytes = meta.pcap_bytes;
    h.wire_bytes = meta.wire_bytes;
    h.linktype = meta.linktype;
    h.flags = (meta.monotonic ? kFlagMonotonic : 0) | kFlagCutKnown | (cut_frames ? kFlagCutFrames : 0);
    h.body_raw = table.size();               // sections
    h.body_zstd = pos - kSidecarHeaderSize;  // bytes after the header
    h.body_crc = util::crc32(table.data(), table.size() * sizeof(SidecarView::Section));
    h.header_crc = util::crc32(&h, sizeof(h));
    util::pwrite_all(fd, table.data(), table.size() * sizeof(SidecarView::Section), kSidecarHeaderSize, tmp);
    util::pwrite_all(fd, &h, sizeof(h), 0, tmp);
  });
  return pos;
}

// The index sections of every field of `ix` (the sealer's postings or a SegmentIndex: the
// same members), addresses first.
template <class Index, class BlobSize, class BlobWrite, class Prefetch>
std::vector<FieldSections> index_fields(const Index& ix, BlobSize size, BlobWrite write, Prefetch prefetch) {
  std::vector<FieldSections> f;
  f.push_back(field_sections(Field::kAddr, ix.addr, put_addr_key, size, write, prefetch));
  f.push_back(field_sections(Field::kPort, ix.port, put_scalar_key, size, write, prefetch));
  f.push_back(field_sections(Field::kProto, ix.proto, put_scalar_key, size, write, prefetch));
  f.push_back(field_sections(Field::kNet, ix.net, put_scalar_key, size, write, prefetch));
  f.push_back(field_sections(Field::kVlan, ix.vlan, put_scalar_key, size, write, prefetch));
  return f;
}

// Whether the kNet index `net` (key, bitmap pairs in key order) holds frames cut before their
// keys (kNetCut).
template <class Items>
bool has_cut_frames(const Items& net) {
  for (const auto& [k, b] : net)
    if (k == kNetCut) return true;
  return false;
}

}  // namespace

EncodedOffsets encode_offsets(const std::string& path, std::span<const uint32_t> offsets,
                              OffsetsCoding coding) {
  EncodedOffsets out;
  if (offsets.empty()) return out;
  // Each block is a zstd frame whose matches are given (delta_code's runs), so zstd does no
  // match search and only Huffman-codes the literals. The differences repeat as values, not
  // as strings, so zstd -1's search found little: callgrind on small30 (310,307 packets, one
  // segment), 37.4 M instructions at level 1 against 20.0 M here, for 257,762 against 255,675
  // bytes; heavy30 (97,719 packets) 11.8 M against 7.0 M, 89,415 against 93,932 bytes (+0.013 %
  // of the store). Level -5 took 25 M for 1.24 bytes an offset. Any zstd frame decodes, so the
  // reader is unchanged. One context for every block (creating one costs more than a block),
  // and one buffer for the differences and one for a block.
  std::unique_ptr<ZSTD_CCtx, FreeCCtx> cctx(ZSTD_createCCtx());
  if (!cctx) throw SidecarError(fmt::format("{}: compression failed: no memory for its context", path));
  auto check = [&](size_t r) {
    if (ZSTD_isError(r))
      throw SidecarError(fmt::format("{}: compression failed: {}", path, ZSTD_getErrorName(r)));
    return r;
  };
  // The sequences' last one ends the block (its remaining literals, no match); literals are
  // Huffman-coded whatever the level says.
  const bool sequences =
      coding == OffsetsCoding::kRuns &&
      !ZSTD_isError(
          ZSTD_CCtx_setParameter(cctx.get(), ZSTD_c_blockDelimiters, ZSTD_sf_explicitBlockDelimiters)) &&
      !ZSTD_isError(ZSTD_CCtx_setParameter(cctx.get(), ZSTD_c_literalCompressionMode, ZSTD_ps_enable));
  const size_t nblocks = (offsets.size() + kOffsetsPerBlock - 1) / kOffsetsPerBlock;
  std::vector<uint8_t> raw(6 * size_t{kOffsetsPerBlock}), z(ZSTD_compressBound(raw.size()));
  std::vector<ZSTD_Sequence> seqs;
  seqs.reserve(kOffsetsPerBlock / kMinRun + 2);
  out.table.resize(nblocks * sizeof(OffsetBlock));
  out.blocks.reserve(offsets.size());  // (about a byte an offset once compressed: grows if need be)
  for (size_t b = 0, at = 0; at < offsets.size(); ++b, at += kOffsetsPerBlock) {
    const size_t n = std::min<size_t>(offsets.size() - at, kOffsetsPerBlock);
    const size_t rn = delta_code(offsets.data() + at, n, raw.data(), seqs);
    size_t zn = 0;
    bool done = false;
    if (sequences) {
      zn = ZSTD_compressSequences(cctx.get(), z.data(), z.size(), seqs.data(), seqs.size(), raw.data(), rn);
      done = !ZSTD_isError(zn);
    }
    if (!done) [[unlikely]] {
      // The experimental API refusing (a libzstd other than the one built against, say) costs
      // the seal its speed, not the index: the same block through the stable API, level 1, on
      // the same context (ZSTD_compressCCtx ignores the advanced parameters set above).
      zn = check(ZSTD_compressCCtx(cctx.get(), z.data(), z.size(), raw.data(), rn, 1));
    }
    const OffsetBlock ob{out.blocks.size(), static_cast<uint32_t>(zn), static_cast<uint32_t>(rn),
                         util::crc32(z.data(), zn), 0};
    std::memcpy(out.table.data() + b * sizeof(OffsetBlock), &ob, sizeof ob);
    out.blocks.insert(out.blocks.end(), z.data(), z.data() + zn);
  }
  return out;
}

uint64_t sidecar_write_memory(const PostingIndex& ix, bool two_threads) {
  const size_t scalars = std::max({ix.port.size(), ix.proto.size(), ix.net.size(), ix.vlan.size()});
  return (two_threads ? 2 : 1) * SectionOut::kBuffer +
         sizeof(BitmapRef) * (two_threads ? ix.addr.size() + scalars : std::max(ix.addr.size(), scalars));
}

uint64_t write_sidecar(const std::string& path, const SegmentMeta& meta,
                       const std::vector<DirEntry>& directory, const std::vector<uint32_t>& offsets,
                       const PostingIndex& ix) {
  return write_sidecar(path, meta, directory, encode_offsets(path, offsets), ix, false);
}

uint64_t write_sidecar(const std::string& path, const SegmentMeta& meta,
                       const std::vector<DirEntry>& directory, EncodedOffsets offsets, const PostingIndex& ix,
                       bool two_threads) {
  auto size = [](PostingIndex::Span s) { return size_t{s.bytes}; };
  auto write = [&ix](PostingIndex::Span s, uint8_t* out) { ix.write(s, out); };
  auto prefetch = [&ix](PostingIndex::Span s) { ix.prefetch(s); };
  // (two threads: the addresses' sections on this one, the scalar fields' on a helper)
  return write_sections(path, meta, directory, offsets, index_fields(ix, size, write, prefetch),
                        has_cut_frames(ix.net), two_threads);
}

uint64_t write_sidecar(const std::string& path, const SegmentMeta& meta, const SidecarBody& body) {
  auto size = [](const Roaring& b) { return b.getSizeInBytes(true); };
  auto write = [](const Roaring& b, uint8_t* out) { b.write(reinterpret_cast<char*>(out), true); };
  auto prefetch = [](const Roaring&) {};
  return write_sections(path, meta, body.directory, encode_offsets(path, body.offsets),
                        index_fields(body.index, size, write, prefetch), has_cut_frames(body.index.net),
                        false);
}

}  // namespace tmach::store
