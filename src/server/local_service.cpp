#include "server/local_service.h"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <deque>
#include <map>
#include <optional>
#include <set>
#include <tuple>

#include "flow/flow_query.h"
#include "flow/flow_store.h"
#include "packet/community_id.h"
#include "query/combine.h"
#include "query/packet_filter.h"
#include "server/flow_format.h"
#include "server/metrics.h"
#include "server/store_stats.h"
#include "server/subscription.h"
#include "store/catalog.h"
#include "util/pcap.h"
#include "util/pcapng_writer.h"
#include "util/timespec.h"
#include "util/units.h"

namespace tmach::server {
// --from/--to (the command line's names).
void parse_time_range(const std::string& from, const std::string& to, uint64_t& from_ns, uint64_t& to_ns) {
  uint64_t now = util::now_ns();
  for (auto [flag, text, dst] : {std::tuple{"--from", &from, &from_ns}, std::tuple{"--to", &to, &to_ns}}) {
    if (text->empty()) continue;
    std::string err;
    auto t = util::parse_time(*text, now, &err);
    if (!t) throw std::runtime_error(std::string(flag) + ": " + err);
    *dst = *t;
  }
}

namespace {

using clk = std::chrono::steady_clock;
using nlohmann::json;

double ms_since(clk::time_point t0) {
  return std::chrono::duration<double, std::milli>(clk::now() - t0).count();
}

// Every 256 packets: has the transport asked to stop?
void check_stop(uint64_t& n, const StopCheck& stop) {
  if ((++n & 255) != 0) return;
  if (std::string why = stop(); !why.empty()) throw Cancelled(why);
}

// Before each segment but the first (run_query's before_segment): a query of few matches over
// many segments is stopped too, once it has read one.
std::function<void()> stop_between_segments(const StopCheck& stop) {
  return [&stop, first = true]() mutable {
    if (std::exchange(first, false)) return;
    if (std::string why = stop(); !why.empty()) throw Cancelled(why);
  };
}

}  // namespace

// A packet query's answer (open_query), which can also only count (count).
class QueryStream : public Stream {
 public:
  QueryStream(store::Catalog cat, query::QuerySpec q, size_t chunk, util::pcap::Output output,
              std::vector<std::string> notes = {}, std::string if_empty = {})
      : cat_(std::move(cat)),
        q_(std::move(q)),
        chunk_(chunk),
        output_(output),
        notes_(std::move(notes)),
        if_empty_(std::move(if_empty)) {
    content_type = util::pcap::output_content_type(output);
  }
  // Counts what run() would write, writing nothing (no copy of any packet): the packets, and
  // with a pcap answer those of another link type than the first packet's, as run() leaves
  // them out. Returns the summary without the format.
  std::string count(const Warn& warn, const StopCheck& stop) {
    for (auto& n : notes_) warn(n);
    const bool pcap = output_ == util::pcap::Output::kPcap;
    uint64_t n = 0, kept = 0, other = 0;
    std::optional<uint32_t> link;  // a pcap answer's: the first packet's
    query::QueryStats st = query::run_query(
        cat_, q_,
        [&](const query::OutPacket& p) {
          check_stop(n, stop);
          if (!link) link = p.linktype;
          if (!pcap || p.linktype == *link)
            ++kept;
          else
            ++other;
        },
        stop_between_segments(stop));
    packets = kept;
    double ms = ms_since(t0_);
    for (auto& w : st.warnings) warn(w);
    if (n == 0 && !if_empty_.empty()) warn(if_empty_);
    if (other)
      warn(fmt::format(
          "{} matching packets of another link type than {} were left out (--format pcapng keeps them)",
          other, *link));
    return summary(st, ms);
  }
  std::string run(const ByteSink& sink, const Warn& warn, const StopCheck& stop) override {
    for (auto& n : notes_) warn(n);
    // util/pcap.h: a pcap's link type is that of the first packet; packets of another link
    // type cannot share the stream and are counted instead. A pcapng takes them all.
    util::pcap::AnswerWriter out(output_, sink, chunk_);
    uint64_t n = 0;
    query::QueryStats st = query::run_query(
        cat_, q_,
        [&](const query::OutPacket& p) {
          check_stop(n, stop);
          out.write(p.ts_ns, p.linktype, p.caplen, p.wirelen, p.data);
        },
        stop_between_segments(stop));
    out.finish();
    packets = out.packets();
    double ms = ms_since(t0_);
    for (auto& w : st.warnings) warn(w);
    if (n == 0 && !if_empty_.empty()) warn(if_empty_);
    if (out.other_link())
      warn(fmt::format(
          "{} matching packets of another link type than {} were left out (--format pcapng keeps them)",
          out.other_link(), out.linktype()));
    return summary(st, ms) + "; written as " + out.describe();
  }

