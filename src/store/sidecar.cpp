#include "store/sidecar.h"

#include <fcntl.h>
#include <fmt/format.h>
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

template <class Map, class KeyWriter>
void put_field(Writer& w, Field f, uint8_t key_len, const Map& m, KeyWriter kw) {
  w.put<uint8_t>(static_cast<uint8_t>(f));
  w.put<uint8_t>(key_len);
  w.put<uint32_t>(static_cast<uint32_t>(m.size()));
  for (auto& [k, b] : m) kw(k);
  std::vector<std::vector<char>> blobs;
  for (auto& [k, b] : m) {
    std::vector<char> blob(b.getSizeInBytes(true));
    b.write(blob.data(), true);
    w.put<uint32_t>(static_cast<uint32_t>(blob.size()));
    blobs.push_back(std::move(blob));
  }
  for (auto& blob : blobs) w.bytes(blob.data(), blob.size());
}

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
  if (r != static_cast<ssize_t>(sizeof(h))) throw SidecarError(fmt::format("{}: shorter than its header", path));
  if (std::memcmp(h.magic, kMagic, 8) != 0) throw SidecarError(fmt::format("{}: not a tm sidecar", path));
  if (h.version != kSidecarVersion)
    throw SidecarError(fmt::format("{}: sidecar version {} (this tm reads {})", path, h.version, kSidecarVersion));
  uint32_t crc = h.header_crc;
  h.header_crc = 0;
  if (util::crc32(&h, sizeof(h)) != crc) throw SidecarError(fmt::format("{}: header checksum mismatch", path));
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

uint64_t write_sidecar(const std::string& path, const SegmentMeta& meta, const SidecarBody& body) {
  Writer w;
  w.put<uint32_t>(static_cast<uint32_t>(body.directory.size()));
  for (auto& d : body.directory) w.put(d);
  // Offsets as differences from the previous one (record lengths): two bytes each, which
  // zstd then packs further; 0xffff escapes a full 4-byte value.
  w.put<uint32_t>(static_cast<uint32_t>(body.offsets.size()));
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
  const SegmentIndex& ix = body.index;
  w.put<uint32_t>(5);
  put_field(w, Field::kAddr, 16, ix.addr, [&](const AddrKey& k) { w.bytes(k.data(), 16); });
  auto scalar = [&](const uint32_t& k) { w.put<uint32_t>(k); };
  put_field(w, Field::kPort, 4, ix.port, scalar);
  put_field(w, Field::kProto, 4, ix.proto, scalar);
  put_field(w, Field::kNet, 4, ix.net, scalar);
  put_field(w, Field::kVlan, 4, ix.vlan, scalar);

  std::vector<uint8_t> z(ZSTD_compressBound(w.buf.size()));
  size_t zn = ZSTD_compress(z.data(), z.size(), w.buf.data(), w.buf.size(), 3);
  if (ZSTD_isError(zn)) throw SidecarError(fmt::format("{}: compression failed: {}", path, ZSTD_getErrorName(zn)));

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
  h.body_raw = w.buf.size();
  h.body_zstd = zn;
  h.body_crc = util::crc32(z.data(), zn);
  h.header_crc = util::crc32(&h, sizeof(h));

  std::string tmp = path + ".tmp";
  Fd f{::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644)};
  if (f.fd < 0) throw SidecarError(fmt::format("{}: cannot create: {}", tmp, std::strerror(errno)));
  write_all(f.fd, &h, sizeof(h), tmp);
  write_all(f.fd, z.data(), zn, tmp);
  if (fsync(f.fd) != 0) throw SidecarError(fmt::format("{}: fsync failed: {}", tmp, std::strerror(errno)));
  if (::rename(tmp.c_str(), path.c_str()) != 0)
    throw SidecarError(fmt::format("{}: rename failed: {}", path, std::strerror(errno)));
  std::string dir = std::filesystem::path(path).parent_path().string();
  Fd d{::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC)};
  if (d.fd >= 0) fsync(d.fd);
  return sizeof(h) + zn;
}

SegmentMeta read_sidecar_meta(const std::string& path) {
  Fd f{::open(path.c_str(), O_RDONLY | O_CLOEXEC)};
  if (f.fd < 0) throw SidecarError(fmt::format("{}: cannot open: {}", path, std::strerror(errno)));
  Header h = read_header(f.fd, path);
  struct stat st;
  if (fstat(f.fd, &st) == 0 && static_cast<uint64_t>(st.st_size) != sizeof(h) + h.body_zstd)
    throw SidecarError(fmt::format("{}: size {} does not match its header ({})", path, st.st_size,
                                   sizeof(h) + h.body_zstd));
  return meta_of(h);
}

