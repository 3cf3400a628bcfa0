// The sidecar reader: SidecarView (the header and section table read at open, every other
// piece read with pread and checked when first needed), read_sidecar_meta() (the header
// alone) and read_sidecar_body() (everything, checked). Layout in sidecar_format.h.
#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zstd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "store/sidecar.h"
#include "store/sidecar_format.h"
#include "util/crc32.h"
#include "util/file_io.h"

namespace tmach::store {
namespace {

using namespace sidecar_format;

// Reads up to `n` bytes at `off` (fewer only at the end of the file).
size_t pread_full(int fd, void* dst, size_t n, uint64_t off, const std::string& path) {
  ssize_t got = util::pread_full(fd, dst, n, off);
  if (got < 0) throw SidecarError(fmt::format("{}: read failed: {}", path, std::strerror(errno)));
  return static_cast<size_t>(got);
}

Header parse_header(const uint8_t* p, size_t got, const std::string& path) {
  Header h;
  if (got < sizeof(h)) throw SidecarError(fmt::format("{}: shorter than its header", path));
  std::memcpy(&h, p, sizeof(h));
  if (std::memcmp(h.magic, kMagic, 8) != 0) throw SidecarError(fmt::format("{}: not a tm sidecar", path));
  if (h.version != kSidecarVersion)
    throw SidecarError(
        fmt::format("{}: sidecar version {} (this tm reads {})", path, h.version, kSidecarVersion));
  uint32_t crc = h.header_crc;
  h.header_crc = 0;
  if (util::crc32(&h, sizeof(h)) != crc)
    throw SidecarError(fmt::format("{}: header checksum mismatch", path));
  h.header_crc = crc;
  return h;
}

Header read_header(int fd, const std::string& path) {
  Header h;
  size_t got = pread_full(fd, &h, sizeof(h), 0, path);
  return parse_header(reinterpret_cast<const uint8_t*>(&h), got, path);
}

SegmentMeta meta_of(const Header& h) {
  SegmentMeta m;
  m.seq = h.seq;
  m.first_ts = h.first_ts;
  m.last_ts = h.last_ts;
  m.packets = h.packets;
  m.pcap_bytes = h.pcap_bytes;
  m.wire_bytes = h.wire_bytes;
  m.linktype = h.linktype;
  m.monotonic = h.flags & kFlagMonotonic;
  m.cut_frames = !(h.flags & kFlagCutKnown) || (h.flags & kFlagCutFrames);
  return m;
}

struct Fd {
  int fd;
  ~Fd() {
    if (fd >= 0) close(fd);
  }
};

}  // namespace

SegmentMeta read_sidecar_meta(const std::string& path, uint64_t* file_bytes) {
  Fd f{::open(path.c_str(), O_RDONLY | O_CLOEXEC)};
  if (f.fd < 0) throw SidecarError(fmt::format("{}: cannot open: {}", path, std::strerror(errno)));
  struct stat st;
  bool have_size = fstat(f.fd, &st) == 0;
  if (have_size && file_bytes) *file_bytes = static_cast<uint64_t>(st.st_size);
  Header h = read_header(f.fd, path);
  if (have_size && static_cast<uint64_t>(st.st_size) != sizeof(h) + h.body_zstd)
    throw SidecarError(
        fmt::format("{}: size {} does not match its header ({})", path, st.st_size, sizeof(h) + h.body_zstd));
  return meta_of(h);
}

std::unique_ptr<SidecarView> SidecarView::open(const std::string& path) {
  std::unique_ptr<SidecarView> v(new SidecarView());
  v->path_ = path;
  v->fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (v->fd_ < 0) throw SidecarError(fmt::format("{}: cannot open: {}", path, std::strerror(errno)));
  struct stat st;
  if (fstat(v->fd_, &st) != 0)
    throw SidecarError(fmt::format("{}: cannot stat: {}", path, std::strerror(errno)));
  v->size_ = static_cast<uint64_t>(st.st_size);
  // One read for the header and the section table behind it (and whatever follows them in
  // the first 4 KiB: later reads of those bytes are served from it). Reading a whole small
  // sidecar at once instead was measured slower on the 64 KiB-segment store (copying ~25 KB
  // cost more than the few reads it saved).
  v->head_.resize(std::min<uint64_t>(v->size_, kHeadRead));
  v->head_.resize(pread_full(v->fd_, v->head_.data(), v->head_.size(), 0, path));
  const uint8_t* head = v->head_.data();
  size_t got = v->head_.size();
  Header h = parse_header(head, got, path);
  if (v->size_ != sizeof(h) + h.body_zstd)
    throw SidecarError(fmt::format("{}: size does not match its header", path));
  if (h.body_raw > 64) throw SidecarError(fmt::format("{}: implausible section count", path));
  v->meta_ = meta_of(h);
  size_t tbytes = h.body_raw * sizeof(Section);
  if (sizeof(h) + tbytes > v->size_) throw SidecarError(fmt::format("{}: section table damaged", path));
  v->sections_.resize(h.body_raw);
  if (sizeof(h) + tbytes <= got)
    std::memcpy(v->sections_.data(), head + sizeof(h), tbytes);
  else
    v->read_at(sizeof(h), v->sections_.data(), tbytes);
  if (util::crc32(v->sections_.data(), tbytes) != h.body_crc)
    throw SidecarError(fmt::format("{}: section table damaged", path));
  for (const auto& s : v->sections_)
    if (s.offset > v->size_ || s.stored > v->size_ - s.offset)
      throw SidecarError(fmt::format("{}: section {} out of bounds", path, s.id));
  return v;
}

void SidecarView::FreeDCtx::operator()(ZSTD_DCtx* c) const { ZSTD_freeDCtx(c); }

SidecarView::~SidecarView() {
  if (fd_ >= 0) ::close(fd_);
}

void SidecarView::read_at(uint64_t off, void* dst, size_t n) const {
  if (off <= head_.size() && n <= head_.size() - off) {
    if (n) std::memcpy(dst, head_.data() + off, n);
    return;
  }
  if (off > size_ || n > size_ - off || pread_full(fd_, dst, n, off, path_) != n)
    throw SidecarError(fmt::format("{}: truncated (reading {} bytes at {})", path_, n, off));
}

const SidecarView::Section* SidecarView::section(uint32_t id) const {
  for (const auto& s : sections_)
    if (s.id == id) return &s;
  return nullptr;
}

const SidecarView::Section& SidecarView::need(uint32_t id) const {
  const Section* s = section(id);
  if (!s) throw SidecarError(fmt::format("{}: section {} missing", path_, id));
  return *s;
}

std::vector<uint8_t> SidecarView::load(uint32_t id) const {
  const Section& s = need(id);
  std::vector<uint8_t> b(s.stored);
  read_at(s.offset, b.data(), b.size());
  if (util::crc32(b.data(), b.size()) != s.crc)
    throw SidecarError(fmt::format("{}: section {} checksum mismatch", path_, id));
  return b;
}

void SidecarView::verify_all() const {
  for (const auto& s : sections_) load(s.id);
}

std::vector<DirEntry> SidecarView::directory() const {
  std::vector<uint8_t> raw = load(kSecDirectory);
  std::vector<DirEntry> d(raw.size() / sizeof(DirEntry));
  if (!d.empty()) std::memcpy(d.data(), raw.data(), d.size() * sizeof(DirEntry));
  return d;
}

void SidecarView::load_offset_block(uint32_t b) const {
  if (offset_table_.empty() && meta_.packets > 0) {
    std::vector<uint8_t> t = load(kSecOffsetTable);
    uint64_t nblocks = (meta_.packets + kOffsetsPerBlock - 1) / kOffsetsPerBlock;
    if (t.size() != nblocks * sizeof(OffsetBlock))
      throw SidecarError(fmt::format("{}: offset table does not match the packet count", path_));
    offset_table_ = std::move(t);
  }
  if (static_cast<uint64_t>(b) * kOffsetsPerBlock >= meta_.packets)
    throw SidecarError(fmt::format("{}: packet ordinal out of range", path_));
  OffsetBlock ob;
  std::memcpy(&ob, offset_table_.data() + b * sizeof(OffsetBlock), sizeof(ob));
  uint64_t count =
      std::min<uint64_t>(kOffsetsPerBlock, meta_.packets - static_cast<uint64_t>(b) * kOffsetsPerBlock);
  const Section& s = need(kSecOffsets);
  if (ob.pos > s.stored || ob.stored > s.stored - ob.pos || ob.raw > count * 6)
    throw SidecarError(fmt::format("{}: offset block {} out of bounds", path_, b));
  zbuf_.resize(ob.stored);
  read_at(s.offset + ob.pos, zbuf_.data(), ob.stored);
  if (util::crc32(zbuf_.data(), ob.stored) != ob.crc)
    throw SidecarError(fmt::format("{}: offset block {} checksum mismatch", path_, b));
  // One decompression context per thread, for every sidecar: creating one costs more than
  // decoding a block.
  thread_local std::unique_ptr<ZSTD_DCtx, FreeDCtx> dctx;
  if (!dctx) dctx.reset(ZSTD_createDCtx());
  if (!dctx) throw SidecarError(fmt::format("{}: out of memory", path_));
  raw_.resize(ob.raw);
  size_t n = ZSTD_decompressDCtx(dctx.get(), raw_.data(), raw_.size(), zbuf_.data(), ob.stored);
  if (ZSTD_isError(n) || n != raw_.size())
    throw SidecarError(fmt::format("{}: offset block {} does not decompress", path_, b));
  block_offsets_.resize(count);
  size_t at = 0;
  uint32_t prev = 0;
  for (uint64_t i = 0; i < count; ++i) {
    uint16_t d16;
    if (at + 2 > raw_.size()) throw SidecarError(fmt::format("{}: offset block {} ends early", path_, b));
    std::memcpy(&d16, raw_.data() + at, 2);
    at += 2;
    uint32_t d = d16;
    if (d == 0xffff) {
      if (at + 4 > raw_.size()) throw SidecarError(fmt::format("{}: offset block {} ends early", path_, b));
      std::memcpy(&d, raw_.data() + at, 4);
      at += 4;
    }
    prev += d;
    block_offsets_[i] = prev;
  }
  block_ = b;
}

uint32_t SidecarView::offset(uint32_t ordinal) const {
  if (ordinal >= meta_.packets) throw SidecarError(fmt::format("{}: packet ordinal out of range", path_));
  uint32_t b = ordinal / kOffsetsPerBlock;
  if (b != block_) load_offset_block(b);
  return block_offsets_[ordinal % kOffsetsPerBlock];
}

std::vector<uint32_t> SidecarView::offsets() const {
  std::vector<uint32_t> out;
  out.reserve(meta_.packets);
  for (uint64_t at = 0; at < meta_.packets; at += kOffsetsPerBlock) {
    load_offset_block(static_cast<uint32_t>(at / kOffsetsPerBlock));
    out.insert(out.end(), block_offsets_.begin(), block_offsets_.end());
  }
  return out;
}

const SidecarView::Keys& SidecarView::keys(Field f) const {
  Keys& k = keys_[static_cast<size_t>(f)];
  if (k.loaded) return k;
  uint32_t fid = static_cast<uint32_t>(f);
  const Section& ks = need(kSecKeys + fid);
  const Section& fs = need(kSecFence + fid);
  const Section& bs = need(kSecBitmaps + fid);
  size_t klen = key_len(f);
  uint64_t n = ks.stored / klen;
  uint64_t nblocks = (n + kKeysPerBlock - 1) / kKeysPerBlock;
  if (ks.stored % klen || fs.stored != nblocks * (klen + 4) || bs.stored < n * sizeof(BitmapRef) ||
      n > UINT32_MAX)
    throw SidecarError(fmt::format("{}: field {} inconsistent", path_, fid));
  k.fence.resize(fs.stored);
  read_at(fs.offset, k.fence.data(), fs.stored);
  if (util::crc32(k.fence.data(), fs.stored) != fs.crc)
    throw SidecarError(fmt::format("{}: key fence of field {} checksum mismatch", path_, fid));
  k.offset = ks.offset;
  k.n = static_cast<uint32_t>(n);
  k.klen = static_cast<uint32_t>(klen);
  k.blocks.assign(nblocks, {});
  k.loaded = true;
  return k;
}

const uint8_t* SidecarView::key_at(const Keys& k, uint32_t i) const {
  uint32_t b = i / kKeysPerBlock;
  std::vector<uint8_t>& block = k.blocks[b];
  if (block.empty()) {
    uint32_t count = std::min(kKeysPerBlock, k.n - b * kKeysPerBlock);
    std::vector<uint8_t> bytes(static_cast<size_t>(count) * k.klen);
    read_at(k.offset + static_cast<uint64_t>(b) * kKeysPerBlock * k.klen, bytes.data(), bytes.size());
    uint32_t crc;
    std::memcpy(&crc, k.fence.data() + static_cast<uint64_t>(b) * (k.klen + 4) + k.klen, 4);
    if (util::crc32(bytes.data(), bytes.size()) != crc ||
        std::memcmp(bytes.data(), k.fence.data() + static_cast<uint64_t>(b) * (k.klen + 4), k.klen) != 0)
      throw SidecarError(fmt::format("{}: key block {} checksum mismatch", path_, b));
    block = std::move(bytes);
  }
  return block.data() + static_cast<uint64_t>(i % kKeysPerBlock) * k.klen;
}

uint32_t SidecarView::lower_bound(const Keys& k, const uint8_t* key, bool bytewise) const {
  auto less = [&](const uint8_t* a) {
    if (bytewise) return std::memcmp(a, key, k.klen) < 0;
    uint32_t x, y;
    std::memcpy(&x, a, 4);
    std::memcpy(&y, key, 4);
    return x < y;
  };
  // The fence (checked as a whole) picks the block; only that block's keys are read.
  uint32_t nblocks = static_cast<uint32_t>(k.blocks.size());
  uint32_t lo = 0, hi = nblocks;
  while (lo < hi) {
    uint32_t mid = (lo + hi) / 2;
    if (less(k.fence.data() + static_cast<uint64_t>(mid) * (k.klen + 4)))
      lo = mid + 1;
    else
      hi = mid;
  }
  // Blocks before `lo` start below the key; the answer is in block lo - 1, or is lo's start.
  if (lo == 0) return 0;
  uint32_t b = lo - 1;
  uint32_t first = b * kKeysPerBlock, last = std::min(k.n, first + kKeysPerBlock);
  uint32_t l = first, h = last;
  while (l < h) {
    uint32_t mid = (l + h) / 2;
    if (less(key_at(k, mid)))
      l = mid + 1;
    else
      h = mid;
  }
  return l;
}

std::vector<SidecarView::BitmapRef> SidecarView::refs(Field f, uint32_t i0, uint32_t i1) const {
  const Keys& k = keys(f);  // (checks that the section holds the n references)
  const Section& b = need(kSecBitmaps + static_cast<uint32_t>(f));
  if (i0 > i1 || i1 > k.n) throw SidecarError(fmt::format("{}: bitmap index out of range", path_));
  // A single key's reference is asked for twice (the planner's cost, then the bitmap).
  if (i1 == i0 + 1)
    for (const auto& [field, i, ref] : ref_cache_)
      if (field == f && i == i0) return {ref};
  std::vector<BitmapRef> r(i1 - i0);
  if (!r.empty())
    read_at(b.offset + static_cast<uint64_t>(i0) * sizeof(BitmapRef), r.data(), r.size() * sizeof(BitmapRef));
  // Bounded: a view serves one segment of one query, whose filter names a few keys.
  if (r.size() == 1 && ref_cache_.size() < 64) ref_cache_.push_back({f, i0, r[0]});
  return r;
}

void SidecarView::bitmaps(Field f, uint32_t i0, uint32_t i1,
                          const std::function<void(uint32_t, Roaring&&)>& fn) const {
  if (i0 >= i1) return;
  std::vector<BitmapRef> r = refs(f, i0, i1);
  const Keys& k = keys(f);
  const Section& b = need(kSecBitmaps + static_cast<uint32_t>(f));
  // The bitmaps of consecutive keys are stored one after the other: one read for all.
  uint64_t area = static_cast<uint64_t>(k.n) * sizeof(BitmapRef), room = b.stored - area;
  uint64_t lo = r.front().offset;
  uint64_t hi = r.back().offset + r.back().size;
  if (lo > room || r.back().offset > room || hi > room || hi < lo)
    throw SidecarError(fmt::format("{}: bitmap out of bounds", path_));
  blobs_.resize(hi - lo);
  read_at(b.offset + area + lo, blobs_.data(), blobs_.size());
  for (size_t j = 0; j < r.size(); ++j) {
    const BitmapRef& ref = r[j];
    if (ref.offset < lo || ref.offset > hi || ref.size > hi - ref.offset)
      throw SidecarError(fmt::format("{}: bitmap out of bounds", path_));
    const uint8_t* p = blobs_.data() + (ref.offset - lo);
    if (util::crc32(p, ref.size) != ref.crc)
      throw SidecarError(fmt::format("{}: bitmap checksum mismatch", path_));
    Roaring bm;
    try {
      bm = Roaring::readSafe(reinterpret_cast<const char*>(p), ref.size);
    } catch (const std::exception& e) {
      throw SidecarError(fmt::format("{}: bad bitmap: {}", path_, e.what()));
    }
    fn(i0 + static_cast<uint32_t>(j), std::move(bm));
  }
}

Roaring SidecarView::union_of(Field f, uint32_t i0, uint32_t i1) const {
  Roaring r;
  bitmaps(f, i0, i1, [&](uint32_t, Roaring&& b) {
    if (r.isEmpty())
      r = std::move(b);
    else
      r |= b;
  });
  return r;
}

// Key ranges: [first, end) of the keys a lookup covers.
std::pair<uint32_t, uint32_t> SidecarView::addr_range(const packet::IpAddr& net, unsigned bits) const {
  const Keys& k = keys(Field::kAddr);
  uint32_t i = lower_bound(k, net.b.data(), true), e = i;
  for (; e < k.n; ++e) {
    packet::IpAddr a;
    std::memcpy(a.b.data(), key_at(k, e), 16);
    if (!a.in_prefix(net, bits)) break;
  }
  return {i, e};
}

std::pair<uint32_t, uint32_t> SidecarView::scalar_range(Field f, uint32_t lo_key, uint32_t hi_key) const {
  const Keys& k = keys(f);
  uint8_t lo_bytes[4];
  std::memcpy(lo_bytes, &lo_key, 4);
  uint32_t i = lower_bound(k, lo_bytes, false), e = i;
  for (; e < k.n; ++e) {
    uint32_t v;
    std::memcpy(&v, key_at(k, e), 4);
    if (v > hi_key) break;
  }
  return {i, e};
}

std::pair<uint32_t, uint32_t> SidecarView::addr_keys(const AddrKey& key) const {
  const Keys& k = keys(Field::kAddr);
  uint32_t i = lower_bound(k, key.data(), true);
  return i < k.n && std::memcmp(key_at(k, i), key.data(), 16) == 0 ? std::pair{i, i + 1} : std::pair{i, i};
}

// Each lookup is a key range ([first, end), the functions above) given to union_of() for
// its bitmap or to cost() for what reading it takes.
Roaring SidecarView::addr(const AddrKey& key) const {
  auto [i, e] = addr_keys(key);
  return union_of(Field::kAddr, i, e);
}

Roaring SidecarView::addr_prefix(const packet::IpAddr& net, unsigned bits) const {
  auto [i, e] = addr_range(net, bits);
  return union_of(Field::kAddr, i, e);
}

Roaring SidecarView::scalar(Field f, uint32_t lo_key, uint32_t hi_key) const {
  auto [i, e] = scalar_range(f, lo_key, hi_key);
  return union_of(f, i, e);
}

uint64_t SidecarView::cost(Field f, uint32_t i0, uint32_t i1) const {
  if (i0 >= i1) return 0;  // (as union_of: nothing to read)
  uint64_t n = 0;
  for (const BitmapRef& r : refs(f, i0, i1)) n += r.size;
  return n;
}

uint64_t SidecarView::addr_cost(const AddrKey& key) const {
  auto [i, e] = addr_keys(key);
  return cost(Field::kAddr, i, e);
}

uint64_t SidecarView::addr_prefix_cost(const packet::IpAddr& net, unsigned bits) const {
  auto [i, e] = addr_range(net, bits);
  return cost(Field::kAddr, i, e);
}

uint64_t SidecarView::scalar_cost(Field f, uint32_t lo_key, uint32_t hi_key) const {
  auto [i, e] = scalar_range(f, lo_key, hi_key);
  return cost(f, i, e);
}

SegmentIndex SidecarView::all() const {
  SegmentIndex ix;
  const Keys& ka = keys(Field::kAddr);
  bitmaps(Field::kAddr, 0, ka.n, [&](uint32_t i, Roaring&& b) {
    AddrKey key;
    std::memcpy(key.data(), key_at(ka, i), 16);
    ix.addr.emplace(key, std::move(b));
  });
  for (Field f : {Field::kPort, Field::kProto, Field::kNet, Field::kVlan}) {
    const Keys& ks = keys(f);
    auto& m = f == Field::kPort    ? ix.port
              : f == Field::kProto ? ix.proto
              : f == Field::kNet   ? ix.net
                                   : ix.vlan;
    bitmaps(f, 0, ks.n, [&](uint32_t i, Roaring&& b) {
      uint32_t key;
      std::memcpy(&key, key_at(ks, i), 4);
      m.emplace(key, std::move(b));
    });
  }
  return ix;
}

std::vector<std::pair<uint32_t, uint64_t>> SidecarView::counts(Field f) const {
  const Keys& k = keys(f);
  std::vector<std::pair<uint32_t, uint64_t>> out;
  bitmaps(f, 0, k.n, [&](uint32_t i, Roaring&& b) {
    uint32_t key;
    std::memcpy(&key, key_at(k, i), 4);
    out.emplace_back(key, b.cardinality());
  });
  return out;
}

SidecarBody read_sidecar_body(const std::string& path, SegmentMeta* meta) {
  auto v = SidecarView::open(path);
  v->verify_all();
  if (meta) *meta = v->meta();
  SidecarBody b;
  b.directory = v->directory();
  b.offsets = v->offsets();
  b.index = v->all();
  return b;
}

std::string verify_sidecar(const std::string& path) {
  try {
    SidecarView::open(path)->verify_all();
  } catch (const std::exception& e) {
    return e.what();
  }
  return {};
}

}  // namespace tmach::store
