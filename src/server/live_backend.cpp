#include "server/live_backend.h"

#include <arpa/inet.h>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <optional>

#include "flow/flow_record.h"
#include "query/eval.h"
#include "record/class_stats.h"
#include "server/flow_format.h"
#include "server/metrics.h"
#include "server/service.h"
#include "server/subscription.h"
#include "util/file_io.h"
#include "util/json_text.h"
#include "util/proc_memory.h"
#include "util/timespec.h"

namespace tmach::server {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

std::optional<packet::IpAddr> parse_host(const std::string& s) {
  uint8_t b[16];
  if (inet_pton(AF_INET, s.c_str(), b) == 1) return packet::IpAddr::v4(b);
  if (inet_pton(AF_INET6, s.c_str(), b) == 1) return packet::IpAddr::v6(b);
  return std::nullopt;
}

}  // namespace

LiveBackend::LiveBackend(const config::Config& cfg, store::StoreWriter& w,
                         std::vector<record::Recorder*> recs)
    : cfg_(cfg), writer_(w), recs_(std::move(recs)), shards_(recs_.size()) {
  path_ = (fs::path(cfg.store) / "dynamic-classes.json").string();
  writer_.set_observer(
      [this](uint16_t cls, uint64_t ts, uint32_t lt, uint32_t wl, const uint8_t* d, uint32_t cl) {
        if (!offering_.load(std::memory_order_relaxed)) return;
        for (auto& s : subs_) s->offer(cls, ts, lt, wl, d, cl);
      });
  history_ = std::make_unique<RateHistory>([this] { return rate_sample(); }, std::chrono::seconds(10), 1080);
}

namespace {
// A class's counters in a snapshot: zeros until a capture thread first published (every class
// is in every answer and history sample from the start, so that they can be summed).
const record::ClassCounters& class_counters(const record::RecorderTotals& t, size_t cls) {
  static const record::ClassCounters kNone{};
  return cls < t.cls.size() ? t.cls[cls] : kNone;
}
}  // namespace

json LiveBackend::rate_sample() {
  std::lock_guard lk(mu_);
  const Snapshot snap = snapshot();
  json j{{"classes", json::object()}, {"kernel_dropped", snap.kernel_dropped + snap.iface_dropped}};
  for (size_t i = 0; i < cfg_.classes.size(); ++i) {
    const auto& c = class_counters(snap.t, i);
    auto ci = static_cast<uint16_t>(i);
    j["classes"][cfg_.classes[i].name] = {{"seen_packets", c.seen_packets},
                                          {"seen_bytes", c.seen_bytes},
                                          {"stored_packets", c.stored_packets},
                                          {"stored_bytes", c.stored_bytes},
                                          {"cut_packets", c.cut_packets},
                                          {"cut_bytes", c.cut_bytes},
                                          {"dropped_packets", c.dropped_ring_full + c.dropped_too_large +
                                                                  writer_.stats(ci).lost_packets.load()},
                                          {"ring_used", writer_.ram_used(ci)}};
  }
  return j;
}

void LiveBackend::load_classes() {
  std::ifstream f(path_);
  if (!f) return;
  json j = json::parse(f, nullptr, false);
  if (!j.is_array()) {
    spdlog::warn("{}: not a JSON array; dynamic classes ignored", path_);
    return;
  }
  uint64_t now = util::now_ns();
  std::lock_guard lk(mu_);
  for (auto& e : j) {
    std::string host = e.value("host", ""), cls = e.value("class", "");
    uint64_t exp = e.value("expires_ns", uint64_t{0});
    auto a = parse_host(host);
    int ci = class_index(cls);
    if (!a || ci < 0 || (exp && exp <= now)) continue;
    dyn_[a->str()] = Dyn{static_cast<uint16_t>(ci), exp};  // (an older tm kept the host as given)
    for (auto* r : recs_) r->set_host_class(*a, static_cast<uint16_t>(ci));
  }
  spdlog::info("{} dynamic classes restored", dyn_.size());
}

