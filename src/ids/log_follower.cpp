#include "ids/log_follower.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <utility>

#include "util/file_io.h"

namespace tmach::ids {
LogFollower::~LogFollower() { close_file(); }

void LogFollower::close_file() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

bool LogFollower::open_file() {
  int fd = ::open(path_.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (follow_ && errno == ENOENT) return false;
    throw std::runtime_error(fmt::format("cannot open {}: {}", path_, std::strerror(errno)));
  }
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    int e = errno;
    ::close(fd);
    throw std::runtime_error(fmt::format("cannot stat {}: {}", path_, std::strerror(e)));
  }
  fd_ = fd;
  dev_ = st.st_dev;
  ino_ = st.st_ino;
  offset_ = 0;
  lineno_ = 0;
  partial_.clear();
  tail_.clear();
  overlong_ = 0;
  return true;
}

bool LogFollower::rewritten() {
  if (tail_.empty()) return false;
  std::string now(tail_.size(), '\0');
  const ssize_t n = util::pread_full(fd_, now.data(), now.size(), offset_ - tail_.size());
  if (n < 0) return false;  // (a read error is no truncation: drain() reports it)
  return n != static_cast<ssize_t>(now.size()) || now != tail_;
}

void LogFollower::restart(const OnNewFile& on_new_file) {
  offset_ = 0;
  lineno_ = 0;
  partial_.clear();
  tail_.clear();
  overlong_ = 0;
  on_new_file("truncated");
}

size_t LogFollower::drain(const OnLine& on_line) {
  size_t lines = 0;
  char buf[1 << 16];
  for (;;) {
    ssize_t n = util::pread_full(fd_, buf, sizeof(buf), offset_);
    if (n < 0) throw std::runtime_error(fmt::format("cannot read {}: {}", path_, std::strerror(errno)));
    if (n == 0) break;
    offset_ += static_cast<uint64_t>(n);
    if (static_cast<size_t>(n) >= kTail) {
      tail_.assign(buf + n - kTail, kTail);
    } else {
      tail_.append(buf, static_cast<size_t>(n));
      if (tail_.size() > kTail) tail_.erase(0, tail_.size() - kTail);
    }
    std::string_view chunk(buf, static_cast<size_t>(n));
    for (;;) {
      size_t nl = chunk.find('\n');
      if (nl == std::string_view::npos) {
        if (overlong_) {
          overlong_ += chunk.size();
        } else {
          partial_.append(chunk);
          if (partial_.size() >= kMaxLine) {  // not kept: only its length, up to its end
            overlong_ = partial_.size();
            std::string().swap(partial_);
          }
        }
        break;
      }
      ++lineno_;
      ++lines;
      if (overlong_) {
        on_line({}, lineno_, overlong_ + nl);
        overlong_ = 0;
      } else if (partial_.empty()) {
        on_line(chunk.substr(0, nl), lineno_, 0);
      } else {
        partial_.append(chunk.substr(0, nl));
        on_line(partial_, lineno_, 0);
        partial_.clear();
      }
      chunk.remove_prefix(nl + 1);
    }
    if (static_cast<size_t>(n) < sizeof(buf)) break;
  }
  return lines;
}

size_t LogFollower::flush_partial(const OnLine& on_line) {
  if (partial_.empty() && !overlong_) return 0;
  ++lineno_;
  on_line(partial_, lineno_, std::exchange(overlong_, 0));
  partial_.clear();
  return 1;
}

size_t LogFollower::poll(const OnLine& on_line, const OnNewFile& on_new_file) {
  size_t lines = 0;
  if (fd_ < 0) {
    if (!open_file()) return 0;
    if (opened_before_) on_new_file("recreated");
    opened_before_ = true;
  }
  // Truncated in place (copytruncate) and written past where this one was read before this
  // poll: the size alone does not show it; the bytes before offset_ do.
  if (follow_ && rewritten()) restart(on_new_file);
  lines += drain(on_line);
  if (!follow_) {
    lines += flush_partial(on_line);
    return lines;
  }
  // Rotated? The path now names another file (renamed and recreated), or this one is shorter
  // than what was read (truncated in place).
  struct stat st;
  if (::stat(path_.c_str(), &st) != 0) return lines;  // renamed, not recreated yet: keep reading the old one
  if (st.st_dev != dev_ || st.st_ino != ino_) {
    lines += drain(on_line);  // what was written to the old file before it was renamed
    lines += flush_partial(on_line);
    close_file();
    if (open_file()) {
      on_new_file("rotated");
      lines += drain(on_line);
    }
  } else if (static_cast<uint64_t>(st.st_size) < offset_) {
    restart(on_new_file);
    lines += drain(on_line);
  }
  return lines;
}

}  // namespace tmach::ids
