// tm subscribe: new packets matching a filter, from a running tm serve, as a pcap stream.
#include <fmt/format.h>

#include <cerrno>
#include <cstring>
#include <iostream>

#include "cli/commands.h"
#include "cmdline/options.h"
#include "server/client.h"

namespace tmach::cli {

Runner add_subscribe(CLI::App& app) {
  struct Opts {
    server::ClientOptions c;
    std::vector<std::string> filter;
    std::string out, history;
  };
  auto o = std::make_shared<Opts>();
  add_server_options(app, o->c, true);
  app.add_option("filter", o->filter, "tcpdump filter expression");
  app.add_option("--history-from", o->history, "first the stored packets since this time, then the new ones");
  app.add_option("-w,--write", o->out, "pcap output FILE ('-' = stdout)")->required();
  return [o]() -> int {
    server::Params p;
    std::string text;
    for (size_t i = 0; i < o->filter.size(); ++i) text += (i ? " " : "") + o->filter[i];
    p.emplace("filter", text);
    if (!o->history.empty()) p.emplace("history_from", o->history);
    std::FILE* f = o->out == "-" ? stdout : std::fopen(o->out.c_str(), "wb");
    if (!f) throw std::runtime_error(fmt::format("cannot write {}: {}", o->out, std::strerror(errno)));
    std::setvbuf(f, nullptr, _IONBF, 0);  // each chunk reaches the reader as it arrives
    auto r = server::api_get(o->c, "/api/v1/subscribe", p, f);
    if (f != stdout) std::fclose(f);
    if (!r.error.empty()) throw std::runtime_error(r.error);
    return 0;
  };
}

}  // namespace tmach::cli
