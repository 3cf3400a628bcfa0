#include "cli/http_handover.h"

#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <stdexcept>
#include <string>

namespace tmach::cli {

bool needs_http(const CLI::App& sub, bool http_only) {
  if (http_only) return true;
  const CLI::Option* server = sub.get_option_no_throw("--server");
  return server != nullptr && server->count() > 0;
}

void hand_over_to_tm_http(char** argv) {
  std::error_code ec;
  auto self = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (ec) throw std::runtime_error("cannot find this executable (/proc/self/exe): " + ec.message());
  std::string path = (self.parent_path() / "tm-http").string();
  // argv[0] stays what the user typed, so usage and messages keep saying "tm".
  ::execv(path.c_str(), argv);
  std::string what = "this command runs in tm-http, which should be next to tm: cannot execute ";
  what += path;
  what += ": ";
  what += std::strerror(errno);
  throw std::runtime_error(what);
}

}  // namespace tmach::cli
