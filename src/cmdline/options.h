// Command-line options shared by tm and tm-daemon (src/cmdline/: what both programs need of the
// command line, in namespace tmach::cli as their commands): the recording commands' options
// (tm record, tm serve) and how they override the config; the clients' --server/--token-file.
#pragma once

#include <CLI/CLI.hpp>
#include <memory>
#include <string>
#include <vector>

#include "capture/source.h"
#include "cluster/balance.h"
#include "config/config.h"
#include "server/client.h"
#include "server/service.h"

namespace tmach::cli {

struct RecordOptions {
  std::string config_path;
  std::string store;
  std::string cutoff;
  std::string segment_size;
  std::string disk_budget;
  std::string ram_budget;
  std::string when_full;
  std::vector<std::string> interfaces;
  int capture_threads = 0;  // 0: capture.threads of the config
  std::vector<std::string> reads;
  bool json = false;
  bool force = false;   // tm record: record files the store has already imported
  bool repair = false;  // tm record: give a store that lost its STORE marker a new one
  uint32_t test_delay_us = 0;
  // One worker of an N-way split (tm record/serve --worker-id I --workers N): keeps the
  // packets whose balancing hash mod N is I (cluster/balance.h).
  // Live, the workers on one host share each interface through one PACKET_FANOUT group
  // instead (the kernel gives each its share of the connections): the group's id is derived
  // from the interface, the number of workers and this key (worker_fanout_group).
  int worker_id = -1;
  int workers = 0;
  std::string balance = "pair";
  std::string cluster_key = "tm";
};

void add_config_options(CLI::App& app, RecordOptions& o);
// Checks of numeric options, run on the text before CLI11 converts it (CLI11 took "-5" for an
// unsigned option and let values out of range wrap or saturate): the error names the option
// and says what it takes, e.g. "--top: '-5' is not a whole number from 0 to 1000000000".
CLI::Validator whole_number(uint64_t lo, uint64_t hi);
CLI::Validator seconds_upto(double hi);
// The same, 0 refused: a time limit of none (it was taken as absent: the default).
CLI::Validator positive_seconds_upto(double hi);
// A text option given empty (a script's unset variable): refused, naming what leaving the option
// out means ("--from: given empty (leave it out for no bound)"), rather than taken for that.
CLI::Validator not_empty(const char* absent_means);
// --server URL and --token-file for commands that talk to tm serve / tm frontend: required
// (the command only exists over the API) or an alternative to --store (`what` says to what).
void add_server_options(CLI::App& app, server::ClientOptions& c, bool required, const char* what = "");
// A filter given as several words on the command line, as one text.
std::string filter_text(const std::vector<std::string>& words);
// The Service a command with --store DIR or --server URL asks: a LocalService over the store or
// an HttpService to the server. Throws "give --store DIR or --server URL" unless exactly one.
std::unique_ptr<server::Service> open_service(const std::string& store, const server::ClientOptions& server);
// The configured live interfaces, opened (buffer, snaplen, capture filter from the config):
// capture.threads sockets of each, in one fanout group per interface, one after the other
// (record::Session::set_live_sources gives socket i of each interface to capture thread i).
// With a `worker_split` (--worker-id/--workers, live), every socket joins the fanout group
// worker_fanout_group() names, shared with the other workers on this host.
// Throws, naming it, when an interface of cfg.interfaces does not exist (capture::interface_exists),
// or is down while its sockets join a fanout group (`fanout`: several capture threads, or a
// cluster worker), which the kernel refuses: before the store is made.
void check_interfaces(const config::Config& cfg, bool fanout);
std::vector<std::unique_ptr<capture::PacketSource>> open_live_sources(
    const config::Config& cfg, const RecordOptions* worker_split = nullptr);
// The PACKET_FANOUT group id (0..65535) of a cluster's workers on `interface`: a fixed function
// (FNV-1a) of the interface's name, the number of workers and the cluster key, so that every
// worker of one cluster joins the same group and another cluster (another key) its own.
int worker_fanout_group(const std::string& interface, int workers, const std::string& cluster_key);

// --from/--to values (empty: leave the bound as it is); throws naming the option.
void parse_time_range(const std::string& from, const std::string& to, uint64_t& from_ns, uint64_t& to_ns);

// Whether --worker-id/--workers split the traffic; throws unless both are given, 0 <= I < N.
bool worker_split(const RecordOptions& o);
// --worker-id/--workers/--balance: the share filter, or null when not splitting. Throws. For
// files only: live, a worker is a fanout member (open_live_sources) and filters nothing.
std::unique_ptr<cluster::ShareFilter> make_share_filter(const RecordOptions& o);

// Defaults, then the config file, then the command line. Throws config::ConfigError.
config::Config build_config(const RecordOptions& o);

}  // namespace tmach::cli