void LiveBackend::apply_commands(size_t shard) {
  Shard& sh = shards_[shard];
  if (!sh.pending.load(std::memory_order_acquire)) return;
  std::vector<Command> cmds;
  {
    std::lock_guard lk(mu_);
    cmds.swap(sh.cmds);
    sh.pending = false;
  }
  for (auto& c : cmds) c(*recs_[shard]);
}

void LiveBackend::publish(size_t shard, const std::vector<capture::PacketSource*>& sources) {
  uint64_t wall = util::now_ns();
  std::lock_guard lk(mu_);
  if (next_expiry_ <= wall) {
    bool changed = false;
    next_expiry_ = UINT64_MAX;
    for (auto it = dyn_.begin(); it != dyn_.end();) {
      if (it->second.expires_ns && it->second.expires_ns <= wall) {
        if (auto a = parse_host(it->first))
          command([addr = *a](record::Recorder& r) { r.clear_host_class(addr); });
        spdlog::info("dynamic class of {} expired", it->first);
        it = dyn_.erase(it);
        changed = true;
      } else {
        if (it->second.expires_ns) next_expiry_ = std::min(next_expiry_, it->second.expires_ns);
        ++it;
      }
    }
    if (changed) persist();
  }
  Shard& sh = shards_[shard];
  sh.totals = record::totals({recs_[shard]});
  if (share_.counts) {
    const WorkerShare::Counts c = share_.counts();
    share_kept_ = c.kept_packets;
    share_other_ = c.other_packets;
  }
  auto now = std::chrono::steady_clock::now();
  if (now - sh.last_kstats >= std::chrono::milliseconds(100) || sh.kernel.size() != sources.size()) {
    sh.last_kstats = now;
    sh.kernel.clear();
    for (auto* s : sources) sh.kernel.push_back(s->stats());
  }
}

// mu_ held (the shards' published peaks); a table's mapped sizes are fixed at its construction.
record::MemoryReport LiveBackend::memory() const {
  std::vector<record::TableMemory> tables;
  for (size_t i = 0; i < shards_.size(); ++i) {
    const conn::ConnTable& t = recs_[i]->table();
    tables.push_back({t.index_mapped_bytes(), t.entries_mapped_bytes(), shards_[i].totals.table.peak});
  }
  // (a socket per interface and capture thread)
  return record::memory_report(cfg_, writer_, tables, cfg_.interfaces.size() * shards_.size(), flows_);
}

bool LiveBackend::sync() { return writer_.sync(std::chrono::milliseconds(2000)); }

std::string LiveBackend::problem() { return writer_.problem(); }
json LiveBackend::stats() {
  std::lock_guard lk(mu_);
  const Snapshot snap = snapshot();
  json j;
  const uint64_t kd = snap.kernel_dropped, kr = snap.kernel_received, ki = snap.iface_dropped;
  j["interfaces"] = cfg_.interfaces;
  j["capture_threads"] = shards_.size();
  j["packets"] = snap.t.tot.packets;
  j["bytes"] = snap.t.tot.bytes;
  j["connections_active"] = snap.t.table_open;
  j["connections"] = snap.t.table.created;
  j["kernel"] = {
      {"received", kr}, {"dropped", kd}, {"interface_dropped", ki}, {"ring_damaged", snap.ring_damaged}};
  j["writer_error"] = writer_.problem();  // also a full disk the writer waits out
  j["flow_files_unsealed"] = flows_ ? flows_->files_unsealed() : 0;
  j["memory"] = record::memory_json(memory());  // (the parts: docs/DESIGN.md, "Memory")
  j["dynamic_classes"] = dyn_.size();
  // The store's own budget ([store] disk_budget), over every class, beside each class's own
  // (classes[].disk_budget "none": the class has none of its own, this one applies).
  j["store_disk_budget"] = cfg_.disk_budget_percent > 0 ? json(fmt::format("{}%", cfg_.disk_budget_percent))
                           : cfg_.disk_budget == UINT64_MAX ? json("none")
                                                            : json(cfg_.disk_budget);
  if (share_.workers) {
    // Without counts (a fanout member): every packet seen is this worker's, and what the
    // kernel gave the others is not known here.
    j["worker_share"] = {{"worker_id", share_.worker_id},
                         {"workers", share_.workers},
                         {"balance", share_.balance},
                         {"kept_packets", share_.counts ? share_kept_ : snap.t.tot.packets},
                         {"other_workers_packets", share_.counts ? json(share_other_) : json(nullptr)}};
  }
  for (size_t i = 0; i < cfg_.classes.size(); ++i)
    j["classes"][cfg_.classes[i].name] =
        record::class_json(cfg_.classes[i], class_counters(snap.t, i), writer_, static_cast<uint16_t>(i));
  return j;
}

