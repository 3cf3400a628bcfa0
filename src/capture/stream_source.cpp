#include "capture/stream_source.h"

#include <fmt/format.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <vector>

#include "capture/pcapng.h"
#include "util/pcap.h"

namespace tmach::capture {
namespace {

constexpr size_t kChunk = 256u << 10;
constexpr uint32_t kMaxRecord = 16u << 20;  // a classic record larger than this means damage
constexpr size_t kMaxWarnings = 10;
constexpr auto kMaxHold = std::chrono::milliseconds(100);  // a batch waits no longer for more

class StreamSource : public PacketSource {
 public:
  StreamSource(int fd, std::string name, bool regular, int idle_wait_ms)
      : fd_(fd), name_(std::move(name)), regular_(regular), idle_wait_ms_(idle_wait_ms) {
    efd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (efd_ < 0) throw SourceError(fmt::format("{}: eventfd: {}", name_, std::strerror(errno)));
  }
  ~StreamSource() override {
    close(fd_);
    close(efd_);
  }

  // The format from the first bytes; for a regular file also every step up to the first packet.
  void open() {
    more(24, false);
    size_t avail = end_ - pos_;
    if (avail >= 12 && pcapng::is_pcapng(buf_.data() + pos_)) {
      ng_ = true;
    } else if (auto f = avail >= 24 ? util::pcap::parse_file_header(buf_.data() + pos_) : std::nullopt) {
      classic_ = *f;
      pos_ += 24;
    } else {
      std::string start;
      for (size_t i = 0; i < std::min<size_t>(avail, 4); ++i) start += fmt::format("{:02x}", buf_[pos_ + i]);
      throw SourceError(fmt::format("{}: not a pcap or pcapng capture ({} bytes{}{})", name_, avail,
                                    avail ? ", starting " : "", start));
    }
    if (regular_ && ng_) {
      // Up to the first packet (left unread): a file of which nothing can be read is refused now.
      while (!done_) {
        pcapng::Step s = parser_.next(buf_.data() + pos_, end_ - pos_, eof_);
        if (s.kind == pcapng::Step::kPacket) break;
        if (s.kind == pcapng::Step::kNeed) {
          more(s.need, false);
          continue;
        }
        if (!take(s)) done_ = true;
      }
      if (done_) nothing_read();
    }
  }

  size_t next_batch(RawPacket* out, size_t max) override {
    arena_.clear();
    offs_.clear();
    size_t n = 0;
    first_ = {};
    while (n < max && !done_ && !stopped_.load(std::memory_order_relaxed)) {
      size_t avail = end_ - pos_;
      const uint8_t* p = buf_.data() + pos_;
      if (ng_) {
        pcapng::Step s = parser_.next(p, avail, eof_);
        if (s.kind == pcapng::Step::kNeed) {
          if (!more(s.need, n > 0)) break;
          continue;
        }
        if (s.kind == pcapng::Step::kPacket) {
          if (s.untimed && untimed_++ == 0) first_untimed_ = base_ + pos_;
          emit(out[n++], s.ts_ns, s.caplen, s.wirelen, s.linktype, s.data);
          pos_ += s.consumed;
        } else if (!take(s)) {
          done_ = true;
        }
        continue;
      }
      // Classic pcap: a damaged record ends the stream (its records carry nothing to resynchronise on).
      if (avail < 16) {
        if (!eof_) {
          if (!more(16, n > 0)) break;
          continue;
        }
        if (avail) warn_end(fmt::format("truncated record header ({} bytes left)", avail), avail);
        done_ = true;
        break;
      }
      uint32_t h[4];
      std::memcpy(h, p, 16);
      if (classic_.swap)
        for (auto& v : h) v = __builtin_bswap32(v);
      if (h[2] > kMaxRecord) {
        warn_end(fmt::format("corrupt record (captured length {}); the rest is not read", h[2]), 0);
        done_ = true;
        break;
      }
      if (avail < 16 + h[2]) {
        if (!eof_) {
          if (!more(16 + h[2], n > 0)) break;
          continue;
        }
        warn_end(fmt::format("truncated record (needs {} bytes, {} left)", 16 + h[2], avail), avail);
        done_ = true;
        break;
      }
      uint64_t ts = static_cast<uint64_t>(h[0]) * 1000000000ull +
                    (classic_.nsec ? h[1] : static_cast<uint64_t>(h[1]) * 1000);
      emit(out[n++], ts, h[2], std::max(h[3], h[2]), classic_.linktype, p + 16);
      pos_ += 16 + h[2];
    }
    for (size_t i = 0; i < n; ++i) out[i].data = arena_.data() + offs_[i];
    if (done_ && n == 0 && packets_ == 0) nothing_read();
    return n;
  }

  std::string name() const override { return name_; }
  std::optional<uint64_t> bytes_read() const override {
    if (!regular_) return std::nullopt;
    return base_ + pos_;
  }
  void stop() override {
    stopped_ = true;
    uint64_t one = 1;
    [[maybe_unused]] ssize_t w = write(efd_, &one, sizeof(one));
  }
  std::string warning() const override {
    std::string w;
    for (auto& line : lines_) w += (w.empty() ? "" : "\n") + line;
    if (parts_ > lines_.size())
      w += fmt::format("\n{}: and {} more unreadable parts", name_, parts_ - lines_.size());
    if (parts_ > 0 && ng_)
      w += fmt::format("\n{}: {} unreadable part(s) skipped ({} bytes; {} packet blocks), {} packets read",
                       name_, parts_, skipped_bytes_, skipped_packets_, packets_);
    if (untimed_)
      w += fmt::format(
          "{}{}: {} simple packet blocks, which carry no time (the first at offset {}): stored at time 0 "
          "(1970-01-01T00:00:00Z), as libpcap and tcpdump read them",
          w.empty() ? "" : "\n", name_, untimed_, first_untimed_);
    return w;
  }

