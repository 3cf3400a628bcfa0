// tm class: dynamic classes of a running tm serve (set, list, remove).
#include <fmt/format.h>

#include <iostream>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cmdline/options.h"
#include "server/http_service.h"
#include "util/json_text.h"

namespace tmach::cli {

Runner add_class(CLI::App& app) {
  struct Opts {
    server::ClientOptions c;
    std::string host, cls, dur;
    bool json = false;
  };
  auto o = std::make_shared<Opts>();
  add_server_options(app, o->c, true);
  app.require_subcommand(1);
  auto* set =
      app.add_subcommand("set", "give a host's connections a class (new ones, and ongoing ones from now)");
  set->add_option("host", o->host, "IPv4 or IPv6 address")->required();
  set->add_option("--class", o->cls, "a class of the daemon's configuration")->required();
  set->add_option("--for", o->dur, "expire after this long (30m, 2h, 7d); default: until removed")
      ->check(not_empty("no end"));
  auto* list = app.add_subcommand("list", "the dynamic classes in force");
  list->add_flag("--json", o->json, "JSON output");
  auto* rm = app.add_subcommand("remove", "end a host's dynamic class");
  rm->add_option("host", o->host, "IPv4 or IPv6 address")->required();
  return [o, set, list, rm]() -> int {
    server::HttpService svc(o->c);
    nlohmann::json j;
    if (set->parsed())
      j = svc.class_set({o->host, o->cls, o->dur}).body;
    else if (list->parsed()) {
      server::Reply r = svc.class_list();
      if (std::string w = r.missing_warning(); !w.empty()) std::cerr << "tm class: warning: " << w << "\n";
      j = std::move(r.body);
    } else if (rm->parsed())
      j = svc.class_remove(o->host).body;
    if (j.is_object() && j.value("warnings", nlohmann::json()).is_array())
      for (auto& w : j["warnings"])
        if (w.is_string()) std::cerr << "tm class: warning: " << w.get<std::string>() << "\n";
    if (set->parsed()) {
      std::cout << fmt::format("{}: class {}{}\n", j.value("host", o->host), j.value("class", o->cls),
                               j["expires"].is_string() ? " until " + j["expires"].get<std::string>() : "");
    } else if (list->parsed()) {
      if (o->json) {
        std::cout << util::json_text(j, 2) << "\n";
      } else {
        std::cout << fmt::format("{:<40} {:<16} {}\n", "host", "class", "expires");
        for (auto& e : j)
          std::cout << fmt::format("{:<40} {:<16} {}\n", e.value("host", ""), e.value("class", ""),
                                   e["expires"].is_string() ? e["expires"].get<std::string>() : "never");
      }
    } else {
      std::cout << o->host << ": dynamic class removed\n";
    }
    return 0;
  };
}

}  // namespace tmach::cli
