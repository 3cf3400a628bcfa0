#include "store/imports.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <stdexcept>

#include "util/file_io.h"
#include "util/pcap.h"

namespace fs = std::filesystem;

namespace tmach::store {

uint64_t hash64(const void* data, size_t len, uint64_t seed) {
  constexpr uint64_t m = 0xc6a4a7935bd1e995ull;
  constexpr int r = 47;
  uint64_t h = seed ^ (len * m);
  const auto* p = static_cast<const uint8_t*>(data);
  const uint8_t* end = p + (len & ~static_cast<size_t>(7));
  for (; p != end; p += 8) {
    uint64_t k;
    std::memcpy(&k, p, 8);
    k *= m;
    k ^= k >> r;
    k *= m;
    h ^= k;
    h *= m;
  }
  size_t rest = len & 7;
  if (rest) {
    uint64_t k = 0;
    std::memcpy(&k, p, rest);
    h ^= k;
    h *= m;
  }
  h ^= h >> r;
  h *= m;
  h ^= h >> r;
  return h;
}

namespace {

// Reads exactly `len` bytes at `off` (util::pread_full); throws naming the path.
void pread_exact(int fd, const std::string& path, uint8_t* buf, size_t len, uint64_t off) {
  ssize_t n = util::pread_full(fd, buf, len, off);
  if (n < 0)
    throw std::runtime_error(fmt::format("cannot read {} at offset {}: {}", path, off, std::strerror(errno)));
  if (static_cast<size_t>(n) < len)
    throw std::runtime_error(
        fmt::format("{}: ends at {} bytes while being read (is it being written?)", path, off + n));
}

std::string hex64(uint64_t v) { return fmt::format("{:016x}", v); }

std::string log_path(const std::string& store_dir) { return (fs::path(store_dir) / kImportLog).string(); }

}  // namespace

std::optional<FileFingerprint> fingerprint_file(const std::string& path) {
  if (path == "-") return std::nullopt;
  // (A pipe is not fingerprinted, nor opened: a named pipe's open waits for a writer.)
  struct stat st;
  if (::stat(path.c_str(), &st) == 0 && !S_ISREG(st.st_mode)) return std::nullopt;
  util::UniqueFd f = util::open_file(path, O_RDONLY);
  const int fd = f.get();
  bool regular = false;
  uint64_t size = util::file_size(fd, path, &regular);
  if (!regular) return std::nullopt;
  FileFingerprint fp;
  fp.size = size;
  size_t span = static_cast<size_t>(std::min<uint64_t>(fp.size, kFingerprintSpan));
  std::vector<uint8_t> buf(span);
  pread_exact(fd, path, buf.data(), span, 0);
  fp.head_hash = hash64(buf.data(), span);
  pread_exact(fd, path, buf.data(), span, fp.size - span);
  fp.tail_hash = hash64(buf.data(), span, 1);
  return fp;
}

std::string to_json_line(const ImportRecord& r) {
  nlohmann::json j = {
      {"size", r.fp.size},
      {"head_hash", hex64(r.fp.head_hash)},
      {"tail_hash", hex64(r.fp.tail_hash)},
      {"path", r.path},
      {"imported_at", r.imported_at_ns},
      {"packets", r.packets},
      {"first_ts", r.first_ts_ns},
      {"last_ts", r.last_ts_ns},
      {"complete", r.complete},
      {"bytes_read", r.bytes_read},
  };
  if (r.run) j["run"] = r.run;
  if (r.begun) j["begun"] = true;
  // A path need not be UTF-8: replace what is not rather than fail.
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::optional<ImportRecord> parse_import_line(std::string_view line) {
  auto j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) return std::nullopt;
  try {
    ImportRecord r;
    r.fp.size = j.at("size").get<uint64_t>();
    auto hash = [&](const char* key) -> std::optional<uint64_t> {
      std::string s = j.at(key).get<std::string>();
      if (s.size() != 16) return std::nullopt;
      size_t used = 0;
      uint64_t v = std::stoull(s, &used, 16);
      if (used != s.size()) return std::nullopt;
      return v;
    };
    auto head = hash("head_hash"), tail = hash("tail_hash");
    if (!head || !tail) return std::nullopt;
    r.fp.head_hash = *head;
    r.fp.tail_hash = *tail;
    r.path = j.at("path").get<std::string>();
    r.imported_at_ns = j.at("imported_at").get<uint64_t>();
    r.packets = j.at("packets").get<uint64_t>();
    r.first_ts_ns = j.at("first_ts").get<uint64_t>();
    r.last_ts_ns = j.at("last_ts").get<uint64_t>();
    r.complete = j.at("complete").get<bool>();
    r.bytes_read = j.at("bytes_read").get<uint64_t>();
    r.run = j.value("run", uint64_t{0});  // (absent in older logs)
    r.begun = j.value("begun", false);
    return r;
  } catch (const std::exception&) {  // a key missing or of the wrong type, a bad hex digit
    return std::nullopt;
  }
}

ImportLog ImportLog::load(const std::string& store_dir) {
  ImportLog log;
  std::string path = log_path(store_dir);
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    std::error_code ec;
    if (!fs::exists(path, ec)) return log;
    throw std::runtime_error(fmt::format("cannot read {}", path));
  }
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    if (auto r = parse_import_line(line))
      log.records.push_back(std::move(*r));
    else
      ++log.bad_lines;
  }
  if (in.bad()) throw std::runtime_error(fmt::format("cannot read {}", path));
  return log;
}

