#include "flow/flow_query.h"

#include <fmt/format.h>

#include <algorithm>
#include <filesystem>
#include <map>
#include <set>
#include <unordered_map>

#include "conn/flow_key.h"
#include "flow/flow_file.h"
#include "flow/flow_store.h"
#include "query/eval.h"
#include "query/planner.h"
#include "store/catalog.h"
#include "store/sidecar.h"
#include "util/file_io.h"
#include "util/timespec.h"

namespace tmach::flow {

SegmentsOnDisk SegmentsOnDisk::of(const std::string& store) {
  // (A store that cannot be listed throws: every flow marked "packets: no" would be a wrong answer.)
  SegmentsOnDisk d;
  // (A segment without a sound sidecar from an hour before its name: SegmentInfo::lo_ts.)
  for (const auto& s : store::Catalog::scan(store).segments) d.add(s.cls, s.lo_ts(), s.hi_ts());
  d.seal();
  return d;
}

void SegmentsOnDisk::add(const std::string& cls, uint64_t lo, uint64_t hi) {
  by_class_[cls].r.emplace_back(lo, hi);
  all_.r.emplace_back(lo, hi);
}

void SegmentsOnDisk::seal() {
  auto sort = [](Ranges& x) {
    std::sort(x.r.begin(), x.r.end());
    for (size_t i = 1; i < x.r.size(); ++i) x.r[i].second = std::max(x.r[i].second, x.r[i - 1].second);
  };
  for (auto& [cls, x] : by_class_) sort(x);
  sort(all_);
}

bool SegmentsOnDisk::Ranges::overlaps(uint64_t from, uint64_t to) const {
  // The ranges whose first packet is at `to` or before: a prefix; one of them overlaps when the
  // latest end among them reaches `from`.
  auto it = std::upper_bound(r.begin(), r.end(), to,
                             [](uint64_t t, const std::pair<uint64_t, uint64_t>& x) { return t < x.first; });
  return it != r.begin() && std::prev(it)->second >= from;
}

FlowRow::Packets SegmentsOnDisk::packets_left(const FlowRecord& r, const std::string& cls) const {
  if (r.stored == 0) return FlowRow::Packets::kNone;
  // The connection's packets span its first to its last packet — or, for the interim record of
  // a connection still open (or of one a crash ended), up to any time since. (Its whole time,
  // not the cutoff's: a packet stored before the cutoff can be later than it, where the
  // connection's packets came out of time order.)
  const bool open = r.end == static_cast<uint8_t>(EndState::kOpen);
  const uint64_t last = open ? UINT64_MAX : r.last_ts;
  // Moved to another class while open, its first packets are in its former class's segments:
  // any class's may hold them, and no answer but `no` (none spans its time) is certain. So too
  // for a record naming a class its file does not list ("#N").
  if ((r.flags & kFlowClassMoved) || cls.empty() || cls[0] == '#')
    return all_.overlaps(r.first_ts, last) ? FlowRow::Packets::kSome : FlowRow::Packets::kNone;
  // Otherwise its packets are in its class's segments only: none is left where none of them
  // spans any of its time, whatever order the input came in (where it went back in time, the
  // class's oldest segment can be older than the flow while the flow's own were deleted).
  auto it = by_class_.find(cls);
  if (it == by_class_.end() || !it->second.overlaps(r.first_ts, last)) return FlowRow::Packets::kNone;
  const uint64_t oldest = it->second.r.front().first;
  if (oldest <= r.first_ts) return FlowRow::Packets::kAll;
  // Stored packets lie between the first packet and the cutoff, or the last packet where TCP
  // control packets were kept after the cutoff (its FIN or RST, most often the last).
  const uint64_t last_stored = r.cutoff_ts && !(r.flags & kFlowControlAfterCut) ? r.cutoff_ts : last;
  return oldest <= last_stored ? FlowRow::Packets::kSome : FlowRow::Packets::kNone;
}

namespace {

// The first primitive of `e` that a flow record cannot answer ("" when there is none).
std::string not_in_flow_records(const query::Expr& e) {
  using K = query::Predicate::Kind;
  if (e.op == query::Expr::Op::kPred) {
    const query::Predicate& p = e.pred;
    const bool packets_only = p.kind == K::kVlan || p.kind == K::kTunnel || p.kind == K::kSpi ||
                              p.layer == query::Predicate::Layer::kOuter;
    return packets_only ? p.str() : std::string();
  }
  for (const query::Expr& k : e.kids)
    if (std::string s = not_in_flow_records(k); !s.empty()) return s;
  return {};
}

}  // namespace

std::string flow_filter_refusal(const query::ParseResult& parsed) {
  if (parsed.kind == query::ParseResult::Kind::kBpfOnly)
    return fmt::format(
        "flow records answer host/net/port/protocol filters; '{}' needs packets (use tm query)",
        parsed.unplanned);
  if (std::string s = not_in_flow_records(parsed.expr); !s.empty())
    return fmt::format(
        "flow records answer host/net/port/protocol filters of a connection's innermost addresses; "
        "'{}' is not in them (VLAN tags, tunnels, SPIs and outer layers are the packets': use tm query)",
        s);
  return {};
}

std::vector<FlowRow> query_flows(const std::string& store, const query::ParseResult& parsed, uint64_t from,
                                 uint64_t to, FlowQueryStats& st, const FlowPredicate& keep) {
  if (parsed.kind == query::ParseResult::Kind::kError)
    throw std::runtime_error(query::format_error("", parsed));
  if (std::string why = flow_filter_refusal(parsed); !why.empty()) throw std::runtime_error(why);
  // (A clear error for a missing or foreign directory, before anything else. The segments are
  // listed once the records are read, for packets_left(): one written meanwhile may hold some
  // of theirs.)
  store::check_store(store);
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
      if (keep && !keep(r)) return;
      auto it = newest.find(r.id);
      if (it != newest.end() && it->second.rec.last_ts > r.last_ts) return;
      if (it != newest.end() && it->second.rec.last_ts == r.last_ts &&
          it->second.rec.end != static_cast<uint8_t>(EndState::kOpen))
        return;
      FlowRow row;
      row.rec = r;
      row.cls = r.cls < classes.size() ? classes[r.cls] : fmt::format("#{}", r.cls);
      newest[r.id] = row;
    };
    // A sealed file's index names the candidate records, and only the blocks holding them are
    // read; a file without one (or whose index is unreadable) is read whole.
    Roaring wanted;
    bool indexed = false;
    if (fi.sealed) {
      try {
        // (Mapped, its pieces read as the plan needs them, as a packet query reads a segment's.)
        auto view = store::SidecarView::open(fi.base + ".idx");
        std::error_code ec;
        const uint64_t bytes = std::filesystem::file_size(fi.base + ".flows", ec);
        if (!ec && bytes != view->meta().pcap_bytes)  // (changed since it was sealed: read it whole)
          throw std::runtime_error(fmt::format("{}.idx: indexes a flow file of {} bytes, {}.flows has {}",
                                               fi.base, view->meta().pcap_bytes, fi.base, bytes));
        wanted = query::plan_segment(parsed.expr, *view, static_cast<uint32_t>(view->meta().packets)).set;
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
        if (!c.names_problem.empty()) st.warnings.push_back(c.names_problem);  // (no record lost)
        ++st.files_indexed;
      } else {
        FlowFileContents c = read_flow_file(fi.base + ".flows", true);
        for (const auto& r : c.records) consider(r, c.classes);
        problem = std::move(c.problem);
        if (!c.names_problem.empty()) st.warnings.push_back(c.names_problem);  // (no record lost)
        ++st.files_scanned;
      }
    } catch (const std::exception& e) {
      // (there but unreadable: the answer would be short, so it ends it; deleted meanwhile: passed)
      util::throw_if_unreadable(fi.base + ".flows", util::error_number_of(e));
      st.warnings.push_back(e.what());
      st.lost.push_back(e.what());
      continue;
    }
    if (!problem.empty()) {  // (it says what was skipped)
      st.warnings.push_back(problem);
      st.lost.push_back(problem);
    }
  }
  const SegmentsOnDisk disk = SegmentsOnDisk::of(store);
  std::vector<FlowRow> out;
  out.reserve(newest.size());
  for (auto& [id, row] : newest) {
    row.packets = disk.packets_left(row.rec, row.cls);
    out.push_back(row);
  }
  std::sort(out.begin(), out.end(), [](const FlowRow& a, const FlowRow& b) {
    return a.rec.first_ts != b.rec.first_ts ? a.rec.first_ts < b.rec.first_ts : a.rec.id < b.rec.id;
  });
  st.matched = out.size();
  return out;
}

