// tm subscribe: new packets matching a filter, from a running tm serve, as a pcap stream.
#include <fmt/format.h>

#include <cerrno>
#include <cstring>
#include <iostream>
#include <memory>

#include "cli/commands.h"
#include "cmdline/options.h"
#include "server/http_service.h"

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
    std::string text = filter_text(o->filter);
    server::SubscribeRequest q;
    q.filter = text;
    q.history = !o->history.empty();
    q.history_from = o->history;
    server::HttpService svc(o->c);
    auto stream = svc.open_subscription(q);
    std::FILE* f = o->out == "-" ? stdout : std::fopen(o->out.c_str(), "wb");
    if (!f) throw std::runtime_error(fmt::format("cannot write {}: {}", o->out, std::strerror(errno)));
    auto close = [](std::FILE* p) { std::fclose(p); };
    std::unique_ptr<std::FILE, decltype(close)> closer(f == stdout ? nullptr : f, close);
    std::setvbuf(f, nullptr, _IONBF, 0);  // each chunk reaches the reader as it arrives
    stream->run(
        [f](const char* d, size_t n) {
          if (std::fwrite(d, 1, n, f) != n)
            throw std::runtime_error("write failed (disk full, or the reader went away)");
        },
        [](const std::string& w) { std::cerr << "tm subscribe: warning: " << w << "\n"; },
        [] { return std::string(); });
    if (std::fflush(f) != 0) throw std::runtime_error("write failed");
    // A subscription has no end of its own: the server ended it (tm serve stopping, or its
    // capture ended). Said, and a failure, so that whatever reads the stream or runs this
    // command knows it stopped for good (as tcpdump when its interface goes away).
    std::cerr << "tm subscribe: the server ended the subscription (tm serve stopped, or its capture ended)\n";
    return 1;
  };
}

}  // namespace tmach::cli
