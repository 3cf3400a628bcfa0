#include "flow/flow_query.h"

#include <fmt/format.h>

#include <algorithm>
#include <map>
#include <set>
#include <unordered_map>

#include "flow/flow_file.h"
#include "flow/flow_store.h"
#include "query/eval.h"
#include "query/planner.h"
#include "store/catalog.h"
#include "store/sidecar.h"

namespace tmach::flow {
namespace {

// The time ranges of a class's segments on disk: sorted by their first packet, each with the
// latest last packet of it and those before it, so that whether any overlaps a window is one
// binary search.
struct OnDisk {
  std::vector<std::pair<uint64_t, uint64_t>> ranges;  // (first packet, latest last packet so far)
  uint64_t oldest() const { return ranges.front().first; }
  bool overlaps(uint64_t from, uint64_t to) const {
    // The segments whose first packet is at `to` or before: a prefix; one of them overlaps
    // when the latest end among them reaches `from`.
    auto it =
        std::upper_bound(ranges.begin(), ranges.end(), to,
                         [](uint64_t t, const std::pair<uint64_t, uint64_t>& r) { return t < r.first; });
    return it != ranges.begin() && std::prev(it)->second >= from;
  }
};

// The segments on disk, per class name and of every class.
struct SegmentsOnDisk {
  std::map<std::string, OnDisk> by_class;
  OnDisk all;
};

SegmentsOnDisk segments_on_disk(const std::string& store) {
  // (A store that cannot be listed throws: every flow marked "packets: no" would be a wrong answer.)
  SegmentsOnDisk d;
  store::Catalog cat = store::Catalog::scan(store);
  for (const auto& s : cat.segments) {  // (an open segment's end is open)
    d.by_class[s.cls].ranges.emplace_back(s.lo_ts(), s.hi_ts());
    d.all.ranges.emplace_back(s.lo_ts(), s.hi_ts());
  }
  auto sort = [](OnDisk& o) {
    std::sort(o.ranges.begin(), o.ranges.end());
    for (size_t i = 1; i < o.ranges.size(); ++i)
      o.ranges[i].second = std::max(o.ranges[i].second, o.ranges[i - 1].second);
  };
  for (auto& [cls, o] : d.by_class) sort(o);
  sort(d.all);
  return d;
}

FlowRow::Packets packets_left(const FlowRecord& r, const std::string& cls, const SegmentsOnDisk& disk) {
  if (r.stored == 0) return FlowRow::Packets::kNone;
  auto it = disk.by_class.find(cls);
  if (it == disk.by_class.end()) return FlowRow::Packets::kNone;
  // None of its packets is left where no segment on disk spans any of its time, whatever
  // order the input came in: where it went back in time, the oldest segment left can be older
  // than the flow while the flow's own segments were deleted. (Its whole time: a packet stored
  // before the cutoff can be later than the cutoff's, where the connection's packets came out
  // of time order. The segments of every class: a connection moved to another class while
  // open has its first packets in its former class's segments.)
  if (!disk.all.overlaps(r.first_ts, r.last_ts)) return FlowRow::Packets::kNone;
  if (it->second.oldest() <= r.first_ts) return FlowRow::Packets::kAll;
  // Stored packets lie between the first packet and the cutoff, or the last packet where TCP
  // control packets were kept after the cutoff (its FIN or RST, most often the last).
  const uint64_t last_stored = r.cutoff_ts && !(r.flags & kFlowControlAfterCut) ? r.cutoff_ts : r.last_ts;
  return it->second.oldest() <= last_stored ? FlowRow::Packets::kSome : FlowRow::Packets::kNone;
}

}  // namespace

std::vector<FlowRow> query_flows(const std::string& store, const query::ParseResult& parsed, uint64_t from,
                                 uint64_t to, FlowQueryStats& st) {
  if (parsed.kind == query::ParseResult::Kind::kError)
    throw std::runtime_error(query::format_error("", parsed));
  if (parsed.kind == query::ParseResult::Kind::kBpfOnly)
    throw std::runtime_error(
        fmt::format("flow records answer host/net/port/protocol filters; '{}' needs packets (use tm query)",
                    parsed.unplanned));
  auto disk = segments_on_disk(store);  // (also: a clear error for a missing or foreign directory)
  std::unordered_map<uint64_t, FlowRow> newest;
  for (const auto& fi : scan_flow_files(store)) {
    ++st.files;
    if (fi.sealed && (fi.meta.first_ts >= to || fi.meta.last_ts < from)) {
      ++st.files_skipped;
      continue;
    }
    auto consider = [&](const FlowRecord& r, const std::vector<std::string>& classes) {
      ++st.candidates;
      if (r.first_ts >= to || r.last_ts < from) return;
      if (!query::matches(parsed.expr, as_packet(r))) return;
      auto it = newest.find(r.id);
      if (it != newest.end() && it->second.rec.last_ts > r.last_ts) return;
      if (it != newest.end() && it->second.rec.last_ts == r.last_ts &&
          it->second.rec.end != static_cast<uint8_t>(EndState::kOpen))
        return;
      FlowRow row;
      row.rec = r;
      row.cls = r.cls < classes.size() ? classes[r.cls] : fmt::format("#{}", r.cls);
      row.packets = packets_left(r, row.cls, disk);
      newest[r.id] = row;
    };
    // A sealed file's index names the candidate records, and only the blocks holding them are
    // read; a file without one (or whose index is unreadable) is read whole.
    std::vector<uint32_t> wanted;
    bool indexed = false;
    if (fi.sealed) {
      try {
        // (Mapped, its pieces read as the plan needs them, as a packet query reads a segment's.)
        auto view = store::SidecarView::open(fi.base + ".idx");
        Roaring cand =
            query::plan_segment(parsed.expr, *view, static_cast<uint32_t>(view->meta().packets)).set;
        wanted.resize(cand.cardinality());
        cand.toUint32Array(wanted.data());
        indexed = true;
      } catch (const std::exception& e) {
        st.warnings.push_back(e.what());
      }
    }
    std::string problem;
    try {
      if (indexed) {
        FlowRecordsRead c = read_flow_records(fi.base + ".flows", wanted);
        for (const auto& [ord, r] : c.records) consider(r, c.classes);
        problem = std::move(c.problem);
        ++st.files_indexed;
      } else {
        FlowFileContents c = read_flow_file(fi.base + ".flows");
        for (const auto& r : c.records) consider(r, c.classes);
        problem = std::move(c.problem);
        ++st.files_scanned;
      }
    } catch (const std::exception& e) {
      st.warnings.push_back(e.what());
      continue;
    }
    if (!problem.empty()) st.warnings.push_back(problem + " (records after it skipped)");
  }
  std::vector<FlowRow> out;
  out.reserve(newest.size());
  for (auto& [id, row] : newest) out.push_back(row);
  std::sort(out.begin(), out.end(), [](const FlowRow& a, const FlowRow& b) {
    return a.rec.first_ts != b.rec.first_ts ? a.rec.first_ts < b.rec.first_ts : a.rec.id < b.rec.id;
  });
  st.matched = out.size();
  return out;
}

bool find_flow(const std::string& store, uint64_t id, FlowRow& out) {
  FlowQueryStats st;
  query::ParseResult all = query::parse_expr("");
  for (auto& row : query_flows(store, all, 0, UINT64_MAX, st))
    if (row.rec.id == id) {
      out = row;
      return true;
    }
  return false;
}

void keep_community_id(std::vector<FlowRow>& rows, const std::string& id) {
  std::erase_if(rows, [&](const FlowRow& r) { return community_id(r.rec) != id; });
}

std::string connections_filter(const std::vector<FlowRow>& rows) {
  std::set<std::string> terms;  // one term per 5-tuple, however many records name it
  for (auto& r : rows) {
    const FlowRecord& f = r.rec;
    const char* proto = f.proto == packet::kProtoTcp    ? "tcp"
                        : f.proto == packet::kProtoUdp  ? "udp"
                        : f.proto == packet::kProtoSctp ? "sctp"
                                                        : nullptr;
    // Both directions, each with its own ports: "host A and host B and port a and port b" would
    // also take A:b <-> B:a, another connection.
    std::string a = f.orig.str(), b = f.resp.str();
    // Ports 0 and 0: the connection of the pair's packets without ports (a later fragment
    // whose first fragment was not seen, a transport header cut off) or with both ports 0.
    // `port 0` matches neither of the first: packets with no port of 1-65535.
    const bool portless = proto && f.orig_port == 0 && f.resp_port == 0;
    std::string t =
        portless ? fmt::format("{} and host {} and host {} and not portrange 1-65535", proto, a, b)
        : proto  ? fmt::format(
                       "{0} and ((src host {1} and src port {2} and dst host {3} and dst port {4}) or "
                        "(src host {3} and src port {4} and dst host {1} and dst port {2}))",
                       proto, a, f.orig_port, b, f.resp_port)
                : fmt::format("{} proto {} and host {} and host {}", f.version == 6 ? "ip6" : "ip", f.proto,
                              a, b);
    terms.insert("(" + t + ")");
  }
  std::string o;
  for (auto& t : terms) o += (o.empty() ? "" : " or ") + t;
  return o;
}

std::string community_filter(const std::string& store, const std::string& id) {
  FlowQueryStats st;
  auto rows = query_flows(store, query::parse_expr(""), 0, UINT64_MAX, st);
  keep_community_id(rows, id);
  return connections_filter(rows);
}

}  // namespace tmach::flow
