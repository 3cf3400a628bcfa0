#include "store/pcap_scan.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>

#include "util/pcap.h"

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
  auto format = util::pcap::parse_file_header(base);
  if (!format) {
    munmap(map, r.file_size);
    return r;
  }
  r.header_ok = true;
  r.linktype = format->linktype;
  util::pcap::RecordCursor cur(base, r.file_size, *format);
  util::pcap::Record rec;
  while (cur.next(rec) == util::pcap::RecordCursor::Step::kRecord) {
    if (visit) visit(rec.offset, rec.ts_ns, rec.caplen, rec.wirelen, rec.data);
    ++r.packets;
  }
  r.valid_end = cur.pos();
  munmap(map, r.file_size);
  return r;
}

}  // namespace tmach::store
