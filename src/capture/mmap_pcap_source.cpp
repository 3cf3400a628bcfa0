#include "capture/mmap_pcap_source.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <optional>

#include "util/pcap.h"
#include "util/prefetch.h"

namespace tmach::capture {
namespace {

constexpr uint32_t kMaxRecord = 16u << 20;  // larger records mean a damaged file
using util::pcap::RecordCursor;

class MmapPcapSource : public PacketSource {
 public:
  MmapPcapSource(std::string path, int fd, const uint8_t* base, size_t size, util::pcap::Format f)
      : path_(std::move(path)),
        fd_(fd),
        base_(base),
        size_(size),
        linktype_(f.linktype),
        cur_(base, size, f, sizeof(util::pcap::FileHeader), kMaxRecord) {}
  ~MmapPcapSource() override {
    if (base_ && size_) munmap(const_cast<uint8_t*>(base_), size_);
    if (fd_ >= 0) close(fd_);
  }

  size_t next_batch(RawPacket* out, size_t max) override {
    size_t n = 0;
    while (n < max && !done_) {
      util::pcap::Record r;
      RecordCursor::Step step = cur_.next(r);
      if (step != RecordCursor::Step::kRecord) {
        stop(step);
        break;
      }
      // As libpcap: the wire length is at least what was captured.
      out[n++] = RawPacket{r.ts_ns, r.caplen, std::max(r.wirelen, r.caplen), linktype_, r.data};
      if (r.frac_overflow) [[unlikely]]
        note_frac(r);
      pos_ = cur_.pos();
      // Ask for the lines ahead: the next header, and the frame the recorder decodes and
      // copies next, are not a cache miss each.
      util::prefetch_ahead<util::PrefetchFor::kRead>(base_, pos_, kPrefetchAhead, size_, prefetched_);
    }
    // Map the window ahead in one call (MADV_POPULATE_READ) rather than by a page fault
    // every few records, and release what lies behind: the mapping's resident size stays a
    // few windows, whatever the file's size.
    if (pos_ + (16u << 20) > populated_ && populated_ < size_) {
      size_t from = populated_ & ~static_cast<size_t>(4095);
      size_t len = std::min<size_t>(size_ - from, 32u << 20);
      madvise(const_cast<uint8_t*>(base_) + from, len, MADV_POPULATE_READ);  // best effort (Linux >= 5.14)
      populated_ = from + len;
    }
    if (pos_ - released_ > (64u << 20)) {
      size_t upto = (pos_ - (8u << 20)) & ~static_cast<size_t>(4095);
      if (upto > released_) {
        madvise(const_cast<uint8_t*>(base_) + released_, upto - released_, MADV_DONTNEED);
        released_ = upto;
      }
    }
    return n;
  }
  std::string name() const override { return path_; }
  std::string warning() const override {
    if (!frac_overflows_) return warning_;
    std::string w = fmt::format(
        "{}: {} record{} whose sub-second field is a second or more (the first at offset {}: {} {}): "
        "carried into the seconds",
        path_, frac_overflows_, frac_overflows_ == 1 ? "" : "s", first_frac_offset_, first_frac_,
        cur_.format().nsec ? "ns" : "us");
    return warning_.empty() ? w : warning_ + "\n" + w;
  }
  std::optional<uint64_t> bytes_read() const override { return pos_; }

 private:
  // A record whose timestamp's sub-second field overflows: counted, the first named.
  void note_frac(const util::pcap::Record& r) {
    if (frac_overflows_++ == 0) {
      uint32_t frac;
      std::memcpy(&frac, r.data - 12, 4);  // (the record header's second field)
      first_frac_ = cur_.format().swap ? __builtin_bswap32(frac) : frac;
      first_frac_offset_ = r.offset;
    }
  }

  // The end of the records: the file's end, or damage (warned with its offset).
  void stop(RecordCursor::Step step) {
    done_ = true;
    const uint64_t at = cur_.pos(), left = size_ - at;
    if (step == RecordCursor::Step::kEnd) return;
    uint32_t caplen = 0;
    if (left >= sizeof(util::pcap::RecordHeader)) {
      std::memcpy(&caplen, base_ + at + 8, 4);
      if (cur_.format().swap) caplen = __builtin_bswap32(caplen);
    }
    if (step == RecordCursor::Step::kTooLarge)
      warning_ = fmt::format("{}: corrupt record at offset {} (captured length {})", path_, at, caplen);
    else if (left < sizeof(util::pcap::RecordHeader))
      warning_ = fmt::format("{}: truncated record header at offset {} ({} bytes left)", path_, at, left);
    else
      warning_ = fmt::format("{}: truncated record at offset {} (needs {} bytes, {} left)", path_, at,
                             16 + uint64_t{caplen}, left);
  }

  std::string path_;
  int fd_;
  const uint8_t* base_;
  size_t size_;
  uint32_t linktype_;
  RecordCursor cur_;
  size_t pos_ = 24;
  size_t released_ = 0;
  size_t populated_ = 0;
  size_t prefetched_ = 24;
  // 32 KiB rather than 8: interleaved runs on ingest-heavy, capture-thread CPU 0.84-0.88 s
  // against 0.89-0.93 s (neutral on ingest-small).
  static constexpr size_t kPrefetchAhead = 32768;
  bool done_ = false;
  std::string warning_;
  uint64_t frac_overflows_ = 0, first_frac_offset_ = 0;
  uint32_t first_frac_ = 0;
};

}  // namespace

std::unique_ptr<PacketSource> open_mmap_pcap(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw SourceError(fmt::format("cannot open {}: {}", path, std::strerror(errno)));
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    close(fd);
    return nullptr;  // not a regular file (a pipe, say): libpcap handles it
  }
  uint8_t hdr[24];
  if (st.st_size < 24 || pread(fd, hdr, 24, 0) != 24) {
    close(fd);
    return nullptr;  // let libpcap produce its own error text
  }
  std::optional<util::pcap::Format> f = util::pcap::parse_file_header(hdr);
  if (!f) {
    close(fd);
    return nullptr;  // no classic pcap: libpcap (or the pcapng reader) handles it
  }
  const bool swap = f->swap;
  if (st.st_size > 24) {  // a file of which no packet can be read is refused here (as tcpdump does)
    uint32_t rec[4] = {0, 0, 0, 0};
    size_t got = static_cast<size_t>(std::min<off_t>(st.st_size - 24, 16));
    std::string why;
    if (got < 16 || pread(fd, rec, 16, 24) != 16) {
      why = fmt::format("truncated record header at offset 24 ({} bytes left)", got);
    } else {
      uint32_t caplen = swap ? __builtin_bswap32(rec[2]) : rec[2];
      if (caplen > kMaxRecord)
        why = fmt::format("corrupt record at offset 24 (captured length {})", caplen);
      else if (40 + static_cast<uint64_t>(caplen) > static_cast<uint64_t>(st.st_size))
        why = fmt::format("truncated record at offset 24 (needs {} bytes, {} left)", 16 + caplen,
                          st.st_size - 24);
    }
    if (!why.empty()) {
      close(fd);
      throw SourceError(fmt::format("{}: no packet could be read: {}", path, why));
    }
  }
  size_t size = static_cast<size_t>(st.st_size);
  void* base = mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
  if (base == MAP_FAILED) {
    close(fd);
    throw SourceError(fmt::format("cannot map {}: {}", path, std::strerror(errno)));
  }
  madvise(base, size, MADV_SEQUENTIAL);
  return std::make_unique<MmapPcapSource>(path, fd, static_cast<const uint8_t*>(base), size, *f);
}

}  // namespace tmach::capture
