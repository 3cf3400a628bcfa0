// The front-end's configuration: its workers, how traffic is balanced between them, time
// limits. From a TOML file (tm frontend --config cluster.toml) and/or the command line.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "cluster/selection.h"
#include "server/listen.h"

namespace tmach::cluster {

struct WorkerConfig {
  std::string url;         // http://HOST:PORT of its tm serve
  std::string token_file;  // its bearer token, if it has one
  std::string token;       // read from token_file
  double timeout_s = 0;    // 0: the cluster's default
  // https:// workers: the CA that signed their certificates (empty: the system's), and a
  // client certificate and key for workers that require one (mutual TLS). Empty: the
  // cluster's worker_ca / worker_cert / worker_key.
  std::string ca, cert, key;
};

struct ClusterConfig {
  std::string listen = "127.0.0.1:8920";
  std::string token_file;  // the front-end's own bearer token
  std::string token;
  server::TlsFiles tls;  // the front-end's own HTTPS (tls_cert, tls_key, tls_client_ca)
  std::string worker_ca, worker_cert, worker_key;  // for every https:// worker (WorkerConfig)
  std::vector<WorkerConfig> workers;               // in worker-id order when `balance` is set
  BalanceInfo balance;                             // known = a scheme was given
  double timeout_s = 30;                           // per worker: until its answer starts (headers)
  double query_timeout_s = 300;  // a whole query; also how long a started answer may be silent
  int max_queries = 8;
  int max_subscriptions = 8;  // concurrent subscriptions through the front-end; beyond: 503
};

// Reads `path` (see contrib/cluster.toml). Throws config::ConfigError naming file, line and key.
ClusterConfig load_cluster_config(const std::string& path);
ClusterConfig load_cluster_config_string(const std::string& text, const std::string& name);
// Reads the token files; checks URLs, that there are workers, and that a non-loopback
// listen address has a token. Throws std::runtime_error.
void finalize_cluster_config(ClusterConfig& c);

}  // namespace tmach::cluster
