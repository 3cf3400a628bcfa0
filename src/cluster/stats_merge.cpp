#include "cluster/stats_merge.h"

#include <algorithm>
#include <cstdint>

#include "util/timespec.h"

namespace tmach::cluster {

using nlohmann::json;

void add_stats(json& into, const json& from) {
  if (into.is_null()) {
    into = from;
    return;
  }
  if (!into.is_object() || !from.is_object()) return;
  for (auto& [k, v] : from.items()) {
    if (!into.contains(k)) {
      into[k] = v;
      continue;
    }
    json& d = into[k];
    if (v.is_object()) {
      add_stats(d, v);
    } else if (v.is_array() && d.is_array()) {
      const bool once = k == "interfaces";
      for (auto& e : v)
        if (!once || std::find(d.begin(), d.end(), e) == d.end()) d.push_back(e);
    } else if (v.is_number_unsigned() && d.is_number_unsigned()) {
      if (k == "first_ns") {
        d = std::min(d.get<uint64_t>(), v.get<uint64_t>());
        into["first"] = util::format_time(d.get<uint64_t>());  // (its ISO-8601 twin)
      } else if (k == "last_ns") {
        d = std::max(d.get<uint64_t>(), v.get<uint64_t>());
        if (d.get<uint64_t>()) into["last"] = util::format_time(d.get<uint64_t>());
      } else
        d = d.get<uint64_t>() + v.get<uint64_t>();
    }
  }
  if (into.contains("pcap_bytes") && into.contains("index_bytes") && into["pcap_bytes"].is_number() &&
      into["index_bytes"].is_number()) {
    double pcap = into["pcap_bytes"].get<double>(), idx = into["index_bytes"].get<double>();
    into["index_ratio"] = pcap > 0 ? idx / pcap : 0.0;
  }
}

}  // namespace tmach::cluster
