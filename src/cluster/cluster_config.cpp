#include "cluster/cluster_config.h"

#include <fmt/format.h>
#include <toml++/toml.h>

#include <algorithm>
#include <cctype>
#include <fstream>
#include <map>
#include <set>
#include <tuple>

#include "config/config.h"
#include "server/listen.h"
#include "util/units.h"

namespace tmach::cluster {
namespace {

using config::ConfigError;

std::string where(const std::string& file, const toml::node& n, const std::string& key) {
  return fmt::format("{}:{}: {}", file, n.source().begin.line, key);
}

double duration_s(const std::string& file, const toml::table& t, const char* key, const std::string& ctx,
                  double def) {
  const toml::node* n = t.get(key);
  if (!n) return def;
  if (auto i = n->value<int64_t>()) {
    if (*i <= 0) throw ConfigError(fmt::format("{}.{}: must be positive", where(file, *n, ctx), key));
    return static_cast<double>(*i);
  }
  if (auto f = n->value<double>()) {
    if (*f <= 0) throw ConfigError(fmt::format("{}.{}: must be positive", where(file, *n, ctx), key));
    return *f;
  }
  if (auto s = n->value<std::string>()) {
    auto d = util::parse_duration_ns(*s);
    if (d && *d > 0) return static_cast<double>(*d) / 1e9;
    if (d) throw ConfigError(fmt::format("{}.{}: must be positive", where(file, *n, ctx), key));
    throw ConfigError(fmt::format("{}.{}: {}", where(file, *n, ctx), key, util::duration_error(*s)));
  }
  throw ConfigError(fmt::format("{}.{}: expected a duration", where(file, *n, ctx), key));
}

std::string str(const std::string& file, const toml::table& t, const char* key, const std::string& ctx,
                const std::string& def) {
  const toml::node* n = t.get(key);
  if (!n) return def;
  if (auto s = n->value<std::string>()) return *s;
  throw ConfigError(fmt::format("{}.{}: expected a string", where(file, *n, ctx), key));
}

ClusterConfig from_table(const toml::table& root, const std::string& file) {
  ClusterConfig c;
  static const std::set<std::string> known = {
      "listen",        "token_file",    "balance",           "tunnels",     "timeout",
      "query_timeout", "max_queries",   "max_subscriptions", "worker",      "tls_cert",
      "tls_key",       "tls_client_ca", "worker_ca",         "worker_cert", "worker_key"};
  for (auto& [k, v] : root)
    if (!known.count(std::string(k.str())))
      throw ConfigError(fmt::format("{}: unknown key '{}'", where(file, v, ""), k.str()));
  c.listen = str(file, root, "listen", "", c.listen);
  c.token_file = str(file, root, "token_file", "", "");
  for (auto [key, val, at] : {std::tuple{"tls_cert", &c.tls.cert, &c.tls.cert_what},
                              std::tuple{"tls_key", &c.tls.key, &c.tls.key_what},
                              std::tuple{"tls_client_ca", &c.tls.client_ca, &c.tls.client_ca_what},
                              std::tuple{"worker_ca", &c.worker_ca, (std::string*)nullptr},
                              std::tuple{"worker_cert", &c.worker_cert, (std::string*)nullptr},
                              std::tuple{"worker_key", &c.worker_key, (std::string*)nullptr}})
    if (const toml::node* n = root.get(key)) {
      *val = str(file, root, key, "", "");
      if (val->empty()) throw ConfigError(fmt::format("{}{}: empty: give a file", where(file, *n, ""), key));
      if (at) *at = where(file, *n, key);
    }
  if (const toml::node* n = root.get("balance")) {
    auto s = n->value<std::string>();
    auto sc = s ? parse_scheme(*s) : std::nullopt;
    if (!sc)
      throw ConfigError(fmt::format("{}balance: expected \"pair\" or \"5tuple\"", where(file, *n, "")));
    c.balance.known = true;
    c.balance.scheme = *sc;
  }
  if (const toml::node* n = root.get("tunnels")) {
    auto b = n->value<bool>();
    if (!b) throw ConfigError(fmt::format("{}tunnels: expected true or false", where(file, *n, "")));
    c.balance.tunnels = *b;
  }
  c.timeout_s = duration_s(file, root, "timeout", "", c.timeout_s);
  c.query_timeout_s = duration_s(file, root, "query_timeout", "", c.query_timeout_s);
  for (auto [key, field] :
       {std::pair{"max_queries", &c.max_queries}, std::pair{"max_subscriptions", &c.max_subscriptions}})
    if (const toml::node* n = root.get(key)) {
      auto i = n->value<int64_t>();
      if (!i || *i < 1 || *i > 1000)
        throw ConfigError(fmt::format("{}{}: expected 1..1000", where(file, *n, ""), key));
      *field = static_cast<int>(*i);
    }
  if (const toml::node* n = root.get("worker")) {
    const toml::array* arr = n->as_array();
    if (!arr) throw ConfigError(fmt::format("{}worker: expected [[worker]] tables", where(file, *n, "")));
    for (const toml::node& e : *arr) {
      const toml::table* t = e.as_table();
      if (!t) throw ConfigError(fmt::format("{}worker: expected [[worker]] tables", where(file, e, "")));
      std::string ctx = fmt::format("worker {}", c.workers.size());
      for (auto& [k, v] : *t)
        if (k.str() != "url" && k.str() != "token_file" && k.str() != "timeout" && k.str() != "ca" &&
            k.str() != "cert" && k.str() != "key")
          throw ConfigError(fmt::format("{}.{}: unknown key", where(file, v, ctx), k.str()));
      WorkerConfig w;
      w.url = str(file, *t, "url", ctx, "");
      if (w.url.empty()) throw ConfigError(fmt::format("{}: give its url", where(file, e, ctx)));
      w.token_file = str(file, *t, "token_file", ctx, "");
      w.timeout_s = duration_s(file, *t, "timeout", ctx, 0);
      w.ca = str(file, *t, "ca", ctx, "");
      w.cert = str(file, *t, "cert", ctx, "");
      w.key = str(file, *t, "key", ctx, "");
      c.workers.push_back(w);
    }
  }
  return c;
}

}  // namespace

ClusterConfig load_cluster_config_string(const std::string& text, const std::string& name) {
  try {
    return from_table(toml::parse(text, name), name);
  } catch (const toml::parse_error& e) {
    throw ConfigError(
        fmt::format("{}:{}:{}: {}", name, e.source().begin.line, e.source().begin.column, e.description()));
  }
}

ClusterConfig load_cluster_config(const std::string& path) {
  return load_cluster_config_string(config::read_config_file(path), path);
}

void finalize_cluster_config(ClusterConfig& c) {
  if (c.workers.empty())
    throw std::runtime_error("no workers: give --worker URL (repeatable) or [[worker]] in --config");
  for (size_t i = 0; i < c.workers.size(); ++i) {
    auto& w = c.workers[i];
    if (w.url.rfind("http://", 0) != 0 && w.url.rfind("https://", 0) != 0)
      throw std::runtime_error(
          fmt::format("worker {}: '{}' is not an http://HOST:PORT or https://HOST:PORT URL", i, w.url));
    if (w.ca.empty()) w.ca = c.worker_ca;
    if (w.cert.empty()) w.cert = c.worker_cert;
    if (w.key.empty()) w.key = c.worker_key;
    if (w.cert.empty() != w.key.empty())
      throw std::runtime_error(fmt::format("worker {}: a client certificate needs both cert and key", i));
    for (auto [what, f] : {std::pair{"ca", &w.ca}, std::pair{"cert", &w.cert}, std::pair{"key", &w.key}})
      if (!f->empty() && !std::ifstream(*f))
        throw std::runtime_error(fmt::format("worker {} {}: cannot read {}", i, what, *f));
    while (!w.url.empty() && w.url.back() == '/') w.url.pop_back();
    // The server's address alone: a path, a query or a user in it, or a port out of range, was
    // taken, and the worker was missing at every request ("no answer (Connection)").
    const std::string auth = w.url.substr(w.url.find("://") + 3);
    if (auth.empty() || auth.find_first_of("/?#@") != std::string::npos)
      throw std::runtime_error(fmt::format(
          "worker {}: '{}': give the server's address alone (http://HOST:PORT): no path, query or user", i,
          w.url));
    if (const size_t colon = auth.rfind(':');
        colon != std::string::npos && (auth.front() != '[' || colon > auth.find(']')))
      server::parse_host_port(auth, fmt::format("worker {}", i));  // (throws for a bad port)
    if (!w.token_file.empty())
      w.token = server::read_token_file(w.token_file, fmt::format("worker {} token_file", i));
    if (w.timeout_s <= 0) w.timeout_s = c.timeout_s;
  }
  // The same worker twice would answer every packet and flow twice (and take two shares of the
  // balance): refused. URLs are compared as written, less trailing slashes (above) and the case
  // of the scheme and host; another name of the same host is not recognised.
  std::map<std::string, size_t> seen;
  for (size_t i = 0; i < c.workers.size(); ++i) {
    std::string key = c.workers[i].url;
    size_t host_end = key.find('/', key.find("://") + 3);
    for (size_t k = 0; k < std::min(host_end, key.size()); ++k)
      key[k] = static_cast<char>(std::tolower(static_cast<unsigned char>(key[k])));
    auto [it, fresh] = seen.emplace(key, i);
    if (!fresh)
      throw std::runtime_error(fmt::format("worker {}: '{}' is worker {} again (each worker once)", i,
                                           c.workers[i].url, it->second));
  }
  c.balance.workers = static_cast<uint32_t>(c.workers.size());
  if (!c.token_file.empty()) c.token = server::read_token_file(c.token_file, "token_file");
  server::require_token_off_loopback(c.listen, c.token, "listen", "a token_file");
}

}  // namespace tmach::cluster