bool find_flow(const std::string& store, uint64_t id, FlowRow& out, std::vector<std::string>* problems) {
  FlowQueryStats st;
  auto rows = query_flows(store, query::parse_expr(""), 0, UINT64_MAX, st,
                          [id](const FlowRecord& r) { return r.id == id; });
  if (problems) problems->insert(problems->end(), st.lost.begin(), st.lost.end());
  if (rows.empty()) return false;
  out = rows.front();
  return true;
}

std::optional<FlowPackets> flow_packets(const std::string& store, uint64_t id,
                                        std::vector<std::string>* problems) {
  FlowRow row;
  if (!find_flow(store, id, row, problems)) return std::nullopt;
  FlowPackets f{connections_filter({row}),
                connection_of(row.rec),
                row.rec.first_ts,
                row.rec.last_ts + 1,
                (row.rec.flags & kFlowClassMoved) || row.cls.empty() || row.cls[0] == '#' ? "" : row.cls,
                row.rec.stored};
  if (row.rec.end == static_cast<uint8_t>(EndState::kOpen)) {
    // Its newest record is an interim one: the connection is still open (its later packets are
    // its own), or its recorder stopped without a final record (a crash, a damaged flow file),
    // and then it ended before the next flow of its connection, if there is one: of its 5-tuple
    // and in the same tunnel (the same 5-tuple in another tunnel is another connection, whose
    // start says nothing of this one's end).
    f.end_ns = UINT64_MAX;
    FlowQueryStats st;
    const uint64_t last = row.rec.last_ts;
    for (const FlowRow& later :
         query_flows(store, query::parse_expr(f.filter), last + 1, UINT64_MAX, st, [&](const FlowRecord& r) {
           return r.id != id && r.first_ts > last && same_connection(connection_of(r), f.conn);
         }))
      f.end_ns = std::min(f.end_ns, later.rec.first_ts);
  }
  return f;
}