 private:
  std::string summary(const query::QueryStats& st, double ms) const {
    return fmt::format(
        "{} segments searched ({} through their sidecar, {} read whole), {} skipped by time; {} candidates, "
        "{} matched, "
        "{:.1f} ms",
        st.segments_indexed + st.segments_scanned, st.segments_indexed, st.segments_scanned,
        st.segments_skipped_time, st.candidates, st.matched, ms);
  }
  store::Catalog cat_;
  query::QuerySpec q_;
  size_t chunk_;
  util::pcap::Output output_;
  std::vector<std::string> notes_;  // warnings known before the answer (a Community ID with no connection)
  std::string if_empty_;            // a warning after an answer of no packet at all (nothing matched)
  clk::time_point t0_ = clk::now();
};

namespace {

// A flow answer is complete before it is written: its errors come when it is opened.
class TextStream : public Stream {
 public:
  TextStream(std::string text, std::vector<std::string> warnings, std::string summary)
      : text_(std::move(text)), warnings_(std::move(warnings)), summary_(std::move(summary)) {}
  std::string run(const ByteSink& out, const Warn& warn, const StopCheck&) override {
    out(text_.data(), text_.size());
    for (auto& w : warnings_) warn(w);
    return summary_;
  }

 private:
  std::string text_;
  std::vector<std::string> warnings_;
  std::string summary_;
};

// Optional history, then new packets as the writer appends them; unsubscribes when destroyed.
class SubscriptionStream : public Stream {
 public:
  SubscriptionStream(Backend& live, std::shared_ptr<Subscriber> sub, store::Catalog snap, bool history,
                     size_t chunk)
      : live_(live), sub_(std::move(sub)), snap_(std::move(snap)), history_(history), chunk_(chunk) {}
  ~SubscriptionStream() override {
    live_.unsubscribe(sub_);
    if (sub_->overflow())
      spdlog::warn("subscription '{}': {} packets lost (the client read too slowly)", sub_->spec().text,
                   sub_->overflow());
  }
  // Ends normally when `stop` says stop (the end of a subscription); Cancelled only while
  // the history is written.
  std::string run(const ByteSink& sink, const Warn&, const StopCheck& stop) override {
    util::pcap::Writer out(sink, chunk_);
    if (history_) {
      query::QuerySpec h = sub_->spec();
      h.to_ns = UINT64_MAX;
      uint64_t n = 0;
      query::run_query(
          snap_, h,
          [&](const query::OutPacket& p) {
            check_stop(n, stop);
            out.write(p.ts_ns, p.linktype, p.caplen, p.wirelen, p.data);
          },
          stop_between_segments(stop));
      out.flush();
    }
    std::deque<SubPacket> batch;
    while (stop().empty()) {
      sub_->take(batch, std::chrono::milliseconds(200));
      for (auto& p : batch)
        out.write(p.ts_ns, p.linktype, static_cast<uint32_t>(p.data.size()), p.wirelen,
                  reinterpret_cast<const uint8_t*>(p.data.data()));
      batch.clear();
      out.flush();
    }
    out.finish();
    packets = out.packets();
    return fmt::format("{} packets", packets);
  }

