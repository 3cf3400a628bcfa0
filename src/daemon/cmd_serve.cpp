// tm serve: live recording (as tm record -i) plus the HTTP API; without an interface, the
// API over an existing store, read-only.
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <grp.h>
#include <pthread.h>
#include <pwd.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <future>
#include <iostream>
#include <mutex>
#include <thread>
#include <tuple>

#include "cmdline/options.h"
#include "cmdline/summary.h"
#include "daemon/commands.h"
#include "record/session.h"
#include "server/api.h"
#include "server/listen.h"
#include "server/live_backend.h"
#include "server/tls_server.h"
#include "util/sigwait_joiner.h"
#include "util/timespec.h"
#include "util/units.h"

namespace tmach::cli {
namespace {

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

// The one-line status of a recording tm serve, from its stats (what /api/v1/stats answers).
std::string status_line(const nlohmann::json& j) {
  uint64_t stored = 0, cut = 0, dropped = 0, disk = 0, evicted = 0;
  if (j.contains("classes"))
    for (auto& [name, c] : j["classes"].items()) {
      // Handed to the store, less what a failed write lost (counted as dropped instead).
      const uint64_t lost = c.value("lost_packets", uint64_t{0});
      stored +=
          c.value("stored_packets", uint64_t{0}) - std::min(lost, c.value("stored_packets", uint64_t{0}));
      cut += c.value("cut_packets", uint64_t{0});
      dropped += c.value("dropped_ring_full", uint64_t{0}) + c.value("dropped_too_large", uint64_t{0}) + lost;
      disk += c.value("disk_bytes", uint64_t{0});
      evicted += c.value("segments_evicted", uint64_t{0});
    }
  const nlohmann::json k = j.value("kernel", nlohmann::json::object());
  std::string line = fmt::format(
      "status: {} packets ({}), {} stored, {} cut off, dropped: {} in tm, {} kernel, {} interface; disk {}, "
      "{} segments evicted; {} connections active",
      j.value("packets", uint64_t{0}), util::format_size(j.value("bytes", uint64_t{0})), stored, cut, dropped,
      k.value("dropped", uint64_t{0}), k.value("interface_dropped", uint64_t{0}), util::format_size(disk),
      evicted, j.value("connections_active", uint64_t{0}));
  if (std::string e = j.value("writer_error", std::string()); !e.empty()) line += "; writer: " + e;
  return line;
}

// A line of tm serve's own log on stderr, whatever --log-level says (start, status, stop), with
// the time it was written.
void say(const std::string& what) {
  std::cerr << fmt::format("tm serve: {} {}\n", util::format_time(util::now_ns()), what) << std::flush;
}

// tm-status: logs status_line() every `interval` until stopped (tm serve's end).
class StatusLogger {
 public:
  StatusLogger(server::LiveBackend& b, std::chrono::nanoseconds interval) {
    if (interval.count() <= 0) return;
    t_ = std::thread([this, &b, interval] {
      std::unique_lock lk(mu_);
      while (!cv_.wait_for(lk, interval, [this] { return stop_; })) {
        lk.unlock();
        say(status_line(b.stats()));
        lk.lock();
      }
    });
  }
  ~StatusLogger() { stop(); }
  void stop() {
    {
      std::lock_guard lk(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    if (t_.joinable()) t_.join();
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::thread t_;
};

}  // namespace

// After the capture devices and the listening socket are open, nothing needs root: become
// `user` (its groups too). The store must be writable by that user (readable, for a store
// served read-only: `write` false).
void drop_privileges(const std::string& user, const std::string& store, bool write = true) {
  struct passwd* pw = getpwnam(user.c_str());
  if (!pw) throw std::runtime_error(fmt::format("--user: no user '{}'", user));
  if (initgroups(pw->pw_name, pw->pw_gid) != 0 || setgid(pw->pw_gid) != 0 || setuid(pw->pw_uid) != 0)
    throw std::runtime_error(fmt::format("--user: cannot become '{}': {}", user, std::strerror(errno)));
  if (setuid(0) == 0) throw std::runtime_error("--user: privileges could not be dropped for good");
  if (access(store.c_str(), (write ? W_OK : R_OK) | X_OK) != 0)
    throw std::runtime_error(fmt::format("--user: '{}' cannot {} the store {} ({} it first)", user,
                                         write ? "write" : "read", store,
                                         write ? "chown" : "chmod or chown"));
  spdlog::info("running as {}", user);
}

Runner add_serve(CLI::App& app) {
  struct Opts {
    RecordOptions rec;
    std::string listen, token_file;  // empty: from the config ([server]), else its defaults
    int max_queries = 0, max_subs = -1;
    double query_seconds = 0;
    std::string user;
    server::TlsFiles tls;
    double status_seconds = -1;
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
      ->check(positive_seconds_upto(1e7));
  app.add_option("--user", o->user, "drop privileges to this user once the interfaces are open");
  app.add_option("--tls-cert", o->tls.cert, "serve HTTPS: PEM certificate (chain) file (or server.tls_cert)");
  app.add_option("--tls-key", o->tls.key, "PEM private key of --tls-cert (or server.tls_key)");
  app.add_option(
      "--tls-client-ca", o->tls.client_ca,
      "mutual TLS: clients must present a certificate this PEM CA signed (or server.tls_client_ca)");
  app.add_option(
         "--status-interval", o->status_seconds,
         "seconds between one-line status logs while recording (default 60, or server.status_interval; "
         "0: none)")
      ->check(seconds_upto(1e7));
  return [o]() -> int {
    config::Config cfg = build_config(o->rec);
    // The command line overrides the config's [server] section.
    // Errors about a value from the config file name it there (file:line: key), not the option.
    std::string listen_what = "--listen", token_what = "--token-file";
    if (o->listen.empty()) {
      o->listen = cfg.listen;
      if (!cfg.listen_at.empty()) listen_what = cfg.listen_at;
    }
    if (o->token_file.empty()) {
      o->token_file = cfg.token_file;
      if (!cfg.token_file_at.empty()) token_what = cfg.token_file_at;
    }
    if (o->max_queries <= 0) o->max_queries = cfg.max_queries;
    if (o->max_subs < 0) o->max_subs = cfg.max_subscriptions;
    if (o->query_seconds <= 0) o->query_seconds = static_cast<double>(cfg.query_timeout_ns) / 1e9;
    if (o->user.empty()) o->user = cfg.user;
    for (auto [v, what, from, from_at] :
         {std::tuple{&o->tls.cert, &o->tls.cert_what, &cfg.tls_cert, &cfg.tls_cert_at},
          std::tuple{&o->tls.key, &o->tls.key_what, &cfg.tls_key, &cfg.tls_key_at},
          std::tuple{&o->tls.client_ca, &o->tls.client_ca_what, &cfg.tls_client_ca, &cfg.tls_client_ca_at}})
      if (v->empty() && !from->empty()) {
        *v = *from;
        *what = *from_at;
      }
    server::check_tls_files(o->tls);  // before capture starts: a bad file fails at once
    server::ApiOptions ao;
    ao.store = cfg.store;
    server::HostPort addr = server::parse_host_port(o->listen, listen_what);
    ao.host = addr.host;
    ao.port = addr.port;
    if (!o->token_file.empty()) ao.token = server::read_token_file(o->token_file, token_what);
    server::require_token_off_loopback(o->listen, ao.token, listen_what,
                                       "--token-file (or server.token_file)");
    ao.max_queries = o->max_queries;
    ao.max_subscriptions = o->max_subs;
    ao.query_seconds = o->query_seconds;
    ao.tls = o->tls;
    bool live = !cfg.interfaces.empty();
    // Live, a worker joins the workers' fanout group on each interface (open_live_sources): the
    // kernel gives it its share, nothing is filtered here.
    if (worker_split(o->rec) && !live)
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
      // (--user was not applied read-only: the server kept running as root.) Not root, it needs
      // no dropping, and cannot: a shared config's server.user does not stop a user serving a
      // store read-only.
      if (!o->user.empty() && ::geteuid() == 0) drop_privileges(o->user, cfg.store, /*write=*/false);
      std::cerr << fmt::format("tm serve: serving {} read-only on {}{}\n", cfg.store,
                               server::format_host_port(addr.host, api.port()),
                               ao.tls.on() ? " (HTTPS)" : "");
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
    check_interfaces(cfg, worker_split(o->rec));  // (a typo must not make a store)
    record::Session session(cfg, std::move(so));
    const auto& ad = session.adopt_report();
    if (ad.recovered) std::cerr << fmt::format("tm serve: recovered {} segment(s)\n", ad.recovered);
    for (auto& f : ad.foreign) std::cerr << "tm serve: note: " << f << " was not written by tm; left alone\n";
    for (auto& p : ad.problems) std::cerr << "tm serve: warning: " << p << "\n";
    std::vector<record::Recorder*> recs;
    for (size_t i = 0; i < session.shards(); ++i) recs.push_back(&session.recorder(i));
    server::LiveBackend backend(cfg, session.writer(), std::move(recs));
    backend.set_flows(session.flows());
    // "fanout": the kernel's flow hash, not the cluster's balance scheme, decides which worker
    // records a connection, so a front-end asks every worker (ClusterService::share_mismatch).
    if (worker_split(o->rec))
      backend.set_share(
          {static_cast<uint32_t>(o->rec.worker_id), static_cast<uint32_t>(o->rec.workers), "fanout", {}});
    backend.load_classes();
    session.set_live_sources(open_live_sources(cfg, worker_split(o->rec) ? &o->rec : nullptr));
    server::ApiServer api(ao, &backend);
    api.bind();
    if (!o->user.empty()) drop_privileges(o->user, cfg.store);
    std::thread sig_thread([&] {
      wait_stop();
      backend.end_subscriptions();  // (before the drain: filters no longer slow it)
      session.stop();
      api.stop();
    });
    util::SigwaitJoiner end_sig_thread(sig_thread);  // (on every way out)
    session.start();
    ApiThread api_thread(api);
    // (The time last, as scripts and tests find the port after "API on".)
    std::cerr << fmt::format("tm serve: recording {} into {}, API on {}{}, from {}\n",
                             fmt::join(cfg.interfaces, ","), cfg.store,
                             server::format_host_port(addr.host, api.port()), ao.tls.on() ? " (HTTPS)" : "",
                             util::format_time(util::now_ns()))
              << std::flush;
    auto interval = o->status_seconds >= 0
                        ? std::chrono::nanoseconds(static_cast<int64_t>(o->status_seconds * 1e9))
                        : std::chrono::nanoseconds(cfg.status_interval_ns);
    StatusLogger status(backend, interval);
    int rc = 0;
    try {
      session.run([&](size_t shard, const std::function<void()>& record_batch) {
        std::lock_guard table_lock(backend.table_mutex(shard));  // per batch, not per packet
        backend.apply_commands(shard);
        record_batch();
        backend.publish(shard, session.shard_sources(shard));
      });
    } catch (const std::exception& e) {
      std::cerr << "tm serve: " << e.what() << "\n";
      rc = 1;
      api.stop();
    }
    backend.end_subscriptions();  // (the capture ended, or failed)
    say(fmt::format("stopping: {}", session.stopping() ? "asked to (signal)" : "the capture ended"));
    status.stop();
    bool api_ended = api_thread.join_within(kShutdownGrace);
    try {
      session.finish();
    } catch (const std::exception& e) {  // (the flow records: the packets are sealed)
      std::cerr << "tm serve: " << e.what() << "\n";
      rc = 1;
    }
    if (std::string lost = flow_records_lost_line({0, session.flow_records_lost(), session.flow_failure()});
        !lost.empty()) {
      std::cerr << "tm serve: " << lost << "\n";
      rc = 1;
    }
    end_sig_thread.end();
    if (session.writer().failed()) {
      std::cerr << "tm serve: writer: " << session.writer().error() << "\n";
      rc = 1;
    }
    say("stopped; at the end: " + status_line(backend.stats()));
    if (!api_ended) exit_leaving_blocked_query(rc);
    return rc;
  };
}

}  // namespace tmach::cli
