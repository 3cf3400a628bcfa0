// The sidecar writer: a sealed segment's directory, offsets and indexes to "NAME.idx", from
// the sealer's postings or from Roaring bitmaps, the same bytes for the same sets. Layout in
// sidecar_format.h.
#include <fmt/format.h>
// For ZSTD_compressSequences (encode_offsets): experimental API, so this file must be built
// against the libzstd it runs with (as a distribution's packages are).
#define ZSTD_STATIC_LINKING_ONLY
#include <zstd.h>

#include <algorithm>
#include <cstring>
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

// id, raw bytes. (Sized without a zero fill: each is then written over in full.)
using Sections = std::vector<std::pair<uint32_t, UninitVector<uint8_t>>>;

// The sections of one field from its keys in order: `items` is a sequence of (key, bitmap)
// of any kind, `put_key(Writer&, key)` writes a key, `blob_size(bitmap)` and
// `write_blob(bitmap, uint8_t* out)` serialise its bitmap (portable CRoaring). The bitmaps
// are written in place into the section, sized once up front. `prefetch(bitmap)` is called
// a few keys ahead of write_blob: key order is not the order of the bitmaps in memory.
template <class Items, class KeyWriter, class BlobSize, class BlobWrite, class Prefetch>
void put_field(Sections& secs, Field f, const Items& items, KeyWriter put_key, BlobSize blob_size,
               BlobWrite write_blob, Prefetch prefetch) {
  Writer keys, fence;
  const size_t klen = key_len(f);
  keys.buf.reserve(items.size() * klen);
  for (const auto& [k, b] : items) put_key(keys, k);
  for (size_t at = 0; at < keys.buf.size(); at += klen * kKeysPerBlock) {
    size_t len = std::min(keys.buf.size() - at, klen * kKeysPerBlock);
    fence.bytes(keys.buf.data() + at, klen);
    fence.put<uint32_t>(util::crc32(keys.buf.data() + at, len));
  }
  // The bitmap section: a reference (offset after the table, size, CRC) per key, then the blobs.
  std::vector<BitmapRef> refs;
  refs.reserve(items.size());
  uint64_t blob_bytes = 0;
  for (const auto& [k, b] : items) {
    const size_t n = blob_size(b);
    refs.push_back(BitmapRef{blob_bytes, static_cast<uint32_t>(n), 0});
    blob_bytes += n;
  }
  const size_t table = refs.size() * sizeof(BitmapRef);
  UninitVector<uint8_t> bms(table + blob_bytes);  // (the table and every blob, in full)
  constexpr size_t kAhead = 8;
  auto ahead = items.begin();
  for (size_t a = 0; a < kAhead && ahead != items.end(); ++a, ++ahead) prefetch(ahead->second);
  size_t i = 0;
  for (const auto& [k, b] : items) {
    if (ahead != items.end()) prefetch((ahead++)->second);
    BitmapRef& r = refs[i++];
    uint8_t* blob = bms.data() + table + r.offset;
    write_blob(b, blob);
    r.crc = util::crc32(blob, r.size);
  }
  if (table) std::memcpy(bms.data(), refs.data(), table);
  secs.emplace_back(kSecKeys + static_cast<uint32_t>(f), std::move(keys.buf));
  secs.emplace_back(kSecFence + static_cast<uint32_t>(f), std::move(fence.buf));
  secs.emplace_back(kSecBitmaps + static_cast<uint32_t>(f), std::move(bms));
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

// Writes a sidecar: the directory and offsets sections, then `put_indexes(Sections&)` adds
// the index sections (put_field per field).
template <class PutIndexes>
uint64_t write_sections(const std::string& path, const SegmentMeta& meta,
                        const std::vector<DirEntry>& directory, EncodedOffsets offsets,
                        PutIndexes put_indexes) {
  Sections secs;
  {
    Writer w;
    for (auto& d : directory) w.put(d);
    secs.emplace_back(kSecDirectory, std::move(w.buf));
  }
  secs.emplace_back(kSecOffsetTable, std::move(offsets.table));
  secs.emplace_back(kSecOffsets, std::move(offsets.blocks));
  put_indexes(secs);

  std::vector<SidecarView::Section> table(secs.size());
  std::vector<UninitVector<uint8_t>> stored(secs.size());
  uint64_t pos = kSidecarHeaderSize + table.size() * sizeof(SidecarView::Section);
  for (size_t i = 0; i < secs.size(); ++i) {
    auto& [id, raw] = secs[i];
    SidecarView::Section& t = table[i];
    t = SidecarView::Section{id, 0, pos, raw.size(), raw.size(), 0, 0};
    stored[i] = std::move(raw);
    t.stored = stored[i].size();
    t.crc = util::crc32(stored[i].data(), stored[i].size());
    pos += t.stored;
  }

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
  h.flags = meta.monotonic ? 1 : 0;
  h.body_raw = table.size();               // sections
  h.body_zstd = pos - kSidecarHeaderSize;  // bytes after the header
  h.body_crc = util::crc32(table.data(), table.size() * sizeof(SidecarView::Section));
  h.header_crc = util::crc32(&h, sizeof(h));

  // (util::IoError as it is: its errno tells a full disk from other failures, StoreWriter::make_room)
  util::replace_file_atomic(path, [&](int fd, const std::string& tmp) {
    util::write_all(fd, &h, sizeof(h), tmp);
    util::write_all(fd, table.data(), table.size() * sizeof(SidecarView::Section), tmp);
    for (auto& st : stored) util::write_all(fd, st.data(), st.size(), tmp);
  });
  return pos;
}

// The index sections of the scalar fields (all but addresses).
void put_scalar_fields(Sections& secs, const PostingIndex& ix) {
  auto size = [](PostingIndex::Span s) { return size_t{s.bytes}; };
  auto write = [&](PostingIndex::Span s, uint8_t* out) { ix.write(s, out); };
  auto prefetch = [&](PostingIndex::Span s) { ix.prefetch(s); };
  put_field(secs, Field::kPort, ix.port, put_scalar_key, size, write, prefetch);
  put_field(secs, Field::kProto, ix.proto, put_scalar_key, size, write, prefetch);
  put_field(secs, Field::kNet, ix.net, put_scalar_key, size, write, prefetch);
  put_field(secs, Field::kVlan, ix.vlan, put_scalar_key, size, write, prefetch);
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

uint64_t write_sidecar(const std::string& path, const SegmentMeta& meta,
                       const std::vector<DirEntry>& directory, const std::vector<uint32_t>& offsets,
                       const PostingIndex& ix) {
  return write_sidecar(path, meta, directory, encode_offsets(path, offsets), ix, false);
}

uint64_t write_sidecar(const std::string& path, const SegmentMeta& meta,
                       const std::vector<DirEntry>& directory, EncodedOffsets offsets, const PostingIndex& ix,
                       bool two_threads) {
  return write_sections(path, meta, directory, std::move(offsets), [&](Sections& secs) {
    // The scalar fields on a helper thread while this one writes the addresses' sections (the
    // helper reads `ix`, which neither changes meanwhile, and fills its own `Sections`).
    std::future<Sections> scalars;
    if (two_threads)
      scalars = std::async(std::launch::async, [&ix] {
        Sections s;
        put_scalar_fields(s, ix);
        return s;
      });
    auto size = [](PostingIndex::Span s) { return size_t{s.bytes}; };
    auto write = [&](PostingIndex::Span s, uint8_t* out) { ix.write(s, out); };
    auto prefetch = [&](PostingIndex::Span s) { ix.prefetch(s); };
    put_field(secs, Field::kAddr, ix.addr, put_addr_key, size, write, prefetch);
    if (!two_threads) {
      put_scalar_fields(secs, ix);
      return;
    }
    Sections rest = scalars.get();  // (rethrows the helper's failure)
    for (auto& sec : rest) secs.push_back(std::move(sec));
  });
}

uint64_t write_sidecar(const std::string& path, const SegmentMeta& meta, const SidecarBody& body) {
  return write_sections(path, meta, body.directory, encode_offsets(path, body.offsets), [&](Sections& secs) {
    auto size = [](const Roaring& b) { return b.getSizeInBytes(true); };
    auto write = [](const Roaring& b, uint8_t* out) { b.write(reinterpret_cast<char*>(out), true); };
    auto prefetch = [](const Roaring&) {};
    const SegmentIndex& ix = body.index;
    put_field(secs, Field::kAddr, ix.addr, put_addr_key, size, write, prefetch);
    put_field(secs, Field::kPort, ix.port, put_scalar_key, size, write, prefetch);
    put_field(secs, Field::kProto, ix.proto, put_scalar_key, size, write, prefetch);
    put_field(secs, Field::kNet, ix.net, put_scalar_key, size, write, prefetch);
    put_field(secs, Field::kVlan, ix.vlan, put_scalar_key, size, write, prefetch);
  });
}

}  // namespace tmach::store
