#include "packet/packet_info.h"

#include <arpa/inet.h>
#include <sys/socket.h>

namespace tmach::packet {

std::string IpAddr::str() const {
  char buf[INET6_ADDRSTRLEN];
  const char* s =
      is_v4() ? inet_ntop(AF_INET, &b[12], buf, sizeof buf) : inet_ntop(AF_INET6, b.data(), buf, sizeof buf);
  return s ? std::string(s) : std::string();
}

const char* tunnel_name(uint8_t kind) {
  static constexpr const char* kNames[kTunnelKinds] = {"none", "ipip",   "gre",   "vxlan", "geneve",
                                                       "gtp",  "teredo", "ayiya", "l2tp",  "mpls-udp"};
  return kind < kTunnelKinds ? kNames[kind] : "unknown";
}

const char* to_string(DecodeStatus s) {
  switch (s) {
    case DecodeStatus::kOk:
      return "ok";
    case DecodeStatus::kNotIp:
      return "not_ip";
    case DecodeStatus::kTruncated:
      return "truncated";
    case DecodeStatus::kMalformed:
      return "malformed";
    case DecodeStatus::kUnsupportedLink:
      return "unsupported_link";
  }
  return "unknown";
}

}  // namespace tmach::packet
