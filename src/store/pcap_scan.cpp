#include "store/pcap_scan.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>

namespace tmach::store {

ScanResult scan_pcap(const std::string& path, const RecordVisitor& visit) {
  ScanResult r;
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw std::runtime_error(fmt::format("cannot open {}: {}", path, std::strerror(errno)));
  struct stat st;
  if (fstat(fd, &st) != 0) {
    ::close(fd);
    throw std::runtime_error(fmt::format("cannot stat {}: {}", path, std::strerror(errno)));
  }
  r.file_size = static_cast<uint64_t>(st.st_size);
  if (r.file_size < 24) {
    ::close(fd);
    return r;
  }
  void* map = mmap(nullptr, r.file_size, PROT_READ, MAP_PRIVATE, fd, 0);
  ::close(fd);
  if (map == MAP_FAILED)
    throw std::runtime_error(fmt::format("cannot map {}: {}", path, std::strerror(errno)));
  const auto* base = static_cast<const uint8_t*>(map);
  uint32_t magic;
  std::memcpy(&magic, base, 4);
  bool swap = false, nsec = false;
  if (magic == 0xa1b23c4d)
    nsec = true;
  else if (magic == 0xa1b2c3d4)
    nsec = false;
  else if (magic == 0x4d3cb2a1)
    swap = nsec = true;
  else if (magic == 0xd4c3b2a1)
    swap = true;
  else {
    munmap(map, r.file_size);
    return r;
  }
  r.header_ok = true;
  std::memcpy(&r.linktype, base + 20, 4);
  if (swap) r.linktype = __builtin_bswap32(r.linktype);
  r.linktype &= 0x0fffffff;
  uint64_t pos = 24;
  while (pos + 16 <= r.file_size) {
    uint32_t h[4];
    std::memcpy(h, base + pos, 16);
    if (swap)
      for (auto& v : h) v = __builtin_bswap32(v);
    if (h[2] > (16u << 20) || pos + 16 + h[2] > r.file_size) break;
    uint64_t ts =
        static_cast<uint64_t>(h[0]) * 1000000000ull + (nsec ? h[1] : static_cast<uint64_t>(h[1]) * 1000);
    if (visit) visit(pos, ts, h[2], h[3], base + pos + 16);
    ++r.packets;
    pos += 16 + h[2];
  }
  r.valid_end = pos;
  munmap(map, r.file_size);
  return r;
}

}  // namespace tmach::store
