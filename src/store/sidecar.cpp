#include "store/sidecar.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zstd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "util/crc32.h"

namespace tmach::store {
namespace {

constexpr char kMagic[8] = {'T', 'M', 'S', 'I', 'D', 'E', 0, 0};

struct Header {
  char magic[8];
  uint32_t version;
  uint32_t header_crc;
  uint64_t seq, first_ts, last_ts, packets, pcap_bytes, wire_bytes;
  uint32_t linktype;
  uint32_t flags;
  uint64_t body_raw, body_zstd;
  uint32_t body_crc;
  uint8_t reserved[kSidecarHeaderSize - 8 - 4 - 4 - 6 * 8 - 4 - 4 - 16 - 4];
};
static_assert(sizeof(Header) == kSidecarHeaderSize);

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

class Reader {
 public:
  Reader(const uint8_t* p, size_t n, const std::string& path) : p_(p), n_(n), path_(path) {}
  template <class T>
  T get() {
    T v;
    need(sizeof(T));
    std::memcpy(&v, p_ + pos_, sizeof(T));
    pos_ += sizeof(T);
    return v;
  }
  const uint8_t* take(size_t n) {
    need(n);
    const uint8_t* r = p_ + pos_;
    pos_ += n;
    return r;
  }
  void need(size_t n) const {
    if (n > n_ - pos_) throw SidecarError(fmt::format("{}: body ends early at byte {}", path_, pos_));
  }

