#include "config/config.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <toml++/toml.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <map>
#include <set>
#include <tuple>

#include "conn/conn_table.h"
#include "packet/bpf.h"
#include "store/layout.h"
#include "store/ring.h"
#include "util/units.h"

namespace tmach::config {
namespace {

struct Ctx {
  std::string file;
  [[noreturn]] void fail(const toml::node* n, const std::string& key, const std::string& why) const {
    int line = n ? static_cast<int>(n->source().begin.line) : 0;
    throw ConfigError(fmt::format("{}:{}: {}: {}", file, line, key, why));
  }
};

// No string of the file (no key either) may hold a NUL (\u0000): every consumer (libpcap's
// filter compiler, paths, messages) would take it for the string's end, and use the rest of it
// as if it were the whole (a class filter "tcp\u0000 and port 22" would take all TCP).
void check_no_nul(const Ctx& ctx, const toml::node& n, const std::string& where) {
  if (const auto* s = n.as_string()) {
    if (s->get().find('\0') != std::string::npos)
      ctx.fail(&n, where, "a string may not contain a NUL (\\u0000)");
  } else if (const auto* t = n.as_table()) {
    for (auto&& [k, v] : *t) {
      std::string name = where.empty() ? std::string(k.str()) : where + "." + std::string(k.str());
      if (k.str().find('\0') != std::string_view::npos)
        ctx.fail(&v, where.empty() ? "(a key)" : where, "a key may not contain a NUL (\\u0000)");
      check_no_nul(ctx, v, name);
    }
  } else if (const auto* a = n.as_array()) {
    for (size_t i = 0; i < a->size(); ++i) check_no_nul(ctx, *a->get(i), fmt::format("{}[{}]", where, i));
  }
}

void check_known(const Ctx& ctx, const toml::table& t, const std::string& where,
                 std::initializer_list<const char*> known) {
  for (auto&& [k, v] : t) {
    bool ok = false;
    for (const char* kn : known) ok |= (k.str() == kn);
    if (!ok)
      ctx.fail(&v, where.empty() ? std::string(k.str()) : where + "." + std::string(k.str()), "unknown key");
  }
}

// A size or a duration: an integer (bytes, seconds: times `unit`) or a string for `parse`.
template <class Parse, class Why>
uint64_t get_amount(const Ctx& ctx, const toml::table& t, const char* key, const std::string& where,
                    uint64_t def, uint64_t unit, Parse parse, Why why, const char* what) {
  const toml::node* n = t.get(key);
  if (!n) return def;
  std::string full = where + "." + key;
  if (n->type() == toml::node_type::integer) {
    int64_t i = *n->value<int64_t>();
    if (i < 0) ctx.fail(n, full, "must not be negative");
    if (static_cast<uint64_t>(i) > UINT64_MAX / unit) ctx.fail(n, full, fmt::format("{} is too large", i));
    return static_cast<uint64_t>(i) * unit;
  }
  if (n->type() == toml::node_type::string) {
    auto s = n->value<std::string>();
    auto v = parse(*s);
    if (!v) ctx.fail(n, full, why(*s));
    return *v;
  }
  ctx.fail(n, full,
           fmt::format("expected a {} such as \"{}\" or a number of {}", what, unit == 1 ? "64m" : "5m",
                       unit == 1 ? "bytes" : "seconds"));
}

uint64_t get_size(const Ctx& ctx, const toml::table& t, const char* key, const std::string& where,
                  uint64_t def) {
  return get_amount(ctx, t, key, where, def, 1, util::parse_size, util::size_error, "size");
}

uint64_t get_duration(const Ctx& ctx, const toml::table& t, const char* key, const std::string& where,
                      uint64_t def) {
  return get_amount(ctx, t, key, where, def, 1000000000ull, util::parse_duration_ns, util::duration_error,
                    "duration");
}

int64_t get_int(const Ctx& ctx, const toml::table& t, const char* key, const std::string& where, int64_t def,
                int64_t lo, int64_t hi) {
  const toml::node* n = t.get(key);
  if (!n) return def;
  auto i = n->value<int64_t>();
  if (!i || n->type() != toml::node_type::integer) ctx.fail(n, where + "." + key, "expected an integer");
  if (*i < lo || *i > hi) ctx.fail(n, where + "." + key, fmt::format("must be between {} and {}", lo, hi));
  return *i;
}

std::string get_string(const Ctx& ctx, const toml::table& t, const char* key, const std::string& where,
                       const std::string& def) {
  const toml::node* n = t.get(key);
  if (!n) return def;
  auto s = n->value<std::string>();
  if (!s || n->type() != toml::node_type::string) ctx.fail(n, where + "." + key, "expected a string");
  return *s;
}

// A disk budget: a size as get_size, or a string "N%" of the store's file system.
void get_budget(const Ctx& ctx, const toml::table& t, const char* key, const std::string& where,
                uint64_t& bytes, double& percent) {
  const toml::node* n = t.get(key);
  if (!n) return;
  if (n->type() == toml::node_type::string) {
    auto s = *n->value<std::string>();
    if (!parse_disk_budget(s, bytes, percent)) ctx.fail(n, where + "." + key, disk_budget_error(s));
    return;
  }
  bytes = get_size(ctx, t, key, where, bytes);
  percent = 0;
}

bool get_bool(const Ctx& ctx, const toml::table& t, const char* key, const std::string& where, bool def) {
  const toml::node* n = t.get(key);
  if (!n) return def;
  if (n->type() != toml::node_type::boolean) ctx.fail(n, where + "." + key, "expected true or false");
  return *n->value<bool>();
}

const toml::table* sub_table(const Ctx& ctx, const toml::table& root, const char* key) {
  const toml::node* n = root.get(key);
  if (!n) return nullptr;
  if (!n->is_table()) ctx.fail(n, key, "expected a table");
  return n->as_table();
}

constexpr uint64_t kMaxSegment = 3ull << 30;  // record offsets are 32-bit

int line_of(const toml::table& t, const char* key) {
  const toml::node* n = t.get(key);
  return static_cast<int>((n ? n->source() : t.source()).begin.line);
}

// Classes that compete for the same packets. A class is tried before another of lower
// precedence, and before a later one of the same precedence (file order). So a second
// catch-all, or a filter written twice, never gets a packet: an error naming both. Two
// different filters of equal precedence may both match a packet, which then goes to the one
// written first: a warning naming both (give them different precedences to say which wins).
void check_overlaps(const Ctx& ctx, Config& c, const std::vector<const toml::table*>& tables) {
  auto norm = [](const std::string& f) {  // white space runs as one space
    std::string out;
    bool space = false;
    for (char ch : f) {
      if (std::isspace(static_cast<unsigned char>(ch))) {
        space = !out.empty();
        continue;
      }
      if (space) out += ' ';
      space = false;
      out += ch;
    }
    return out;
  };
  auto named = [&](size_t k) {
    return fmt::format("class '{}' (line {})", c.classes[k].name, line_of(*tables[k], "name"));
  };
  for (size_t j = 1; j < c.classes.size(); ++j)
    for (size_t i = 0; i < j; ++i) {
      const ClassConfig &a = c.classes[i], &b = c.classes[j];
      if (norm(a.filter) == norm(b.filter)) {
        size_t first = a.precedence >= b.precedence ? i : j, never = first == i ? j : i;
        const toml::table& t = *tables[never];
        ctx.fail(t.get("filter") ? t.get("filter") : t.get("name"),
                 fmt::format("class '{}'", c.classes[never].name),
                 fmt::format(
                     "{}: {} takes all its packets first",
                     a.filter.empty() ? "a second catch-all (no filter)" : "the same filter as another class",
                     named(first)));
      }
      if (a.precedence == b.precedence && !a.filter.empty() && !b.filter.empty()) {
        std::string w = fmt::format(
            "{}:{}: {} and {} have the same precedence ({}) and their filters may both match a packet, "
            "which then goes to '{}' (file order): give them different precedences to choose",
            ctx.file, line_of(*tables[j], "name"), named(i), named(j), a.precedence, a.name);
        c.warnings.push_back(w);
        spdlog::warn("{}", w);
      }
    }
}

Config from_table(const toml::table& root, const std::string& file) {
  Ctx ctx{file};
  check_no_nul(ctx, root, "");
  Config c;
  c.source_file = file;
  int threads_line = 0;  // capture.threads (0: not set)
  check_known(ctx, root, "", {"store", "capture", "connections", "class", "flows", "server"});
  if (auto* s = sub_table(ctx, root, "server")) {
    check_known(ctx, *s, "server",
                {"listen", "token_file", "max_queries", "max_subscriptions", "query_timeout", "user",
                 "tls_cert", "tls_key", "tls_client_ca", "status_interval"});
    c.listen = get_string(ctx, *s, "listen", "server", c.listen);
    if (const size_t colon = c.listen.rfind(':'); colon == std::string::npos) {
      ctx.fail(s->get("listen"), "server.listen", "expected HOST:PORT");
    } else {
      // (tm record, which reads [server] but serves nothing, took a bad port silently)
      const std::string port = c.listen.substr(colon + 1);
      if (!util::parse_port(port)) ctx.fail(s->get("listen"), "server.listen", util::port_error(port));
    }
    c.token_file = get_string(ctx, *s, "token_file", "server", c.token_file);
    // Where they were given, for tm serve's errors about them (their values are checked there).
    for (auto [key, at] : {std::pair{"listen", &c.listen_at}, std::pair{"token_file", &c.token_file_at}})
      if (const toml::node* n = s->get(key))
        *at = fmt::format("{}:{}: server.{}", ctx.file, n->source().begin.line, key);
    c.max_queries = static_cast<int>(get_int(ctx, *s, "max_queries", "server", c.max_queries, 1, 1024));
    c.max_subscriptions =
        static_cast<int>(get_int(ctx, *s, "max_subscriptions", "server", c.max_subscriptions, 0, 1024));
    c.query_timeout_ns = get_duration(ctx, *s, "query_timeout", "server", c.query_timeout_ns);
    c.user = get_string(ctx, *s, "user", "server", c.user);
    // TLS files: read (and checked) by tm serve, whose errors name them as here.
    for (auto [key, val, at] : {std::tuple{"tls_cert", &c.tls_cert, &c.tls_cert_at},
                                std::tuple{"tls_key", &c.tls_key, &c.tls_key_at},
                                std::tuple{"tls_client_ca", &c.tls_client_ca, &c.tls_client_ca_at}})
      if (const toml::node* n = s->get(key)) {
        *val = get_string(ctx, *s, key, "server", "");
        if (val->empty()) ctx.fail(n, std::string("server.") + key, "empty: give a file");
        *at = fmt::format("{}:{}: server.{}", ctx.file, n->source().begin.line, key);
      }
    c.status_interval_ns = get_duration(ctx, *s, "status_interval", "server", c.status_interval_ns);
  }
  if (auto* s = sub_table(ctx, root, "flows")) {
    check_known(ctx, *s, "flows", {"enabled", "disk_budget", "max_age", "file_size", "interim_interval"});
    c.flows = get_bool(ctx, *s, "enabled", "flows", c.flows);
    get_budget(ctx, *s, "disk_budget", "flows", c.flow_disk_budget, c.flow_disk_budget_percent);
    c.flow_max_age_ns = get_duration(ctx, *s, "max_age", "flows", c.flow_max_age_ns);
    c.flow_file_size = get_size(ctx, *s, "file_size", "flows", c.flow_file_size);
    c.flow_interim_ns = get_duration(ctx, *s, "interim_interval", "flows", c.flow_interim_ns);
    if (c.flow_interim_ns == 0)
      ctx.fail(s->get("interim_interval"), "flows.interim_interval", "must be positive");
  }
  if (auto* s = sub_table(ctx, root, "store")) {
    check_known(ctx, *s, "store",
                {"path", "segment_size", "disk_budget", "directory_every", "directory_bytes",
                 "fsync_interval", "fsync_bytes", "when_ring_full", "max_age"});
    c.store = get_string(ctx, *s, "path", "store", c.store);
    c.segment_size = get_size(ctx, *s, "segment_size", "store", c.segment_size);
    if (c.segment_size < store::kMinSegmentSize || c.segment_size > kMaxSegment)
      ctx.fail(s->get("segment_size"), "store.segment_size", "must be between 4k and 3g");
    get_budget(ctx, *s, "disk_budget", "store", c.disk_budget, c.disk_budget_percent);
    c.max_age_ns = get_duration(ctx, *s, "max_age", "store", c.max_age_ns);
    c.directory_every =
        static_cast<uint32_t>(get_int(ctx, *s, "directory_every", "store", c.directory_every, 1, 1 << 30));
    c.directory_bytes = get_size(ctx, *s, "directory_bytes", "store", c.directory_bytes);
    c.fsync_interval_ns = get_duration(ctx, *s, "fsync_interval", "store", c.fsync_interval_ns);
    c.fsync_bytes = get_size(ctx, *s, "fsync_bytes", "store", c.fsync_bytes);
    std::string wf = get_string(ctx, *s, "when_ring_full", "store", "auto");
    if (wf == "auto")
      c.when_full = WhenFull::kAuto;
    else if (wf == "drop")
      c.when_full = WhenFull::kDrop;
    else if (wf == "wait")
      c.when_full = WhenFull::kWait;
    else
      ctx.fail(s->get("when_ring_full"), "store.when_ring_full", "expected \"auto\", \"drop\" or \"wait\"");
  }
  if (auto* s = sub_table(ctx, root, "capture")) {
    check_known(ctx, *s, "capture", {"interfaces", "buffer_size", "snaplen", "filter", "method", "threads"});
    if (const toml::node* n = s->get("interfaces")) {
      if (!n->is_array()) ctx.fail(n, "capture.interfaces", "expected an array of interface names");
      for (auto&& v : *n->as_array()) {
        auto str = v.value<std::string>();
        if (!str) ctx.fail(&v, "capture.interfaces", "expected interface names (strings)");
        c.interfaces.push_back(*str);
      }
    }
    c.capture_buffer = get_size(ctx, *s, "buffer_size", "capture", c.capture_buffer);
    if (c.capture_buffer > physical_memory())
      ctx.fail(s->get("buffer_size"), "capture.buffer_size",
               fmt::format("{} bytes is more than this machine's memory ({} bytes)", c.capture_buffer,
                           physical_memory()));
    c.snaplen = static_cast<int>(get_int(ctx, *s, "snaplen", "capture", c.snaplen, 64, 262144));
    c.capture_filter = get_string(ctx, *s, "filter", "capture", "");
    if (std::string err = packet::bpf_compile_error(c.capture_filter, 1, /*live=*/true); !err.empty())
      ctx.fail(s->get("filter"), "capture.filter", err);
    c.capture_method = get_string(ctx, *s, "method", "capture", "auto");
    if (c.capture_method != "auto" && c.capture_method != "afpacket" && c.capture_method != "libpcap")
      ctx.fail(s->get("method"), "capture.method", "expected \"auto\", \"afpacket\" or \"libpcap\"");
    c.capture_threads =
        static_cast<int>(get_int(ctx, *s, "threads", "capture", c.capture_threads, 1, kMaxCaptureThreads));
    if (s->get("threads")) threads_line = line_of(*s, "threads");
  }
  if (auto* s = sub_table(ctx, root, "connections")) {
    check_known(
        ctx, *s, "connections",
        {"max", "tcp_timeout", "tcp_closed_timeout", "udp_timeout", "other_timeout", "keep_tcp_control"});
    // (at most what the table takes, 2^30: it kept that many of a larger value)
    c.max_connections = static_cast<size_t>(
        get_int(ctx, *s, "max", "connections", static_cast<int64_t>(c.max_connections), 16, 1ll << 30));
    // Its table, mapped at the start and paged in as connections open: more than the machine's
    // memory was a bare std::bad_alloc once the store was made.
    const uint64_t table = conn::ConnTable::max_bytes(c.max_connections);
    if (table > physical_memory())
      ctx.fail(s->get("max"), "connections.max",
               fmt::format("{} connections take up to {} bytes of connection table, more than this machine's "
                           "memory ({} bytes)",
                           c.max_connections, table, physical_memory()));
    c.timeouts.tcp_ns = get_duration(ctx, *s, "tcp_timeout", "connections", c.timeouts.tcp_ns);
    c.timeouts.closed_ns = get_duration(ctx, *s, "tcp_closed_timeout", "connections", c.timeouts.closed_ns);
    c.timeouts.udp_ns = get_duration(ctx, *s, "udp_timeout", "connections", c.timeouts.udp_ns);
    c.timeouts.other_ns = get_duration(ctx, *s, "other_timeout", "connections", c.timeouts.other_ns);
    c.keep_tcp_control = get_bool(ctx, *s, "keep_tcp_control", "connections", c.keep_tcp_control);
  }
  if (const toml::node* n = root.get("class")) {
    if (!n->is_array_of_tables()) ctx.fail(n, "class", "expected [[class]] tables");
    std::vector<const toml::table*> tables;
    uint64_t ram = 0;
    for (auto&& v : *n->as_array()) {
      const toml::table& t = *v.as_table();
      ClassConfig cc;
      cc.name = get_string(ctx, t, "name", "class", "");
      std::string where = cc.name.empty() ? "class" : fmt::format("class '{}'", cc.name);
      check_known(ctx, t, where,
                  {"name", "filter", "cutoff", "ram_budget", "disk_budget", "max_age", "precedence"});
      if (cc.name.empty())  // (at the name's line when it is there, empty)
        ctx.fail(t.get("name") ? t.get("name") : &v, "class.name", "every [[class]] needs a name");
      if (const char* what = store::reserved_entry(cc.name))
        ctx.fail(t.get("name"), where + ".name",
                 fmt::format("'{}' is reserved: the store's own entry of that name holds {}", cc.name, what));
      for (char ch : cc.name)
        if (!(std::isalnum(static_cast<unsigned char>(ch)) || ch == '-' || ch == '_'))
          ctx.fail(t.get("name"), where + ".name", "use letters, digits, '-' and '_' only");
      // (the name of its directory in the store: a longer one failed once the store was made)
      if (cc.name.size() > 200)
        ctx.fail(t.get("name"), where + ".name",
                 fmt::format("{} characters: at most 200 (it names the class's directory)", cc.name.size()));
      for (size_t j = 0; j < tables.size(); ++j)
        if (c.classes[j].name == cc.name)
          ctx.fail(t.get("name"), where + ".name",
                   fmt::format("defined twice (first at line {})", line_of(*tables[j], "name")));
      cc.filter = get_string(ctx, t, "filter", where, "");
      if (std::string err = packet::bpf_compile_error(cc.filter); !cc.filter.empty() && !err.empty())
        ctx.fail(t.get("filter"), where + ".filter", fmt::format("'{}': {}", cc.filter, err));
      cc.cutoff = get_size(ctx, t, "cutoff", where, cc.cutoff);
      cc.ram_budget = get_size(ctx, t, "ram_budget", where, cc.ram_budget);
      if (cc.ram_budget < (1u << 20) || cc.ram_budget == util::kUnlimited)
        ctx.fail(t.get("ram_budget"), where + ".ram_budget",
                 "must be at least 1m, and a size (not none: a RAM buffer is bounded)");
      // Each capture thread has its ring of the class's RAM buffer, of two chunks at least: below
      // that the buffer would take more than the budget says (when the threads are set on the
      // command line instead, cmdline/options.cpp checks).
      if (const uint64_t need = min_ram_budget(c.capture_threads); cc.ram_budget < need)
        ctx.fail(
            t.get("ram_budget") ? t.get("ram_budget") : &v, where + ".ram_budget",
            fmt::format("{} bytes is less than the {} bytes ({}) that the RAM rings of capture.threads = "
                        "{}{} take at least (two chunks of {} per capture thread): raise it or use "
                        "fewer capture threads",
                        cc.ram_budget, need, util::format_size(need), c.capture_threads,
                        threads_line ? fmt::format(" (line {})", threads_line) : std::string(),
                        util::format_size(store::BufferPool::kMinChunk)));
      ram += cc.ram_budget;
      if (ram > physical_memory())
        ctx.fail(
            t.get("ram_budget") ? t.get("ram_budget") : &v, where + ".ram_budget",
            fmt::format("the classes' RAM rings would take {} bytes, more than this machine's memory ({})",
                        ram, physical_memory()));
      get_budget(ctx, t, "disk_budget", where, cc.disk_budget, cc.disk_budget_percent);
      cc.max_age_ns = get_duration(ctx, t, "max_age", where, cc.max_age_ns);
      cc.precedence = static_cast<int>(get_int(ctx, t, "precedence", where, 0, -1000000, 1000000));
      c.classes.push_back(cc);
      tables.push_back(&t);
    }
    check_overlaps(ctx, c, tables);
  }
  return c;
}

}  // namespace

bool parse_disk_budget(const std::string& s, uint64_t& bytes, double& percent) {
  if (!s.empty() && s.back() == '%') {
    std::string num = s.substr(0, s.size() - 1);
    size_t used = 0;
    double p = 0;
    try {
      p = std::stod(num, &used);
    } catch (...) {
      return false;
    }
    if (used != num.size() || num.empty() || !std::isfinite(p) || p <= 0 || p > 100) return false;
    percent = p;
    bytes = UINT64_MAX;
    return true;
  }
  auto v = util::parse_size(s);
  // (0 deleted every segment as it was sealed, and so did a budget of a few KiB; 0% is refused too)
  if (!v || *v < store::kMinDiskBudget) return false;
  bytes = *v;
  percent = 0;
  return true;
}

std::string disk_budget_error(const std::string& s) {
  if (util::size_overflows(s)) return util::size_error(s);
  if (auto v = util::parse_size(s); v && *v < store::kMinDiskBudget)
    return fmt::format(
        "'{}' would keep nothing{}: give a size (500g), a share of the file system (80%) or none", s,
        *v ? " (at least 64k: a few segments of 4k, the smallest, with their sidecars)" : "");
  return fmt::format("'{}' is not a size or a share of the file system (examples: 500g, none, 80%)", s);
}

uint64_t disk_budget_bytes(uint64_t bytes, double percent, const std::string& path) {
  if (percent <= 0) return bytes;
  std::error_code ec;
  std::filesystem::path p = std::filesystem::absolute(path.empty() ? "." : path, ec);
  if (ec) p = path.empty() ? "." : path;
  while (!std::filesystem::exists(p, ec) && p.has_parent_path() && p.parent_path() != p) p = p.parent_path();
  struct statvfs st {};
  if (statvfs(p.c_str(), &st) != 0)
    throw ConfigError(fmt::format("disk_budget {}%: cannot measure the file system of '{}': {}", percent,
                                  p.string(), std::strerror(errno)));
  double total = static_cast<double>(st.f_blocks) * static_cast<double>(st.f_frsize);
  double share = total * percent / 100.0;
  uint64_t budget = share >= 0x1p64 ? UINT64_MAX : static_cast<uint64_t>(share);
  if (budget < store::kMinDiskBudget) {  // (as a size below it is refused: it would keep nothing)
    spdlog::warn(
        "disk budget {}% of the file system of {} is {} bytes: raised to {}, the least that keeps a "
        "few segments",
        percent, p.string(), budget, util::format_size(store::kMinDiskBudget));
    budget = store::kMinDiskBudget;
  }
  spdlog::info("disk budget {}% of the file system of {} ({}): {} bytes, measured now, at start", percent,
               p.string(), util::format_size(static_cast<uint64_t>(total)), budget);
  return budget;
}

uint64_t min_ram_budget(int capture_threads) {
  return store::BufferPool::min_bytes(static_cast<size_t>(std::max(capture_threads, 1)));
}

uint64_t physical_memory() {
  long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
  return pages > 0 && page > 0 ? static_cast<uint64_t>(pages) * static_cast<uint64_t>(page) : UINT64_MAX;
}

Config load_config_string(const std::string& text, const std::string& name) {
  toml::table root;
  try {
    root = toml::parse(text, name);
  } catch (const toml::parse_error& e) {
    throw ConfigError(
        fmt::format("{}:{}:{}: {}", name, e.source().begin.line, e.source().begin.column, e.description()));
  }
  return from_table(root, name);
}

std::string read_config_file(const std::string& path) {
  constexpr size_t kMaxBytes = 16u << 20;
  struct stat st;
  if (::stat(path.c_str(), &st) != 0)
    throw ConfigError(fmt::format("{}: cannot read: {}", path, std::strerror(errno)));
  if (S_ISDIR(st.st_mode)) throw ConfigError(fmt::format("{}: is a directory, not a config file", path));
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw ConfigError(fmt::format("{}: cannot read: {}", path, std::strerror(errno)));
  std::string text;
  char buf[65536];
  for (;;) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int err = errno;
      ::close(fd);
      throw ConfigError(fmt::format("{}: cannot read: {}", path, std::strerror(err)));
    }
    if (n == 0) break;
    text.append(buf, static_cast<size_t>(n));
    if (std::memchr(buf, 0, static_cast<size_t>(n))) break;  // (said below: /dev/zero never ends)
    if (text.size() > kMaxBytes) {
      ::close(fd);
      throw ConfigError(fmt::format("{}: larger than 16 MiB: not a config file", path));
    }
  }
  ::close(fd);
  if (const size_t nul = text.find('\0'); nul != std::string::npos)
    throw ConfigError(fmt::format("{}:{}: a NUL byte: not a TOML text", path,
                                  1 + std::count(text.begin(), text.begin() + static_cast<long>(nul), '\n')));
  return text;
}