 private:
  Backend& live_;
  std::shared_ptr<Subscriber> sub_;
  store::Catalog snap_;
  bool history_;
  size_t chunk_;
};

}  // namespace

void LocalService::refuse(const std::string& option_text, const std::string& param_text) const {
  throw BadRequest(o_.naming == LocalOptions::Naming::kOptions ? option_text : param_text);
}

namespace {

// A filter libpcap must read (a part of; `given`: its parse) is compiled for the link types of
// the store's segments of `classes` (all when empty; Ethernet while it has none): a BadRequest
// with libpcap's error when it compiles for none of them.
void check_libpcap(const std::string& filter, const query::ParseResult& given, const store::Catalog& cat,
                   const std::vector<std::string>& classes) {
  if (given.kind != query::ParseResult::Kind::kBpfOnly) return;
  std::set<uint32_t> links;
  for (auto& s : cat.segments)
    if (classes.empty() || std::find(classes.begin(), classes.end(), s.cls) != classes.end())
      links.insert(s.meta.linktype);
  if (std::string err = query::libpcap_filter_error(query::libpcap_text(filter, given), links); !err.empty())
    throw BadRequest(err);
}

}  // namespace

query::QuerySpec LocalService::spec(const std::string& filter, const std::string& from, const char* from_name,
                                    const std::string& to, bool check_order, bool check_libpcap) const {
  query::QuerySpec q;
  q.text = filter;
  q.parsed = query::parse_expr(q.text);
  if (q.parsed.kind == query::ParseResult::Kind::kError)
    throw BadRequest(query::format_error(q.text, q.parsed));
  // (checked before the answer starts: a usage error, exit status 2 on the command line)
  if (check_libpcap && q.parsed.kind == query::ParseResult::Kind::kBpfOnly)
    if (std::string err = query::libpcap_filter_error(query::libpcap_text(q.text, q.parsed)); !err.empty())
      throw BadRequest(err);
  uint64_t now = util::now_ns();
  for (auto [name, text, dst] : {std::tuple{from_name, &from, &q.from_ns}, std::tuple{"to", &to, &q.to_ns}}) {
    if (text->empty()) continue;
    std::string err;
    auto t = util::parse_time(*text, now, &err);
    if (!t) refuse(fmt::format("--{}: {}", name, err), fmt::format("{}: {}", name, err));
    *dst = *t;
  }
  if (check_order && q.from_ns > q.to_ns) refuse("--from is after --to", "from is after to");
  return q;
}

Backend& LocalService::need_live(const char* what) const {
  if (!o_.live) throw Conflict(fmt::format("this tm serve does not capture (read-only store): no {}", what));
  return *o_.live;
}

std::string LocalService::community_id_of(const std::string& id) const {
  if (id.empty()) return id;
  std::optional<std::string> b = packet::community_id_base64(id);
  if (!b)
    throw BadRequest(
        fmt::format("{}: '{}' is not a version-1 Community ID (1: and 28 base64 "
                    "characters, as 1:wCb3OG7yAFWelaUydu0D+125CLM=, or 1: and 40 hex digits)",
                    o_.naming == LocalOptions::Naming::kOptions ? "--community-id" : "community_id", id));
  return *b;
}

std::unique_ptr<Stream> LocalService::open_query(const QueryRequest& r) { return open_packets(r); }

// The count of what open_query(q) would answer as pcapng (or q.format), without building the
// answer: the same query, each matching packet counted, none copied.
Reply LocalService::count(const QueryRequest& q, const StopCheck& stop) {
  QueryRequest all = q;
  if (all.format.empty()) all.format = "pcapng";  // every link type counted (as Service::count)
  std::unique_ptr<QueryStream> s = open_packets(all);
  json warnings = json::array();
  std::string summary = s->count([&](const std::string& w) { warnings.push_back(w); }, stop);
  return {json{{"packets", s->packets}, {"summary", summary}, {"warnings", std::move(warnings)}}, s->headers};
}

// A packet query's request checked and parsed, for the answer (open_packets) and for its plan
// (explain) alike: format, Community ID, filter, times and their order, classes.
namespace {
// A time range asked from before the oldest packet a class holds, where segments of that class
// were deleted (its sequence numbers have gaps: the disk budget, max_age, or lost): the answer
// may lack packets of that time, said, so that an empty one is not read as "no traffic".
// Whether a conjunction of `e` names VLAN tags the way tcpdump asks for stacked ones: `vlan and
// vlan` (each `vlan` moves libpcap past one tag: double-tagged frames), `vlan and vlan 100`,
// `vlan 100 and vlan 100`. tm matches a tag at any depth, so to it these are every tagged frame,
// or every frame tagged 100: said, rather than answered silently as what they are not. (`vlan
// 100 and vlan 200` is a frame with both tags, which is what it asks.)
bool stacks_vlan_tags(const query::Expr& e) {
  if (e.op == query::Expr::Op::kAnd) {
    std::vector<int32_t> ids;
    for (const query::Expr& k : e.kids)
      if (k.op == query::Expr::Op::kPred && k.pred.kind == query::Predicate::Kind::kVlan)
        ids.push_back(k.pred.vlan);
    for (size_t i = 0; i < ids.size(); ++i)
      for (size_t j = i + 1; j < ids.size(); ++j)
        if (ids[i] < 0 || ids[j] < 0 || ids[i] == ids[j]) return true;
  }
  for (const query::Expr& k : e.kids)
    if (stacks_vlan_tags(k)) return true;
  return false;
}

void deleted_before(const store::Catalog& cat, const std::vector<std::string>& classes, uint64_t from_ns,
                    std::vector<std::string>& notes) {
  for (const auto& cls : cat.classes) {
    if (!classes.empty() && std::find(classes.begin(), classes.end(), cls) == classes.end()) continue;
    uint64_t present = 0, last_seq = 0, oldest = UINT64_MAX;
    for (const auto& s : cat.segments) {
      if (s.cls != cls) continue;
      ++present;
      last_seq = std::max(last_seq, s.meta.seq);
      oldest = std::min(oldest, s.lo_ts());
    }
    if (!present || last_seq <= present || from_ns >= oldest) continue;
    notes.push_back(fmt::format(
        "class {} holds no packet before {}, and {} of its segments are gone (deleted by the disk budget or "
        "max_age, or lost): the packets of the time asked before then may have been among them",
        cls, util::format_time(oldest), last_seq - present));
  }
}
}  // namespace

struct LocalService::PacketQuery {
  query::QuerySpec q;
  std::optional<util::pcap::Output> forced;
  // A Community ID or flow id that no flow record has: an empty answer, saying so.
  std::string no_connection;
  std::vector<std::string> no_connection_notes;  // (Stream::no_connection_notes; also in notes)
  std::vector<std::string> notes;  // warnings the answer starts with (a flow outside the classes asked for)
  std::string if_empty;            // a warning the answer ends with when it holds no packet
  // The connections' selector when it is not in q.text (a filter libpcap answers whole): they
  // are then checked per packet only (q.connection), and --explain says so.
  std::string connections;
  store::Catalog cat;  // (names only) scanned after the live writer's flush, when `sync`

