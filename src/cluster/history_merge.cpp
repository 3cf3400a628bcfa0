#include "cluster/history_merge.h"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <map>
#include <string>

namespace tmach::cluster {
namespace {

using nlohmann::json;

double num(const json& o, const char* key) {
  if (!o.is_object()) return 0;
  auto it = o.find(key);
  return it != o.end() && it->is_number() ? it->get<double>() : 0;
}

const json& samples_of(const json& h) {
  static const json kNone = json::array();
  if (!h.is_object()) return kNone;
  auto it = h.find("samples");
  return it != h.end() && it->is_array() ? *it : kNone;
}

// Adds every number of `from` into `into`, scaled by `k` (objects member by member).
void add_scaled(json& into, const json& from, double k) {
  if (from.is_number()) {
    into = (into.is_number() ? into.get<double>() : 0.0) + k * from.get<double>();
    return;
  }
  if (!from.is_object()) return;
  if (!into.is_object()) into = json::object();
  for (auto& [key, v] : from.items()) add_scaled(into[key], v, k);
}

}  // namespace

// A worker's interval and capacity are believed only within these bounds: anything else (a
// negative, huge or infinite number from a broken worker) would make the grid or the bound
// nonsense, and its conversion to an integer undefined.
constexpr double kMaxIntervalS = 86400;  // a day
constexpr double kMaxCapacity = 1e7;

json merge_histories(const std::vector<json>& parts) {
  double interval_s = 0;
  uint64_t capacity = 0;
  for (auto& h : parts) {
    double i = num(h, "interval_s"), c = num(h, "capacity");
    if (i > 0 && i <= kMaxIntervalS) interval_s = std::max(interval_s, i);
    if (c >= 0 && c <= kMaxCapacity) capacity = std::max(capacity, static_cast<uint64_t>(c));
  }
  json out{{"interval_s", interval_s}, {"capacity", capacity}, {"samples", json::array()}};
  if (interval_s <= 0) return out;
  auto grid = static_cast<uint64_t>(std::llround(interval_s * 1e9));
  if (grid == 0) return out;
  struct Cell {
    json sum = json::object();  // {"classes": ..., "kernel_dropped_pps": ...}
    unsigned workers = 0;
  };
  std::map<uint64_t, Cell> cells;
  uint64_t end = UINT64_MAX;  // the earliest of the workers' newest cells
  for (auto& h : parts) {
    if (double i = num(h, "interval_s"); !(i > 0 && i <= kMaxIntervalS)) continue;  // (not believed)
    std::map<uint64_t, std::vector<const json*>> mine;
    for (auto& s : samples_of(h)) {
      if (!s.is_object() || !s.contains("t_ns") || !s["t_ns"].is_number_unsigned()) continue;
      mine[s["t_ns"].get<uint64_t>() / grid * grid].push_back(&s);
    }
    if (mine.empty()) continue;
    end = std::min(end, mine.rbegin()->first);
    for (auto& [t, ss] : mine) {
      Cell& c = cells[t];
      c.workers++;
      double k = 1.0 / static_cast<double>(ss.size());  // a worker's samples in one cell: their mean
      for (const json* s : ss) {
        json part = json::object();
        if (s->contains("classes")) part["classes"] = (*s)["classes"];
        if (s->contains("kernel_dropped_pps")) part["kernel_dropped_pps"] = (*s)["kernel_dropped_pps"];
        add_scaled(c.sum, part, k);
      }
    }
  }
  for (auto& [t, c] : cells) {
    if (t > end) break;
    json s{{"t_ns", t}, {"workers", c.workers}, {"classes", json::object()}, {"kernel_dropped_pps", 0.0}};
    for (auto& [k, v] : c.sum.items()) s[k] = v;
    out["samples"].push_back(std::move(s));
  }
  json& samples = out["samples"];
  if (capacity && samples.size() > capacity)  // the newest `capacity` (one erase: no quadratic trim)
    samples.erase(samples.begin(), samples.begin() + static_cast<std::ptrdiff_t>(samples.size() - capacity));
  return out;
}

}  // namespace tmach::cluster
