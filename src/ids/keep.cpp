#include "ids/keep.h"

#include <fmt/format.h>

#include <algorithm>
#include <vector>

#include "flow/flow_query.h"
#include "flow/flow_record.h"
#include "util/timespec.h"

namespace tmach::ids {

Keeper::Keeper(server::Service& svc, KeepOptions o, server::Warn warn)
    : svc_(svc), o_(std::move(o)), warn_(std::move(warn)) {}

std::string Keeper::start() {
  nlohmann::json st = svc_.stats({}).body;
  if (st.is_object() && st.contains("live") && st["live"] == false)
    throw std::runtime_error(
        "--keep: the server records no live capture (tm serve without -i): there is nothing to keep");
  // The classes as the server reports them: {"name": {"cutoff": "none" | bytes, ...}} (a tm
  // frontend: its workers' summed, the cutoff as the first worker has it).
  nlohmann::json classes = nlohmann::json::object();
  if (st.is_object() && st.contains("capture") && st["capture"].is_object() &&
      st["capture"].contains("classes") && st["capture"]["classes"].is_object())
    classes = st["capture"]["classes"];
  auto uncut = [](const nlohmann::json& c) {
    return c.is_object() && c.contains("cutoff") && c["cutoff"] == "none";
  };
  std::string listed;
  for (auto& [name, c] : classes.items())
    listed += fmt::format("{}{} (cutoff {})", listed.empty() ? "" : ", ", name,
                          c.is_object() && c.contains("cutoff") ? c["cutoff"].dump() : "?");
  if (o_.scope == KeepOptions::Scope::kConn) return o_.cls;
  if (!o_.cls.empty()) {
    if (classes.empty()) {
      warn_(fmt::format("--keep: the server does not report its classes: '{}' taken as given", o_.cls));
    } else if (!classes.contains(o_.cls)) {
      throw std::runtime_error(
          fmt::format("--keep-class: the server has no class '{}' (its classes: {})", o_.cls, listed));
    } else if (!uncut(classes[o_.cls])) {
      warn_(
          fmt::format("--keep-class: class '{}' has a cutoff ({}): the kept hosts' connections are still cut",
                      o_.cls, classes[o_.cls].value("cutoff", nlohmann::json()).dump()));
    }
    return o_.cls;
  }
  for (auto& [name, c] : classes.items())
    if (uncut(c)) {
      o_.cls = name;  // the server lists them by name: the first of those without cutoff
      return o_.cls;
    }
  throw std::runtime_error(fmt::format(
      "--keep: the server has no class without cutoff to keep the suspects in (its classes: {}); configure "
      "one in its configuration, e.g. [[class]] name = \"suspect\" filter = \"ip proto 253\" cutoff = "
      "\"none\" (a filter that selects nothing else), or name one with --keep-class",
      listed.empty() ? "none reported" : listed));
}

std::string Keeper::connection_filter(const Alert& a) {
  flow::FlowRow r;
  r.rec = flow::FlowRecord{};
  r.rec.orig = a.src;
  r.rec.resp = a.dst;
  r.rec.orig_port = a.src_port;
  r.rec.resp_port = a.dst_port;
  r.rec.version = a.src.is_v4() ? 4 : 6;
  std::vector<flow::FlowRow> rows;
  if (a.proto) {
    r.rec.proto = a.proto;
    rows.push_back(r);
  } else {
    for (uint8_t p : {packet::kProtoTcp, packet::kProtoUdp, packet::kProtoSctp}) {
      r.rec.proto = p;
      rows.push_back(r);
    }
  }
  return flow::connections_filter(rows, false);  // (a connection control's filter: no packet check)
}

bool Keeper::due(const std::map<std::string, Held>& m, const std::string& k, Clock::time_point now) const {
  auto it = m.find(k);
  return it == m.end() || now - it->second.asked >= std::chrono::nanoseconds(o_.keep_ns / 10);
}

// A list that cannot be had (an error, a front-end without some worker), or a front-end's (an
// entry names the workers that have it: not known to be all), stands for nothing: an object.
nlohmann::json Keeper::class_list() {
  try {
    server::Reply r = svc_.class_list();
    return r.missing_warning().empty() ? std::move(r.body) : nlohmann::json::object();
  } catch (const std::exception&) {
    return nlohmann::json::object();
  }
}

std::optional<std::string> Keeper::standing(const nlohmann::json& listed, const std::string& host) const {
  if (!listed.is_array()) return std::nullopt;
  const uint64_t want = util::now_ns() + o_.keep_ns;
  for (const auto& e : listed) {
    if (!e.is_object() || e.value("host", std::string()) != host ||
        e.value("class", std::string()) != o_.cls || e.contains("workers"))
      continue;
    const auto exp = e.find("expires_ns");
    if (exp == e.end() || !exp->is_number_integer() || exp->get<int64_t>() < 0) return std::nullopt;
    if (exp->get<uint64_t>() == 0) return std::string("never");
    if (exp->get<uint64_t>() >= want) return e.value("expires", util::format_time(exp->get<uint64_t>()));
  }
  return std::nullopt;
}

nlohmann::json Keeper::keep(const Alert& a, Clock::time_point now) {
  nlohmann::json kept = {{"scope", o_.scope == KeepOptions::Scope::kHost ? "host" : "conn"}};
  std::vector<std::string> errors;
  auto failed = [&](const std::string& what, const std::exception& e) {
    ++stats_.failed;
    auto* se = dynamic_cast<const server::ServiceError*>(&e);
    std::string msg = se ? fmt::format("{}: {} ({})", what, e.what(), se->status) : what + ": " + e.what();
    errors.push_back(msg);
    warn_(fmt::format("{}: --keep: {}", evidence_name(a), msg));
  };
  uint64_t requests = 0;
  if (o_.scope == KeepOptions::Scope::kHost) {
    std::vector<std::string> hosts = {a.src.str()};
    if (a.has_tuple && a.dst.str() != hosts[0]) hosts.push_back(a.dst.str());
    nlohmann::json done = nlohmann::json::array();
    std::string until;
    nlohmann::json listed;  // the server's class list, asked once for the alert's hosts
    for (auto& h : hosts) {
      if (due(hosts_, h, now)) {
        try {
          if (listed.is_null()) {
            ++requests;
            listed = class_list();
          }
          if (std::optional<std::string> u = standing(listed, h)) {
            hosts_[h] = Held{now, *u};
            done.push_back(h);
            until = std::max(until, *u);
            continue;
          }
          ++requests;
          server::Reply r = svc_.class_set({h, o_.cls, fmt::format("{}s", o_.keep_ns / 1000000000ull)});
          std::string u = r.body.is_object() && r.body.contains("expires") && r.body["expires"].is_string()
                              ? r.body["expires"].get<std::string>()
                              : util::format_time(util::now_ns() + o_.keep_ns);
          if (!hosts_.count(h)) ++stats_.hosts_raised;
          hosts_[h] = Held{now, u};
          ++stats_.class_requests;
        } catch (const std::exception& e) {
          failed(fmt::format("host {} into class {}", h, o_.cls), e);
          continue;
        }
      }
      done.push_back(h);
      until = std::max(until, hosts_[h].until);
    }
    kept["hosts"] = done;
    kept["class"] = o_.cls;
    kept["until"] = until.empty() ? nlohmann::json(nullptr) : nlohmann::json(until);
  } else {
    kept["hosts"] = nlohmann::json::array();
  }
  // The live connection: its cutoff suspended, so the rest of it is recorded in full.
  if (a.has_tuple) {
    std::string f = connection_filter(a);
    kept["filter"] = f;
    if (due(conns_, f, now)) {
      try {
        ++requests;
        server::Reply r = svc_.control({f, 1, -1});
        conns_[f] = Held{now, ""};
        ++stats_.controls;
        const bool counted = r.body.is_object() && r.body.contains("connections") &&
                             r.body["connections"].is_number_integer() &&
                             r.body["connections"].get<int64_t>() >= 0;
        kept["connections_suspended"] = counted ? r.body["connections"].get<uint64_t>() : uint64_t{0};
      } catch (const std::exception& e) {
        failed("suspending the connection's cutoff", e);
      }
    }
  } else if (o_.scope == KeepOptions::Scope::kConn) {
    errors.push_back("a notice about a host names no connection: nothing kept (--scope host keeps the host)");
  }
  kept["requests"] = requests;  // 0: kept already by an earlier alert
  if (!errors.empty())
    kept["error"] = errors.size() == 1 ? nlohmann::json(errors[0]) : nlohmann::json(errors);
  return kept;
}

}  // namespace tmach::ids