 private:
  // A block that is no packet: passed over (false: the end).
  bool take(const pcapng::Step& s) {
    if (s.kind == pcapng::Step::kEnd) return false;
    if (s.kind == pcapng::Step::kSkip) {
      ++parts_;
      skipped_bytes_ += s.consumed;
      if (s.packet) ++skipped_packets_;
      if (first_bad_.empty()) first_bad_ = fmt::format("offset {}: {}", base_ + pos_, s.why);
      if (lines_.size() < kMaxWarnings)
        lines_.push_back(
            fmt::format("{}: offset {}: {}; {} bytes skipped", name_, base_ + pos_, s.why, s.consumed));
    }
    pos_ += s.consumed;
    return true;
  }

  void warn_end(const std::string& why, size_t bytes) {
    ++parts_;
    skipped_bytes_ += bytes;
    if (first_bad_.empty()) first_bad_ = fmt::format("offset {}: {}", base_ + pos_, why);
    lines_.push_back(fmt::format("{}: {} at offset {}", name_, why, base_ + pos_));
  }

  // The input ended with no packet read: an error if parts of it could not be read.
  void nothing_read() const {
    if (parts_ > 0)
      throw SourceError(fmt::format("{}: no packet could be read: {} unreadable part(s), the first at {}",
                                    name_, parts_, first_bad_));
  }

  void emit(RawPacket& r, uint64_t ts, uint32_t caplen, uint32_t wirelen, uint32_t linktype,
            const uint8_t* data) {
    if (packets_in_batch() == 0) first_ = std::chrono::steady_clock::now();
    offs_.push_back(arena_.size());
    arena_.insert(arena_.end(), data, data + caplen);
    r = RawPacket{ts, caplen, wirelen, linktype, nullptr};
    ++packets_;
  }
  size_t packets_in_batch() const { return offs_.size(); }

  // Makes at least `want` bytes available from pos_, unless the input ends first (eof_). False
  // when it gave up waiting: stopped, or (`holding` packets) the stream was idle.
  bool more(size_t want, bool holding) {
    if (end_ - pos_ >= want) return true;
    if (pos_ > 0) {  // the packets handed out were copied: the bytes before pos_ are done with
      std::memmove(buf_.data(), buf_.data() + pos_, end_ - pos_);
      base_ += pos_;
      end_ -= pos_;
      pos_ = 0;
    }
    while (end_ < want && !eof_) {
      if (stopped_.load(std::memory_order_relaxed)) return false;
      if (!regular_) {
        int timeout = -1;
        if (holding) {
          auto left = kMaxHold - (std::chrono::steady_clock::now() - first_);
          timeout = static_cast<int>(std::max<int64_t>(
              0, std::min<int64_t>(idle_wait_ms_,
                                   std::chrono::duration_cast<std::chrono::milliseconds>(left).count())));
        }
        struct pollfd fds[2] = {{fd_, POLLIN, 0}, {efd_, POLLIN, 0}};
        int r = poll(fds, 2, timeout);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) throw SourceError(fmt::format("{}: poll: {}", name_, std::strerror(errno)));
        if (fds[1].revents) return false;  // stop()
        if (r == 0) return false;          // idle: hand out what is held
      }
      if (buf_.size() < end_ + kChunk) buf_.resize(std::max(want, end_ + kChunk));
      ssize_t k = read(fd_, buf_.data() + end_, buf_.size() - end_);
      if (k < 0 && errno == EINTR) continue;
      if (k < 0)
        throw SourceError(
            fmt::format("{}: read error at offset {}: {}", name_, base_ + end_, std::strerror(errno)));
      if (k == 0)
        eof_ = true;
      else
        end_ += static_cast<size_t>(k);
    }
    return true;
  }

  int fd_, efd_ = -1;
  std::string name_;
  bool regular_;
  int idle_wait_ms_;
  bool ng_ = false;
  pcapng::Parser parser_;
  util::pcap::Format classic_;
  std::vector<uint8_t> buf_;
  size_t pos_ = 0, end_ = 0;  // unread bytes in buf_
  uint64_t base_ = 0;         // file offset of buf_[0]
  bool eof_ = false, done_ = false;
  std::atomic<bool> stopped_{false};
  std::vector<uint8_t> arena_;
  std::vector<size_t> offs_;
  std::chrono::steady_clock::time_point first_;  // the batch's first packet
  uint64_t packets_ = 0, parts_ = 0, skipped_bytes_ = 0, skipped_packets_ = 0;
  uint64_t untimed_ = 0, first_untimed_ = 0;  // simple packet blocks (no time), the first's offset
  std::vector<std::string> lines_;
  std::string first_bad_;
};

}  // namespace

std::unique_ptr<PacketSource> open_stream_source(int fd, std::string name, int idle_wait_ms) {
  struct stat st;
  bool regular = fstat(fd, &st) == 0 && S_ISREG(st.st_mode);
  std::unique_ptr<StreamSource> s;
  try {
    s = std::make_unique<StreamSource>(fd, std::move(name), regular, idle_wait_ms);
  } catch (...) {
    close(fd);
    throw;
  }
  s->open();
  return s;
}

}  // namespace tmach::capture
