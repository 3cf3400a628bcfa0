#include "util/file_io.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <system_error>

namespace tmach::util {

namespace {
// Calls `put(bytes, n, done)` (write(2) or pwrite(2)) until all `n` bytes are written.
template <class Put>
void put_all(const void* p, size_t n, const std::string& path, Put put) {
  const auto* b = static_cast<const uint8_t*>(p);
  for (uint64_t done = 0; done < n;) {
    ssize_t r = put(b + done, n - done, done);
    if (r < 0) {
      const int e = errno;
      if (e == EINTR) continue;
      throw IoError(fmt::format("write to {} failed: {}", path, std::strerror(e)), e);
    }
    done += static_cast<uint64_t>(r);
  }
}
}  // namespace

void write_all(int fd, const void* p, size_t n, const std::string& path) {
  put_all(p, n, path, [fd](const uint8_t* b, size_t k, uint64_t) { return ::write(fd, b, k); });
}

void pwrite_all(int fd, const void* p, size_t n, uint64_t off, const std::string& path) {
  put_all(p, n, path, [fd, off](const uint8_t* b, size_t k, uint64_t done) {
    return ::pwrite(fd, b, k, static_cast<off_t>(off + done));
  });
}

ssize_t pread_full(int fd, void* dst, size_t n, uint64_t off) {
  auto* d = static_cast<uint8_t*>(dst);
  size_t got = 0;
  while (got < n) {
    ssize_t r = ::pread(fd, d + got, n - got, static_cast<off_t>(off + got));
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return -1;
    if (r == 0) break;
    got += static_cast<size_t>(r);
  }
  return static_cast<ssize_t>(got);
}

UniqueFd& UniqueFd::operator=(UniqueFd&& o) noexcept {
  if (this != &o) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = o.release();
  }
  return *this;
}

UniqueFd::~UniqueFd() {
  if (fd_ >= 0) ::close(fd_);
}

UniqueFd open_file(const std::string& path, int flags, mode_t mode) {
  int fd = ::open(path.c_str(), flags | O_CLOEXEC, mode);
  if (fd < 0) {
    const int e = errno;
    throw IoError(fmt::format("cannot open {}: {}", path, std::strerror(e)), e);
  }
  return UniqueFd(fd);
}

uint64_t file_size(int fd, const std::string& path, bool* regular) {
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    const int e = errno;
    throw IoError(fmt::format("cannot stat {}: {}", path, std::strerror(e)), e);
  }
  if (regular) *regular = S_ISREG(st.st_mode);
  return static_cast<uint64_t>(st.st_size);
}

void throw_if_unreadable(const std::string& what, int e, const char* doing) {
  if (e == 0 || e == ENOENT) return;
  throw UnreadableError(
      fmt::format("{}: cannot {} ({}): the answer would lack what it holds", what, doing, std::strerror(e)),
      e);
}

int error_number_of(const std::exception& e) {
  if (const auto* io = dynamic_cast<const IoError*>(&e)) return io->error_number();
  if (const auto* sys = dynamic_cast<const std::system_error*>(&e))
    if (sys->code().category() == std::generic_category() || sys->code().category() == std::system_category())
      return sys->code().value();
  return 0;
}

namespace {
std::atomic<uint64_t> g_fsync_dir_calls{0};
}  // namespace

void fsync_dir(const std::string& dir) {
  g_fsync_dir_calls.fetch_add(1, std::memory_order_relaxed);
  const char* d = dir.empty() ? "." : dir.c_str();
  UniqueFd f(::open(d, O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (f.get() < 0 || ::fsync(f.get()) != 0) {
    const int e = errno;
    throw IoError(fmt::format("fsync of directory {} failed: {}", d, std::strerror(e)), e);
  }
}

void fdatasync_or_throw(int fd, const std::string& path) {
  if (::fdatasync(fd) != 0) {
    const int e = errno;
    throw SyncError(fmt::format("fdatasync of {} failed: {}", path, std::strerror(e)), e);
  }
}

std::string parent_dir(const std::string& path) {
  std::string p = std::filesystem::path(path).parent_path().string();
  return p.empty() ? "." : p;
}

uint64_t fsync_dir_calls() { return g_fsync_dir_calls.load(std::memory_order_relaxed); }

void replace_file_atomic(const std::string& path,
                         const std::function<void(int fd, const std::string& tmp)>& fill, Durable durable) {
  const std::string tmp = path + ".tmp";
  try {
    {
      UniqueFd f(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
      if (f.get() < 0) {
        const int e = errno;
        throw IoError(fmt::format("cannot create {}: {}", tmp, std::strerror(e)), e);
      }
      fill(f.get(), tmp);
      if (durable == Durable::kYes && ::fsync(f.get()) != 0) {
        const int e = errno;
        throw IoError(fmt::format("fsync of {} failed: {}", tmp, std::strerror(e)), e);
      }
    }
    if (::rename(tmp.c_str(), path.c_str()) != 0) {
      const int e = errno;
      throw IoError(fmt::format("cannot rename {} to {}: {}", tmp, path, std::strerror(e)), e);
    }
  } catch (...) {
    ::unlink(tmp.c_str());
    throw;
  }
  if (durable == Durable::kNo) return;
  fsync_dir(parent_dir(path));  // the rename is durable once the directory is
}

void replace_file_atomic(const std::string& path, std::string_view content, Durable durable) {
  replace_file_atomic(
      path, [&](int fd, const std::string& tmp) { write_all(fd, content.data(), content.size(), tmp); },
      durable);
}

}  // namespace tmach::util
