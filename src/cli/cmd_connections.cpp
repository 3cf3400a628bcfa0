// tm connections: the active connections of a running tm serve, and per-connection controls
// (record one connection whole from now on, keep it from timing out).
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <iostream>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cmdline/options.h"
#include "server/http_service.h"
#include "util/json_text.h"

namespace tmach::cli {

Runner add_connections(CLI::App& app) {
  struct Opts {
    server::ClientOptions c;
    std::vector<std::string> filter;
    size_t top = 20;
    std::string format = "text";
    bool json = false, suspend_cutoff = false, resume_cutoff = false, suspend_timeout = false,
         resume_timeout = false;
  };
  auto o = std::make_shared<Opts>();
  add_server_options(app, o->c, true);
  app.add_option("filter", o->filter, "connections by addresses, ports, protocols (tcpdump syntax)");
  app.add_option("--top", o->top, "the N largest by bytes (0 = all)")
      ->capture_default_str()
      ->check(whole_number(0, 1000000000));
  app.add_option("--format", o->format, "text (a table), json (an array of objects) or csv")
      ->check(CLI::IsMember({"text", "json", "csv"}));
  app.add_flag("--json", o->json, "the same as --format json");
  app.add_flag("--suspend-cutoff", o->suspend_cutoff, "record the matching connections whole from now on");
  app.add_flag("--resume-cutoff", o->resume_cutoff, "apply their class's cutoff again");
  app.add_flag("--suspend-timeout", o->suspend_timeout, "never end them by inactivity");
  app.add_flag("--resume-timeout", o->resume_timeout, "inactivity timeouts apply again");
  return [o]() -> int {
    std::string text = filter_text(o->filter);
    server::HttpService svc(o->c);
    nlohmann::json j;
    bool control = o->suspend_cutoff || o->resume_cutoff || o->suspend_timeout || o->resume_timeout;
    if (control) {
      if ((o->suspend_cutoff && o->resume_cutoff) || (o->suspend_timeout && o->resume_timeout))
        throw std::runtime_error("suspend and resume together make no sense");
      if (text.empty()) throw std::runtime_error("name the connection(s) with a filter");
      auto flag = [](bool suspend, bool resume) { return suspend ? 1 : resume ? 0 : -1; };
      j = svc.control({text, flag(o->suspend_cutoff, o->resume_cutoff),
                       flag(o->suspend_timeout, o->resume_timeout)})
              .body;
    } else {
      server::Reply r = svc.connections({text, o->top});
      // (a tm frontend without some workers: their connections are not listed)
      if (std::string w = r.missing_warning(); !w.empty())
        std::cerr << "tm connections: warning: " << w << "\n";
      j = std::move(r.body);
    }
    if (o->json) o->format = "json";
    if (o->format == "json") {
      std::cout << util::json_text(j, control ? -1 : 2) << "\n";
      return 0;
    }
    if (control) {  // (text and csv alike: a sentence, not the server's JSON)
      std::vector<std::string> did;
      if (o->suspend_cutoff) did.push_back("recorded whole from now on");
      if (o->resume_cutoff) did.push_back("their class's cutoff applies again");
      if (o->suspend_timeout) did.push_back("never ended by inactivity");
      if (o->resume_timeout) did.push_back("inactivity timeouts apply again");
      const uint64_t n = j.value("connections", uint64_t{0});
      std::cout << fmt::format("{} connection{}{}{}\n", n, n == 1 ? "" : "s", n ? ": " : " matched",
                               n ? fmt::format("{}", fmt::join(did, "; ")) : std::string());
      // A tm frontend: the workers it could not ask (their connections are not counted).
      if (j.contains("workers") && j["workers"].is_array())
        for (auto& w : j["workers"])
          if (w.is_object() && w.contains("error"))
            std::cerr << "tm connections: warning: worker " << w.value("url", "?") << ": "
                      << util::json_text(w["error"]) << " (its connections are not counted)\n";
      return 0;
    }
    if (o->format == "csv") {
      std::cout << "orig_addr,orig_port,resp_addr,resp_port,proto,packets,bytes,stored_packets,class,cut,"
                   "cutoff_suspended,timeout_suspended\n";
      for (auto& c : j)
        std::cout << fmt::format(
            "{},{},{},{},{},{},{},{},{},{},{},{}\n", c["orig_addr"].get<std::string>(),
            c["orig_port"].get<int>(), c["resp_addr"].get<std::string>(), c["resp_port"].get<int>(),
            c["proto"].get<std::string>(), c["packets"].get<uint64_t>(), c["bytes"].get<uint64_t>(),
            c["stored_packets"].get<uint64_t>(), c["class"].get<std::string>(), c["cut"].get<bool>(),
            c["cutoff_suspended"].get<bool>(), c["timeout_suspended"].get<bool>());
      return 0;
    }
    std::cout << fmt::format("{:<45} {:<45} {:>5} {:>9} {:>12} {:>8} {:<10} {:<4} {}\n", "originator",
                             "responder", "proto", "packets", "bytes", "stored", "class", "cut", "controls");
    // An IPv6 endpoint in brackets ([2001:db8::1]:80), as tm flows prints it.
    const auto endpoint = [](const std::string& addr, int port) {
      return addr.find(':') != std::string::npos ? fmt::format("[{}]:{}", addr, port)
                                                 : fmt::format("{}:{}", addr, port);
    };
    for (auto& c : j) {
      std::string ctl;
      if (c["cutoff_suspended"].get<bool>()) ctl += "cutoff-suspended ";
      if (c["timeout_suspended"].get<bool>()) ctl += "timeout-suspended";
      std::cout << fmt::format("{:<45} {:<45} {:>5} {:>9} {:>12} {:>8} {:<10} {:<4} {}\n",
                               endpoint(c["orig_addr"].get<std::string>(), c["orig_port"].get<int>()),
                               endpoint(c["resp_addr"].get<std::string>(), c["resp_port"].get<int>()),
                               c["proto"].get<std::string>(), c["packets"].get<uint64_t>(),
                               c["bytes"].get<uint64_t>(), c["stored_packets"].get<uint64_t>(),
                               c["class"].get<std::string>(), c["cut"].get<bool>() ? "yes" : "no",
                               ctl.empty() ? "-" : ctl);
    }
    return 0;
  };
}

}  // namespace tmach::cli
