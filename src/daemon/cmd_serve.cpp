// tm serve: live recording (as tm record -i) plus the HTTP API; without an interface, the
// API over an existing store, read-only.
#include <arpa/inet.h>
#include <fmt/format.h>
#include <grp.h>
#include <pthread.h>
#include <pwd.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <deque>
#include <filesystem>
#include <fstream>
#include <future>
#include <iostream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>

#include "capture/source.h"
#include "cmdline/options.h"
#include "cmdline/summary.h"
#include "daemon/commands.h"
#include "flow/flow_record.h"
#include "query/eval.h"
#include "record/recorder.h"
#include "record/session.h"
#include "server/api.h"
#include "server/listen.h"
#include "server/metrics.h"
#include "server/subscription.h"
#include "store/store_writer.h"
#include "util/file_io.h"
#include "util/timespec.h"

namespace tmach::cli {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

std::optional<packet::IpAddr> parse_host(const std::string& s) {
  uint8_t b[16];
  if (inet_pton(AF_INET, s.c_str(), b) == 1) return packet::IpAddr::v4(b);
  if (inet_pton(AF_INET6, s.c_str(), b) == 1) return packet::IpAddr::v6(b);
  return std::nullopt;
}

// The capture side of the daemon, as the API sees it.
class Daemon : public server::Backend {
 public:
  // One recorder per capture thread (shard); each shard's hooks run on its own thread.
  Daemon(const config::Config& cfg, store::StoreWriter& w, std::vector<record::Recorder*> recs)
      : cfg_(cfg), writer_(w), recs_(std::move(recs)), shards_(recs_.size()) {
    path_ = (fs::path(cfg.store) / "dynamic-classes.json").string();
    writer_.set_observer(
        [this](uint16_t cls, uint64_t ts, uint32_t lt, uint32_t wl, const uint8_t* d, uint32_t cl) {
          for (auto& s : subs_) s->offer(cls, ts, lt, wl, d, cl);
        });
  }

  // This worker's share of a split (--worker-id), or null. Read in publish() only.
  void set_share(const cluster::ShareFilter* s) { share_ = s; }

  // --- capture threads --------------------------------------------------------------------------------
  void load_classes() {  // before they start
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
      dyn_[host] = Dyn{static_cast<uint16_t>(ci), exp};
      for (auto* r : recs_) r->set_host_class(*a, static_cast<uint16_t>(ci));
    }
    spdlog::info("{} dynamic classes restored", dyn_.size());
  }