void LiveBackend::metrics(Metrics& m) {
  std::lock_guard lk(mu_);
  const Snapshot snap = snapshot();
  for (size_t i = 0; i < cfg_.classes.size(); ++i) {
    const auto& c = class_counters(snap.t, i);
    const auto& w = writer_.stats(static_cast<uint16_t>(i));
    std::vector<std::pair<std::string, std::string>> l = {{"class", cfg_.classes[i].name}};
    auto d = [](uint64_t v) { return static_cast<double>(v); };
    m.add("tm_packets_seen_total", "counter", "Packets seen, by class.", d(c.seen_packets), l);
    m.add("tm_bytes_seen_total", "counter", "Wire bytes seen, by class.", d(c.seen_bytes), l);
    m.add("tm_packets_stored_total", "counter", "Packets handed to the store, by class.", d(c.stored_packets),
          l);
    m.add("tm_bytes_stored_total", "counter", "Captured bytes handed to the store, by class.",
          d(c.stored_bytes), l);
    m.add("tm_packets_cut_total", "counter", "Packets beyond their connection's cutoff, by class.",
          d(c.cut_packets), l);
    m.add("tm_bytes_cut_total", "counter", "Wire bytes beyond their connection's cutoff, by class.",
          d(c.cut_bytes), l);
    m.add("tm_packets_dropped_total", "counter", "Packets lost in tm, by class and reason.",
          d(c.dropped_ring_full), {{"class", cfg_.classes[i].name}, {"reason", "ring_full"}});
    m.add("tm_packets_dropped_total", "counter", "", d(c.dropped_too_large),
          {{"class", cfg_.classes[i].name}, {"reason", "too_large"}});
    m.add("tm_ram_bytes", "gauge", "RAM buffer fill: bytes of packets not written yet, by class.",
          d(writer_.ram_used(static_cast<uint16_t>(i))), l);
    m.add("tm_ram_high_water_bytes", "gauge",
          "RAM buffer: the most of it lent to the rings at once, by class.",
          d(writer_.ram_high_water(static_cast<uint16_t>(i))), l);
    m.add("tm_ram_capacity_bytes", "gauge", "RAM buffer size (ram_budget), by class.",
          d(writer_.ram_capacity(static_cast<uint16_t>(i))), l);
    m.add("tm_disk_bytes", "gauge", "Disk use written by this recorder, by class.", d(w.disk_bytes.load()),
          l);
    m.add("tm_segments_evicted_total", "counter", "Segments deleted to keep the disk budget, by class.",
          d(w.segments_evicted.load()), l);
    m.add("tm_segments_unsealed_total", "counter",
          "Segments a failed seal left without a sidecar (queries scan them; the next start indexes them), "
          "by class.",
          d(w.segments_unsealed.load()), l);
    m.add("tm_packets_dropped_total", "counter", "", d(w.lost_packets.load()),
          {{"class", cfg_.classes[i].name}, {"reason", "write_error"}});
  }
  {
    const record::MemoryReport mr = memory();
    const auto d = [](uint64_t v) { return static_cast<double>(v); };
    m.add("tm_memory_bytes", "gauge",
          "Memory by part: the process's resident set, RAM buffers, connection tables, index building, "
          "the flow index, kernel rings (docs/DESIGN.md, Memory).",
          d(mr.process.rss), {{"part", "resident"}});
    for (auto [part, v] :
         {std::pair{"ram_buffers", mr.ram_buffers}, std::pair{"connection_tables", mr.connection_tables},
          std::pair{"index_building", mr.index_building}, std::pair{"flow_index", mr.flow_index},
          std::pair{"kernel_rings", mr.kernel_rings}})
      m.add("tm_memory_bytes", "", "", d(v), {{"part", part}});
    m.add("tm_memory_peak_bytes", "gauge", "The most memory by part since the start.", d(mr.process.peak_rss),
          {{"part", "resident"}});
    m.add("tm_memory_peak_bytes", "", "", d(mr.index_building_peak), {{"part", "index_building"}});
    m.add("tm_memory_peak_bytes", "", "", d(mr.flow_index_peak), {{"part", "flow_index"}});
  }
  m.add("tm_writer_error", "gauge",
        "1 while the writer cannot write (a full disk: see /api/v1/stats writer_error).",
        writer_.problem().empty() ? 0.0 : 1.0);
  m.add("tm_flow_files_unsealed_total", "counter",
        "Flow files a failed seal left without a sidecar (tm flows reads them; the next start indexes them).",
        static_cast<double>(flows_ ? flows_->files_unsealed() : 0));
  m.add("tm_writer_write_errors_total", "counter",
        "Writes that failed (each deleted segments or waited for room).",
        static_cast<double>(writer_.write_errors()));
  const uint64_t kd = snap.kernel_dropped, kr = snap.kernel_received, ki = snap.iface_dropped;
  m.add("tm_kernel_packets_received_total", "counter", "Packets the kernel delivered to the capture.",
        static_cast<double>(kr));
  m.add("tm_kernel_packets_dropped_total", "counter", "Packets dropped by the kernel or the interface.",
        static_cast<double>(kd), {{"where", "kernel"}});
  m.add("tm_kernel_packets_dropped_total", "counter", "", static_cast<double>(ki), {{"where", "interface"}});
  // (frames of AF_PACKET ring blocks whose offsets were impossible: never expected, see USAGE)
  m.add("tm_kernel_packets_dropped_total", "counter", "", static_cast<double>(snap.ring_damaged),
        {{"where", "ring_damaged"}});
  m.add("tm_connections_active", "gauge", "Connections tracked now.", static_cast<double>(snap.t.table_open));
  m.add("tm_connections_evicted_total", "counter", "Connections ended early: the connection table was full.",
        static_cast<double>(snap.t.table.evicted));
  m.add("tm_dynamic_classes", "gauge", "Hosts with a dynamic class.", static_cast<double>(dyn_.size()));
  m.add("tm_subscription_overflow_total", "counter", "Packets lost by slow subscribers.",
        static_cast<double>(sub_overflow_.load()));
}