Config load_config_file(const std::string& path) {
  const std::string text = read_config_file(path);
  toml::table root;
  try {
    root = toml::parse(text, path);
  } catch (const toml::parse_error& e) {
    if (e.source().begin.line == 0) throw ConfigError(fmt::format("{}: {}", path, e.description()));
    throw ConfigError(
        fmt::format("{}:{}:{}: {}", path, e.source().begin.line, e.source().begin.column, e.description()));
  }
  return from_table(root, path);
}

void finalize_classes(Config& c) {
  std::set<std::string> names;
  for (const auto& cc : c.classes)
    if (!names.insert(cc.name).second)
      throw ConfigError(fmt::format("{}: class '{}' is defined twice",
                                    c.source_file.empty() ? "config" : c.source_file, cc.name));
  bool catch_all =
      std::any_of(c.classes.begin(), c.classes.end(), [](const auto& x) { return x.filter.empty(); });
  if (!catch_all) {
    ClassConfig d;
    d.name = names.count("default") ? "default-catchall" : "default";
    d.precedence = INT32_MIN;
    c.classes.push_back(d);
  }
  std::stable_sort(c.classes.begin(), c.classes.end(),
                   [](const ClassConfig& a, const ClassConfig& b) { return a.precedence > b.precedence; });
}

}  // namespace tmach::config
