// tm stats: what a store holds, from its catalog (names and sidecar headers only).
#include <fmt/format.h>

#include <iostream>
#include <map>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cmdline/options.h"
#include "server/service.h"
#include "server/store_stats.h"
#include "store/catalog.h"
#include "util/json_text.h"
#include "util/timespec.h"
#include "util/units.h"

namespace tmach::cli {

Runner add_stats(CLI::App& app) {
  struct Opts {
    std::string store, format = "text";
    bool json = false, layers = false, require_all = false;
    server::ClientOptions server;
  };
  auto o = std::make_shared<Opts>();
  auto where_of = [](const Opts& x) { return x.server.url.empty() ? x.store : x.server.url; };
  app.add_option("-s,--store", o->store, "store directory");
  add_server_options(app, o->server, false, ": its live counters too");
  app.add_option("--format", o->format,
                 "text; json (the store's figures, and a tm serve's live counters); csv (one line per "
                 "class); api (the whole document GET /api/v1/stats answers: API counters, a front-end's "
                 "workers)")
      ->check(CLI::IsMember({"text", "json", "csv", "api"}));
  app.add_flag("--json", o->json, "the same as --format json");
  app.add_flag("--require-all", o->require_all,
               "--server is a tm frontend: fail unless every worker answers");
  app.add_flag("--layers", o->layers,
               "packets per layer type: IPv4/IPv6, ARP, other EtherTypes, tunnels, undecoded (--store only)");
  return [o, where_of]() -> int {
    if (o->json) o->format = "json";
    if (o->layers && !o->server.url.empty()) throw std::runtime_error("--layers needs --store");
    std::unique_ptr<server::Service> svc = open_service(o->store, o->server);
    nlohmann::json all = svc->stats({}).body;
    // A tm frontend's workers that did not answer ({url: why}; "down", URLs only, from an older
    // one): the totals are without them. Named as a packet query names them; --require-all, or
    // none answering, fails.
    nlohmann::json missing = nlohmann::json::object();
    if (all.contains("missing") && all["missing"].is_object())
      missing = all["missing"];
    else if (all.contains("down") && all["down"].is_array())
      for (auto& u : all["down"])
        if (u.is_string()) missing[u.get<std::string>()] = "down";
    std::string reasons;
    for (auto& [u, r] : missing.items())
      reasons += fmt::format("{}{}: {}", reasons.empty() ? "" : "; ", u,
                             r.is_string() ? r.get<std::string>() : util::json_text(r));
    if (!missing.empty() && all.contains("workers") && all["workers"].is_array() &&
        missing.size() >= all["workers"].size())
      throw std::runtime_error(fmt::format("{}: no worker answered: {}", where_of(*o), reasons));
    if (!missing.empty() && o->require_all)
      throw std::runtime_error(fmt::format("--require-all: {} of {} workers did not answer: {}",
                                           missing.size(), all["workers"].size(), reasons));
    if (!missing.empty())
      std::cerr << "tm stats: warning: " << server::missing_workers_warning(reasons) << "\n";
    if (o->format == "api") {
      std::cout << util::json_text(all, 2) << "\n";
      return 0;
    }
    // The store's part (server/store_stats.h: one aggregation for --json, the table, the daemon),
    // the same whether asked of the store or of a tm serve; a tm serve adds its live counters.
    nlohmann::json j = std::move(all["store"]);
    if (!j.is_object() || !j.contains("total") || !j.contains("classes"))
      throw std::runtime_error(where_of(*o) + " answered stats without a store (no worker answered?)");
    if (!missing.empty()) j["missing"] = missing;  // (--format json: the totals are without them)
    if (o->layers) j["layers"] = server::layers_json(store::Catalog::scan(o->store));
    if (all.contains("capture") && all["capture"].is_object()) j["capture"] = all["capture"];
    const std::string where = where_of(*o);
    if (o->format == "json") {
      std::cout << util::json_text(j, 2) << "\n";
      return 0;
    }
    auto first_last = [](const nlohmann::json& a) {
      return std::pair<uint64_t, uint64_t>{a.value("first_ns", uint64_t{0}), a.value("last_ns", uint64_t{0})};
    };
    if (o->format == "csv") {
      std::cout << "class,segments,open,bad_sidecar,packets,pcap_bytes,index_bytes,first_ns,last_ns\n";
      for (auto& [name, a] : j["classes"].items()) {
        auto [f, l] = first_last(a);
        std::cout << fmt::format("{},{},{},{},{},{},{},{},{}\n", name, a["segments"].get<uint64_t>(),
                                 a["open"].get<uint64_t>(), a["bad_sidecar"].get<uint64_t>(),
                                 a["packets"].get<uint64_t>(), a["pcap_bytes"].get<uint64_t>(),
                                 a["index_bytes"].get<uint64_t>(), f, l);
      }
      return 0;
    }
    auto span = [](const nlohmann::json& a) {
      if (!a.contains("first_ns")) return std::string("-");
      uint64_t last = a["last_ns"];
      return util::format_time(a["first_ns"]) + " .. " + (last ? util::format_time(last) : "?");
    };
    const nlohmann::json& total = j["total"];
    uint64_t pcap = total["pcap_bytes"], idx = total["index_bytes"];
    std::cout << fmt::format("store {}: {} segments, {} packets, pcap {}, indexes {} ({:.2f}% of pcap)\n",
                             where, total["segments"].get<uint64_t>(), total["packets"].get<uint64_t>(),
                             util::format_size(pcap), util::format_size(idx),
                             pcap ? 100.0 * static_cast<double>(idx) / static_cast<double>(pcap) : 0);
    std::cout << "time span: " << span(total) << "\n";
    if (!missing.empty())
      std::cout << fmt::format("without {} of {} workers (not answering): {}\n", missing.size(),
                               all["workers"].size(), reasons);
    std::cout << fmt::format("{:<14} {:>9} {:>6} {:>5} {:>12} {:>11} {:>11}  {}\n", "class", "segments",
                             "open", "bad", "packets", "pcap", "indexes", "time span");
    for (auto& [name, a] : j["classes"].items())
      std::cout << fmt::format(
          "{:<14} {:>9} {:>6} {:>5} {:>12} {:>11} {:>11}  {}\n", name, a["segments"].get<uint64_t>(),
          a["open"].get<uint64_t>(), a["bad_sidecar"].get<uint64_t>(), a["packets"].get<uint64_t>(),
          util::format_size(a["pcap_bytes"]), util::format_size(a["index_bytes"]), span(a));
    const uint64_t damaged = total.value("damaged", uint64_t{0});  // (an older server sends none)
    if (total["open"].get<uint64_t>() > damaged)
      std::cout << "open segments (being written, or left by a crash) are counted without their packets\n";
    if (j.contains("damaged_segments"))
      for (auto& d : j["damaged_segments"])
        std::cout << fmt::format(
            "damaged (counted as open; not indexed: queries scan its {} packets before offset {}, the {} "
            "after it are not read): {}: {}\n",
            d.value("packets_before", uint64_t{0}), d.value("offset", uint64_t{0}),
            util::format_size(d.value("bytes_unread", uint64_t{0})), d.value("segment", ""),
            d.value("damage", ""));
    if (j.contains("flows")) {
      const auto& f = j["flows"];
      std::cout << fmt::format("flow records: {} in {} files ({} being written), {}, reach {}\n",
                               f["records"].get<uint64_t>(), f["files"].get<uint64_t>(),
                               f["open_files"].get<uint64_t>(), util::format_size(f["bytes"]), span(f));
    }
    if (j.contains("capture")) {
      const auto& c = j["capture"];
      std::cout << fmt::format("live capture: {} packets, {} connections active, kernel drops {}\n",
                               c.value("packets", uint64_t{0}), c.value("connections_active", uint64_t{0}),
                               c["kernel"].value("dropped", uint64_t{0}));
    }
    for (auto& f : j["foreign_files"])
      std::cout << "foreign (not written by tm, left alone): " << f.get<std::string>() << "\n";
    if (j.contains("missing_segments"))
      for (auto& f : j["missing_segments"])
        std::cout << "missing (its sidecar is there, its packets are lost): " << f.get<std::string>() << "\n";
    if (j.contains("bad_segments"))  // (an older server sends none)
      for (auto& b : j["bad_segments"])
        std::cout << "bad sidecar (the segment is read whole by queries; its packets are not counted above): "
                  << b.value("segment", "") << ": " << b.value("problem", "") << "\n";
    if (o->layers) {
      std::cout << "packets per layer type (a packet counts once per kind of layer it carries):\n";
      for (auto& [k, v] : j["layers"].items())
        std::cout << fmt::format("  {:<24} {:>12}\n", k, v.get<uint64_t>());
    }
    return 0;
  };
}

}  // namespace tmach::cli
