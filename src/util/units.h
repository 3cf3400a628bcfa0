// Parsing of human-friendly sizes and durations used on the command line and in the config.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace tmach::util {

inline constexpr uint64_t kUnlimited = UINT64_MAX;

// "15k", "64m", "10g", "1t", "1500" (bytes), "none"/"unlimited" -> kUnlimited.
// Suffixes are binary (k = 1024). Returns nullopt on anything else.
std::optional<uint64_t> parse_size(std::string_view s);
// "30s", "5m", "2h", "7d", "1w", "250ms", or plain seconds. Result in nanoseconds.
std::optional<uint64_t> parse_duration_ns(std::string_view s);
// Why parse_size (parse_duration_ns) refused `s`, for every caller's error message: a number too
// large for 64 bits ("'99999999999t' is too large ...") or no size at all (with examples).
std::string size_error(std::string_view s);
bool size_overflows(std::string_view s);  // a size, but more than 64 bits hold
std::string duration_error(std::string_view s);

std::string format_size(uint64_t bytes);  // "1.5 MiB"

// A TCP port as an address gives it ("8910"): 0 to 65535, digits only (not "+80", " 80", nor
// 99999, which a cast to 16 bits made 34463); 0 is "any free port". nullopt otherwise.
std::optional<int> parse_port(std::string_view s);
// Why parse_port refused `s`: "bad port 'S': expected 0 to 65535 (0: any free port)".
std::string port_error(std::string_view s);

}  // namespace tmach::util