const ImportRecord* ImportLog::find(const FileFingerprint& fp) const {
  const ImportRecord* partial = nullptr;
  std::vector<uint64_t> ended;  // the runs whose end line came (seen first: newest first)
  for (auto it = records.rbegin(); it != records.rend(); ++it) {
    if (!(it->fp == fp)) continue;
    if (it->begun) {
      if (!partial && std::find(ended.begin(), ended.end(), it->run) == ended.end()) partial = &*it;
      continue;
    }
    if (it->run) ended.push_back(it->run);
    if (it->packets == 0) continue;  // (it stored nothing: an end line only)
    if (it->complete) return &*it;
    if (!partial) partial = &*it;
  }
  return partial;
}

const ImportRecord* ImportLog::find_prefix(const std::string& path, const FileFingerprint& fp) const {
  std::optional<util::UniqueFd> f;
  std::vector<uint8_t> head, buf;
  std::optional<uint64_t> first_ts;  // of the file's first packet (a classic pcap's)
  auto read_head = [&] {
    if (f) return;
    f = util::open_file(path, O_RDONLY);
    head.resize(static_cast<size_t>(std::min<uint64_t>(fp.size, kFingerprintSpan)));
    pread_exact(f->get(), path, head.data(), head.size(), 0);
    if (auto format = head.size() >= 24 ? util::pcap::parse_file_header(head.data()) : std::nullopt) {
      util::pcap::RecordCursor c(head.data(), head.size(), *format);
      if (util::pcap::Record rec; c.next(rec) == util::pcap::RecordCursor::Step::kRecord)
        first_ts = rec.ts_ns;
    }
  };
  for (auto it = records.rbegin(); it != records.rend(); ++it) {
    const ImportRecord& r = *it;
    if (r.begun || !r.complete || r.packets == 0 || r.fp.size >= fp.size || r.fp.size < 24) continue;
    // Checked before any hashing: a shorter file of 1 MiB or more has the same head hash; a
    // smaller one the same first packet (a store of many small imports, tcpdump -C 1's files,
    // would otherwise hash up to 1 MiB of this file for each of them). A pcapng file under
    // 1 MiB is not looked for.
    if (r.fp.size >= kFingerprintSpan) {
      if (r.fp.head_hash != fp.head_hash) continue;
    } else {
      read_head();
      if (!first_ts || r.first_ts_ns != *first_ts) continue;
    }
    read_head();
    const size_t span = static_cast<size_t>(std::min<uint64_t>(r.fp.size, kFingerprintSpan));
    if (hash64(head.data(), span) != r.fp.head_hash) continue;
    buf.resize(span);
    pread_exact(f->get(), path, buf.data(), span, r.fp.size - span);
    if (hash64(buf.data(), span, 1) == r.fp.tail_hash) return &r;
  }
  return nullptr;
}

const ImportRecord* ImportLog::unended_after(const FileFingerprint& fp, const ImportRecord* after) const {
  std::vector<uint64_t> ended;
  for (auto it = records.rbegin(); it != records.rend() && &*it != after; ++it) {
    if (!(it->fp == fp)) continue;
    if (!it->begun) {
      if (it->run) ended.push_back(it->run);
    } else if (std::find(ended.begin(), ended.end(), it->run) == ended.end()) {
      return &*it;
    }
  }
  return nullptr;
}

void append_imports(const std::string& store_dir, const std::vector<ImportRecord>& records) {
  if (records.empty()) return;
  std::string path = log_path(store_dir);
  util::UniqueFd f = util::open_file(path, O_RDWR | O_CREAT | O_APPEND);
  const int fd = f.get();
  const uint64_t old_size = util::file_size(fd, path);
  std::string text;
  if (old_size > 0) {  // a last line cut short (crash during an append) stays a line of its own
    char last = 0;
    if (util::pread_full(fd, &last, 1, old_size - 1) == 1 && last != '\n') text += '\n';
  }
  for (auto& r : records) text += to_json_line(r) + "\n";
  util::write_all(fd, text.data(), text.size(), path);  // (IoError is a runtime_error)
  if (::fsync(fd) != 0)
    throw std::runtime_error(fmt::format("cannot sync {}: {}", path, std::strerror(errno)));
  if (old_size == 0) util::fsync_dir(store_dir);  // new file: its directory entry must survive a crash too
}

}  // namespace tmach::store
