// File I/O that every writer and reader of the store needs, written once: write(2) until done,
// pread(2) until done, and the atomic replacement of a file.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <stdexcept>
#include <string>
#include <string_view>

namespace tmach::util {

// A failed system call on a file: the message names the file and the error; error_number()
// is its errno (0 when not known), for callers whose handling depends on it (a full disk).
class IoError : public std::runtime_error {
 public:
  explicit IoError(const std::string& what, int error_number = 0)
      : std::runtime_error(what), errno_(error_number) {}
  int error_number() const { return errno_; }

 private:
  int errno_;
};
// A file of the store that is there but cannot be read now (no permission, out of file
// descriptors, an I/O error): an answer without it would be short, so it ends the answer where
// a file deleted meanwhile (ENOENT: evicted) is warned of and passed.
class UnreadableError : public IoError {
 public:
  using IoError::IoError;
};
// Throws UnreadableError "WHAT: cannot DOING (REASON): the answer would lack what it holds"
// when `e` is an errno other than ENOENT (and not 0); returns otherwise.
void throw_if_unreadable(const std::string& what, int e, const char* doing = "open");
// The errno an exception carries (an IoError's, a std::system_error's such as a
// std::filesystem::filesystem_error), 0 when it carries none.
int error_number_of(const std::exception& e);
// An fsync/fdatasync that failed: what was written may not be on the disk, whatever the file's
// size says.
class SyncError : public IoError {
 public:
  using IoError::IoError;
};
// fdatasync(2) of `fd`, or SyncError naming `path` (a write-back error, EIO or ENOSPC on thin
// storage, shows here and nowhere else).
void fdatasync_or_throw(int fd, const std::string& path);

// An open file descriptor, closed when it goes out of scope.
class UniqueFd {
 public:
  explicit UniqueFd(int fd = -1) noexcept : fd_(fd) {}
  UniqueFd(UniqueFd&& o) noexcept : fd_(o.release()) {}
  UniqueFd& operator=(UniqueFd&& o) noexcept;
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  ~UniqueFd();
  int get() const noexcept { return fd_; }
  int release() noexcept {
    int f = fd_;
    fd_ = -1;
    return f;
  }

 private:
  int fd_;
};

// open(2) with O_CLOEXEC added; throws IoError "cannot open PATH: why".
UniqueFd open_file(const std::string& path, int flags, mode_t mode = 0644);
// The size of an open file (fstat); throws IoError "cannot stat PATH: why". `regular` (when
// given) says whether it is a regular file.
uint64_t file_size(int fd, const std::string& path, bool* regular = nullptr);

// write(2) until all `n` bytes are written (retrying on EINTR and short writes). Throws
// IoError naming `path` (what the descriptor is, for the message) on any other error.
void write_all(int fd, const void* p, size_t n, const std::string& path);
// The same with pwrite(2) at offset `off` (the file position is left as it is).
void pwrite_all(int fd, const void* p, size_t n, uint64_t off, const std::string& path);

// fsync(2) of the directory `dir` ("" is "."): makes the entries created, renamed or removed in
// it survive a power cut (a rename is durable only once its directory is). Throws IoError.
void fsync_dir(const std::string& dir);
// The directory of `path` ("." when it has none), for fsync_dir.
std::string parent_dir(const std::string& path);
// How many fsync_dir calls this process made (tests: that a rename is made durable, or not).
uint64_t fsync_dir_calls();

// pread(2) until `n` bytes are read, the file ends, or an error other than EINTR.
// The bytes read (fewer than `n` only at the end of the file), or -1 with errno set.
ssize_t pread_full(int fd, void* dst, size_t n, uint64_t off);

// Gives `path` new content so that readers, and the file system after a crash, see either
// the old content or the new, never a mix: `fill(fd, tmp)` writes the content (write_all) to
// `path + ".tmp"` in the same directory, which is fsynced and renamed over `path`, and then
// the directory is fsynced. Throws IoError (the temporary file is removed) when any step fails.
// Durable::kNo leaves out both fsyncs, for a cache whose loss costs only time (readers still see
// the old content or the new; after a crash the file may be either, or empty).
enum class Durable { kYes, kNo };
void replace_file_atomic(const std::string& path,
                         const std::function<void(int fd, const std::string& tmp)>& fill,
                         Durable durable = Durable::kYes);
void replace_file_atomic(const std::string& path, std::string_view content, Durable durable = Durable::kYes);

}  // namespace tmach::util
