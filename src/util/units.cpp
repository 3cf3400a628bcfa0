#include "util/units.h"

#include <fmt/format.h>

#include <cctype>
#include <cmath>

namespace tmach::util {
namespace {

std::string lower_trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  std::string out;
  for (char c : s) out += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// Splits "15.5kib" into number 15.5 and suffix "kib"; false if no number.
bool split_number(const std::string& s, double& num, std::string& suffix) {
  size_t i = 0;
  while (i < s.size() && (std::isdigit(static_cast<unsigned char>(s[i])) || s[i] == '.')) ++i;
  if (i == 0) return false;
  try {
    size_t used = 0;
    num = std::stod(s.substr(0, i), &used);
    if (used != i) return false;
  } catch (...) {
    return false;
  }
  suffix = s.substr(i);
  while (!suffix.empty() && suffix.front() == ' ') suffix.erase(0, 1);
  return std::isfinite(num) && num >= 0;
}

// The amount `text` stands for, in bytes (size) or nanoseconds (duration), as a double: nullopt
// when it is not one. Above 1.8e19 it does not fit in 64 bits.
std::optional<double> size_amount(std::string_view text) {
  std::string s = lower_trim(text);
  double num;
  std::string suf;
  if (!split_number(s, num, suf)) return std::nullopt;
  double mult;
  if (suf.empty() || suf == "b")
    mult = 1;
  else if (suf == "k" || suf == "kb" || suf == "kib")
    mult = 1024.0;
  else if (suf == "m" || suf == "mb" || suf == "mib")
    mult = 1024.0 * 1024;
  else if (suf == "g" || suf == "gb" || suf == "gib")
    mult = 1024.0 * 1024 * 1024;
  else if (suf == "t" || suf == "tb" || suf == "tib")
    mult = 1024.0 * 1024 * 1024 * 1024;
  else
    return std::nullopt;
  return num * mult;
}

std::optional<double> duration_amount(std::string_view text) {
  std::string s = lower_trim(text);
  double num;
  std::string suf;
  if (!split_number(s, num, suf)) return std::nullopt;
  double mult;
  if (suf.empty() || suf == "s" || suf == "sec" || suf == "secs" || suf == "second" || suf == "seconds")
    mult = 1e9;
  else if (suf == "ms")
    mult = 1e6;
  else if (suf == "us")
    mult = 1e3;
  else if (suf == "ns")
    mult = 1;
  else if (suf == "m" || suf == "min" || suf == "mins" || suf == "minute" || suf == "minutes")
    mult = 60e9;
  else if (suf == "h" || suf == "hour" || suf == "hours")
    mult = 3600e9;
  else if (suf == "d" || suf == "day" || suf == "days")
    mult = 86400e9;
  else if (suf == "w" || suf == "week" || suf == "weeks")
    mult = 7 * 86400e9;
  else
    return std::nullopt;
  return num * mult;
}

constexpr double kLargest = 1.8e19;  // below 2^64

}  // namespace

std::optional<uint64_t> parse_size(std::string_view text) {
  std::string s = lower_trim(text);
  if (s == "none" || s == "unlimited" || s == "inf") return kUnlimited;
  auto v = size_amount(s);
  if (!v || *v >= kLargest) return std::nullopt;
  return static_cast<uint64_t>(*v);
}

std::optional<uint64_t> parse_duration_ns(std::string_view text) {
  auto v = duration_amount(text);
  if (!v || *v >= kLargest) return std::nullopt;
  return static_cast<uint64_t>(*v);
}

bool size_overflows(std::string_view text) {
  auto v = size_amount(text);
  return v && *v >= kLargest;
}

std::string size_error(std::string_view text) {
  if (size_overflows(text)) return fmt::format("'{}' is too large (at most 16 EiB)", text);
  return fmt::format("'{}' is not a size (examples: 15k, 64m, 10g, none)", text);
}

std::string duration_error(std::string_view text) {
  auto v = duration_amount(text);
  if (v && *v >= kLargest) return fmt::format("'{}' is too long (at most about 570 years)", text);
  return fmt::format("'{}' is not a duration (examples: 30s, 5m, 2h, 7d)", text);
}

std::optional<int> parse_port(std::string_view s) {
  if (s.empty() || s.size() > 5) return std::nullopt;
  int v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return std::nullopt;
    v = v * 10 + (c - '0');
  }
  if (v > 65535) return std::nullopt;
  return v;
}

std::string port_error(std::string_view s) {
  return fmt::format("bad port '{}': expected 0 to 65535 (0: any free port)", s);
}

std::string format_size(uint64_t b) {
  if (b == kUnlimited) return "unlimited";
  static const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = static_cast<double>(b);
  int u = 0;
  while (v >= 1024 && u < 4) {
    v /= 1024;
    ++u;
  }
  return u == 0 ? fmt::format("{} B", b) : fmt::format("{:.1f} {}", v, units[u]);
}

}  // namespace tmach::util