  // The link types of the segments the query may read (by class, and by time as far as the
  // names tell: a segment's name holds its first timestamp). A tm frontend reads them from
  // the answer's header (or its plan's) to choose its own format.
  std::set<uint32_t> links() const {
    std::set<uint32_t> l;
    for (auto& s : cat.segments)
      if ((q.classes.empty() || std::find(q.classes.begin(), q.classes.end(), s.cls) != q.classes.end()) &&
          s.lo_ts() < q.to_ns)
        l.insert(s.meta.linktype);
    return l;
  }
  // The answer's format: as the request says, else pcapng when it may hold more than one link
  // type, else pcap.
  util::pcap::Output output(const std::set<uint32_t>& l) const {
    return forced.value_or(l.size() > 1 ? util::pcap::Output::kPcapng : util::pcap::Output::kPcap);
  }
};

LocalService::PacketQuery LocalService::packet_query(const QueryRequest& r, bool sync) const {
  PacketQuery p;
  if (!r.format.empty()) {
    p.forced = util::pcap::parse_output(r.format);
    if (!p.forced)
      refuse(fmt::format("--format: '{}' is not pcap or pcapng", r.format),
             fmt::format("format: '{}' is not pcap or pcapng", r.format));
  }
  // An empty answer, not an error, when no connection has the Community ID or the flow id: in
  // a cluster, every worker but one has none.
  const std::string community_id = community_id_of(r.community_id);
  if (!r.flow_id.empty() && !r.community_id.empty())
    refuse("give --flow or --community-id, not both", "give flow_id or community_id, not both");
  std::string conns;
  std::optional<flow::FlowPackets> flow;    // (flow_id: the flow found)
  std::vector<flow::FlowConnection> exact;  // their connections, as the recorder keyed them
  // Flow records that could not be read: said, as what is asked for may be among them (a note
  // of its own, not part of no_connection: a front-end drops the workers' no_connection when
  // another worker has the connection, and must keep this).
  std::vector<std::string> damage;
  auto note_damage = [&](const std::string& what) {
    if (damage.empty()) return;
    p.notes.push_back(fmt::format(
        "flow records of store {} that tm could not read (damaged: {}{}): {} may be among them", o_.store,
        damage.front(), damage.size() > 1 ? fmt::format("; and {} more", damage.size() - 1) : "", what));
  };
  // What tm stored of the flow (or flows) asked for: an answer of none of them, to a request
  // that does not narrow them (a filter, times, classes), means they are no longer on disk.
  uint64_t stored = 0;
  if (!community_id.empty()) {
    conns = flow::community_filter(o_.store, community_id, &damage, &stored, &exact);
    if (conns.empty())
      p.no_connection =
          fmt::format("no flow record of store {} has Community ID {}", o_.store, r.community_id);
    note_damage(conns.empty() ? "its connections" : "more of its connections");
  } else if (!r.flow_id.empty()) {
    uint64_t id = 0;
    auto [end, ec] = std::from_chars(r.flow_id.data(), r.flow_id.data() + r.flow_id.size(), id);
    if (ec != std::errc() || end != r.flow_id.data() + r.flow_id.size() || id == 0)
      throw BadRequest(fmt::format("flow_id: '{}' is not a flow id (a number from tm flows)", r.flow_id));
    if ((flow = flow::flow_packets(o_.store, id, &damage))) {
      conns = flow->filter;
      exact.push_back(flow->conn);
      stored = flow->stored;
    } else {
      p.no_connection = fmt::format("no flow {} in the flow records of store {}", r.flow_id, o_.store);
      note_damage("its record");
      // (A flow is one record: found at another worker, this store's damage says nothing of it.)
      if (!damage.empty()) p.no_connection_notes.push_back(p.notes.back());
    }
  }
  std::string filter;
  try {
    filter =
        query::and_filters(conns, r.filter, r.community_id.empty() ? "flow_id" : "community_id", "filter");
  } catch (const std::invalid_argument& e) {
    throw BadRequest(e.what());
  }
  // A filter libpcap answers whole (it has `vlan`, `mpls`, `pppoes` or `geneve`, which move the
  // offsets of what follows them) would take the connections' selector at libpcap's offsets
  // too: `vlan and greater 0` with a tagged flow's was refused, "expression rejects all
  // packets". It is the filter alone then, the connections checked per packet (QuerySpec::
  // connection) within their lifetime: libpcap's answer is a scan of that time anyway.
  // (Only then: a filter split between tm and libpcap, `greater 0`, leaves the selector to tm's
  // evaluator, which knows a later fragment's datagram; judged by the connection alone, an
  // orphan fragment joined a flow's answer and the flow's own later fragments of ESP or of an
  // outer tunnel layer left it.)
  if (!exact.empty() && !r.filter.empty()) {
    const query::ParseResult joined = query::parse_expr(filter);
    if (joined.kind == query::ParseResult::Kind::kBpfOnly && !joined.split()) {
      p.connections = conns;
      filter = r.filter;
    }
  }
  p.q = spec(filter, r.from, "from", r.to, true, false);
  p.q.limit = r.limit;
  if (!exact.empty())
    p.q.connection = [exact = std::move(exact)](const packet::PacketInfo& pk) {
      return flow::of_connections(exact, pk);
    };
  if (flow) {
    // The request's range within the flow's lifetime (its 5-tuple's other flows are outside it),
    // or why the flow has no packet in it.
    flow::FlowWindow w = flow::flow_window(r.flow_id, *flow, p.q.from_ns, p.q.to_ns);
    if (!w.problem.empty())
      refuse(fmt::format("--{}: {}", w.bound, w.problem), fmt::format("{}: {}", w.bound, w.problem));
    p.q.from_ns = w.from_ns;
    p.q.to_ns = w.to_ns;
  }
  // A filter libpcap compiles is checked for the link types of the store's segments in the
  // classes asked (that of an empty answer too: a bad filter is an error whatever it selects).
  // (With no connection to answer too: its classes and filter are refused as any query's.)
  const bool bpf = p.q.parsed.kind == query::ParseResult::Kind::kBpfOnly;
  p.q.classes = r.classes;
  if (sync && o_.live && p.no_connection.empty() && !o_.live->sync())
    spdlog::warn("query: the writer did not flush in time; recent packets may be missing");
  // Names only: the executor checks each sidecar it opens (and skips by its time range).
  p.cat = store::Catalog::scan(o_.store, store::Catalog::Depth::kNames);
  if (o_.live) p.cat.writer_running(o_.live->first_seq());
  for (auto& c : p.q.classes)
    if (std::find(p.cat.classes.begin(), p.cat.classes.end(), c) == p.cat.classes.end())
      refuse(fmt::format("no class '{}' in store {}", c, o_.store),
             fmt::format("no class '{}' in the store", c));
  // (the filter as given: the error names it, not the flow's connection joined to it)
  if (bpf) check_libpcap(r.filter, query::parse_expr(r.filter), p.cat, r.classes);
  if (!r.from.empty()) deleted_before(p.cat, p.q.classes, p.q.from_ns, p.notes);
  // (tm's own `vlan`: in a filter libpcap answers whole, it is libpcap's, as tcpdump reads it.)
  if (stacks_vlan_tags(p.q.parsed.kind == query::ParseResult::Kind::kBpfOnly ? p.q.parsed.planned
                                                                             : p.q.parsed.expr))
    p.notes.push_back(
        "the filter repeats 'vlan' in a conjunction: tm matches a VLAN tag at any depth, "
        "so 'vlan and vlan' is every tagged frame (and 'vlan and vlan N' every frame tagged N), "
        "not tcpdump's frames with two tags; 'vlan A and vlan B' finds the frames with both tags");
  if (!p.no_connection.empty()) {
    p.cat = store::Catalog{};
    return p;
  }
  if (stored && r.filter.empty() && r.from.empty() && r.to.empty() && r.classes.empty())
    p.if_empty = fmt::format(
        "tm stored {} packet(s) of {} {}, and none is on disk any more: the segments that held them were "
        "deleted (disk budget or max_age; tm stats shows what is kept) or lost",
        stored, r.flow_id.empty() ? "the flows with Community ID" : "flow",
        r.flow_id.empty() ? r.community_id : r.flow_id);
  if (flow && !flow->cls.empty() && !r.classes.empty() &&
      std::find(r.classes.begin(), r.classes.end(), flow->cls) == r.classes.end())
    p.notes.push_back(fmt::format("flow {}'s packets are in class {}, which the classes asked for leave out",
                                  r.flow_id, flow->cls));
  return p;
}

// The plan of the filter the query would run (a flow's or Community ID's connections and the
// filter), once the request is checked as a query checks it (a bad time, a time range
// backwards, an unknown class: refused here as there), with its time range (a flow's lifetime
// within the one asked), the format the answer would be written in ("format": a browser
// download's name) and the link types it may hold ("link_types": a tm frontend's choice of
// format). With r.measure, the query run without an answer: what it touched.
Reply LocalService::explain(const QueryRequest& r, const StopCheck& stop) {
  PacketQuery p = packet_query(r, r.measure);
  json j = filter_plan(p.q.text, false);  // (libpcap: packet_query checked it for the store's link types)
  j["filter"] = r.filter;
  if (p.q.text != r.filter) j["query_filter"] = p.q.text;
  if (!p.connections.empty()) j["connections"] = p.connections;
  j["from_ns"] = p.q.from_ns;
  j["to_ns"] = p.q.to_ns == UINT64_MAX ? json(nullptr) : json(p.q.to_ns);
  std::set<uint32_t> links = p.links();
  j["format"] = util::pcap::output_name(p.output(links));
  j["link_types"] = links;
  if (!p.no_connection.empty()) {  // an empty answer, whatever the filter
    j["no_connection"] = p.no_connection;
    j["kind"] = "none";
    j["plan"] = "nothing to read: " + p.no_connection;
  }
  json warnings = json::array();
  for (auto& n : p.notes) warnings.push_back(n);
  if (r.measure) {
    query::QueryStats st;
    auto t0 = clk::now();
    if (p.no_connection.empty()) {  // (else nothing to read)
      uint64_t n = 0;
      st = query::run_query(
          p.cat, p.q, [&](const query::OutPacket&) { check_stop(n, stop); }, stop_between_segments(stop));
    }
    j["figures"] = {{"segments", st.segments_total},
                    {"skipped_by_time", st.segments_skipped_time},
                    {"through_sidecar", st.segments_indexed},
                    {"no_candidate", st.segments_empty},
                    {"read_whole", st.segments_scanned},
                    {"candidates", st.candidates},
                    {"matched", st.matched},
                    {"ms", ms_since(t0)}};
    for (auto& w : st.warnings) warnings.push_back(w);
  }
  j["warnings"] = std::move(warnings);
  return {std::move(j), {}};
}

std::unique_ptr<QueryStream> LocalService::open_packets(const QueryRequest& r) {
  PacketQuery p = packet_query(r, true);
  query::QuerySpec& q = p.q;
  std::optional<util::pcap::Output>& forced = p.forced;
  if (!p.no_connection.empty()) {
    auto s = std::make_unique<QueryStream>(store::Catalog{}, std::move(q), o_.write_chunk,
                                           forced.value_or(util::pcap::Output::kPcap), [&] {
                                             std::vector<std::string> n{p.no_connection};
                                             n.insert(n.end(), p.notes.begin(), p.notes.end());
                                             return n;
                                           }());
    s->no_connection = p.no_connection;
    s->no_connection_notes = p.no_connection_notes;
    return s;
  }
  store::Catalog& cat = p.cat;
  // More than one link type, and the answer is a pcapng unless the request says otherwise.
  std::set<uint32_t> links = p.links();
  auto output = p.output(links);
  auto stream = std::make_unique<QueryStream>(std::move(cat), std::move(q), o_.write_chunk, output, p.notes,
                                              p.if_empty);
  stream->headers.emplace_back(kLinkTypesHeader, fmt::format("{}", fmt::join(links, ",")));
  return stream;
}

std::string LocalService::query(const QueryRequest& r, const ByteSink& sink, const Warn& warn) {
  return open_query(r)->run(sink, warn, [] { return std::string(); });
}

std::unique_ptr<Stream> LocalService::open_flows(const FlowRequest& r) {
  // (The command line has always taken from after to as an empty window for flows.)
  query::QuerySpec q = spec(r.filter, r.from, "from", r.to, o_.naming == LocalOptions::Naming::kParameters);
  // A filter flow records cannot answer (packets' bytes, VLAN tags, tunnels): the client's
  // error (400).
  if (std::string why = flow::flow_filter_refusal(q.parsed); !why.empty()) throw BadRequest("filter: " + why);
  flow::FlowQueryStats st;
  const std::string community_id = community_id_of(r.community_id);
  auto rows =
      flow::query_flows(o_.store, q.parsed, q.from_ns, q.to_ns, st,
                        community_id.empty() ? flow::FlowPredicate() : flow::has_community_id(community_id));
  top_flows(rows, r.top, r.by);
  std::string summary =
      fmt::format("{} files ({} by index, {} scanned, {} skipped by time), {} records read, {} flows",
                  st.files, st.files_indexed, st.files_scanned, st.files_skipped, st.candidates, rows.size());
  return std::make_unique<TextStream>(render_flows(rows, r.format), std::move(st.warnings),
                                      std::move(summary));
}

std::string LocalService::flows(const FlowRequest& r, const ByteSink& sink, const Warn& warn) {
  return open_flows(r)->run(sink, warn, [] { return std::string(); });
}

std::unique_ptr<Stream> LocalService::open_subscription(const SubscribeRequest& r) {
  Backend& live = need_live("live packets to subscribe to");
  query::QuerySpec q = spec(r.filter, r.history_from, "history_from", r.to, true, false);
  q.classes = r.classes;
  // (For the store's link types, as a query's, not Ethernet's alone; Ethernet's while the store
  // has no segment. The live interfaces' own types are not added: a filter valid for them alone
  // but for none of the store's is refused.)
  check_libpcap(q.text, q.parsed, store::Catalog::scan(o_.store, store::Catalog::Depth::kNames), r.classes);
  auto sub = std::make_shared<Subscriber>(q, o_.subscription_queue);
  store::Catalog snap = live.subscribe(sub);
  return std::make_unique<SubscriptionStream>(live, std::move(sub), std::move(snap), r.history,
                                              o_.write_chunk);
}

Reply LocalService::health() {
  // 503 while the recording cannot store what it captures, so that a monitor sees it.
  if (std::string p = o_.live ? o_.live->problem() : ""; !p.empty())
    throw Unavailable(p, json{{"status", "degraded"}, {"live", true}, {"store", o_.store}});
  return {json{{"status", "ok"}, {"live", o_.live != nullptr}, {"store", o_.store}}, {}};
}

namespace {

// The flow records a store holds: files, records (of the sealed files), bytes, reach in time.
json flows_json(const std::vector<flow::FlowFileInfo>& files) {
  uint64_t records = 0, bytes = 0, open = 0, first = UINT64_MAX, last = 0;
  for (auto& f : files) {
    bytes += f.bytes;
    if (!f.sealed) {
      ++open;
      first = std::min(first, f.meta.first_ts);
      continue;
    }
    records += f.meta.packets;
    first = std::min(first, f.meta.first_ts);
    last = std::max(last, f.meta.last_ts);
  }
  json j = {{"files", files.size()}, {"open_files", open}, {"records", records}, {"bytes", bytes}};
  if (!files.empty()) {
    j["first_ns"] = first;
    j["last_ns"] = last;
    j["first"] = util::format_time(first);
    j["last"] = last ? json(util::format_time(last)) : json(nullptr);
  }
  return j;
}

}  // namespace

Reply LocalService::stats(const ApiCounters& api) {
  json j;
  {
    store::Catalog cat = store::Catalog::scan(o_.store);
    if (o_.live) cat.writer_running(o_.live->first_seq());  // (not those left before it began)
    j["store"] = catalog_json(cat);
  }
  j["store"]["flows"] = flows_json(flow::scan_flow_files(o_.store));
  j["store_path"] = o_.store;
  {  // how far back the flow records reach
    uint64_t files = 0, records = 0, bytes = 0, first = UINT64_MAX, last = 0;
    for (auto& f : flow::scan_flow_files(o_.store)) {
      ++files;
      bytes += f.bytes;
      if (f.meta.first_ts) first = std::min(first, f.meta.first_ts);
      if (f.sealed) {
        records += f.meta.packets;
        last = std::max(last, f.meta.last_ts);
      }
    }
    j["flows"] = {{"files", files}, {"records", records}, {"disk_bytes", bytes}};
    if (first != UINT64_MAX) j["flows"]["first_ns"] = first;
    if (last) j["flows"]["last_ns"] = last;
  }
  j["live"] = o_.live != nullptr;
  if (o_.live) j["capture"] = o_.live->stats();
  j["api"] = {{"queries", api.queries},
              {"flow_queries", api.flow_queries},
              {"queries_failed", api.queries_failed},
              {"queries_rejected", api.queries_rejected},
              {"active_queries", api.active_queries},
              {"active_subscriptions", api.active_subscriptions}};
  return {std::move(j), {}};
}

std::string LocalService::metrics(const ApiCounters& api) {
  Metrics m;
  if (o_.live) o_.live->metrics(m);
  store::Catalog cat = store::Catalog::scan(o_.store);
  std::map<std::string, std::pair<uint64_t, uint64_t>> seg;  // class -> segments, bytes
  for (auto& c : cat.classes) seg[c];
  for (auto& sg : cat.segments) {
    seg[sg.cls].first++;
    seg[sg.cls].second += sg.disk_bytes();
  }
  for (auto& [c, v] : seg) {
    m.add("tm_store_segments", "gauge", "Segments in the store, by class.", static_cast<double>(v.first),
          {{"class", c}});
    m.add("tm_store_disk_bytes", "gauge", "Disk use of the store (pcap and sidecars), by class.",
          static_cast<double>(v.second), {{"class", c}});
  }
  add_api_metrics(m, api, api.queries_rejected);
  return m.text();
}

Reply LocalService::class_set(const ClassRequest& r) {
  Backend& live = need_live("dynamic classes");
  if (r.host.empty() || r.cls.empty()) throw BadRequest("give host and class (and optionally for=DURATION)");
  uint64_t for_ns = 0;
  if (!r.for_text.empty()) {
    auto d = util::parse_duration_ns(r.for_text);
    if (!d) throw BadRequest(fmt::format("for: {}", util::duration_error(r.for_text)));
    if (*d == 0) throw BadRequest("for: must be positive (leave it out for no end)");
    for_ns = *d;
  }
  return {live.class_set(r.host, r.cls, for_ns), {}};
}

Reply LocalService::history() {
  if (o_.live)
    if (json h = o_.live->history(); !h.is_null()) return {std::move(h), {}};
  return Service::history();
}

Reply LocalService::class_list() { return {need_live("dynamic classes").class_list(), {}}; }

Reply LocalService::class_remove(const std::string& host) {
  Backend& live = need_live("dynamic classes");
  if (host.empty()) throw BadRequest("give the host");
  std::optional<json> j = live.class_remove(host);
  if (!j) throw NotFound(fmt::format("no dynamic class for host {}", host));
  return {std::move(*j), {}};
}

namespace {

// Connections are selected by what the connection table keys them by.
query::Expr conn_filter(const std::string& text) {
  query::ParseResult pr = query::parse_expr(text);
  if (pr.kind == query::ParseResult::Kind::kError) throw BadRequest(query::format_error(text, pr));
  if (pr.kind == query::ParseResult::Kind::kBpfOnly)
    throw BadRequest(
        fmt::format("filter: connections are selected by addresses, ports and protocols; "
                    "'{}' is not one of those",
                    pr.unplanned));
  return pr.expr;
}

}  // namespace

Reply LocalService::connections(const ConnectionsRequest& r) {
  Backend& live = need_live("active connections");
  return {live.connections(conn_filter(r.filter), r.top), {}};
}

Reply LocalService::control(const ControlRequest& r) {
  Backend& live = need_live("active connections to control");
  if (r.suspend_cutoff < 0 && r.suspend_timeout < 0)
    throw BadRequest("give suspend_cutoff and/or suspend_timeout (true/false)");
  if (r.filter.empty()) throw BadRequest("give a filter naming the connection(s)");
  return {live.control(conn_filter(r.filter), r.suspend_cutoff, r.suspend_timeout), {}};
}

}  // namespace tmach::server