json LiveBackend::class_set(const std::string& host, const std::string& cls, uint64_t for_ns) {
  auto a = parse_host(host);
  if (!a) throw BadRequest(fmt::format("host: '{}' is not an IPv4 or IPv6 address", host));
  int ci = class_index(cls);
  if (ci < 0) {
    std::string names;
    for (auto& c : cfg_.classes) names += (names.empty() ? "" : ", ") + c.name;
    throw BadRequest(fmt::format("class: no class '{}' configured (classes: {})", cls, names));
  }
  uint64_t exp = for_ns ? util::now_ns() + for_ns : 0;
  const std::string key = a->str();  // (one entry an address, however it was written)
  std::lock_guard lk(mu_);
  dyn_[key] = Dyn{static_cast<uint16_t>(ci), exp};
  if (exp) next_expiry_ = std::min(next_expiry_, exp);
  const std::string unsaved = persist();
  command([addr = *a, ci](record::Recorder& r) { r.set_host_class(addr, static_cast<uint16_t>(ci)); });
  json j = entry(key, dyn_[key]);
  if (!unsaved.empty()) j["warnings"] = json::array({unsaved});
  return j;
}

json LiveBackend::connections(const query::Expr& e, size_t top) {
  std::vector<flow::FlowRecord> rows;
  std::vector<std::array<uint8_t, 2>> flags;
  for (size_t i = 0; i < recs_.size(); ++i) {
    std::lock_guard lk(shards_[i].table_mu);
    recs_[i]->table().for_each([&](const conn::ConnEntry& c) {
      flow::FlowRecord r = flow::make_record(c, flow::EndState::kOpen);
      if (!query::matches(e, flow::as_packet(r))) return;
      rows.push_back(r);
      flags.push_back({c.suspend_cutoff, c.suspend_timeout});
    });
  }
  std::vector<size_t> order(rows.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  auto bytes = [&](size_t i) { return rows[i].bytes[0] + rows[i].bytes[1]; };
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return bytes(a) > bytes(b); });
  if (top && order.size() > top) order.resize(top);
  json out = json::array();
  for (size_t i : order) {
    const auto& r = rows[i];
    out.push_back({{"id", std::to_string(r.id)},  // (a string, as in flow records: 64 bits)
                   {"first", util::format_time(r.first_ts)},
                   {"last", util::format_time(r.last_ts)},
                   {"first_ns", r.first_ts},
                   {"last_ns", r.last_ts},
                   {"proto", proto_name(r.proto)},
                   {"orig_addr", r.orig.str()},
                   {"orig_port", r.orig_port},
                   {"resp_addr", r.resp.str()},
                   {"resp_port", r.resp_port},
                   {"packets", r.pkts[0] + r.pkts[1]},
                   {"bytes", r.bytes[0] + r.bytes[1]},
                   {"stored_packets", r.stored},
                   {"class", r.cls < cfg_.classes.size() ? cfg_.classes[r.cls].name : std::string("?")},
                   {"cut", r.cut != 0},
                   {"cutoff_suspended", flags[i][0] != 0},
                   {"timeout_suspended", flags[i][1] != 0}});
  }
  return out;
}

