#include "ids/evidence.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <string_view>

#include "flow/flow_record.h"
#include "packet/community_id.h"
#include "server/flow_format.h"
#include "server/service.h"
#include "util/file_io.h"
#include "util/json_text.h"
#include "util/timespec.h"

namespace tmach::ids {
namespace {

nlohmann::json proto_json(uint8_t proto) {
  switch (proto) {
    case 0:
      return nullptr;
    case packet::kProtoTcp:
      return "tcp";
    case packet::kProtoUdp:
      return "udp";
    case packet::kProtoIcmp:
      return "icmp";
    case packet::kProtoIcmp6:
      return "icmp6";
    case packet::kProtoSctp:
      return "sctp";
    default:
      return proto;
  }
}

// The alert's tuple for the Community ID, with `proto` (the alert's, or a record's when the
// alert does not say).
packet::CommunityTuple tuple_of(const Alert& a, uint8_t proto) {
  packet::CommunityTuple t;
  t.src = a.src;
  t.dst = a.dst;
  t.proto = proto;
  t.src_port = a.src_port;
  t.dst_port = a.dst_port;
  return t;
}

// tm's filter for the packets of the alert's connection (as `tm query --flow` writes it).
std::string tuple_filter(const Alert& a, uint8_t proto) {
  std::string f = fmt::format("host {} and host {}", a.src.str(), a.dst.str());
  if (proto) f += fmt::format(" and proto {}", proto);
  // (Ports 0 and 0 of a port protocol: packets without ports, a flow record's port-less connection
  // — a later fragment whose first was not seen, a frame cut before its ports —, which `port 0`
  // does not match: its hosts and protocol, the flow's id narrowing them where there is one.)
  if ((a.src_port || a.dst_port) && (packet::port_protocol(proto) || proto == 0))
    f += fmt::format(" and port {} and port {}", a.src_port, a.dst_port);
  return f;
}

// Whether a flow record is the alert's connection: by Community ID; an ICMP record has none
// (tm's ICMP connection spans every type between two hosts): by hosts and protocol.
bool joins(const Alert& a, const flow::FlowRecord& r, uint16_t seed) {
  if (a.proto && a.proto != r.proto) return false;
  std::string rc = flow::community_id(r, seed);
  if (!rc.empty()) return rc == packet::community_id_v1(tuple_of(a, r.proto), seed);
  return (r.orig == a.src && r.resp == a.dst) || (r.orig == a.dst && r.resp == a.src);
}

// How far a record's time span is from the alerts' [lo, hi]; 0 when they overlap.
uint64_t distance(const flow::FlowRecord& r, uint64_t lo, uint64_t hi) {
  if (r.last_ts < lo) return lo - r.last_ts;
  if (r.first_ts > hi) return r.first_ts - hi;
  return 0;
}

// Counts the packets of a pcap stream as it passes.
class PcapCounter {
 public:
  void feed(const char* p, size_t n) {
    while (n > 0) {
      if (skip_ > 0) {
        size_t k = static_cast<size_t>(std::min<uint64_t>(skip_, n));
        skip_ -= k;
        p += k;
        n -= k;
        continue;
      }
      size_t want = (file_header_ ? 16 : 24) - hdr_.size();
      size_t k = std::min(want, n);
      hdr_.append(p, k);
      p += k;
      n -= k;
      if (hdr_.size() < (file_header_ ? 16u : 24u)) continue;
      if (!file_header_) {
        uint32_t magic;
        std::memcpy(&magic, hdr_.data(), 4);
        swapped_ = magic == 0xd4c3b2a1u || magic == 0x4d3cb2a1u;
        file_header_ = true;
      } else {
        uint32_t caplen;
        std::memcpy(&caplen, hdr_.data() + 8, 4);
        if (swapped_) caplen = __builtin_bswap32(caplen);
        skip_ = caplen;
        ++packets_;
      }
      hdr_.clear();
    }
  }
  uint64_t packets() const { return packets_; }

