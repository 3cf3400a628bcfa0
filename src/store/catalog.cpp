#include "store/catalog.h"

#include <fmt/format.h>

#include <algorithm>
#include <filesystem>
#include <map>

#include "store/layout.h"
#include "store/sidecar.h"

namespace fs = std::filesystem;

namespace tmach::store {

bool is_store_dir(const std::string& root) { return fs::exists(fs::path(root) / kStoreMarker); }

Catalog Catalog::scan(const std::string& root) {
  Catalog c;
  c.root = root;
  std::error_code ec;
  if (!fs::is_directory(root, ec))
    throw std::runtime_error(fmt::format("store {} does not exist (or is not a directory)", root));
  if (!is_store_dir(root))
    throw std::runtime_error(
        fmt::format("{} is not a tm store (no {} file); record into it first", root, kStoreMarker));
  for (const auto& top : fs::directory_iterator(root)) {
    std::string name = top.path().filename().string();
    if (name == kStoreMarker || name == kLockFile || name == "flows" ||
        name.starts_with("dynamic-classes.json"))
      continue;
    if (!top.is_directory()) {
      c.foreign.push_back(top.path().string());
      continue;
    }
    c.classes.push_back(name);
    // base name -> which of .pcap/.idx exist
    std::map<std::string, std::pair<bool, bool>> seen;
    for (const auto& f : fs::directory_iterator(top.path())) {
      std::string fn = f.path().filename().string();
      std::string stem = f.path().stem().string(), ext = f.path().extension().string();
      if (f.is_regular_file() && parse_segment_name(stem) && (ext == ".pcap" || ext == ".idx")) {
        auto& s = seen[stem];
        (ext == ".pcap" ? s.first : s.second) = true;
      } else if (f.is_regular_file() && ext == ".tmp" && parse_segment_name(fs::path(stem).stem().string())) {
        // A sidecar whose write was interrupted: ours, harmless, replaced at the next seal/recovery.
      } else {
        c.foreign.push_back(f.path().string());
      }
    }
    for (auto& [stem, have] : seen) {
      std::string base = (top.path() / stem).string();
      if (!have.first) {  // sidecar without its pcap (pcap deleted by hand?): not a segment
        c.foreign.push_back(base + ".idx");
        continue;
      }
      SegmentInfo s;
      s.cls = name;
      s.base = base;
      auto sn = parse_segment_name(stem);
      s.meta.seq = sn->seq;
      s.meta.first_ts = sn->first_ns;
      s.meta.linktype = sn->linktype;
      s.pcap_bytes = fs::file_size(base + ".pcap", ec);
      if (!have.second) {
        s.state = SegmentInfo::State::kOpen;
      } else {
        s.idx_bytes = fs::file_size(base + ".idx", ec);
        try {
          SegmentMeta m = read_sidecar_meta(base + ".idx");
          if (m.pcap_bytes != s.pcap_bytes)
            throw SidecarError(fmt::format("{}.idx describes {} bytes of pcap, the file has {}", base,
                                           m.pcap_bytes, s.pcap_bytes));
          s.meta = m;
        } catch (const SidecarError& e) {
          s.state = SegmentInfo::State::kBadSidecar;
          s.problem = e.what();
        }
      }
      c.segments.push_back(std::move(s));
    }
  }
  std::sort(c.classes.begin(), c.classes.end());
  std::sort(c.segments.begin(), c.segments.end(), [](const SegmentInfo& a, const SegmentInfo& b) {
    return a.cls != b.cls ? a.cls < b.cls : a.meta.seq < b.meta.seq;
  });
  std::sort(c.foreign.begin(), c.foreign.end());
  return c;
}

}  // namespace tmach::store
