// tm frontend: one API in front of several tm serve workers (src/cluster/frontend.h).
#include <fmt/format.h>
#include <pthread.h>
#include <signal.h>

#include <iostream>
#include <thread>

#include "cluster/cluster_config.h"
#include "cluster/frontend.h"
#include "cmdline/options.h"
#include "daemon/commands.h"

namespace tmach::cli {

Runner add_frontend(CLI::App& app) {
  struct Opts {
    std::string config, listen, token_file, balance;
    std::vector<std::string> workers, worker_tokens;
    double timeout = 0, query_timeout = 0;
    int max_queries = 0;
    bool no_tunnels = false;
    server::TlsFiles tls;
    std::string worker_ca, worker_cert, worker_key;
  };
  auto o = std::make_shared<Opts>();
  app.add_option("-c,--config", o->config, "cluster TOML file (see contrib/cluster.toml)");
  app.add_option("--worker", o->workers, "a worker's URL (http://HOST:PORT), in worker-id order; repeatable");
  app.add_option("--worker-token-file", o->worker_tokens,
                 "bearer token file of the workers: one for all, or one per --worker in order");
  app.add_option("--listen", o->listen, "API address HOST:PORT (default 127.0.0.1:8920)");
  app.add_option("--token-file", o->token_file, "the front-end's own bearer token (required off loopback)");
  app.add_option("--balance", o->balance,
                 "how traffic is split between the workers (pair or 5tuple; tm record/serve --workers): "
                 "enables worker selection")
      ->check(CLI::IsMember({"pair", "5tuple"}));
  app.add_flag("--no-tunnels", o->no_tunnels,
               "the link carries no tunnels: plain host/port filters select workers too");
  app.add_option("--timeout", o->timeout,
                 "per worker: seconds to wait for its answer, or for more of it (30)")
      ->check(positive_seconds_upto(1e7));
  app.add_option("--query-timeout", o->query_timeout, "seconds a whole query may run (300)")
      ->check(positive_seconds_upto(1e7));
  app.add_option("--max-queries", o->max_queries, "concurrent packet and flow queries; beyond: 503 (8)")
      ->check(whole_number(1, 1024));
  app.add_option("--tls-cert", o->tls.cert, "serve HTTPS: PEM certificate (chain) file (or tls_cert)");
  app.add_option("--tls-key", o->tls.key, "PEM private key of --tls-cert (or tls_key)");
  app.add_option("--tls-client-ca", o->tls.client_ca,
                 "mutual TLS: clients must present a certificate this PEM CA signed (or tls_client_ca)");
  app.add_option("--worker-ca", o->worker_ca,
                 "https:// workers: PEM CA their certificates are checked against (default: the system's)");
  app.add_option("--worker-cert", o->worker_cert, "client certificate (PEM) for workers that require one");
  app.add_option("--worker-key", o->worker_key, "PEM private key of --worker-cert");
  return [o]() -> int {
    cluster::ClusterConfig c =
        o->config.empty() ? cluster::ClusterConfig{} : cluster::load_cluster_config(o->config);
    if (!o->workers.empty()) {
      if (!c.workers.empty()) throw std::runtime_error("give workers in --config or with --worker, not both");
      for (auto& u : o->workers) {
        cluster::WorkerConfig w;
        w.url = u;
        c.workers.push_back(w);
      }
    }
    if (!o->worker_tokens.empty()) {
      if (o->worker_tokens.size() != 1 && o->worker_tokens.size() != c.workers.size())
        throw std::runtime_error("--worker-token-file: give one for all workers or one per worker");
      for (size_t i = 0; i < c.workers.size(); ++i)
        c.workers[i].token_file = o->worker_tokens[o->worker_tokens.size() == 1 ? 0 : i];
    }
    if (!o->listen.empty()) c.listen = o->listen;
    if (!o->token_file.empty()) c.token_file = o->token_file;
    // The command line's TLS files replace the config's, all three together.
    if (!o->tls.cert.empty() || !o->tls.key.empty() || !o->tls.client_ca.empty()) c.tls = o->tls;
    if (!o->worker_ca.empty()) c.worker_ca = o->worker_ca;
    if (!o->worker_cert.empty()) c.worker_cert = o->worker_cert;
    if (!o->worker_key.empty()) c.worker_key = o->worker_key;
    if (!o->balance.empty()) {
      c.balance.known = true;
      c.balance.scheme = *cluster::parse_scheme(o->balance);
    }
    if (o->no_tunnels) c.balance.tunnels = false;
    if (o->timeout > 0) {
      c.timeout_s = o->timeout;
      for (auto& w : c.workers) w.timeout_s = 0;  // the command line wins over the file
    }
    if (o->query_timeout > 0) c.query_timeout_s = o->query_timeout;
    if (o->max_queries > 0) c.max_queries = o->max_queries;
    cluster::finalize_cluster_config(c);

    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &set, nullptr);
    cluster::Frontend fe(c);
    std::string bound = fe.bind();  // with port 0: the port the system chose
    std::cerr << fmt::format("tm frontend: {} workers{}, API on {}{}\n", c.workers.size(),
                             c.balance.known
                                 ? fmt::format(" (balance {})", cluster::scheme_name(c.balance.scheme))
                                 : std::string(),
                             bound, c.tls.on() ? " (HTTPS)" : "");
    std::thread sig_thread([&] {
      int sig = 0;
      do sigwait(&set, &sig);
      while (sig == SIGPIPE);
      fe.stop();
    });
    fe.serve();
    pthread_kill(sig_thread.native_handle(), SIGTERM);
    sig_thread.join();
    return 0;
  };
}

}  // namespace tmach::cli
