// The sidecar writer: a sealed segment's directory, offsets and indexes to "NAME.idx", from
// the sealer's postings or from Roaring bitmaps, the same bytes for the same sets. Layout in
// sidecar_format.h.
#include <fmt/format.h>
#include <zstd.h>

#include <algorithm>
#include <cstring>

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
  std::vector<uint8_t> buf;
};

using BitmapRef = SidecarView::BitmapRef;

using Sections = std::vector<std::pair<uint32_t, std::vector<uint8_t>>>;  // id, raw bytes

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
  std::vector<uint8_t> bms(table + blob_bytes);
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
// so it decodes alone.
std::vector<uint8_t> delta_code(const uint32_t* off, size_t n) {
  Writer w;
  uint32_t prev = 0;
  for (size_t i = 0; i < n; ++i) {
    uint32_t d = off[i] - prev;
    if (d < 0xffff) {
      w.put<uint16_t>(static_cast<uint16_t>(d));
    } else {
      w.put<uint16_t>(0xffff);
      w.put<uint32_t>(d);
    }
    prev = off[i];
  }
  return std::move(w.buf);
}

// Writes a sidecar: the directory and offsets sections, then `put_indexes(Sections&)` adds
// the index sections (put_field per field).
template <class PutIndexes>
uint64_t write_sections(const std::string& path, const SegmentMeta& meta,
                        const std::vector<DirEntry>& directory, const std::vector<uint32_t>& offsets,
                        PutIndexes put_indexes) {
  Sections secs;
  {
    Writer w;
    for (auto& d : directory) w.put(d);
    secs.emplace_back(kSecDirectory, std::move(w.buf));
  }
  {
    Writer table, blocks;
    for (size_t at = 0; at < offsets.size(); at += kOffsetsPerBlock) {
      size_t n = std::min<size_t>(offsets.size() - at, kOffsetsPerBlock);
      std::vector<uint8_t> raw = delta_code(offsets.data() + at, n);
      std::vector<uint8_t> z(ZSTD_compressBound(raw.size()));
      size_t zn = ZSTD_compress(z.data(), z.size(), raw.data(), raw.size(), 1);
      if (ZSTD_isError(zn))
        throw SidecarError(fmt::format("{}: compression failed: {}", path, ZSTD_getErrorName(zn)));
      table.put(OffsetBlock{blocks.buf.size(), static_cast<uint32_t>(zn), static_cast<uint32_t>(raw.size()),
                            util::crc32(z.data(), zn), 0});
      blocks.bytes(z.data(), zn);
    }
    secs.emplace_back(kSecOffsetTable, std::move(table.buf));
    secs.emplace_back(kSecOffsets, std::move(blocks.buf));
  }
  put_indexes(secs);

  std::vector<SidecarView::Section> table(secs.size());
  std::vector<std::vector<uint8_t>> stored(secs.size());
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

  try {
    util::replace_file_atomic(path, [&](int fd, const std::string& tmp) {
      util::write_all(fd, &h, sizeof(h), tmp);
      util::write_all(fd, table.data(), table.size() * sizeof(SidecarView::Section), tmp);
      for (auto& st : stored) util::write_all(fd, st.data(), st.size(), tmp);
    });
  } catch (const util::IoError& e) {
    throw SidecarError(e.what());
  }
  return pos;
}

}  // namespace

uint64_t write_sidecar(const std::string& path, const SegmentMeta& meta,
                       const std::vector<DirEntry>& directory, const std::vector<uint32_t>& offsets,
                       const PostingIndex& ix) {
  return write_sections(path, meta, directory, offsets, [&](Sections& secs) {
    auto size = [](PostingIndex::Span s) { return size_t{s.bytes}; };
    auto write = [&](PostingIndex::Span s, uint8_t* out) {
      roaring_portable_write(ix.of(s).data(), s.size, out);
    };
    auto prefetch = [&](PostingIndex::Span s) { __builtin_prefetch(ix.ords.data() + s.begin); };
    put_field(secs, Field::kAddr, ix.addr, put_addr_key, size, write, prefetch);
    put_field(secs, Field::kPort, ix.port, put_scalar_key, size, write, prefetch);
    put_field(secs, Field::kProto, ix.proto, put_scalar_key, size, write, prefetch);
    put_field(secs, Field::kNet, ix.net, put_scalar_key, size, write, prefetch);
    put_field(secs, Field::kVlan, ix.vlan, put_scalar_key, size, write, prefetch);
  });
}

uint64_t write_sidecar(const std::string& path, const SegmentMeta& meta, const SidecarBody& body) {
  return write_sections(path, meta, body.directory, body.offsets, [&](Sections& secs) {
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