 private:
  std::string hdr_;
  bool file_header_ = false, swapped_ = false;
  uint64_t skip_ = 0, packets_ = 0;
};

struct KeepEarlier {};  // thrown out of the pcap's fill: the earlier file stays

const nlohmann::json kNull;

// The connection (or host) an alert is about, as its evidence JSON's `connection` names it.
nlohmann::json connection_of(const Alert& a) {
  if (!a.has_tuple) return {{"host", a.src.str()}};
  return {{"proto", proto_json(a.proto)},
          {"src", a.src.str()},
          {"src_port", a.src_port},
          {"dst", a.dst.str()},
          {"dst_port", a.dst_port}};
}

// Which connection an evidence JSON's `connection` names, the same whichever way its alert
// saw it: "PROTO A PORT B PORT" with the endpoints in order, or "host X"; empty when unknown.
// ICMP's "ports" are an alert's type and code (a request's and its reply's differ): tm keeps
// one connection for every ICMP type between two hosts, and so does this.
std::string connection_key(const nlohmann::json& c) {
  if (!c.is_object()) return "";
  if (c.contains("host")) return "host " + c["host"].dump();
  const nlohmann::json proto = c.value("proto", kNull);
  const bool icmp = proto == "icmp" || proto == "icmp6";
  std::string x = c.value("src", kNull).dump() + " " + (icmp ? "" : c.value("src_port", kNull).dump());
  std::string y = c.value("dst", kNull).dump() + " " + (icmp ? "" : c.value("dst_port", kNull).dump());
  if (y < x) std::swap(x, y);
  return c.value("proto", kNull).dump() + " " + x + " " + y;
}

// Whether two connection keys name one connection: the same key, or the same but for a protocol
// one of them does not know (a Zeek notice without `proto`, and its uid's conn.log line).
bool same_connection(const std::string& x, const std::string& y) {
  if (x == y) return true;
  if (!x.starts_with("null ") && !y.starts_with("null ")) return false;
  if (x.starts_with("host ") || y.starts_with("host ")) return false;
  const size_t xs = x.find(' '), ys = y.find(' ');  // (a key of an evidence JSON not tm's: none)
  return xs != std::string::npos && ys != std::string::npos && x.substr(xs) == y.substr(ys);
}

nlohmann::json read_json(const std::string& path, const server::Warn& warn) {
  std::ifstream in(path);
  if (!in) return nullptr;
  std::stringstream ss;
  ss << in.rdbuf();
  auto j = nlohmann::json::parse(ss.str(), nullptr, false);
  if (!j.is_object() || !j.contains("alerts") || !j["alerts"].is_array()) {
    warn(path + " is not tm evidence JSON: replaced");
    return nullptr;
  }
  return j;
}

}  // namespace

std::string EvidenceWriter::path_of(const std::string& name) const {
  return (std::filesystem::path(o_.out_dir) / name).string();
}

EvidenceWriter::EvidenceWriter(server::Service& svc, EvidenceOptions o, server::Warn warn)
    : svc_(svc), o_(std::move(o)), warn_(std::move(warn)) {
  std::filesystem::create_directories(o_.out_dir);
}

EvidenceWriter::Outcome EvidenceWriter::write(const std::string& asked, const std::vector<Alert>& alerts,
                                              bool give_up, const nlohmann::json& extra) {
  // The alert that names the connection: the first that knows its protocol (a Zeek notice may
  // not, its uid's conn.log line does), else the first.
  auto knows = std::find_if(alerts.begin(), alerts.end(), [](const Alert& x) { return x.proto != 0; });
  const Alert& a = knows != alerts.end() ? *knows : alerts.front();
  // An id whose evidence is another connection's already (one flow_id from two sensors' logs,
  // or reused after an IDS restart): this connection's is ID-2, ID-3, ..., not mixed into it.
  nlohmann::json connection = connection_of(a);
  const std::string key = connection_key(connection);
  std::string name = asked, other;
  nlohmann::json old = read_json(path_of(name) + ".json", warn_);
  for (int n = 2; old.is_object() && old.contains("connection") &&
                  !same_connection(connection_key(old["connection"]), key);
       ++n) {
    if (other.empty()) other = connection_key(old["connection"]);
    name = fmt::format("{}-{}", asked, n);
    old = read_json(path_of(name) + ".json", warn_);
  }
  // Written already with the protocol this alert does not know: the connection as written.
  if (old.is_object() && old.contains("connection")) {
    const nlohmann::json& was = old.at("connection");
    if (!connection.contains("host") && connection.value("proto", kNull).is_null() && was.is_object() &&
        !was.contains("host") && !was.value("proto", kNull).is_null())
      connection = was;
  }
  uint64_t lo = UINT64_MAX, hi = 0;
  for (auto& x : alerts) {
    lo = std::min(lo, x.ts_ns);
    hi = std::max(hi, x.ts_ns);
  }
  const uint64_t win_lo = lo > o_.window_ns ? lo - o_.window_ns : 0;
  const uint64_t win_hi = hi + o_.window_ns + 1;
  std::vector<std::string> warnings;
  // The front-end's workers an answer was without, as its warnings name them (those missing
  // when it began, those that failed during a packet answer): what they hold is unknown.
  std::string missing;
  server::Warn warn = [&](const std::string& w) {
    if (std::optional<std::string> m = server::missing_workers_of(w))
      missing += (missing.empty() ? "" : "; ") + *m;
    warnings.push_back(w);
    warn_(fmt::format("{}:{}: evidence {}: {}", alerts.front().file, alerts.front().line, name,
                      w));  // (the first alert's line)
  };

  nlohmann::json flow_json = nullptr;
  nlohmann::json evidence = nlohmann::json::object();
  std::vector<std::string> others;
  server::QueryRequest q;
  q.format = "pcap";              // evidence files are pcap (one connection: one link type)
  uint64_t q_from = 0, q_to = 0;  // its time range, [from, to)
  std::string why;                // why no packets, when none
  bool unknown = false;           // none, but a worker that may hold them did not answer
  uint64_t stored = 0;
  bool have_flow = false;
  std::string no_record;  // the tuple's packets in the window were asked for: why
  if (a.has_tuple) {
    if (a.proto) {
      std::string cid = packet::community_id_v1(tuple_of(a, a.proto), o_.seed);
      connection["community_id"] = cid;
      for (auto& x : alerts)
        if (!x.community_id.empty() && x.community_id != cid) {
          warn(
              fmt::format("the alert's community_id {} is not {}, computed from its tuple (another seed? "
                          "--community-id-seed)",
                          x.community_id, cid));
          break;
        }
    }
    // tm's flow records of this tuple from `from` (to `to`, if not 0) that join the alert.
    auto flow_rows = [&](uint64_t from, uint64_t to) {
      server::FlowRequest fq;
      fq.filter = tuple_filter(a, a.proto);
      fq.from = util::epoch_text(from);
      if (to) fq.to = util::epoch_text(to);
      fq.format = "json";
      std::string body;
      svc_.flows(
          fq, [&](const char* d, size_t n) { body.append(d, n); }, warn);
      std::istringstream lines(body);
      std::string line;
      std::vector<std::pair<flow::FlowRow, nlohmann::json>> out;
      while (std::getline(lines, line)) {
        if (line.empty()) continue;
        auto j = nlohmann::json::parse(line, nullptr, false);
        if (!j.is_object()) throw std::runtime_error("flow answer: a line is not a JSON object");
        flow::FlowRow row = server::flow_from_json(j);
        if (joins(a, row.rec, o_.seed)) out.emplace_back(std::move(row), std::move(j));
      }
      return out;
    };
    // Those near the alerts.
    const flow::FlowRow* best = nullptr;
    std::vector<std::pair<flow::FlowRow, nlohmann::json>> rows;
    for (auto& row : flow_rows(win_lo, win_hi))
      if (distance(row.first.rec, lo, hi) <= o_.window_ns) rows.push_back(std::move(row));
    size_t best_i = 0;
    for (size_t i = 0; i < rows.size(); ++i) {
      if (!best || distance(rows[i].first.rec, lo, hi) < distance(best->rec, lo, hi)) {
        best = &rows[i].first;
        best_i = i;
      }
    }
    if (!best) {
      if (!give_up) return Outcome::kWaiting;
      if (!missing.empty()) {
        unknown = true;
        why = fmt::format("unknown: its flow record may be at a worker that did not answer ({})", missing);
      } else {
        // No flow record (yet: a UDP or ICMP connection ends at its inactivity timeout, longer
        // than --wait by default): its tuple's packets in the alert ± --window, as a host
        // notice's, rather than nothing while they are on disk.
        q.filter = tuple_filter(a, a.proto);
        q_from = win_lo;
        q_to = win_hi;
        no_record = fmt::format(
            "no flow record of this connection from {} to {} (the alert ± --window; one is written when the "
            "connection ends, or at its next interim record)",
            util::format_time(win_lo), util::format_time(win_hi - 1));
      }
    } else {
      have_flow = true;
      const flow::FlowRecord& r = best->rec;
      flow_json = rows[best_i].second;
      for (size_t i = 0; i < rows.size(); ++i)
        if (i != best_i)
          others.push_back(std::to_string(rows[i].first.rec.id));  // (as the flow JSON: a string)
      stored = r.stored;
      q.filter = tuple_filter(a, r.proto);
      // The flow's own packets, as tm query --flow gives them: its tuple alone also took the same
      // inner tuple in another tunnel, and a tunnel's packets that matched it across layers.
      q.flow_id = std::to_string(r.id);
      q_from = r.first_ts;
      q_to = r.last_ts + 1;
      if (r.end == static_cast<uint8_t>(flow::EndState::kOpen)) {
        // Its newest record is an interim one (the connection was open then; --keep writes one
        // at once): its packets go on after it, up to the next flow of its tuple, as tm query
        // --flow takes them (flow::flow_packets: whenever it came; of the same connection, not
        // the same tuple in another tunnel), else up to what is stored now.
        q_to = UINT64_MAX;
        const uint64_t last = r.last_ts, id = r.id;  // (`r` is in `rows`, kept as they are)
        const flow::FlowConnection conn = flow::connection_of(r);
        for (auto& [row, j] : flow_rows(last + 1, 0))
          if (row.rec.id != id && row.rec.first_ts > last &&
              flow::same_connection(flow::connection_of(row.rec), conn))
            q_to = std::min(q_to, row.rec.first_ts);
        if (q_to == UINT64_MAX) evidence["open"] = true;
      }
      evidence["cut_off"] = r.cut != 0;
      evidence["packets_stored"] = r.stored;
      if (flow_json.contains("packets_on_disk")) evidence["packets_on_disk"] = flow_json["packets_on_disk"];
      if (!others.empty()) evidence["other_flows"] = others;
    }
  } else {
    q.filter = "host " + a.src.str();
    q_from = win_lo;
    q_to = win_hi;
  }
  q.from = util::epoch_text(q_from);
  if (q_to != UINT64_MAX) q.to = util::epoch_text(q_to);

  if (name != asked)  // (said once it is written, not at every wait for its flow record)
    warn_(fmt::format("{}:{}: id {}: its evidence is of another connection ({}); this one's ({}) is {}",
                      a.file, a.line, asked, other, key, name));
  const std::string base = path_of(name);
  uint64_t earlier = 0;
  if (old.is_object() && old["evidence"].is_object() && old["evidence"]["packets"].is_number_unsigned() &&
      std::filesystem::exists(base + ".pcap"))
    earlier = old["evidence"]["packets"].get<uint64_t>();

  uint64_t packets = 0;
  bool keep_earlier = false;
  // The workers the packet query was without, not those the flow query was: a flow record
  // found at one worker while another was down says nothing of where its packets are.
  missing.clear();
  if (!q.filter.empty()) {
    PcapCounter counter;
    try {
      util::replace_file_atomic(base + ".pcap", [&](int fd, const std::string& tmp) {
        svc_.query(
            q,
            [&](const char* d, size_t n) {
              counter.feed(d, n);
              util::write_all(fd, d, n, tmp);
            },
            warn);
        if (counter.packets() == 0 || counter.packets() < earlier) throw KeepEarlier{};
      });
      ++stats_.pcaps;
    } catch (const KeepEarlier&) {
      keep_earlier = earlier > 0;
    }
    packets = counter.packets();
    if (packets == 0 && why.empty()) {
      if (!missing.empty()) {
        unknown = true;
        why = fmt::format("unknown: its packets may be at a worker that did not answer ({})", missing);
      } else if (!a.has_tuple)
        why = "no packet of this host from " + util::format_time(win_lo) + " to " +
              util::format_time(win_hi - 1);
      else if (!no_record.empty())
        why = no_record + ", and no packet of its tuple then";
      else if (stored == 0)
        why = "tm stored no packet of this connection (its flow record says so)";
      else
        why = fmt::format("the {} packets tm stored of this connection are no longer on disk", stored);
    }
  }

  // The alerts: those of the earlier evidence, and each new one once.
  nlohmann::json list = old.is_object() ? old["alerts"] : nlohmann::json::array();
  for (auto& x : alerts) {
    nlohmann::json j = alert_to_json(x);
    bool seen = std::any_of(list.begin(), list.end(), [&](const nlohmann::json& y) {
      return y.is_object() && y.value("source", "") == j["source"] && y.contains("event") &&
             y["event"] == j["event"];
    });
    if (!seen) list.push_back(std::move(j));
  }
  stats_.alerts += alerts.size();

  nlohmann::json out;
  if (keep_earlier) {
    // The store holds fewer packets of it than the earlier evidence has (evicted since): keep that.
    out = old;
    out["alerts"] = list;
    out["evidence"]["note"] =
        fmt::format("kept the earlier pcap of {} packets: the store now has {}", earlier, packets);
    ++stats_.kept_earlier;
  } else {
    evidence["found"] = packets > 0;
    if (packets == 0) evidence["why"] = why;
    if (unknown) evidence["unknown"] = true;
    // Packets found, but a worker that may hold more did not answer: the pcap may be partial.
    if (packets > 0 && !missing.empty()) evidence["workers_missing"] = missing;
    if (packets > 0 && !no_record.empty())
      evidence["note"] = no_record + ": the pcap holds its tuple's packets in that time";
    evidence["pcap"] = packets > 0 ? nlohmann::json(name + ".pcap") : nlohmann::json(nullptr);
    evidence["packets"] = packets;
    if (have_flow && stored > packets) evidence["packets_missing"] = stored - packets;
    if (!q.filter.empty()) {
      evidence["filter"] = q.filter;
      evidence["from"] = util::format_time(q_from);
      evidence["to"] = q_to == UINT64_MAX ? nlohmann::json(nullptr) : nlohmann::json(util::format_time(q_to));
    }
    if (!warnings.empty()) evidence["warnings"] = warnings;
    out = {{"id", name},
           {"connection", connection},
           {"alerts", list},
           {"flow", flow_json},
           {"evidence", evidence}};
    if (packets > 0)
      stats_.packets += packets;
    else {
      ++stats_.not_found;
      if (unknown) ++stats_.unknown;
      stats_.alerts_without_packets += alerts.size();
    }
  }
  if (extra.is_object())
    for (auto& [k, v] : extra.items()) out[k] = v;
  util::replace_file_atomic(base + ".json", util::json_text(out, 2) + "\n");
  ++stats_.written;
  return keep_earlier || packets > 0 ? Outcome::kWritten : Outcome::kNotFound;
}

void EvidenceRun::add(Alert a) {
  // The actions first: one that throws leaves no entry without its alert behind.
  nlohmann::json extra = nlohmann::json::object();
  for (auto& act : actions_) {
    nlohmann::json j = act(a);
    if (j.is_object())
      for (auto& [k, v] : j.items()) extra[k] = std::move(v);
  }
  std::string name = evidence_name(a);
  auto now = Clock::now();
  // Joined to a waiting entry of its name and connection (or one that differs only in a protocol
  // one of the two does not know), else an entry of its own.
  const std::string prefix = name + '\n', key = connection_key(connection_of(a));
  auto it = pending_.lower_bound(prefix);
  while (it != pending_.end() && it->first.starts_with(prefix) &&
         !same_connection(it->first.substr(prefix.size()), key))
    ++it;
  bool fresh = false;
  if (it == pending_.end() || !it->first.starts_with(prefix))
    std::tie(it, fresh) = pending_.try_emplace(prefix + key);
  if (fresh) {
    it->second.name = name;
    it->second.first_seen = it->second.next_try = now;
  }
  // (--keep's action says so: a control on a live connection makes the server write its interim
  // flow record, keep.cpp)
  if (const auto k = extra.find("kept");
      k != extra.end() && k->is_object() && k->value("connections_suspended", uint64_t{0}) > 0)
    it->second.record_coming = true;
  for (auto& [k, v] : extra.items()) it->second.extra[k] = std::move(v);
  it->second.alerts.push_back(std::move(a));
}

uint64_t EvidenceRun::waiting_alerts() const {
  uint64_t n = 0;
  for (auto& [name, p] : pending_) n += p.alerts.size();
  return n;
}

size_t EvidenceRun::process(Pass pass) {
  for (auto it = pending_.begin(); it != pending_.end();) {
    if (stop_ && stop_()) break;
    auto now = Clock::now();
    Pending& p = it->second;
    const bool waits = now - p.first_seen < wait_ &&
                       (pass == Pass::kFollow || (pass == Pass::kOnce && p.record_coming &&
                                                  now - p.first_seen < Clock::duration(kRecordComing)));
    if (waits && now < p.next_try) {
      ++it;
      continue;
    }
    const bool give_up = !waits;
    EvidenceWriter::Outcome out;
    try {
      out = w_.write(p.name, p.alerts, give_up, p.extra);
    } catch (const std::exception& e) {
      // The evidence directory failing: nothing else would fare better. A segment of the store
      // unreadable now (out of file descriptors, say) is the Service's failure, below.
      if (dynamic_cast<const server::BadRequest*>(&e) ||
          (dynamic_cast<const util::IoError*>(&e) && !dynamic_cast<const util::UnreadableError*>(&e)))
        throw;
      // The Service failed (a tm serve restarting, say): asked again later while there is time.
      warn_(
          fmt::format("{}: {}{}", p.name, e.what(), give_up ? ": no evidence written" : ": will ask again"));
      if (give_up) {
        ++errors_;
        it = pending_.erase(it);
        continue;
      }
      out = EvidenceWriter::Outcome::kWaiting;
    }
    if (out == EvidenceWriter::Outcome::kWaiting) {
      p.pause = std::min<Clock::duration>(
          std::max<Clock::duration>(p.pause * 2, std::chrono::milliseconds(500)), std::chrono::seconds(5));
      p.next_try = now + p.pause;
      ++it;
    } else {
      it = pending_.erase(it);
    }
  }
  return pending_.size();
}

}  // namespace tmach::ids
