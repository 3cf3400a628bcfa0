#include "store/verified.h"

#include <fmt/format.h>
#include <sys/stat.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <vector>

#include "util/file_io.h"

namespace fs = std::filesystem;

namespace tmach::store {
namespace {

constexpr const char* kFirstLine = "tm verified sidecars 1";

bool stamp_of(const std::string& path, VerifiedSidecars::Stamp& s) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) return false;
  s.size = static_cast<uint64_t>(st.st_size);
  s.mtime_ns =
      static_cast<uint64_t>(st.st_mtim.tv_sec) * 1000000000ull + static_cast<uint64_t>(st.st_mtim.tv_nsec);
  s.ino = static_cast<uint64_t>(st.st_ino);
  return true;
}

}  // namespace

void VerifiedSidecars::load(const std::string& root) {
  root_ = root;
  stamps_.clear();
  changed_ = false;
  std::string path = (fs::path(root) / kVerifiedFile).string();
  Stamp file;
  if (!stamp_of(path, file)) return;
  saved_ns_ = file.mtime_ns;
  std::ifstream f(path);
  std::string line;
  if (!std::getline(f, line) || line != kFirstLine) return;
  while (std::getline(f, line)) {
    Stamp s;
    int used = 0;
    unsigned long long size, mtime, ino;
    if (std::sscanf(line.c_str(), "%llu %llu %llu %n", &size, &mtime, &ino, &used) != 3 || used <= 0 ||
        static_cast<size_t>(used) >= line.size())
      continue;  // (a damaged line: that sidecar is checked again)
    s.size = size;
    s.mtime_ns = mtime;
    s.ino = ino;
    stamps_[line.substr(static_cast<size_t>(used))] = s;
  }
}

std::string VerifiedSidecars::key(const std::string& idx_path) const {
  std::string prefix = root_.ends_with('/') ? root_ : root_ + "/";
  return idx_path.starts_with(prefix) ? idx_path.substr(prefix.size()) : idx_path;
}

bool VerifiedSidecars::known(const std::string& idx_path) const {
  auto it = stamps_.find(key(idx_path));
  Stamp now;
  // A sidecar whose time is not older than the file's could have changed within the same
  // clock tick of the file system after its stamp was taken, unseen: it is checked again.
  return it != stamps_.end() && it->second.mtime_ns < saved_ns_ && stamp_of(idx_path, now) &&
         now == it->second;
}

void VerifiedSidecars::add(const std::string& idx_path) {
  Stamp s;
  if (!stamp_of(idx_path, s)) return forget(idx_path);
  Stamp& at = stamps_[key(idx_path)];
  // Unchanged and trusted: nothing to write. A stamp as recent as the file (not trusted, see
  // known()) is written again too, so that the file's new time covers it.
  if (at == s && at.mtime_ns < saved_ns_) return;
  at = s;
  changed_ = true;
}

void VerifiedSidecars::forget(const std::string& idx_path) { changed_ |= stamps_.erase(key(idx_path)) != 0; }

void VerifiedSidecars::save() {
  if (root_.empty() || !changed_) return;
  std::vector<std::pair<std::string, Stamp>> sorted(stamps_.begin(), stamps_.end());
  std::sort(sorted.begin(), sorted.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  std::string text = fmt::format("{}\n", kFirstLine);
  for (const auto& [k, s] : sorted) {
    struct stat st;
    if (::stat((fs::path(root_) / k).c_str(), &st) != 0) continue;  // deleted meanwhile
    text += fmt::format("{} {} {} {}\n", s.size, s.mtime_ns, s.ino, k);
  }
  util::replace_file_atomic((fs::path(root_) / kVerifiedFile).string(), text, util::Durable::kNo);
  changed_ = false;
}

}  // namespace tmach::store
