#include "store/pcap_scan.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <optional>
#include <stdexcept>

#include "store/layout.h"
#include "store/segment_meta.h"
#include "util/file_io.h"
#include "util/pcap.h"
#include "util/timespec.h"

namespace tmach::store {
namespace {

// The most a recorder ever stored of one record (before records were cut to the snaplen).
constexpr uint32_t kMaxStored = 16u << 20;
// Records this close in time are taken as neighbours (see the look-ahead in scan_pcap).
constexpr uint64_t kNear = 3600ull * 1000000000ull;

struct Header {
  uint64_t ts_ns;
  uint32_t caplen, wirelen;
};

Header read_header(const uint8_t* p, const util::pcap::Format& f) {
  uint32_t h[4];
  std::memcpy(h, p, sizeof(h));
  if (f.swap)
    for (auto& v : h) v = __builtin_bswap32(v);
  uint64_t ts =
      static_cast<uint64_t>(h[0]) * 1000000000ull + (f.nsec ? h[1] : static_cast<uint64_t>(h[1]) * 1000);
  return Header{ts, h[2], h[3]};
}

// What makes a record header one tm never writes (pcap_scan.h), or nothing.
std::optional<std::string> header_problem(const Header& h, uint64_t min_ts) {
  if (h.caplen > kMaxStored) return fmt::format("captured length {}, more than tm ever stored", h.caplen);
  if (h.caplen > h.wirelen)
    return fmt::format("captured length {} larger than its wire length {}", h.caplen, h.wirelen);
  // The writer renames a segment before it writes an older packet (since ca4f488, 2026-12-02),
  // so its name is a lower bound; a segment written before that is named by its first packet,
  // and may hold older ones, as may a renamed segment whose new name a power cut lost. So a
  // record is damage only when it is older than the name by more than kNameSlackNs: zeros (time 0)
  // and garbage, not an out-of-order packet of an older segment.
  if (h.ts_ns + kNameSlackNs < min_ts)
    return fmt::format("time {} older than the segment's name says ({}) by more than an hour",
                       util::format_time(h.ts_ns), util::format_time(min_ts));
  return std::nullopt;
}

bool all_zero(const uint8_t* p, uint64_t n) {
  for (uint64_t i = 0; i < n; ++i)
    if (p[i]) return false;
  return true;
}

}  // namespace

uint64_t name_min_ts(const std::string& pcap_path) {
  auto n = parse_segment_name(std::filesystem::path(pcap_path).stem().string());
  return n ? n->first_ns : 0;
}

ScanResult scan_pcap(const std::string& path, const RecordVisitor& visit, const ScanOptions& opts) {
  ScanResult r;
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    const int e = errno;
    throw util::IoError(fmt::format("cannot open {}: {}", path, std::strerror(e)), e);
  }
  struct stat st;
  if (fstat(fd, &st) != 0) {
    const int e = errno;
    ::close(fd);
    throw util::IoError(fmt::format("cannot stat {}: {}", path, std::strerror(e)), e);
  }
  r.file_size = static_cast<uint64_t>(st.st_size);
  r.scanned_end = std::min(r.file_size, opts.limit);
  if (r.file_size < sizeof(util::pcap::FileHeader)) {
    const util::pcap::FileHeader ours;
    uint8_t have[sizeof ours];
    const size_t n = static_cast<size_t>(r.file_size), known = std::min<size_t>(n, 8);  // magic, version
    r.header_begun =
        ::pread(fd, have, n, 0) == static_cast<ssize_t>(n) && std::memcmp(have, &ours, known) == 0;
    ::close(fd);
    return r;
  }
  void* map = mmap(nullptr, r.file_size, PROT_READ, MAP_PRIVATE, fd, 0);
  const int map_errno = errno;
  ::close(fd);
  if (map == MAP_FAILED)
    throw util::IoError(fmt::format("cannot map {}: {}", path, std::strerror(map_errno)), map_errno);
  const auto* base = static_cast<const uint8_t*>(map);
  auto format = util::pcap::parse_file_header(base);
  if (!format) {
    munmap(map, r.file_size);
    return r;
  }
  r.header_ok = true;
  r.linktype = format->linktype;
  const uint64_t end = r.scanned_end;
  uint64_t pos = std::min<uint64_t>(sizeof(util::pcap::FileHeader), end);
  auto stop = [&](ScanResult::End why, std::string damage = {}) {
    r.end = why;
    r.damage = std::move(damage);
  };
  while (pos < end) {
    if (end - pos < sizeof(util::pcap::RecordHeader)) {
      stop(ScanResult::End::kIncomplete);
      break;
    }
    const Header h = read_header(base + pos, *format);
    if (auto why = header_problem(h, opts.min_ts)) {
      // Zeros to the end: a tail a crash left unwritten, not damage.
      if (all_zero(base + pos, end - pos))
        stop(ScanResult::End::kIncomplete);
      else
        stop(ScanResult::End::kDamaged, std::move(*why));
      break;
    }
    const uint64_t next = pos + sizeof(util::pcap::RecordHeader) + h.caplen;
    if (next > end) {
      // Cut short: a crash, or a write under way. A longer record than tm stores now is no
      // record cut short by a crash but a damaged length (whatever follows it would be lost).
      if (h.caplen > util::pcap::kSnaplen)
        stop(ScanResult::End::kDamaged,
             fmt::format("captured length {}, more than tm stores ({}), and the file ends before it",
                         h.caplen, util::pcap::kSnaplen));
      else
        stop(ScanResult::End::kIncomplete);
      break;
    }
    // The record after it must be one too (or the file ends, or what is left is a tail cut
    // short): otherwise this record's length, or that header, is damaged. A header there whose
    // time is near this record's is where a record begins (bytes read at a wrong place rarely
    // hold such a time): its own fields are damaged, and this record is sound.
    if (end - next >= sizeof(util::pcap::RecordHeader)) {
      const Header n = read_header(base + next, *format);
      const bool near = n.ts_ns >= opts.min_ts && n.ts_ns + kNear >= h.ts_ns && n.ts_ns <= h.ts_ns + kNear;
      if (auto why = header_problem(n, opts.min_ts); why && !near && !all_zero(base + next, end - next)) {
        stop(ScanResult::End::kDamaged,
             fmt::format("captured length {}, which leads to no record at offset {}: {}", h.caplen, next,
                         *why));
        break;
      }
    }
    if (visit) visit(pos, h.ts_ns, h.caplen, h.wirelen, base + pos + sizeof(util::pcap::RecordHeader));
    ++r.packets;
    pos = next;
  }
  r.valid_end = pos;
  munmap(map, r.file_size);
  return r;
}

}  // namespace tmach::store
