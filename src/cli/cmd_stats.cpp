// tm stats: what a store holds, from its catalog (names and sidecar headers only).
#include <fmt/format.h>

#include <iostream>
#include <map>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cmdline/options.h"
#include "server/store_stats.h"
#include "store/catalog.h"
#include "util/timespec.h"
#include "util/units.h"

namespace tmach::cli {

Runner add_stats(CLI::App& app) {
  struct Opts {
    std::string store;
    bool json = false, layers = false;
    server::ClientOptions server;
  };
  auto o = std::make_shared<Opts>();
  app.add_option("-s,--store", o->store, "store directory");
  add_server_options(app, o->server, false, ": its live counters too");
  app.add_flag("--json", o->json, "JSON output");
  app.add_flag("--layers", o->layers,
               "packets per layer type: IPv4/IPv6, ARP, other EtherTypes, tunnels, undecoded");
  return [o]() -> int {
    std::unique_ptr<server::Service> svc = open_service(o->store, o->server);
    nlohmann::json all = svc->stats({}).body;
    if (!o->server.url.empty()) {
      // --json: the store part, as tm stats --store --json prints it; otherwise everything.
      std::cout << (o->json ? all["store"] : all).dump(2) << "\n";
      return 0;
    }
    // The store's part (server/store_stats.h: one aggregation for --json, the table, the daemon).
    nlohmann::json j = std::move(all["store"]);
    if (o->layers) j["layers"] = server::layers_json(store::Catalog::scan(o->store));
    if (o->json) {
      std::cout << j.dump(2) << "\n";
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
                             o->store, total["segments"].get<uint64_t>(), total["packets"].get<uint64_t>(),
                             util::format_size(pcap), util::format_size(idx),
                             pcap ? 100.0 * static_cast<double>(idx) / static_cast<double>(pcap) : 0);
    std::cout << "time span: " << span(total) << "\n";
    std::cout << fmt::format("{:<14} {:>9} {:>6} {:>5} {:>12} {:>11} {:>11}  {}\n", "class", "segments",
                             "open", "bad", "packets", "pcap", "indexes", "time span");
    for (auto& [name, a] : j["classes"].items())
      std::cout << fmt::format(
          "{:<14} {:>9} {:>6} {:>5} {:>12} {:>11} {:>11}  {}\n", name, a["segments"].get<uint64_t>(),
          a["open"].get<uint64_t>(), a["bad_sidecar"].get<uint64_t>(), a["packets"].get<uint64_t>(),
          util::format_size(a["pcap_bytes"]), util::format_size(a["index_bytes"]), span(a));
    if (total["open"].get<uint64_t>())
      std::cout << "open segments (being written, or left by a crash) are counted without their packets\n";
    for (auto& f : j["foreign_files"])
      std::cout << "foreign (not written by tm, left alone): " << f.get<std::string>() << "\n";
    if (o->layers) {
      std::cout << "packets per layer type (a packet counts once per kind of layer it carries):\n";
      for (auto& [k, v] : j["layers"].items())
        std::cout << fmt::format("  {:<24} {:>12}\n", k, v.get<uint64_t>());
    }
    return 0;
  };
}

}  // namespace tmach::cli