json LiveBackend::control(const query::Expr& e, int suspend_cutoff, int suspend_timeout) {
  size_t n = 0;
  for (size_t i = 0; i < recs_.size(); ++i) {
    std::lock_guard lk(shards_[i].table_mu);
    recs_[i]->table_mutable().for_each_mutable([&](conn::ConnEntry& c) {
      if (!query::matches(e, flow::as_packet(flow::make_record(c, flow::EndState::kOpen)))) return;
      if (suspend_cutoff >= 0) c.suspend_cutoff = static_cast<uint8_t>(suspend_cutoff);
      if (suspend_timeout >= 0) c.suspend_timeout = static_cast<uint8_t>(suspend_timeout);
      ++n;
    });
  }
  // Each of them gets an interim flow record at the capture thread's next batch: a connection
  // put under a control (tm evidence --keep's, whatever its scope) is in the flow records while
  // it is open, so evidence for it is its packets from its start, not a wait for its end.
  if (n) {
    std::lock_guard lk(mu_);
    command([e = std::make_shared<const query::Expr>(e)](record::Recorder& r) {
      r.report_open([&](const conn::ConnEntry& c) {
        return query::matches(*e, flow::as_packet(flow::make_record(c, flow::EndState::kOpen)));
      });
    });
  }
  return {{"connections", n}};
}

json LiveBackend::class_list() {
  std::lock_guard lk(mu_);
  json j = json::array();
  uint64_t now = util::now_ns();
  for (auto& [h, d] : dyn_)
    if (!d.expires_ns || d.expires_ns > now) j.push_back(entry(h, d));  // expired: removed at the next packet
  return j;
}

std::optional<json> LiveBackend::class_remove(const std::string& host) {
  auto a = parse_host(host);
  if (!a) return std::nullopt;
  std::lock_guard lk(mu_);
  auto it = dyn_.find(a->str());
  if (it == dyn_.end()) return std::nullopt;
  dyn_.erase(it);
  const std::string unsaved = persist();
  command([addr = *a](record::Recorder& r) { r.clear_host_class(addr); });
  json j = {{"removed", host}};
  if (!unsaved.empty()) j["warnings"] = json::array({unsaved});
  return j;
}