  // Before each batch: applies what the API asked for (a live source blocks while the link is
  // idle, so this runs right after the next packets arrive and before they are processed).
  void apply_commands(size_t shard) {
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

  // After each batch of the shard: expires dynamic classes (for every shard: commands), publishes
  // the shard's counters for the API.
  void publish(size_t shard, const std::vector<capture::PacketSource*>& sources) {
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
    if (share_) {
      share_kept_ = share_->kept_packets();
      share_other_ = share_->other_packets();
    }
    auto now = std::chrono::steady_clock::now();
    if (now - sh.last_kstats >= std::chrono::milliseconds(100) || sh.kernel.size() != sources.size()) {
      sh.last_kstats = now;
      sh.kernel.clear();
      for (auto* s : sources) sh.kernel.push_back(s->stats());
    }
  }

  // --- API threads ------------------------------------------------------------------------------------
  bool sync() override { return writer_.sync(std::chrono::milliseconds(2000)); }

  std::string problem() override { return writer_.problem(); }
  json stats() override {
    std::lock_guard lk(mu_);
    const Snapshot snap = snapshot();
    json j;
    uint64_t kd = 0, kr = 0, ki = 0;
    for (auto& k : snap.kernel) {
      kd += k.kernel_dropped;
      kr += k.kernel_received;
      ki += k.iface_dropped;
    }
    j["interfaces"] = cfg_.interfaces;
    j["packets"] = snap.t.tot.packets;
    j["bytes"] = snap.t.tot.bytes;
    j["connections_active"] = snap.t.table_open;
    j["connections"] = snap.t.table.created;
    j["kernel"] = {{"received", kr}, {"dropped", kd}, {"interface_dropped", ki}};
    j["writer_error"] = writer_.problem();  // also a full disk the writer waits out
    j["dynamic_classes"] = dyn_.size();
    if (share_) {
      j["worker_share"] = {{"worker_id", share_->worker_id()},
                           {"workers", share_->workers()},
                           {"balance", cluster::scheme_name(share_->scheme())},
                           {"kept_packets", share_kept_},
                           {"other_workers_packets", share_other_}};
    }
    for (size_t i = 0; i < cfg_.classes.size() && i < snap.t.cls.size(); ++i)
      j["classes"][cfg_.classes[i].name] =
          class_json(cfg_.classes[i], snap.t.cls[i], writer_, static_cast<uint16_t>(i));
    return j;
  }

  void metrics(server::Metrics& m) override {
    std::lock_guard lk(mu_);
    const Snapshot snap = snapshot();
    for (size_t i = 0; i < cfg_.classes.size() && i < snap.t.cls.size(); ++i) {
      const auto& c = snap.t.cls[i];
      const auto& w = writer_.stats(static_cast<uint16_t>(i));
      std::vector<std::pair<std::string, std::string>> l = {{"class", cfg_.classes[i].name}};
      auto d = [](uint64_t v) { return static_cast<double>(v); };
      m.add("tm_packets_seen_total", "counter", "Packets seen, by class.", d(c.seen_packets), l);
      m.add("tm_bytes_seen_total", "counter", "Wire bytes seen, by class.", d(c.seen_bytes), l);
      m.add("tm_packets_stored_total", "counter", "Packets handed to the store, by class.",
            d(c.stored_packets), l);
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
      m.add("tm_packets_dropped_total", "counter", "", d(w.lost_packets.load()),
            {{"class", cfg_.classes[i].name}, {"reason", "write_error"}});
    }
    m.add("tm_writer_error", "gauge",
          "1 while the writer cannot write (a full disk: see /api/v1/stats writer_error).",
          writer_.problem().empty() ? 0.0 : 1.0);
    m.add("tm_writer_write_errors_total", "counter",
          "Writes that failed (each deleted segments or waited for room).",
          static_cast<double>(writer_.write_errors()));
    uint64_t kd = 0, ki = 0, kr = 0;
    for (auto& k : snap.kernel) {
      kd += k.kernel_dropped;
      ki += k.iface_dropped;
      kr += k.kernel_received;
    }
    m.add("tm_kernel_packets_received_total", "counter", "Packets the kernel delivered to the capture.",
          static_cast<double>(kr));
    m.add("tm_kernel_packets_dropped_total", "counter", "Packets dropped by the kernel or the interface.",
          static_cast<double>(kd), {{"where", "kernel"}});
    m.add("tm_kernel_packets_dropped_total", "counter", "", static_cast<double>(ki),
          {{"where", "interface"}});
    m.add("tm_connections_active", "gauge", "Connections tracked now.",
          static_cast<double>(snap.t.table_open));
    m.add("tm_connections_evicted_total", "counter",
          "Connections ended early: the connection table was full.",
          static_cast<double>(snap.t.table.evicted));
    m.add("tm_dynamic_classes", "gauge", "Hosts with a dynamic class.", static_cast<double>(dyn_.size()));
    m.add("tm_subscription_overflow_total", "counter", "Packets lost by slow subscribers.",
          static_cast<double>(sub_overflow_.load()));
  }

  json class_set(const std::string& host, const std::string& cls, uint64_t for_ns) override {
    auto a = parse_host(host);
    if (!a) throw server::BadRequest(fmt::format("host: '{}' is not an IPv4 or IPv6 address", host));
    int ci = class_index(cls);
    if (ci < 0) {
      std::string names;
      for (auto& c : cfg_.classes) names += (names.empty() ? "" : ", ") + c.name;
      throw server::BadRequest(fmt::format("class: no class '{}' configured (classes: {})", cls, names));
    }
    uint64_t exp = for_ns ? util::now_ns() + for_ns : 0;
    std::lock_guard lk(mu_);
    dyn_[host] = Dyn{static_cast<uint16_t>(ci), exp};
    if (exp) next_expiry_ = std::min(next_expiry_, exp);
    persist();
    command([addr = *a, ci](record::Recorder& r) { r.set_host_class(addr, static_cast<uint16_t>(ci)); });
    return entry(host, dyn_[host]);
  }

  // Per-connection controls: the API thread takes a shard's table lock, which its capture
  // thread holds only while it processes a batch.
  std::mutex& table_mutex(size_t shard) { return shards_[shard].table_mu; }

  json connections(const query::Expr& e, size_t top) override {
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
      out.push_back({{"id", r.id},
                     {"first", util::format_time(r.first_ts)},
                     {"last", util::format_time(r.last_ts)},
                     {"proto", r.proto},
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

  json control(const query::Expr& e, int suspend_cutoff, int suspend_timeout) override {
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
    return {{"connections", n}};
  }

  json class_list() override {
    std::lock_guard lk(mu_);
    json j = json::array();
    uint64_t now = util::now_ns();
    for (auto& [h, d] : dyn_)
      if (!d.expires_ns || d.expires_ns > now)
        j.push_back(entry(h, d));  // expired: removed at the next packet
    return j;
  }

  bool class_remove(const std::string& host) override {
    std::lock_guard lk(mu_);
    auto it = dyn_.find(host);
    if (it == dyn_.end()) return false;
    dyn_.erase(it);
    persist();
    if (auto a = parse_host(host)) {
      command([addr = *a](record::Recorder& r) { r.clear_host_class(addr); });
    }
    return true;
  }

  store::Catalog subscribe(const std::shared_ptr<server::Subscriber>& s) override {
    // In the writer thread, right after a flush: from now on every appended packet is offered
    // to `s`; everything before is on disk, in the segments and sizes noted here.
    struct Seam {
      std::map<std::pair<std::string, uint64_t>, uint64_t> open;  // by class and sequence number
      std::map<std::string, uint64_t> next_seq;
    };
    auto seam = std::make_shared<Seam>();
    bool ok = writer_.sync(std::chrono::milliseconds(5000), [this, s, seam] {
      subs_.push_back(s);
      writer_.enable_observer(true);
      seam->open = writer_.open_segment_bytes();
      for (size_t i = 0; i < cfg_.classes.size(); ++i)
        seam->next_seq[cfg_.classes[i].name] = writer_.next_seq(static_cast<uint16_t>(i));
    });
    if (!ok) throw server::Unavailable("the writer did not answer (shutting down?)");
    store::Catalog cat = store::Catalog::scan(cfg_.store);
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

  void unsubscribe(const std::shared_ptr<server::Subscriber>& s) override {
    sub_overflow_ += s->overflow();
    writer_.sync(std::chrono::milliseconds(2000), [this, s] {
      std::erase(subs_, s);
      writer_.enable_observer(!subs_.empty());
    });
  }

 private:
  struct Dyn {
    uint16_t cls;
    uint64_t expires_ns;  // 0: never
  };
  int class_index(const std::string& name) const {
    for (size_t i = 0; i < cfg_.classes.size(); ++i)
      if (cfg_.classes[i].name == name) return static_cast<int>(i);
    return -1;
  }
  json entry(const std::string& host, const Dyn& d) const {
    json e = {{"host", host}, {"class", cfg_.classes[d.cls].name}, {"expires_ns", d.expires_ns}};
    e["expires"] = d.expires_ns ? json(util::format_time(d.expires_ns)) : json(nullptr);
    return e;
  }
  // mu_ held. Replaced atomically (file and directory fsynced): a crash leaves the old or the new list.
  void persist() {
    json j = json::array();
    for (auto& [h, d] : dyn_) j.push_back(entry(h, d));
    try {
      util::replace_file_atomic(path_, j.dump(2) + "\n");
    } catch (const std::exception& e) {
      spdlog::error("cannot write {}: {}", path_, e.what());
    }
  }

  // A dynamic-class change, applied by each shard's capture thread to its recorder before its
  // next batch.
  using Command = std::function<void(record::Recorder&)>;
  struct Shard {
    std::vector<Command> cmds;  // mu_
    std::atomic<bool> pending{false};
    std::mutex table_mu;
    record::RecorderTotals totals;  // mu_: published after each batch
    std::vector<capture::SourceStats> kernel;
    std::chrono::steady_clock::time_point last_kstats{};
  };
  // mu_ held.
  void command(const Command& c) {
    for (auto& sh : shards_) {
      sh.cmds.push_back(c);
      sh.pending = true;
    }
  }
  struct Snapshot {
    record::RecorderTotals t;  // every shard's published counters added up
    std::vector<capture::SourceStats> kernel;
  };
  Snapshot snapshot() const {  // mu_ held
    Snapshot s;
    for (auto& sh : shards_) {
      record::add(s.t, sh.totals);
      s.kernel.insert(s.kernel.end(), sh.kernel.begin(), sh.kernel.end());
    }
    return s;
  }
  const config::Config& cfg_;
  store::StoreWriter& writer_;
  std::vector<record::Recorder*> recs_;
  std::deque<Shard> shards_;  // by shard (deque: Shard holds a mutex)
  std::string path_;
  std::mutex mu_;
  std::map<std::string, Dyn> dyn_;
  uint64_t share_kept_ = 0, share_other_ = 0;              // mu_
  uint64_t next_expiry_ = 0;                               // mu_
  std::vector<std::shared_ptr<server::Subscriber>> subs_;  // writer thread only
  std::atomic<uint64_t> sub_overflow_{0};
  const cluster::ShareFilter* share_ = nullptr;
};

// The thread serving the API, which a shutdown waits for only so long: a client that stops
// reading leaves its query's thread blocked in send() for the write timeout (as long as a query
// may last, see server/api.cpp), and SIGTERM must not wait for that once the store is flushed.
class ApiThread {
 public:
  explicit ApiThread(server::ApiServer& api)
      : t_([this, &api] {
          api.serve();
          finished_.set_value();
        }) {}
  // True when the thread ended within `grace` (joined); false when it is left running
  // (detached): the caller then ends the process without destroying the server under it.
  bool join_within(std::chrono::seconds grace) {
    if (done_.wait_for(grace) != std::future_status::ready) {
      t_.detach();
      return false;
    }
    t_.join();
    return true;
  }
  bool ended() const { return done_.wait_for(std::chrono::seconds(0)) == std::future_status::ready; }

 private:
  std::promise<void> finished_;
  std::future<void> done_ = finished_.get_future();
  std::thread t_;
};

constexpr std::chrono::seconds kShutdownGrace{5};

// After a shutdown that left a query's thread blocked (ApiThread::join_within): everything is
// flushed, so end now; returning would destroy the API server under that thread.
[[noreturn]] void exit_leaving_blocked_query(int rc) {
  spdlog::warn("a query's client stopped reading; not waiting for it to end");
  std::cout.flush();
  std::cerr.flush();
  std::fflush(nullptr);
  std::_Exit(rc);
}

}  // namespace

// After the capture devices and the listening socket are open, nothing needs root: become
// `user` (its groups too). The store must be writable by that user.
void drop_privileges(const std::string& user, const std::string& store) {
  struct passwd* pw = getpwnam(user.c_str());
  if (!pw) throw std::runtime_error(fmt::format("--user: no user '{}'", user));
  if (initgroups(pw->pw_name, pw->pw_gid) != 0 || setgid(pw->pw_gid) != 0 || setuid(pw->pw_uid) != 0)
    throw std::runtime_error(fmt::format("--user: cannot become '{}': {}", user, std::strerror(errno)));
  if (setuid(0) == 0) throw std::runtime_error("--user: privileges could not be dropped for good");
  if (access(store.c_str(), W_OK | X_OK) != 0)
    throw std::runtime_error(
        fmt::format("--user: '{}' cannot write the store {} (chown it first)", user, store));
  spdlog::info("running as {}", user);
}

Runner add_serve(CLI::App& app) {
  struct Opts {
    RecordOptions rec;
    std::string listen, token_file;  // empty: from the config ([server]), else its defaults
    int max_queries = 0, max_subs = -1;
    double query_seconds = 0;
    std::string user;
  };
  auto o = std::make_shared<Opts>();
  add_config_options(app, o->rec);
  app.add_option("-i,--interface", o->rec.interfaces,
                 "live interface; repeatable (none: serve the store read-only)");
  app.add_option("--listen", o->listen, "API address HOST:PORT (default 127.0.0.1:8910, or server.listen)");
  app.add_option("--token-file", o->token_file, "file holding the API bearer token (required off loopback)");
  app.add_option("--max-queries", o->max_queries, "concurrent queries; beyond: 503 (default 4)")
      ->check(whole_number(1, 1024));
  app.add_option("--max-subscriptions", o->max_subs, "concurrent subscriptions; beyond: 503 (default 8)")
      ->check(whole_number(0, 1024));
  app.add_option("--query-timeout", o->query_seconds, "seconds a query may run (default 300)")
      ->check(seconds_upto(1e7));
  app.add_option("--user", o->user, "drop privileges to this user once the interfaces are open");
  return [o]() -> int {
    config::Config cfg = build_config(o->rec);
    // The command line overrides the config's [server] section.
    if (o->listen.empty()) o->listen = cfg.listen;
    if (o->token_file.empty()) o->token_file = cfg.token_file;
    if (o->max_queries <= 0) o->max_queries = cfg.max_queries;
    if (o->max_subs < 0) o->max_subs = cfg.max_subscriptions;
    if (o->query_seconds <= 0) o->query_seconds = static_cast<double>(cfg.query_timeout_ns) / 1e9;
    if (o->user.empty()) o->user = cfg.user;
    server::ApiOptions ao;
    ao.store = cfg.store;
    server::HostPort addr = server::parse_host_port(o->listen, "--listen");
    ao.host = addr.host;
    ao.port = addr.port;
    if (!o->token_file.empty()) ao.token = server::read_token_file(o->token_file, "--token-file");
    server::require_token_off_loopback(o->listen, ao.token, "--listen", "--token-file");
    ao.max_queries = o->max_queries;
    ao.max_subscriptions = o->max_subs;
    ao.query_seconds = o->query_seconds;
    bool live = !cfg.interfaces.empty();
    auto share = make_share_filter(o->rec);
    if (share && !live)
      throw std::runtime_error(
          "--worker-id splits live capture; a store served read-only was split when it was recorded");

    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGPIPE);
    sigaddset(&set, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &set, nullptr);
    // SIGHUP: the class definitions are not reloaded, and tm says why (it keeps running).
    auto wait_stop = [&set] {
      int sig = 0;
      for (;;) {
        sigwait(&set, &sig);
        if (sig == SIGHUP)
          spdlog::warn(
              "SIGHUP: class definitions are not reloaded while running: each class owns a RAM ring and a "
              "store "
              "directory fixed at start; restart tm serve to change them (dynamic classes change at any time "
              "through the API)");
        else if (sig != SIGPIPE)
          return;
      }
    };

    if (!live) {
      store::Catalog::scan(cfg.store);  // must exist and be a store
      server::ApiServer api(ao, nullptr);
      api.bind();
      std::cerr << fmt::format("tm serve: serving {} read-only on {}\n", cfg.store,
                               server::format_host_port(addr.host, api.port()));
      std::atomic<bool> stop{false};
      std::thread sig_thread([&] {
        wait_stop();
        stop = true;
        api.stop();
      });
      ApiThread api_thread(api);
      while (!stop && !api_thread.ended()) std::this_thread::sleep_for(std::chrono::milliseconds(50));
      bool api_ended = api_thread.join_within(kShutdownGrace);
      if (!stop) pthread_kill(sig_thread.native_handle(), SIGTERM);
      sig_thread.join();
      if (!api_ended) exit_leaving_blocked_query(0);
      return 0;
    }

    record::SessionOptions so;
    so.live = true;
    if (share) so.keep = [f = share.get()](capture::RawPacket* p, size_t n) { return f->keep(p, n); };
    record::Session session(cfg, std::move(so));
    const auto& ad = session.adopt_report();
    if (ad.recovered) std::cerr << fmt::format("tm serve: recovered {} segment(s)\n", ad.recovered);
    for (auto& f : ad.foreign) std::cerr << "tm serve: note: " << f << " was not written by tm; left alone\n";
    for (auto& p : ad.problems) std::cerr << "tm serve: warning: " << p << "\n";
    std::vector<record::Recorder*> recs;
    for (size_t i = 0; i < session.shards(); ++i) recs.push_back(&session.recorder(i));
    Daemon daemon(cfg, session.writer(), std::move(recs));
    daemon.set_share(share.get());
    daemon.load_classes();
    session.set_live_sources(open_live_sources(cfg));
    server::ApiServer api(ao, &daemon);
    api.bind();
    if (!o->user.empty()) drop_privileges(o->user, cfg.store);
    std::thread sig_thread([&] {
      wait_stop();
      session.stop();
      api.stop();
    });
    session.start();
    ApiThread api_thread(api);
    std::cerr << fmt::format("tm serve: recording {} into {}, API on {}\n", fmt::join(cfg.interfaces, ","),
                             cfg.store, server::format_host_port(addr.host, api.port()));
    int rc = 0;
    try {
      session.run([&](size_t shard, const std::function<void()>& record_batch) {
        std::lock_guard table_lock(daemon.table_mutex(shard));  // per batch, not per packet
        daemon.apply_commands(shard);
        record_batch();
        daemon.publish(shard, session.shard_sources(shard));
      });
    } catch (const std::exception& e) {
      std::cerr << "tm serve: " << e.what() << "\n";
      rc = 1;
      api.stop();
    }
    bool api_ended = api_thread.join_within(kShutdownGrace);
    session.finish();
    if (!session.stopping()) pthread_kill(sig_thread.native_handle(), SIGTERM);
    sig_thread.join();
    if (session.writer().failed()) {
      std::cerr << "tm serve: writer: " << session.writer().error() << "\n";
      rc = 1;
    }
    if (!api_ended) exit_leaving_blocked_query(rc);
    return rc;
  };
}

}  // namespace tmach::cli
