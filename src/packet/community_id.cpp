#include "packet/community_id.h"

#include <cstring>

#include "util/sha1.h"

namespace tmach::packet {
namespace {

constexpr uint8_t kIcmp = 1, kTcp = 6, kUdp = 17, kIcmp6 = 58, kSctp = 132;

// The spec's ICMP "port equivalents": a request type and its reply type are the two ports of
// one flow; a type without a counterpart is one-way, its code the second port.
bool icmp_counterpart(uint8_t proto, uint8_t type, uint8_t* other) noexcept {
  static constexpr uint8_t kV4[][2] = {{8, 0},   {0, 8},  {13, 14}, {14, 13}, {15, 16},
                                       {16, 15}, {10, 9}, {9, 10},  {17, 18}, {18, 17}};
  static constexpr uint8_t kV6[][2] = {{128, 129}, {129, 128}, {133, 134}, {134, 133},
                                       {135, 136}, {136, 135}, {130, 131}, {131, 130},
                                       {139, 140}, {140, 139}, {144, 145}, {145, 144}};
  if (proto == kIcmp) {
    for (auto& p : kV4)
      if (p[0] == type) return *other = p[1], true;
  } else {
    for (auto& p : kV6)
      if (p[0] == type) return *other = p[1], true;
  }
  return false;
}

}  // namespace

std::string community_id_v1(const CommunityTuple& t, uint16_t seed) {
  const bool v4 = t.src.is_v4();
  const size_t alen = v4 ? 4 : 16, aoff = v4 ? 12 : 0;
  const uint8_t* sa = t.src.b.data() + aoff;
  const uint8_t* da = t.dst.b.data() + aoff;
  uint16_t sp = t.src_port, dp = t.dst_port;
  bool ports =
      t.proto == kTcp || t.proto == kUdp || t.proto == kSctp || t.proto == kIcmp || t.proto == kIcmp6;
  bool one_way = false;
  if (t.proto == kIcmp || t.proto == kIcmp6) {
    uint8_t type = static_cast<uint8_t>(t.src_port), other = 0;
    if (icmp_counterpart(t.proto, type, &other)) {
      sp = type;
      dp = other;
    } else {
      sp = type;
      dp = static_cast<uint8_t>(t.dst_port);
      one_way = true;
    }
  }
  int c = std::memcmp(sa, da, alen);
  bool ordered = one_way || c < 0 || (c == 0 && (!ports || sp <= dp));
  if (!ordered) {
    std::swap(sa, da);
    std::swap(sp, dp);
  }
  uint8_t buf[2 + 16 + 16 + 2 + 4];
  size_t n = 0;
  buf[n++] = static_cast<uint8_t>(seed >> 8);
  buf[n++] = static_cast<uint8_t>(seed);
  std::memcpy(buf + n, sa, alen);
  n += alen;
  std::memcpy(buf + n, da, alen);
  n += alen;
  buf[n++] = t.proto;
  buf[n++] = 0;  // padding
  if (ports) {
    buf[n++] = static_cast<uint8_t>(sp >> 8);
    buf[n++] = static_cast<uint8_t>(sp);
    buf[n++] = static_cast<uint8_t>(dp >> 8);
    buf[n++] = static_cast<uint8_t>(dp);
  }
  auto h = util::sha1(buf, n);
  return "1:" + util::base64(h.data(), h.size());
}

std::optional<std::string> community_id_base64(std::string_view s) {
  if (is_community_id(s)) return std::string(s);
  if (s.size() != 42 || s.substr(0, 2) != "1:") return std::nullopt;
  uint8_t h[20];
  auto nibble = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  for (size_t i = 0; i < 20; ++i) {
    const int hi = nibble(s[2 + 2 * i]), lo = nibble(s[3 + 2 * i]);
    if (hi < 0 || lo < 0) return std::nullopt;
    h[i] = static_cast<uint8_t>(hi << 4 | lo);
  }
  return "1:" + util::base64(h, sizeof h);
}

bool is_community_id(std::string_view s) noexcept {
  if (s.size() != 30 || s.substr(0, 2) != "1:" || s.back() != '=') return false;
  for (size_t i = 2; i + 1 < s.size(); ++i) {
    char c = s[i];
    bool ok =
        (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' || c == '/';
    if (!ok) return false;
  }
  return true;
}

}  // namespace tmach::packet