FlowWindow flow_window(const std::string& id, const FlowPackets& f, uint64_t from_ns, uint64_t to_ns) {
  FlowWindow w;
  if (from_ns >= to_ns) {  // (empty as given: answered empty)
    w.from_ns = from_ns;
    w.to_ns = to_ns;
    return w;
  }
  w.from_ns = std::max(from_ns, f.first_ns);
  w.to_ns = std::min(to_ns, f.end_ns);
  if (w.from_ns < w.to_ns) return w;
  // (with from_ns < to_ns, only one of the two can miss the flow)
  if (from_ns >= f.end_ns) {
    w.bound = "from";
    w.problem = fmt::format("the time given is after flow {}'s last packet ({})", id,
                            util::format_time(f.end_ns - 1));
  } else {
    w.bound = "to";
    w.problem = fmt::format("the time given is not after flow {}'s first packet ({}; to is exclusive)", id,
                            util::format_time(f.first_ns));
  }
  return w;
}

FlowPredicate has_community_id(const std::string& id) {
  return [id](const FlowRecord& r) { return community_id(r) == id; };
}

std::string connections_filter(const std::vector<FlowRow>& rows, bool checked) {
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
    // `port 0` matches neither of the first, and `not portrange 1-65535` misses a frame cut
    // before its ports (libpcap's portrange rejects it under a `not` too): the pair and
    // protocol, every packet then checked against the connection (of_connections: ports 0).
    const bool portless = proto && f.orig_port == 0 && f.resp_port == 0;
    std::string t = portless ? fmt::format("{} and host {} and host {}{}", proto, a, b,
                                           checked ? "" : " and not portrange 1-65535")
                    : proto
                        ? fmt::format(
                              "{0} and ((src host {1} and src port {2} and dst host {3} and dst port {4}) or "
                              "(src host {3} and src port {4} and dst host {1} and dst port {2}))",
                              proto, a, f.orig_port, b, f.resp_port)
                        : fmt::format("{} proto {} and host {} and host {}", f.version == 6 ? "ip6" : "ip",
                                      f.proto, a, b);
    terms.insert("(" + t + ")");
  }
  std::string o;
  for (auto& t : terms) o += (o.empty() ? "" : " or ") + t;
  return o;
}

