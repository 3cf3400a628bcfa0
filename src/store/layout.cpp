#include "store/layout.h"

#include <fmt/format.h>

#include <charconv>

#include "store/verified.h"

namespace tmach::store {

const char* reserved_entry(std::string_view name) {
  if (name == kStoreMarker) return "the store's marker";
  if (name == kLockFile) return "the recorder's lock";
  if (name == kVerifiedFile) return "the list of sidecars known sound";
  if (name == kQuarantineDir) return "files set aside";
  if (name == "flows") return "flow records";  // (flow/flow_file.h, a layer above)
  return nullptr;
}

std::string segment_base_name(const SegmentName& n) {
  return fmt::format("{:08}-{}-lt{}", n.seq, n.first_ns, n.linktype);
}

std::optional<SegmentName> parse_segment_name(std::string_view s) {
  auto num = [](std::string_view t, uint64_t& out) {
    if (t.empty()) return false;
    auto r = std::from_chars(t.data(), t.data() + t.size(), out);
    return r.ec == std::errc() && r.ptr == t.data() + t.size();
  };
  size_t d1 = s.find('-');
  if (d1 == std::string_view::npos) return std::nullopt;
  size_t d2 = s.find("-lt", d1 + 1);
  if (d2 == std::string_view::npos) return std::nullopt;
  SegmentName n;
  uint64_t lt;
  if (!num(s.substr(0, d1), n.seq) || !num(s.substr(d1 + 1, d2 - d1 - 1), n.first_ns) ||
      !num(s.substr(d2 + 3), lt))
    return std::nullopt;
  if (lt > UINT32_MAX) return std::nullopt;
  n.linktype = static_cast<uint32_t>(lt);
  return n;
}

}  // namespace tmach::store
