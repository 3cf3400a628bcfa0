#include "server/listen.h"

#include <arpa/inet.h>
#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <fstream>
#include <stdexcept>

#include "util/units.h"

namespace tmach::server {

HostPort parse_host_port(const std::string& text, const std::string& what) {
  auto colon = text.rfind(':');
  if (colon == std::string::npos) throw std::runtime_error(what + ": expected HOST:PORT");
  HostPort a;
  a.host = text.substr(0, colon);
  if (a.host.size() > 2 && a.host.front() == '[' && a.host.back() == ']')
    a.host = a.host.substr(1, a.host.size() - 2);
  const std::string port = text.substr(colon + 1);
  const std::optional<int> p = util::parse_port(port);
  if (!p)
    throw std::runtime_error(
        fmt::format("{}: bad port '{}' in {}: expected 0 to 65535 (0: any free port)", what, port, text));
  a.port = *p;
  return a;
}

std::string format_host_port(const std::string& host, int port) {
  return host.find(':') != std::string::npos ? fmt::format("[{}]:{}", host, port)
                                             : fmt::format("{}:{}", host, port);
}

bool is_loopback(const std::string& host) {
  if (host == "localhost" || host == "::1") return true;
  uint8_t b[4];
  return inet_pton(AF_INET, host.c_str(), b) == 1 && b[0] == 127;
}

void require_token_off_loopback(const std::string& listen, const std::string& token, const std::string& what,
                                const std::string& give) {
  HostPort a = parse_host_port(listen, what);
  if (!is_loopback(a.host) && token.empty())
    throw std::runtime_error(what + " " + listen + " is not a loopback address: give " + give);
}

std::string read_token_file(const std::string& path, const std::string& what) {
  std::ifstream f(path);
  if (!f) throw std::runtime_error(what + ": cannot read " + path);
  std::string tok;
  std::getline(f, tok);
  while (!tok.empty() && std::isspace(static_cast<unsigned char>(tok.back()))) tok.pop_back();
  if (tok.empty()) throw std::runtime_error(what + ": " + path + " is empty");
  return tok;
}

}  // namespace tmach::server