 private:
  const uint8_t* p_;
  size_t n_, pos_ = 0;
  const std::string& path_;
};

void write_all(int fd, const void* p, size_t n, const std::string& path) {
  const auto* b = static_cast<const uint8_t*>(p);
  while (n > 0) {
    ssize_t r = ::write(fd, b, n);
    if (r < 0) {
      if (errno == EINTR) continue;
      throw SidecarError(fmt::format("{}: write failed: {}", path, std::strerror(errno)));
    }
    b += r;
    n -= static_cast<size_t>(r);
  }
}

Header read_header(int fd, const std::string& path) {
  Header h;
  ssize_t r = pread(fd, &h, sizeof(h), 0);
  if (r != static_cast<ssize_t>(sizeof(h)))
    throw SidecarError(fmt::format("{}: shorter than its header", path));
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

SegmentMeta meta_of(const Header& h) {
  SegmentMeta m;
  m.seq = h.seq;
  m.first_ts = h.first_ts;
  m.last_ts = h.last_ts;
  m.packets = h.packets;
  m.pcap_bytes = h.pcap_bytes;
  m.wire_bytes = h.wire_bytes;
  m.linktype = h.linktype;
  m.monotonic = h.flags & 1;
  return m;
}

struct Fd {
  int fd;
  ~Fd() {
    if (fd >= 0) close(fd);
  }
};

}  // namespace

namespace {

constexpr uint32_t kSecDirectory = 1, kSecOffsets = 2, kSecKeys = 16, kSecBitmaps = 32;
constexpr uint32_t kFlagZstd = 1;

struct BitmapRef {
  uint64_t offset;  // within the bitmap section, after the reference table
  uint32_t size;
  uint32_t crc;
};

template <class Map, class KeyWriter>
void put_field(std::vector<std::pair<uint32_t, std::vector<uint8_t>>>& secs, Field f, const Map& m,
               KeyWriter kw) {
  Writer keys, bms, blobs;
  for (auto& [k, b] : m) kw(keys, k);
  for (auto& [k, b] : m) {
    std::vector<char> blob(b.getSizeInBytes(true));
    b.write(blob.data(), true);
    bms.put(BitmapRef{blobs.buf.size(), static_cast<uint32_t>(blob.size()),
                      util::crc32(blob.data(), blob.size())});
    blobs.bytes(blob.data(), blob.size());
  }
  bms.bytes(blobs.buf.data(), blobs.buf.size());
  secs.emplace_back(kSecKeys + static_cast<uint32_t>(f), std::move(keys.buf));
  secs.emplace_back(kSecBitmaps + static_cast<uint32_t>(f), std::move(bms.buf));
}

}  // namespace

uint64_t write_sidecar(const std::string& path, const SegmentMeta& meta, const SidecarBody& body) {
  std::vector<std::pair<uint32_t, std::vector<uint8_t>>> secs;  // id, raw bytes
  {
    Writer w;
    for (auto& d : body.directory) w.put(d);
    secs.emplace_back(kSecDirectory, std::move(w.buf));
  }
  {
    // Offsets as differences from the previous one (record lengths): two bytes each, which
    // zstd then packs further; 0xffff escapes a full 4-byte value.
    Writer w;
    uint32_t prev = 0;
    for (uint32_t off : body.offsets) {
      uint32_t d = off - prev;
      if (d < 0xffff) {
        w.put<uint16_t>(static_cast<uint16_t>(d));
      } else {
        w.put<uint16_t>(0xffff);
        w.put<uint32_t>(d);
      }
      prev = off;
    }
    secs.emplace_back(kSecOffsets, std::move(w.buf));
  }
  const SegmentIndex& ix = body.index;
  auto scalar = [](Writer& w, const uint32_t& k) { w.put<uint32_t>(k); };
  put_field(secs, Field::kAddr, ix.addr, [](Writer& w, const AddrKey& k) { w.bytes(k.data(), 16); });
  put_field(secs, Field::kPort, ix.port, scalar);
  put_field(secs, Field::kProto, ix.proto, scalar);
  put_field(secs, Field::kNet, ix.net, scalar);
  put_field(secs, Field::kVlan, ix.vlan, scalar);

  std::vector<SidecarView::Section> table(secs.size());
  std::vector<std::vector<uint8_t>> stored(secs.size());
  uint64_t pos = kSidecarHeaderSize + table.size() * sizeof(SidecarView::Section);
  for (size_t i = 0; i < secs.size(); ++i) {
    auto& [id, raw] = secs[i];
    SidecarView::Section& t = table[i];
    t = SidecarView::Section{id, 0, pos, raw.size(), raw.size(), 0, 0};
    if (id == kSecOffsets && !raw.empty()) {
      std::vector<uint8_t> z(ZSTD_compressBound(raw.size()));
      size_t zn = ZSTD_compress(z.data(), z.size(), raw.data(), raw.size(), 3);
      if (ZSTD_isError(zn))
        throw SidecarError(fmt::format("{}: compression failed: {}", path, ZSTD_getErrorName(zn)));
      z.resize(zn);
      stored[i] = std::move(z);
      t.flags = kFlagZstd;
    } else {
      stored[i] = std::move(raw);
    }
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

  std::string tmp = path + ".tmp";
  Fd f{::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644)};
  if (f.fd < 0) throw SidecarError(fmt::format("{}: cannot create: {}", tmp, std::strerror(errno)));
  write_all(f.fd, &h, sizeof(h), tmp);
  write_all(f.fd, table.data(), table.size() * sizeof(SidecarView::Section), tmp);
  for (auto& st : stored) write_all(f.fd, st.data(), st.size(), tmp);
  if (fsync(f.fd) != 0) throw SidecarError(fmt::format("{}: fsync failed: {}", tmp, std::strerror(errno)));
  if (::rename(tmp.c_str(), path.c_str()) != 0)
    throw SidecarError(fmt::format("{}: rename failed: {}", path, std::strerror(errno)));
  std::string dir = std::filesystem::path(path).parent_path().string();
  Fd d{::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC)};
  if (d.fd >= 0) fsync(d.fd);
  return pos;
}

SegmentMeta read_sidecar_meta(const std::string& path) {
  Fd f{::open(path.c_str(), O_RDONLY | O_CLOEXEC)};
  if (f.fd < 0) throw SidecarError(fmt::format("{}: cannot open: {}", path, std::strerror(errno)));
  Header h = read_header(f.fd, path);
  struct stat st;
  if (fstat(f.fd, &st) == 0 && static_cast<uint64_t>(st.st_size) != sizeof(h) + h.body_zstd)
    throw SidecarError(
        fmt::format("{}: size {} does not match its header ({})", path, st.st_size, sizeof(h) + h.body_zstd));
  return meta_of(h);
}

std::unique_ptr<SidecarView> SidecarView::open(const std::string& path) {
  Fd f{::open(path.c_str(), O_RDONLY | O_CLOEXEC)};
  if (f.fd < 0) throw SidecarError(fmt::format("{}: cannot open: {}", path, std::strerror(errno)));
  Header h = read_header(f.fd, path);
  struct stat st;
  if (fstat(f.fd, &st) != 0 || static_cast<uint64_t>(st.st_size) != sizeof(h) + h.body_zstd)
    throw SidecarError(fmt::format("{}: size does not match its header", path));
  if (h.body_raw > 64) throw SidecarError(fmt::format("{}: implausible section count", path));
  std::unique_ptr<SidecarView> v(new SidecarView());
  v->path_ = path;
  v->meta_ = meta_of(h);
  v->size_ = static_cast<size_t>(st.st_size);
  void* m = mmap(nullptr, v->size_, PROT_READ, MAP_PRIVATE, f.fd, 0);
  if (m == MAP_FAILED) throw SidecarError(fmt::format("{}: cannot map", path));
  v->base_ = static_cast<const uint8_t*>(m);
  size_t tbytes = h.body_raw * sizeof(Section);
  if (sizeof(h) + tbytes > v->size_ || util::crc32(v->base_ + sizeof(h), tbytes) != h.body_crc)
    throw SidecarError(fmt::format("{}: section table damaged", path));
  v->sections_.resize(h.body_raw);
  std::memcpy(v->sections_.data(), v->base_ + sizeof(h), tbytes);
  for (const auto& s : v->sections_)
    if (s.offset > v->size_ || s.stored > v->size_ - s.offset)
      throw SidecarError(fmt::format("{}: section {} out of bounds", path, s.id));
  return v;
}

SidecarView::~SidecarView() {
  if (base_) munmap(const_cast<uint8_t*>(base_), size_);
}

const SidecarView::Section* SidecarView::section(uint32_t id) const {
  for (const auto& s : sections_)
    if (s.id == id) return &s;
  return nullptr;
}

std::vector<uint8_t> SidecarView::load(uint32_t id) const {
  const Section* s = section(id);
  if (!s) throw SidecarError(fmt::format("{}: section {} missing", path_, id));
  const uint8_t* p = base_ + s->offset;
  if (util::crc32(p, s->stored) != s->crc)
    throw SidecarError(fmt::format("{}: section {} checksum mismatch", path_, id));
  if (!(s->flags & kFlagZstd)) return std::vector<uint8_t>(p, p + s->stored);
  if (s->raw > (1ull << 32)) throw SidecarError(fmt::format("{}: implausible section size", path_));
  std::vector<uint8_t> raw(s->raw);
  size_t n = ZSTD_decompress(raw.data(), raw.size(), p, s->stored);
  if (ZSTD_isError(n) || n != raw.size())
    throw SidecarError(fmt::format("{}: section {} does not decompress", path_, id));
  return raw;
}

std::vector<DirEntry> SidecarView::directory() const {
  std::vector<uint8_t> raw = load(kSecDirectory);
  std::vector<DirEntry> d(raw.size() / sizeof(DirEntry));
  if (!d.empty()) std::memcpy(d.data(), raw.data(), d.size() * sizeof(DirEntry));
  return d;
}

std::vector<uint32_t> SidecarView::offsets() const {
  std::vector<uint8_t> raw = load(kSecOffsets);
  Reader rd(raw.data(), raw.size(), path_);
  std::vector<uint32_t> out;
  out.reserve(meta_.packets);
  uint32_t prev = 0;
  for (uint64_t i = 0; i < meta_.packets; ++i) {
    uint32_t d = rd.get<uint16_t>();
    if (d == 0xffff) d = rd.get<uint32_t>();
    prev += d;
    out.push_back(prev);
  }
  return out;
}

const uint8_t* SidecarView::keys(Field f, uint32_t& n) const {
  uint32_t id = kSecKeys + static_cast<uint32_t>(f);
  const Section* s = section(id);
  if (!s) throw SidecarError(fmt::format("{}: section {} missing", path_, id));
  int8_t& checked = keys_checked_[static_cast<size_t>(f)];
  if (!checked) {
    if (util::crc32(base_ + s->offset, s->stored) != s->crc)
      throw SidecarError(fmt::format("{}: keys of field {} checksum mismatch", path_, static_cast<int>(f)));
    const Section* b = section(kSecBitmaps + static_cast<uint32_t>(f));
    size_t klen = f == Field::kAddr ? 16 : 4;
    if (!b || s->stored % klen || b->stored < s->stored / klen * sizeof(BitmapRef))
      throw SidecarError(fmt::format("{}: field {} inconsistent", path_, static_cast<int>(f)));
    checked = 1;
  }
  n = static_cast<uint32_t>(s->stored / (f == Field::kAddr ? 16 : 4));
  return base_ + s->offset;
}

Roaring SidecarView::bitmap(Field f, uint32_t i) const {
  const Section* b = section(kSecBitmaps + static_cast<uint32_t>(f));
  uint32_t n;
  keys(f, n);
  BitmapRef ref;
  std::memcpy(&ref, base_ + b->offset + i * sizeof(BitmapRef), sizeof(ref));
  uint64_t start = n * sizeof(BitmapRef) + ref.offset;
  if (start > b->stored || ref.size > b->stored - start)
    throw SidecarError(fmt::format("{}: bitmap out of bounds", path_));
  const uint8_t* p = base_ + b->offset + start;
  if (util::crc32(p, ref.size) != ref.crc)
    throw SidecarError(fmt::format("{}: bitmap checksum mismatch", path_));
  try {
    return Roaring::readSafe(reinterpret_cast<const char*>(p), ref.size);
  } catch (const std::exception& e) {
    throw SidecarError(fmt::format("{}: bad bitmap: {}", path_, e.what()));
  }
}

Roaring SidecarView::addr(const AddrKey& key) const {
  uint32_t n;
  const uint8_t* k = keys(Field::kAddr, n);
  uint32_t lo = 0, hi = n;
  while (lo < hi) {
    uint32_t mid = (lo + hi) / 2;
    int c = std::memcmp(k + 16ull * mid, key.data(), 16);
    if (c == 0) return bitmap(Field::kAddr, mid);
    if (c < 0)
      lo = mid + 1;
    else
      hi = mid;
  }
  return Roaring();
}

Roaring SidecarView::addr_prefix(const packet::IpAddr& net, unsigned bits) const {
  uint32_t n;
  const uint8_t* k = keys(Field::kAddr, n);
  uint32_t lo = 0, hi = n;
  while (lo < hi) {
    uint32_t mid = (lo + hi) / 2;
    if (std::memcmp(k + 16ull * mid, net.b.data(), 16) < 0)
      lo = mid + 1;
    else
      hi = mid;
  }
  Roaring r;
  for (uint32_t i = lo; i < n; ++i) {
    packet::IpAddr a;
    std::memcpy(a.b.data(), k + 16ull * i, 16);
    if (!a.in_prefix(net, bits)) break;
    r |= bitmap(Field::kAddr, i);
  }
  return r;
}

Roaring SidecarView::scalar(Field f, uint32_t lo_key, uint32_t hi_key) const {
  uint32_t n;
  const uint8_t* k = keys(f, n);
  auto key_at = [&](uint32_t i) {
    uint32_t v;
    std::memcpy(&v, k + 4ull * i, 4);
    return v;
  };
  uint32_t lo = 0, hi = n;
  while (lo < hi) {
    uint32_t mid = (lo + hi) / 2;
    if (key_at(mid) < lo_key)
      lo = mid + 1;
    else
      hi = mid;
  }
  Roaring r;
  for (uint32_t i = lo; i < n && key_at(i) <= hi_key; ++i) r |= bitmap(f, i);
  return r;
}

SegmentIndex SidecarView::all() const {
  SegmentIndex ix;
  uint32_t n;
  const uint8_t* k = keys(Field::kAddr, n);
  for (uint32_t i = 0; i < n; ++i) {
    AddrKey key;
    std::memcpy(key.data(), k + 16ull * i, 16);
    ix.addr.emplace(key, bitmap(Field::kAddr, i));
  }
  for (Field f : {Field::kPort, Field::kProto, Field::kNet, Field::kVlan}) {
    const uint8_t* ks = keys(f, n);
    auto& m = f == Field::kPort    ? ix.port
              : f == Field::kProto ? ix.proto
              : f == Field::kNet   ? ix.net
                                   : ix.vlan;
    for (uint32_t i = 0; i < n; ++i) {
      uint32_t key;
      std::memcpy(&key, ks + 4ull * i, 4);
      m.emplace(key, bitmap(f, i));
    }
  }
  return ix;
}

std::vector<std::pair<uint32_t, uint64_t>> SidecarView::counts(Field f) const {
  uint32_t n;
  const uint8_t* k = keys(f, n);
  std::vector<std::pair<uint32_t, uint64_t>> out;
  for (uint32_t i = 0; i < n; ++i) {
    uint32_t key;
    std::memcpy(&key, k + 4ull * i, 4);
    out.emplace_back(key, bitmap(f, i).cardinality());
  }
  return out;
}

SidecarBody read_sidecar_body(const std::string& path, SegmentMeta* meta) {
  auto v = SidecarView::open(path);
  if (meta) *meta = v->meta();
  SidecarBody b;
  b.directory = v->directory();
  b.offsets = v->offsets();
  b.index = v->all();
  return b;
}

}  // namespace tmach::store
