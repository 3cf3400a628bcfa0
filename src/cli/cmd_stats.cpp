// tm stats: what a store holds, from its catalog (names and sidecar headers only).
#include <fmt/format.h>

#include <iostream>
#include <map>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "server/client.h"
#include "server/store_stats.h"
#include "store/catalog.h"
#include "util/timespec.h"
#include "util/units.h"

namespace tmach::cli {

Runner add_stats(CLI::App& app) {
  struct Opts {
    std::string store;
    bool json = false;
    server::ClientOptions server;
  };
  auto o = std::make_shared<Opts>();
  app.add_option("-s,--store", o->store, "store directory");
  app.add_option("--server", o->server.url,
                 "ask a running tm serve instead (http://HOST:PORT): its live counters too");
  app.add_option("--token-file", o->server.token_file, "file holding the API bearer token (--server)");
  app.add_flag("--json", o->json, "JSON output");
  return [o]() -> int {
    if (o->store.empty() == o->server.url.empty())
      throw std::runtime_error("give --store DIR or --server URL");
    if (!o->server.url.empty()) {
      auto r = server::api_get(o->server, "/api/v1/stats", {}, nullptr);
      if (!r.error.empty()) throw std::runtime_error(r.error);
      auto j = nlohmann::json::parse(r.body, nullptr, false);
      if (j.is_discarded()) throw std::runtime_error("the server's answer is not JSON");
      // --json: the store part, as tm stats --store --json prints it; otherwise everything.
      std::cout << (o->json ? j["store"] : j).dump(2) << "\n";
      return 0;
    }
    store::Catalog cat = store::Catalog::scan(o->store);
    struct Agg {
      uint64_t segments = 0, sealed = 0, open = 0, bad = 0, packets = 0, pcap = 0, idx = 0, wire = 0;
      uint64_t first = UINT64_MAX, last = 0;
    };
    std::map<std::string, Agg> by;
    Agg total;
    for (const auto& s : cat.segments) {
      for (Agg* a : {&by[s.cls], &total}) {
        a->segments++;
        a->pcap += s.pcap_bytes;
        a->idx += s.idx_bytes;
        a->first = std::min(a->first, s.meta.first_ts);
        if (s.state == store::SegmentInfo::State::kSealed) {
          a->sealed++;
          a->packets += s.meta.packets;
          a->wire += s.meta.wire_bytes;
          a->last = std::max(a->last, s.meta.last_ts);
        } else if (s.state == store::SegmentInfo::State::kOpen) {
          a->open++;
        } else {
          a->bad++;
        }
      }
    }
    for (auto& c : cat.classes) by[c];
    auto span = [](const Agg& a) {
      return a.first == UINT64_MAX
                 ? std::string("-")
                 : util::format_time(a.first) + " .. " + (a.last ? util::format_time(a.last) : "?");
    };
    if (o->json) {
      std::cout << server::catalog_json(cat).dump(2) << "\n";
      return 0;
    }
    std::cout << fmt::format(
        "store {}: {} segments, {} packets, pcap {}, indexes {} ({:.2f}% of pcap)\n", o->store,
        total.segments, total.packets, util::format_size(total.pcap), util::format_size(total.idx),
        total.pcap ? 100.0 * static_cast<double>(total.idx) / static_cast<double>(total.pcap) : 0);
    std::cout << "time span: " << span(total) << "\n";
    std::cout << fmt::format("{:<14} {:>9} {:>6} {:>5} {:>12} {:>11} {:>11}  {}\n", "class", "segments",
                             "open", "bad", "packets", "pcap", "indexes", "time span");
    for (auto& [name, a] : by)
      std::cout << fmt::format("{:<14} {:>9} {:>6} {:>5} {:>12} {:>11} {:>11}  {}\n", name, a.segments,
                               a.open, a.bad, a.packets, util::format_size(a.pcap), util::format_size(a.idx),
                               span(a));
    if (total.open)
      std::cout << "open segments (being written, or left by a crash) are counted without their packets\n";
    for (auto& f : cat.foreign) std::cout << "foreign (not written by tm, left alone): " << f << "\n";
    return 0;
  };
}

}  // namespace tmach::cli
