// A log file read line by line: once to its end, or followed as it grows (`tail -F`), across
// rotation. Rotation is seen by the path's inode (the file renamed and a new one created in
// its place: the old one is read to its end first, then the new one from its start) and by its
// size (truncated in place, as by copytruncate: read again from the start).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

namespace tmach::ids {

class LogFollower {
 public:
  // A line longer than kMaxLine is not kept: `line` is empty and `too_long` its length (else 0).
  using OnLine = std::function<void(std::string_view line, size_t lineno, uint64_t too_long)>;
  static constexpr size_t kMaxLine = 4 << 20;
  // Called when a new file begins under the path (rotated, recreated or truncated), before its
  // first line: a reader forgets what it knew of the old one (a Zeek header).
  using OnNewFile = std::function<void(const std::string& why)>;

  LogFollower(std::string path, bool follow) : path_(std::move(path)), follow_(follow) {}
  ~LogFollower();
  LogFollower(const LogFollower&) = delete;
  LogFollower& operator=(const LogFollower&) = delete;

  // Reads what is there and calls on_line for each complete line (numbered from 1 in its file).
  // Once (follow false): the whole file, its last line even without a newline; throws when the
  // file cannot be opened or read. Following: what was added since the last call; a path that
  // does not exist (yet, or between a rotation's rename and create) is waited for. Returns the
  // number of lines given.
  size_t poll(const OnLine& on_line, const OnNewFile& on_new_file);
  const std::string& path() const { return path_; }

 private:
  bool open_file();
  size_t drain(const OnLine& on_line);
  size_t flush_partial(const OnLine& on_line);
  void close_file();

  std::string path_;
  bool follow_;
  int fd_ = -1;
  dev_t dev_ = 0;
  ino_t ino_ = 0;
  uint64_t offset_ = 0;
  size_t lineno_ = 0;
  bool opened_before_ = false;
  std::string partial_;  // the bytes after the last newline
  // The last bytes read (up to kTail, ending at offset_): still there at the next poll unless the
  // file was truncated in place, even when it grew past offset_ again before that poll.
  static constexpr size_t kTail = 64;
  std::string tail_;
  bool rewritten();  // the bytes before offset_ are not tail_ (truncated, perhaps written again)
  void restart(const OnNewFile& on_new_file);
  uint64_t overlong_ = 0;  // the length so far of a line past kMaxLine (its bytes not kept)
};

}  // namespace tmach::ids