SidecarBody read_sidecar_body(const std::string& path, SegmentMeta* meta) {
  Fd f{::open(path.c_str(), O_RDONLY | O_CLOEXEC)};
  if (f.fd < 0) throw SidecarError(fmt::format("{}: cannot open: {}", path, std::strerror(errno)));
  Header h = read_header(f.fd, path);
  if (meta) *meta = meta_of(h);
  if (h.body_zstd > (1ull << 32) || h.body_raw > (4ull << 30))
    throw SidecarError(fmt::format("{}: implausible body size", path));
  std::vector<uint8_t> z(h.body_zstd);
  ssize_t r = pread(f.fd, z.data(), z.size(), sizeof(h));
  if (r != static_cast<ssize_t>(z.size())) throw SidecarError(fmt::format("{}: body truncated", path));
  if (util::crc32(z.data(), z.size()) != h.body_crc) throw SidecarError(fmt::format("{}: body checksum mismatch", path));
  std::vector<uint8_t> raw(h.body_raw);
  size_t n = ZSTD_decompress(raw.data(), raw.size(), z.data(), z.size());
  if (ZSTD_isError(n) || n != raw.size()) throw SidecarError(fmt::format("{}: body does not decompress", path));

  SidecarBody body;
  Reader rd(raw.data(), raw.size(), path);
  uint32_t ndir = rd.get<uint32_t>();
  rd.need(static_cast<size_t>(ndir) * sizeof(DirEntry));
  body.directory.resize(ndir);
  if (ndir) std::memcpy(body.directory.data(), rd.take(ndir * sizeof(DirEntry)), ndir * sizeof(DirEntry));
  uint32_t noff = rd.get<uint32_t>();
  if (noff != h.packets) throw SidecarError(fmt::format("{}: {} offsets for {} packets", path, noff, h.packets));
  rd.need(static_cast<size_t>(noff) * 2);
  body.offsets.resize(noff);
  uint32_t prev = 0;
  for (uint32_t i = 0; i < noff; ++i) {
    uint32_t d = rd.get<uint16_t>();
    if (d == 0xffff) d = rd.get<uint32_t>();
    prev += d;
    body.offsets[i] = prev;
  }
  uint32_t nfields = rd.get<uint32_t>();
  for (uint32_t fi = 0; fi < nfields; ++fi) {
    auto field = static_cast<Field>(rd.get<uint8_t>());
    uint8_t key_len = rd.get<uint8_t>();
    uint32_t nkeys = rd.get<uint32_t>();
    if ((field == Field::kAddr && key_len != 16) || (field != Field::kAddr && key_len != 4))
      throw SidecarError(fmt::format("{}: field {} has key length {}", path, static_cast<int>(field), key_len));
    rd.need(static_cast<size_t>(nkeys) * key_len);
    const uint8_t* keys = rd.take(static_cast<size_t>(nkeys) * key_len);
    rd.need(static_cast<size_t>(nkeys) * 4);
    std::vector<uint32_t> sizes(nkeys);
    if (nkeys) std::memcpy(sizes.data(), rd.take(nkeys * 4ull), nkeys * 4ull);
    for (uint32_t k = 0; k < nkeys; ++k) {
      const auto* blob = reinterpret_cast<const char*>(rd.take(sizes[k]));
      Roaring bm;
      try {
        bm = Roaring::readSafe(blob, sizes[k]);
      } catch (const std::exception& e) {
        throw SidecarError(fmt::format("{}: bad bitmap in field {}: {}", path, static_cast<int>(field), e.what()));
      }
      if (field == Field::kAddr) {
        AddrKey key;
        std::memcpy(key.data(), keys + 16ull * k, 16);
        body.index.addr.emplace(key, std::move(bm));
      } else {
        uint32_t key;
        std::memcpy(&key, keys + 4ull * k, 4);
        auto& m = field == Field::kPort    ? body.index.port
                  : field == Field::kProto ? body.index.proto
                  : field == Field::kNet   ? body.index.net
                                           : body.index.vlan;
        m.emplace(key, std::move(bm));
      }
    }
  }
  return body;
}

}  // namespace tmach::store
