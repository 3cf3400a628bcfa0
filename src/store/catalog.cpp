#include "store/catalog.h"

#include <dirent.h>
#include <fmt/format.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string_view>
#include <unordered_map>

#include "store/imports.h"
#include "store/layout.h"
#include "store/sidecar.h"
#include "store/verified.h"
#include "util/file_io.h"

namespace fs = std::filesystem;

namespace tmach::store {
namespace {

// A store's own top-level entry, not a class: those no class may be named (reserved_entry) and
// the files whose names no class can take (the import log, dynamic classes, a sidecar list
// being written).
bool own_entry(const std::string& name) {
  return reserved_entry(name) || name == kImportLog || name.starts_with("dynamic-classes.json") ||
         name == std::string(kVerifiedFile) + ".tmp";
}

uint64_t size_of(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 ? static_cast<uint64_t>(st.st_size) : 0;
}

// A directory entry is a regular file (or, when the file system does not say, stat says so).
bool is_regular(const std::string& dir, const dirent* e) {
  if (e->d_type == DT_REG) return true;
  if (e->d_type != DT_UNKNOWN) return false;
  struct stat st;
  return ::stat((dir + "/" + e->d_name).c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

// One class directory's segments. With `headers`, every sidecar's header is read and checked
// against its pcap's size; without, only names are listed (see Catalog::Depth).
void scan_class(Catalog& c, const std::string& name, const std::string& dir, Catalog::Depth depth) {
  DIR* d = ::opendir(dir.c_str());
  if (!d) throw std::runtime_error(fmt::format("cannot list {}: {}", dir, std::strerror(errno)));
  // base name -> which of .pcap/.idx exist (readdir, not std::filesystem: a store may hold
  // tens of thousands of segments, and this loop is most of what listing them costs)
  struct Have {
    bool pcap = false, idx = false;
    SegmentName n;
  };
  std::unordered_map<std::string, Have> seen;
  while (const dirent* e = ::readdir(d)) {
    std::string_view fn = e->d_name;
    if (fn == "." || fn == "..") continue;
    size_t dot = fn.rfind('.');
    std::string_view stem = dot == std::string_view::npos ? fn : fn.substr(0, dot);
    std::string_view ext = dot == std::string_view::npos ? std::string_view() : fn.substr(dot);
    std::optional<SegmentName> sn;
    if ((ext == ".pcap" || ext == ".idx") && (sn = parse_segment_name(stem)) && is_regular(dir, e)) {
      Have& h = seen[std::string(stem)];
      h.n = *sn;
      (ext == ".pcap" ? h.pcap : h.idx) = true;
    } else if (ext == ".tmp" && parse_segment_name(stem.substr(0, std::min(stem.size(), stem.rfind('.')))) &&
               is_regular(dir, e)) {
      // A sidecar whose write was interrupted: ours, harmless, replaced at the next seal/recovery.
    } else {
      c.foreign.push_back(dir + "/" + std::string(fn));
    }
  }
  ::closedir(d);
  // A segment renamed while the directory was read (see relocate()) may be listed under both
  // names: the one that no longer exists goes.
  std::unordered_map<uint64_t, std::string> by_seq;
  for (auto it = seen.begin(); it != seen.end();) {
    auto [other, fresh] = by_seq.emplace(it->second.n.seq, it->first);
    if (fresh) {
      ++it;
      continue;
    }
    struct stat st;
    if (::stat((dir + "/" + it->first + ".pcap").c_str(), &st) != 0) {
      it = seen.erase(it);
    } else if (::stat((dir + "/" + other->second + ".pcap").c_str(), &st) != 0) {
      seen.erase(other->second);  // (other iterators stay valid)
      other->second = it->first;
      ++it;
    } else {
      ++it;
    }
  }
  for (auto& [stem, have] : seen) {
    std::string base = dir + "/" + stem;
    SegmentInfo s;
    s.cls = name;
    s.base = base;
    s.meta.seq = have.n.seq;
    s.meta.first_ts = have.n.first_ns;
    s.meta.linktype = have.n.linktype;
    if (!have.pcap) {
      // A sidecar without its pcap: the segment's packets are lost — unless the listing raced
      // a seal (the pcap was renamed before its sidecar was written) or an eviction (the
      // sidecar goes first, then the pcap): the pcap is there now, or the sidecar is gone.
      // (Only a regular file: a FIFO or a directory of that name is foreign, listed above; opened
      // as a segment, a FIFO would hang every query and the recorder.)
      struct stat st;
      if (::stat((base + ".pcap").c_str(), &st) == 0 && S_ISREG(st.st_mode))
        have.pcap = true;
      else if (::stat((base + ".idx").c_str(), &st) != 0)
        continue;
      else {
        s.idx_bytes = static_cast<uint64_t>(st.st_size);
        s.headers_read = false;
        c.missing.push_back(std::move(s));
        continue;
      }
    }
    if (!have.idx) {
      s.state = SegmentInfo::State::kOpen;
      s.pcap_bytes = size_of(base + ".pcap");  // bounds a scan of a file being written
    } else if (depth == Catalog::Depth::kNames) {
      s.headers_read = false;
    } else {
      s.pcap_bytes = size_of(base + ".pcap");
      try {
        SegmentMeta m = read_sidecar_meta(base + ".idx", &s.idx_bytes);
        check_sidecar_fits(base + ".idx", s.meta, m, s.pcap_bytes);
        s.meta = m;
      } catch (const SidecarError& e) {
        s.state = SegmentInfo::State::kBadSidecar;
        s.problem = e.what();
      }
    }
    c.segments.push_back(std::move(s));
  }
}

}  // namespace

void check_sidecar_fits(const std::string& idx_path, const SegmentMeta& named, const SegmentMeta& m,
                        uint64_t pcap_bytes) {
  if (m.pcap_bytes != pcap_bytes)
    throw SidecarError(
        fmt::format("{} describes {} bytes of pcap, the file has {}", idx_path, m.pcap_bytes, pcap_bytes));
  if (m.seq != named.seq || m.linktype != named.linktype)
    throw SidecarError(fmt::format("{} describes segment {} of link type {}, its name says segment {} of {}",
                                   idx_path, m.seq, m.linktype, named.seq, named.linktype));
  if (m.packets > 0 && (named.first_ts < m.first_ts || named.first_ts > m.last_ts))
    throw SidecarError(fmt::format("{} describes packets from {} to {}, its name says {}", idx_path,
                                   m.first_ts, m.last_ts, named.first_ts));
}

bool relocate(SegmentInfo& seg) {
  fs::path base(seg.base);
  std::string dir = base.parent_path().string();
  auto was = parse_segment_name(base.filename().string());
  if (!was) return false;
  DIR* d = ::opendir(dir.c_str());
  if (!d) return false;
  std::string found;
  while (const dirent* e = ::readdir(d)) {
    std::string_view fn = e->d_name;
    if (!fn.ends_with(".pcap")) continue;
    fn.remove_suffix(5);
    auto n = parse_segment_name(fn);
    if (n && n->seq == was->seq && n->linktype == was->linktype) found = dir + "/" + std::string(fn);
  }
  ::closedir(d);
  if (found.empty() || found == seg.base) return false;
  seg.base = found;
  return true;
}

bool is_store_dir(const std::string& root) { return fs::exists(fs::path(root) / kStoreMarker); }

std::string store_marker_text() { return fmt::format("tm store format {}\n", kStoreFormat); }

bool looks_like_store(const std::string& root) {
  std::error_code ec;
  for (const auto& top : fs::directory_iterator(root, ec)) {
    std::string name = top.path().filename().string();
    if (name == kLockFile || name == kImportLog) return true;
    if (!top.is_directory(ec)) continue;
    for (const auto& f : fs::directory_iterator(top.path(), ec)) {
      auto ext = f.path().extension();
      if ((ext == ".pcap" || ext == ".idx" || ext == ".flows") &&
          parse_segment_name(f.path().stem().string()))
        return true;
    }
  }
  return false;
}

std::string missing_marker_hint(const std::string& root) {
  return fmt::format(
      "{} holds tm segments but no {} marker (deleted?); if it is a tm store, mark it as one again: "
      "tm record --store {} --repair",
      root, kStoreMarker, root);
}

std::string repair_store_marker(const std::string& root) {
  std::error_code ec;
  if (!fs::is_directory(root, ec)) throw std::runtime_error(fmt::format("{} is not a directory", root));
  fs::path marker = fs::path(root) / kStoreMarker;
  if (fs::exists(marker, ec)) {
    check_store_marker(root);
    return "";
  }
  auto refuse = [&](const fs::path& p, const char* why) {
    throw std::runtime_error(
        fmt::format("cannot repair {}: {} {}; is this a tm store? (nothing changed)", root, p.string(), why));
  };
  size_t segments = 0;
  for (const auto& top : fs::directory_iterator(root)) {
    std::string name = top.path().filename().string();
    if (own_entry(name)) continue;
    if (!top.is_directory()) refuse(top.path(), "does not belong to a store");
    for (const auto& f : fs::directory_iterator(top.path())) {
      std::string fn = f.path().filename().string();
      std::string stem = f.path().stem().string();
      auto ext = f.path().extension();
      if (ext == ".tmp") stem = fs::path(stem).stem().string();  // an interrupted sidecar: "NAME.idx.tmp"
      if ((ext != ".pcap" && ext != ".idx" && ext != ".tmp") || !parse_segment_name(stem) ||
          !f.is_regular_file())
        refuse(f.path(), "is not a segment file");
      segments += ext == ".pcap";
    }
  }
  if (segments == 0)
    throw std::runtime_error(
        fmt::format("cannot repair {}: it holds no segment (a new store needs no repair)", root));
  util::replace_file_atomic(marker.string(), store_marker_text());
  return fmt::format("{} marked as a tm store again ({} segment(s) found)", root, segments);
}

void check_store_marker(const std::string& root) {
  std::string path = (fs::path(root) / kStoreMarker).string();
  std::ifstream f(path, std::ios::binary);
  std::string text((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  if (!f.good() && !f.eof()) throw std::runtime_error(fmt::format("cannot read {}", path));
  if (text == store_marker_text()) return;
  unsigned v = 0;
  char nl = 0;
  if (std::sscanf(text.c_str(), "tm store format %u%c", &v, &nl) == 2 && nl == '\n')
    throw std::runtime_error(fmt::format("{} is a tm store of format {}; this tm reads and writes format {}",
                                         root, v, kStoreFormat));
  std::string shown = text.substr(0, 40);
  for (char& c : shown)
    if (c < 0x20 || c > 0x7e) c = '.';
  throw std::runtime_error(fmt::format(
      "{} {}: refusing to use {} as a store; a tm store's marker holds 'tm store format {}'", path,
      text.empty() ? "is empty" : fmt::format("does not hold a tm store marker (it holds '{}')", shown), root,
      kStoreFormat));
}

void check_store(const std::string& root) {
  std::error_code ec;
  if (!fs::is_directory(root, ec))
    throw std::runtime_error(fmt::format("store {} does not exist (or is not a directory)", root));
  if (!is_store_dir(root)) {
    if (looks_like_store(root)) throw std::runtime_error(missing_marker_hint(root));
    throw std::runtime_error(
        fmt::format("{} is not a tm store (no {} file); record into it first", root, kStoreMarker));
  }
  check_store_marker(root);
}

Catalog Catalog::scan(const std::string& root, Depth depth) {
  Catalog c;
  c.root = root;
  check_store(root);
  for (const auto& top : fs::directory_iterator(root)) {
    std::string name = top.path().filename().string();
    if (own_entry(name)) continue;
    if (!top.is_directory()) {
      c.foreign.push_back(top.path().string());
      continue;
    }
    c.classes.push_back(name);
    scan_class(c, name, top.path().string(), depth);
  }
  std::sort(c.classes.begin(), c.classes.end());
  auto by_seq = [](const SegmentInfo& a, const SegmentInfo& b) {
    return a.cls != b.cls ? a.cls < b.cls : a.meta.seq < b.meta.seq;
  };
  std::sort(c.segments.begin(), c.segments.end(), by_seq);
  std::sort(c.missing.begin(), c.missing.end(), by_seq);
  std::sort(c.foreign.begin(), c.foreign.end());
  return c;
}

}  // namespace tmach::store