store::Catalog LiveBackend::subscribe(const std::shared_ptr<Subscriber>& s) {
  // In the writer thread, right after a flush: from now on every appended packet is offered
  // to `s`; everything before is on disk, in the segments and sizes noted here.
  struct Seam {
    std::map<std::pair<std::string, uint64_t>, uint64_t> open;  // by class and sequence number
    std::map<std::string, uint64_t> next_seq;
  };
  auto seam = std::make_shared<Seam>();
  if (!offering_.load()) throw Unavailable("shutting down");
  bool ok = writer_.sync(std::chrono::milliseconds(5000), [this, s, seam] {
    subs_.push_back(s);
    writer_.enable_observer(offering_.load());
    seam->open = writer_.open_segment_bytes();
    for (size_t i = 0; i < cfg_.classes.size(); ++i)
      seam->next_seq[cfg_.classes[i].name] = writer_.next_seq(static_cast<uint16_t>(i));
  });
  if (!ok) throw Unavailable("the writer did not answer (shutting down?)");
  store::Catalog cat = store::Catalog::scan(cfg_.store);
  cat.writer_running(writer_.adopt_report().next_seq);
  std::vector<store::SegmentInfo> keep;
  for (auto& seg : cat.segments) {
    auto ns = seam->next_seq.find(seg.cls);
    if (ns != seam->next_seq.end() && seg.meta.seq >= ns->second) continue;  // begun after the seam
    auto op = seam->open.find({seg.cls, seg.meta.seq});
    if (op != seam->open.end()) {
      seg.state = store::SegmentInfo::State::kOpen;  // scanned, up to its size at the seam
      seg.pcap_bytes = op->second;
    }
    keep.push_back(std::move(seg));
  }
  cat.segments = std::move(keep);
  return cat;
}

void LiveBackend::unsubscribe(const std::shared_ptr<Subscriber>& s) {
  sub_overflow_ += s->overflow();
  writer_.sync(std::chrono::milliseconds(2000), [this, s] {
    std::erase(subs_, s);
    writer_.enable_observer(!subs_.empty() && offering_.load());
  });
}

void LiveBackend::end_subscriptions() {
  offering_.store(false);
  writer_.enable_observer(false);
}

int LiveBackend::class_index(const std::string& name) const {
  for (size_t i = 0; i < cfg_.classes.size(); ++i)
    if (cfg_.classes[i].name == name) return static_cast<int>(i);
  return -1;
}
json LiveBackend::entry(const std::string& host, const Dyn& d) const {
  json e = {{"host", host}, {"class", cfg_.classes[d.cls].name}, {"expires_ns", d.expires_ns}};
  e["expires"] = d.expires_ns ? json(util::format_time(d.expires_ns)) : json(nullptr);
  return e;
}
// Replaced atomically (file and directory fsynced): a crash leaves the old or the new list.
std::string LiveBackend::persist() {
  json j = json::array();
  for (auto& [h, d] : dyn_) j.push_back(entry(h, d));
  try {
    util::replace_file_atomic(path_, util::json_text(j, 2) + "\n");
    return {};
  } catch (const std::exception& e) {
    spdlog::error("cannot write {}: {}", path_, e.what());
    return fmt::format("not saved ({}): the dynamic classes hold until tm serve stops, not after a restart",
                       e.what());
  }
}

void LiveBackend::command(const Command& c) {
  for (auto& sh : shards_) {
    sh.cmds.push_back(c);
    sh.pending = true;
  }
}
LiveBackend::Snapshot LiveBackend::snapshot() const {
  Snapshot s;
  for (auto& sh : shards_) {
    record::add(s.t, sh.totals);
    for (auto& k : sh.kernel) {
      s.kernel_received += k.kernel_received;
      s.kernel_dropped += k.kernel_dropped;
      s.iface_dropped += k.iface_dropped;
      s.ring_damaged += k.ring_damaged;
    }
  }
  return s;
}

}  // namespace tmach::server