FlowConnection connection_of(const FlowRecord& r) {
  // (An interim record written before the pair's second SA was seen says 0 of a partner that may
  // come: not known, as in a record from before the field.)
  const bool known =
      (r.flags & kFlowSaPartner) && !(sa_partner(r) == 0 && r.end == static_cast<uint8_t>(EndState::kOpen));
  return FlowConnection{r.orig, r.resp, r.orig_port, r.resp_port, r.proto, r.tunnel, known, sa_partner(r)};
}

bool same_connection(const FlowConnection& a, const FlowConnection& b) {
  // An ESP/AH record from before kFlowSaPartner: of_connections() matches it by addresses and
  // protocol, whatever its SA pair, and so does this.
  const bool any_sa = sa_keyed(a.proto) && !(a.sa_known && b.sa_known);
  if (a.proto != b.proto || (a.tunnel != b.tunnel && !any_sa)) return false;
  return (a.orig == b.orig && a.resp == b.resp && a.orig_port == b.orig_port && a.resp_port == b.resp_port) ||
         (a.orig == b.resp && a.resp == b.orig && a.orig_port == b.resp_port && a.resp_port == b.orig_port);
}

bool of_connections(const std::vector<FlowConnection>& conns, const packet::PacketInfo& p) {
  conn::KeyedPacket kp;
  if (!conn::make_key(p, kp)) return false;  // (no IP layer: no flow's)
  const packet::IpLayer& l = *p.inner();
  const bool sa = conn::has_sa(l);
  const bool no_ports = l.fragment && l.frag_offset > 0 && !l.has_ports;
  const conn::FlowKey& k = kp.key;
  for (const FlowConnection& c : conns) {
    if (k.proto != c.proto) continue;
    if (!sa ? k.tunnel != c.tunnel
            : c.sa_known && k.tunnel != c.tunnel && (c.sa_partner == 0 || l.spi != c.sa_partner))
      continue;
    const bool ports_ab = sa || no_ports || (k.port_a == c.orig_port && k.port_b == c.resp_port);
    const bool ports_ba = sa || no_ports || (k.port_a == c.resp_port && k.port_b == c.orig_port);
    if ((k.a == c.orig && k.b == c.resp && ports_ab) || (k.a == c.resp && k.b == c.orig && ports_ba))
      return true;
  }
  return false;
}

std::string community_filter(const std::string& store, const std::string& id,
                             std::vector<std::string>* problems, uint64_t* stored,
                             std::vector<FlowConnection>* conns) {
  FlowQueryStats st;
  auto rows = query_flows(store, query::parse_expr(""), 0, UINT64_MAX, st, has_community_id(id));
  if (problems) problems->insert(problems->end(), st.lost.begin(), st.lost.end());
  if (stored) {
    // (Interim records of a connection and its final one: the newest of each id counts.)
    std::map<uint64_t, uint64_t> by_id;
    for (const auto& r : rows) by_id[r.rec.id] = std::max(by_id[r.rec.id], r.rec.stored);
    *stored = 0;
    for (auto& [fid, n] : by_id) *stored += n;
  }
  if (conns)
    for (const auto& r : rows) conns->push_back(connection_of(r.rec));
  return connections_filter(rows);
}

}  // namespace tmach::flow
