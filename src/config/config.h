// The recorder's configuration: defaults, a TOML file, then command-line overrides.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "conn/conn_table.h"

namespace tmach::config {

// A configuration error. what() names the file, line and key: "tm.toml:12: class 'web': cutoff: ...".
class ConfigError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct ClassConfig {
  std::string name;
  std::string filter;           // libpcap syntax; empty = matches everything
  uint64_t cutoff = 15 * 1024;  // bytes per connection; util::kUnlimited = none
  uint64_t ram_budget = 64ull << 20;
  uint64_t disk_budget = UINT64_MAX;
  double disk_budget_percent = 0;  // > 0: "80%" of the store's file system (see disk_budget_bytes)
  uint64_t max_age_ns = 0;         // 0: no age limit; else segments older than this are evicted
  int precedence = 0;              // higher is tried first
};

constexpr int kMaxCaptureThreads = 64;
// The least ram_budget a class can have with `capture_threads` capture threads: each has a ring
// of the class's RAM buffer, which holds two of its chunks at least (store::BufferPool), and
// a smaller budget would be exceeded.
uint64_t min_ram_budget(int capture_threads);

enum class WhenFull { kAuto, kDrop, kWait };  // auto = wait (see docs/DESIGN.md, the elastic buffer)

struct Config {
  std::string source_file;  // the TOML file the values came from, if any
  std::string store;
  std::vector<std::string> interfaces;
  uint64_t capture_buffer = 256ull << 20;
  int snaplen = 262144;
  std::string capture_filter;
  std::string capture_method = "auto";  // "auto", "afpacket" or "libpcap" (capture::LiveMethod)
  // Live capture threads: each reads its own socket of one PACKET_FANOUT group per interface
  // and has its own connection-table shard and RAM rings (record::Session).
  int capture_threads = 1;

  uint64_t segment_size = 256ull << 20;
  uint64_t disk_budget = UINT64_MAX;      // global, over all classes
  double disk_budget_percent = 0;         // > 0: a share of the store's file system instead
  uint64_t max_age_ns = 0;                // [store] max_age: every class's packets; 0 = none
  uint32_t directory_every = 4096;        // a directory entry every n packets ...
  uint64_t directory_bytes = 4ull << 20;  // ... and at least every this many bytes
  uint64_t fsync_interval_ns = 0;         // 0 = leave it to the kernel (see docs/DESIGN.md "Crash safety")
  uint64_t fsync_bytes = 0;

  size_t max_connections = 1000000;
  conn::Timeouts timeouts;
  bool keep_tcp_control = true;
  WhenFull when_full = WhenFull::kAuto;

  // The daemon's API (tm serve); the command line overrides these.
  std::string listen = "127.0.0.1:8910";
  std::string token_file;
  int max_queries = 4;
  int max_subscriptions = 8;
  uint64_t query_timeout_ns = 300ull * 1000000000;
  std::string user;
  // TLS (PEM files; no TLS when tls_cert is empty). *_at: where each was set, for errors
  // ("tm.toml:12: server.tls_cert").
  std::string tls_cert, tls_key, tls_client_ca;
  std::string tls_cert_at, tls_key_at, tls_client_ca_at;
  std::string listen_at, token_file_at;              // "file:line: server.listen" when given there
  uint64_t status_interval_ns = 60ull * 1000000000;  // tm serve's one-line status in the log; 0: none

  // Flow records: their own files, budget and age limit (store/flows/).
  bool flows = true;
  uint64_t flow_disk_budget = 1ull << 30;
  double flow_disk_budget_percent = 0;  // > 0: "5%" of the store's file system instead
  uint64_t flow_max_age_ns = 0;         // 0: no age limit, only the budget
  uint64_t flow_file_size = 16ull << 20;
  uint64_t flow_interim_ns = 300ull * 1000000000;  // interim record of a long connection every ...

  std::vector<ClassConfig> classes;   // after load: sorted by precedence, a catch-all last
  std::vector<std::string> warnings;  // doubtful but valid settings (also logged when loaded)
};

// A disk budget as written: a size ("500g", "none") or a share of the file system ("80%").
// Returns false if `s` is neither; sets exactly one of bytes (percent = 0) or percent.
bool parse_disk_budget(const std::string& s, uint64_t& bytes, double& percent);
// Why parse_disk_budget refused `s` (for the config's and the command line's errors).
std::string disk_budget_error(const std::string& s);
// The bytes of a budget: `bytes`, or `percent` of the size of the file system holding `path`
// (the nearest existing parent directory if `path` does not exist yet), measured now: at
// start. Throws ConfigError if that file system cannot be asked.
uint64_t disk_budget_bytes(uint64_t bytes, double percent, const std::string& path);

// This machine's memory in bytes: what RAM rings and capture buffers may not exceed.
uint64_t physical_memory();

// Reads a TOML file over the defaults. Throws ConfigError.
Config load_config_file(const std::string& path);
// The text of the config file `path` (a file, or a pipe: `--config <(...)`). Throws
// ConfigError unless it can be read whole and may be a TOML text: "PATH: is a directory, not a
// config file" (read as an empty file, it left every setting at its default), "PATH: cannot
// read: why", "PATH:LINE: a NUL byte: not a TOML text" (/dev/zero was read as an empty
// config), "PATH: larger than 16 MiB: not a config file".
std::string read_config_file(const std::string& path);
Config load_config_string(const std::string& text, const std::string& name);

// Adds the "default" catch-all class if none matches everything, sorts by precedence
// (stable: file order breaks ties), and checks names are unique. Throws ConfigError.
void finalize_classes(Config& c);

}  // namespace tmach::config
