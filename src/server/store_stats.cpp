#include "server/store_stats.h"

#include <fmt/format.h>

#include <chrono>
#include <filesystem>
#include <map>

#include "packet/packet_info.h"
#include "store/index.h"
#include "store/pcap_scan.h"
#include "store/sidecar.h"
#include "util/timespec.h"

namespace tmach::server {

nlohmann::json catalog_json(const store::Catalog& cat) {
  struct Agg {
    uint64_t segments = 0, sealed = 0, open = 0, bad = 0, packets = 0, pcap = 0, idx = 0, wire = 0;
    uint64_t first = UINT64_MAX, last = 0;
  };
  std::map<std::string, Agg> by;
  Agg total;
  for (const auto& s : cat.segments) {
    for (Agg* a : {&by[s.cls], &total}) {
      a->segments++;
      a->pcap += s.pcap_bytes;
      a->idx += s.idx_bytes;
      a->first = std::min(a->first, s.meta.first_ts);
      if (s.state == store::SegmentInfo::State::kSealed) {
        a->sealed++;
        a->packets += s.meta.packets;
        a->wire += s.meta.wire_bytes;
        a->last = std::max(a->last, s.meta.last_ts);
      } else if (s.state == store::SegmentInfo::State::kOpen) {
        a->open++;
      } else {
        a->bad++;
      }
    }
  }
  for (auto& c : cat.classes) by[c];
  nlohmann::json j;
  auto put = [&](nlohmann::json& d, const Agg& a) {
    d = {{"segments", a.segments}, {"sealed", a.sealed},   {"open", a.open},       {"bad_sidecar", a.bad},
         {"packets", a.packets},   {"pcap_bytes", a.pcap}, {"index_bytes", a.idx}, {"wire_bytes", a.wire}};
    if (a.first != UINT64_MAX) {
      d["first_ns"] = a.first;
      d["last_ns"] = a.last;
      d["first"] = util::format_time(a.first);
      d["last"] = a.last ? nlohmann::json(util::format_time(a.last)) : nlohmann::json(nullptr);
    }
    d["index_ratio"] = a.pcap ? static_cast<double>(a.idx) / static_cast<double>(a.pcap) : 0.0;
  };
  put(j["total"], total);
  j["classes"] = nlohmann::json::object();
  for (auto& [name, a] : by) put(j["classes"][name], a);
  j["foreign_files"] = cat.foreign;
  j["missing_segments"] = nlohmann::json::array();  // a sidecar is there, its pcap is not
  for (const auto& m : cat.missing) j["missing_segments"].push_back(m.pcap_path());
  // Sidecars refused (counted in bad_sidecar; their packets are not in `packets`, which the
  // sidecars give): each named with why, as a query warns of it (it reads the pcap whole).
  j["bad_segments"] = nlohmann::json::array();
  for (const auto& s : cat.segments)
    if (s.state == store::SegmentInfo::State::kBadSidecar)
      j["bad_segments"].push_back({{"segment", s.pcap_path()}, {"problem", s.problem}});
  // Open segments no recorder is writing: a crash's, which the next start indexes, or one with
  // a damaged record, which recovery leaves as it is (queries scan it up to the damage; each
  // start warns). Those are named (counted in `open` still), as tm record names them. One
  // written to in the last 10 s is taken for a recorder's (tm record writing the store): not
  // read whole at every call.
  j["damaged_segments"] = nlohmann::json::array();
  uint64_t damaged = 0;
  const auto now = std::filesystem::file_time_type::clock::now();
  for (const auto& s : cat.segments) {
    if (s.state != store::SegmentInfo::State::kOpen || s.name_bound) continue;
    std::error_code ec;
    auto written = std::filesystem::last_write_time(s.pcap_path(), ec);
    if (ec || now - written < std::chrono::seconds(10)) continue;
    store::ScanOptions so;
    so.min_ts = store::name_min_ts(s.pcap_path());
    store::ScanResult sr;
    try {
      sr = store::scan_pcap(s.pcap_path(), nullptr, so);
    } catch (const std::exception&) {
      continue;  // (gone since the scan: evicted, or recovered by a recorder starting)
    }
    if (!sr.header_ok || sr.end != store::ScanResult::End::kDamaged) continue;
    ++damaged;
    j["damaged_segments"].push_back({{"segment", s.pcap_path()},
                                     {"offset", sr.valid_end},
                                     {"damage", sr.damage},
                                     {"packets_before", sr.packets},
                                     {"bytes_unread", sr.unread()}});
  }
  j["total"]["damaged"] = damaged;
  return j;
}

nlohmann::json layers_json(const store::Catalog& cat) {
  std::map<std::string, uint64_t> n;
  uint64_t skipped = 0;
  for (const auto& s : cat.segments) {
    if (s.state != store::SegmentInfo::State::kSealed) {
      ++skipped;
      continue;
    }
    try {
      auto v = store::SidecarView::open(s.idx_path());
      for (auto [key, count] : v->counts(store::Field::kNet)) {
        std::string name;
        if (key == store::kNetV4)
          name = "ipv4";
        else if (key == store::kNetV6)
          name = "ipv6";
        else if (key == store::kNetArp)
          name = "arp";
        else if (key == store::kNetUndecoded)
          name = "undecoded";
        else if (key == store::kNetCut)
          name = "cut short in its headers";
        else if (key == store::kNetFragment)
          name = "IP fragment";
        else if (key >= store::kNetTunnel)
          name = fmt::format("tunnel {}", packet::tunnel_name(static_cast<uint8_t>(key - store::kNetTunnel)));
        else
          name = fmt::format("ethertype 0x{:04x}", key);
        n[name] += count;
      }
    } catch (const std::exception&) {
      ++skipped;
    }
  }
  nlohmann::json j = nlohmann::json::object();
  for (auto& [k, v] : n) j[k] = v;
  if (skipped) j["segments not counted (open or damaged)"] = skipped;
  return j;
}

}  // namespace tmach::server
