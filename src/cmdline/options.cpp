#include "cmdline/options.h"

#include <fmt/format.h>

#include <charconv>
#include <cmath>

#include "server/http_service.h"
#include "server/local_service.h"
#include "store/layout.h"
#include "util/timespec.h"
#include "util/units.h"

namespace tmach::cli {

void add_server_options(CLI::App& app, server::ClientOptions& c, bool required, const char* what) {
  app.add_option("--ca", c.ca,
                 "https:// server: PEM file of the CA that signed its certificate (default: the system's)");
  app.add_option("--cert", c.cert, "https:// server requiring one: client certificate (PEM)");
  app.add_option("--key", c.key, "the private key of --cert (PEM)");
  app.add_option("--timeout", c.timeout_s,
                 "--server: give up when the server sends nothing for this many seconds (a hung "
                 "server); a subscription's packets are waited for as long as it runs")
      ->check(whole_number(1, 86400))
      ->capture_default_str();
  if (required) {
    app.add_option("--server", c.url, "URL of tm serve (http://HOST:PORT or https://HOST:PORT)")->required();
    app.add_option("--token-file", c.token_file, "file holding the API bearer token");
  } else {
    std::string help = "ask a running tm serve instead (http://HOST:PORT or https://...)";
    help += what;
    app.add_option("--server", c.url, help);
    app.add_option("--token-file", c.token_file, "file holding the API bearer token (--server)");
  }
}

CLI::Validator whole_number(uint64_t lo, uint64_t hi) {
  return CLI::Validator(
      [lo, hi](std::string& s) -> std::string {
        uint64_t v = 0;
        auto r = std::from_chars(s.data(), s.data() + s.size(), v);
        if (s.empty() || r.ptr != s.data() + s.size() ||
            (r.ec != std::errc() && r.ec != std::errc::result_out_of_range))
          return fmt::format("'{}' is not a whole number from {} to {}", s, lo, hi);
        if (r.ec == std::errc::result_out_of_range || v < lo || v > hi)
          return fmt::format("{} is out of range: from {} to {}", s, lo, hi);
        return "";
      },
      fmt::format("INT in [{} - {}]", lo, hi));
}

CLI::Validator not_empty(const char* absent_means) {
  return CLI::Validator(
      [absent_means](std::string& s) -> std::string {
        return s.empty() ? fmt::format("given empty (leave it out for {})", absent_means) : "";
      },
      "");
}

CLI::Validator seconds_upto(double hi) {
  return CLI::Validator(
      [hi](std::string& s) -> std::string {
        char* end = nullptr;
        double v = std::strtod(s.c_str(), &end);
        if (s.empty() || end != s.c_str() + s.size() || !std::isfinite(v) || v < 0)
          return fmt::format("'{}' is not a number of seconds (0 or more)", s);
        if (v > hi) return fmt::format("{} is out of range: at most {} seconds", s, hi);
        return "";
      },
      fmt::format("SECONDS in [0 - {}]", hi));
}

CLI::Validator positive_seconds_upto(double hi) {
  return CLI::Validator(
      [hi](std::string& s) -> std::string {
        std::string e = seconds_upto(hi)(s);
        if (!e.empty()) return e;
        return std::strtod(s.c_str(), nullptr) == 0 ? "0 would leave no time: give seconds (more than 0)"
                                                    : "";
      },
      fmt::format("SECONDS in (0 - {}]", hi));
}

void add_config_options(CLI::App& app, RecordOptions& o) {
  // (A value given empty is refused, as in the config file, rather than taken for its absence:
  // --cutoff '' recorded with the default cutoff.)
  app.add_option("-c,--config", o.config_path, "TOML config file (see docs/CONFIG.md)")
      ->check(not_empty("no config file"));
  app.add_option("-s,--store", o.store, "store directory (overrides store.path)")
      ->check(not_empty("store.path"));
  app.add_option("--cutoff", o.cutoff, "connection cutoff for every class: bytes with k/m/g, or 'none'")
      ->check(not_empty("the classes' own cutoffs"));
  app.add_option("--segment-size", o.segment_size, "rotate segments at this size (default 256m)")
      ->check(not_empty("store.segment_size"));
  app.add_option("--disk-budget", o.disk_budget,
                 "disk budget of the whole store (e.g. 10g, or 80% of its file system)")
      ->check(not_empty("store.disk_budget"));
  app.add_option("--ram-budget", o.ram_budget, "RAM ring size for every class (default 64m)")
      ->check(not_empty("the classes' own ram_budget"));
  app.add_option(
         "--when-ring-full", o.when_full,
         "wait (auto, the default: a live capture leaves the overflow in the kernel's buffer) or drop")
      ->check(not_empty("auto"));
  app.add_option(
         "--capture-threads", o.capture_threads,
         "live capture threads, in one AF_PACKET fanout group per interface (overrides capture.threads)")
      ->check(CLI::Range(1, config::kMaxCaptureThreads));
  app.add_option("--worker-id", o.worker_id, "one worker of a split: keep only this worker's share (0..N-1)")
      ->check(whole_number(0, 65535));
  app.add_option("--workers", o.workers, "the number of workers the traffic is split between")
      ->check(whole_number(1, 65536));
  app.add_option("--balance", o.balance, "how the split hashes packets: pair (default) or 5tuple")
      ->check(CLI::IsMember({"pair", "5tuple"}));
  app.add_option("--cluster-key", o.cluster_key,
                 "live workers on one host: the key naming their fanout group on each interface (default tm)")
      ->check(not_empty("tm"));
}

std::string filter_text(const std::vector<std::string>& words) {
  std::string text;
  for (size_t i = 0; i < words.size(); ++i) text += (i ? " " : "") + words[i];
  return text;
}

std::unique_ptr<server::Service> open_service(const std::string& store, const server::ClientOptions& server) {
  if (store.empty() == server.url.empty()) throw std::runtime_error("give --store DIR or --server URL");
  if (server.url.empty() && !(server.ca.empty() && server.cert.empty() && server.key.empty()))
    throw std::runtime_error("--ca, --cert and --key are for an https:// --server");
  if (server.url.empty()) return std::make_unique<server::LocalService>(store);
  return std::make_unique<server::HttpService>(server);
}

bool worker_split(const RecordOptions& o) {
  if (o.worker_id < 0 && o.workers == 0) return false;
  if (o.workers < 1 || o.worker_id < 0 || o.worker_id >= o.workers)
    throw std::runtime_error("--worker-id I --workers N: give both, with 0 <= I < N");
  if (o.cluster_key.empty()) throw std::runtime_error("--cluster-key: must not be empty");
  return true;
}

int worker_fanout_group(const std::string& interface, int workers, const std::string& cluster_key) {
  uint64_t h = 0xcbf29ce484222325ull;  // FNV-1a, 64 bits, folded to 16
  auto mix = [&h](const std::string& s) {
    for (unsigned char c : s) h = (h ^ c) * 0x100000001b3ull;
    h = (h ^ 0xff) * 0x100000001b3ull;  // separator: ("ab", "c") is not ("a", "bc")
  };
  mix(interface);
  mix(std::to_string(workers));
  mix(cluster_key);
  return static_cast<int>((h ^ (h >> 16) ^ (h >> 32) ^ (h >> 48)) & 0xffff);
}

std::unique_ptr<cluster::ShareFilter> make_share_filter(const RecordOptions& o) {
  if (!worker_split(o)) return nullptr;
  return std::make_unique<cluster::ShareFilter>(static_cast<uint32_t>(o.worker_id),
                                                static_cast<uint32_t>(o.workers),
                                                *cluster::parse_scheme(o.balance));
}

namespace {
uint64_t size_opt(const std::string& v, const char* flag) {
  auto s = util::parse_size(v);
  if (!s) throw config::ConfigError(fmt::format("{}: {}", flag, util::size_error(v)));
  return *s;
}
}  // namespace

void check_interfaces(const config::Config& cfg, bool fanout) {
  for (auto& ifc : cfg.interfaces) {
    if (!capture::interface_exists(ifc))
      throw std::runtime_error(
          fmt::format("interface {}: no such interface (ip link lists them); nothing recorded", ifc));
    if ((fanout || cfg.capture_threads > 1) && capture::interface_down(ifc))
      throw std::runtime_error(capture::down_for_fanout_error(ifc) + "; nothing recorded");
  }
}

std::vector<std::unique_ptr<capture::PacketSource>> open_live_sources(const config::Config& cfg,
                                                                      const RecordOptions* worker_split) {
  std::vector<std::unique_ptr<capture::PacketSource>> sources;
  for (auto& ifc : cfg.interfaces) {
    capture::LiveOptions lo;
    lo.interface = ifc;
    lo.buffer_bytes = cfg.capture_buffer;
    lo.snaplen = cfg.snaplen;
    lo.bpf = cfg.capture_filter;
    lo.method = cfg.capture_method == "afpacket"  ? capture::LiveMethod::kAfPacket
                : cfg.capture_method == "libpcap" ? capture::LiveMethod::kLibpcap
                                                  : capture::LiveMethod::kAuto;
    if (worker_split) {
      lo.fanout_group =
          capture::kFanoutId | worker_fanout_group(ifc, worker_split->workers, worker_split->cluster_key);
      // The interface's drops are the whole interface's: worker 0 alone reports them (the
      // frontend adds the workers' counters up).
      lo.interface_drops = worker_split->worker_id == 0;
    }
    for (auto& s : capture::open_live_group(lo, cfg.capture_threads)) sources.push_back(std::move(s));
  }
  return sources;
}

void parse_time_range(const std::string& from, const std::string& to, uint64_t& from_ns, uint64_t& to_ns) {
  server::parse_time_range(from, to, from_ns, to_ns);
}

config::Config build_config(const RecordOptions& o) {
  config::Config c = o.config_path.empty() ? config::Config{} : config::load_config_file(o.config_path);
  if (!o.store.empty()) c.store = o.store;
  if (c.store.empty()) throw config::ConfigError("no store: give --store DIR or store.path in the config");
  if (!o.interfaces.empty()) c.interfaces = o.interfaces;
  if (o.capture_threads > 0) c.capture_threads = o.capture_threads;
  if (!o.segment_size.empty()) {
    c.segment_size = size_opt(o.segment_size, "--segment-size");
    if (c.segment_size < store::kMinSegmentSize)
      throw config::ConfigError("--segment-size: must be at least 4k");
  }
  if (c.segment_size > (3ull << 30)) throw config::ConfigError("segment size: at most 3g");
  if (!o.disk_budget.empty() &&
      !config::parse_disk_budget(o.disk_budget, c.disk_budget, c.disk_budget_percent))
    throw config::ConfigError(fmt::format("--disk-budget: {}", config::disk_budget_error(o.disk_budget)));
  if (!o.when_full.empty()) {
    if (o.when_full == "auto")
      c.when_full = config::WhenFull::kAuto;
    else if (o.when_full == "drop")
      c.when_full = config::WhenFull::kDrop;
    else if (o.when_full == "wait")
      c.when_full = config::WhenFull::kWait;
    else
      throw config::ConfigError("--when-ring-full: expected auto, drop or wait");
  }
  config::finalize_classes(c);
  if (!o.cutoff.empty()) {
    uint64_t v = size_opt(o.cutoff, "--cutoff");
    for (auto& cc : c.classes) cc.cutoff = v;
  }
  if (!o.ram_budget.empty()) {
    uint64_t v = size_opt(o.ram_budget, "--ram-budget");
    if (v < (1u << 20) || v == util::kUnlimited)
      throw config::ConfigError(
          "--ram-budget: must be at least 1m, and a size (not none: a RAM buffer is bounded)");
    if (v > config::physical_memory() / c.classes.size())
      throw config::ConfigError(
          fmt::format("--ram-budget: {} for each of {} class(es) is more than this machine's "
                      "memory ({} bytes)",
                      o.ram_budget, c.classes.size(), config::physical_memory()));
    for (auto& cc : c.classes) cc.ram_budget = v;
  }
  // --capture-threads or --ram-budget may have made a class's budget smaller than its capture
  // threads' rings take (the config file's own values were checked as it was read).
  const uint64_t need = config::min_ram_budget(c.capture_threads);
  for (const auto& cc : c.classes)
    if (cc.ram_budget < need)
      throw config::ConfigError(fmt::format(
          "{}: class '{}': a RAM budget of {} bytes is less than the {} bytes ({}) that the RAM rings of {} "
          "capture threads take at least: raise ram_budget or use fewer capture threads",
          !o.ram_budget.empty() ? "--ram-budget" : "--capture-threads", cc.name, cc.ram_budget, need,
          util::format_size(need), c.capture_threads));
  return c;
}

}  // namespace tmach::cli
