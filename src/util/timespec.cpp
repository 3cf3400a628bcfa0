#include "util/timespec.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdio>
#include <ctime>

#include "util/units.h"

namespace tmach::util {

uint64_t now_ns() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                   std::chrono::system_clock::now().time_since_epoch())
                                   .count());
}

namespace {

bool all_digits(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s)
    if (!std::isdigit(static_cast<unsigned char>(c))) return false;
  return true;
}

// Days since 1970-01-01 for a proleptic Gregorian date (Howard Hinnant's algorithm).
int64_t days_from_civil(int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const unsigned yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<int64_t>(doe) - 719468;
}

// Times are nanoseconds since 1970 in 64 bits: seconds below this (2554-07-21).
constexpr uint64_t kMaxSeconds = UINT64_MAX / 1000000000ull;
constexpr const char* kOutOfRange =
    "out of range: times run from 1970-01-01T00:00:00Z to 2554-07-21 (nanoseconds since 1970 in 64 bits)";

// An ISO-8601 time; nullopt for text that is not one, or (with *out_of_range set) for one
// outside kMaxSeconds.
std::optional<uint64_t> parse_iso(std::string_view s, bool* out_of_range) {
  int y, mo, d, h = 0, mi = 0, sec = 0;
  if (s.size() < 10 || s[4] != '-' || s[7] != '-') return std::nullopt;
  if (!all_digits(s.substr(0, 4)) || !all_digits(s.substr(5, 2)) || !all_digits(s.substr(8, 2)))
    return std::nullopt;
  y = std::stoi(std::string(s.substr(0, 4)));
  mo = std::stoi(std::string(s.substr(5, 2)));
  d = std::stoi(std::string(s.substr(8, 2)));
  size_t i = 10;
  uint64_t frac_ns = 0;
  int64_t offset_s = 0;
  if (i < s.size()) {
    if (s[i] != 'T' && s[i] != 't' && s[i] != ' ') return std::nullopt;
    ++i;
    if (s.size() < i + 5 || s[i + 2] != ':') return std::nullopt;
    if (!all_digits(s.substr(i, 2)) || !all_digits(s.substr(i + 3, 2))) return std::nullopt;
    h = std::stoi(std::string(s.substr(i, 2)));
    mi = std::stoi(std::string(s.substr(i + 3, 2)));
    i += 5;
    if (i < s.size() && s[i] == ':') {
      if (s.size() < i + 3 || !all_digits(s.substr(i + 1, 2))) return std::nullopt;
      sec = std::stoi(std::string(s.substr(i + 1, 2)));
      i += 3;
      if (i < s.size() && (s[i] == '.' || s[i] == ',')) {
        ++i;
        uint64_t scale = 100000000;
        size_t start = i;
        bool beyond = false;  // a non-zero digit past the nanoseconds
        while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) {
          frac_ns += static_cast<uint64_t>(s[i] - '0') * scale;
          beyond |= scale == 0 && s[i] != '0';
          scale /= 10;
          ++i;
        }
        if (i == start) return std::nullopt;
        // A time between two nanoseconds is taken at the later: packets (stamped in whole
        // nanoseconds) before it stay before it, from inclusive and to exclusive alike.
        frac_ns += beyond;
      }
    }
    if (i < s.size()) {
      if (s[i] == 'Z' || s[i] == 'z') {
        ++i;
      } else if (s[i] == '+' || s[i] == '-') {
        int sign = s[i] == '-' ? -1 : 1;
        std::string_view o = s.substr(i + 1);
        int oh, om;
        if (o.size() == 5 && o[2] == ':' && all_digits(o.substr(0, 2)) && all_digits(o.substr(3, 2))) {
          oh = std::stoi(std::string(o.substr(0, 2)));
          om = std::stoi(std::string(o.substr(3, 2)));
        } else if (o.size() == 4 && all_digits(o)) {
          oh = std::stoi(std::string(o.substr(0, 2)));
          om = std::stoi(std::string(o.substr(2, 2)));
        } else {
          return std::nullopt;
        }
        if (oh > 23 || om > 59) return std::nullopt;  // (+9900 is no UTC offset)
        offset_s = sign * (oh * 3600 + om * 60);
        i = s.size();
      }
    }
    if (i != s.size()) return std::nullopt;
  }
  if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60) return std::nullopt;
  // A day past its month's end (2023-02-30) is a mistake, not the next month's start.
  const bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
  static constexpr int kDays[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  if (d > kDays[mo - 1] + (mo == 2 && leap)) return std::nullopt;
  int64_t days = days_from_civil(y, static_cast<unsigned>(mo), static_cast<unsigned>(d));
  int64_t secs = days * 86400 + h * 3600 + mi * 60 + sec - offset_s;
  // Before 1970, or past what nanoseconds since it hold in 64 bits (2554): a time, but not one
  // of ours (said so, not "not ISO-8601").
  if (secs < 0 || static_cast<uint64_t>(secs) >= kMaxSeconds) {
    if (out_of_range) *out_of_range = true;
    return std::nullopt;
  }
  return static_cast<uint64_t>(secs) * 1000000000ull + frac_ns;
}

// parse_time, relative forms (`now` is set) or not (an alert's time, a recorded one).
std::optional<uint64_t> parse_time_of(std::string_view text, const uint64_t* now, std::string* error) {
  std::string s(text);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.pop_back();
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.erase(0, 1);
  auto fail = [&](const std::string& why) -> std::optional<uint64_t> {
    if (error) *error = fmt::format("bad time '{}': {}", std::string(text), why);
    return std::nullopt;
  };
  if (s.empty()) return fail("empty");
  if (!now) {
    if (s == "now" || (s.size() > 4 && s.compare(s.size() - 4, 4, " ago") == 0) || s[0] == '-')
      return fail("expected an absolute time: ISO-8601 (2026-11-25T13:00:00Z) or epoch seconds");
  } else if (s == "now") {
    return *now;
  }
  std::string rel;
  if (s.size() > 4 && s.compare(s.size() - 4, 4, " ago") == 0)
    rel = s.substr(0, s.size() - 4);
  else if (s[0] == '-')
    rel = s.substr(1);
  while (!rel.empty() && std::isspace(static_cast<unsigned char>(rel.back()))) rel.pop_back();
  if (!rel.empty()) {
    // A unit is required: `-1` or `5 ago` may mean seconds, minutes or a typo.
    if (!std::isalpha(static_cast<unsigned char>(rel.back())))
      return fail("a relative time needs a unit: '90s ago', '15m ago', '2h ago', '-3d'");
    auto d = parse_duration_ns(rel);
    if (!d) return fail("expected a duration such as '15m ago', '2h ago', '3d ago'");
    return *d > *now ? 0 : *now - *d;
  }
  // Epoch seconds, with optional fraction.
  bool epoch = !s.empty();
  int dots = 0;
  for (char c : s) {
    if (c == '.')
      ++dots;
    else if (!std::isdigit(static_cast<unsigned char>(c)))
      epoch = false;
  }
  if (epoch && dots <= 1 && s[0] != '.') {
    size_t dot = s.find('.');
    if (std::min(dot, s.size()) > 11) return fail(kOutOfRange);  // (std::stoull would throw)
    uint64_t secs = std::stoull(s.substr(0, dot));
    uint64_t frac = 0;
    if (dot != std::string::npos) {
      uint64_t scale = 100000000;
      for (size_t i = dot + 1; i < s.size(); ++i, scale /= 10) {
        frac += static_cast<uint64_t>(s[i] - '0') * scale;
        if (scale == 0 && s[i] != '0') {  // between two nanoseconds: the later (as parse_iso)
          ++frac;
          break;
        }
      }
    }
    if (secs >= kMaxSeconds) return fail(kOutOfRange);
    return secs * 1000000000ull + frac;
  }
  bool out_of_range = false;
  if (auto t = parse_iso(s, &out_of_range)) return t;
  if (out_of_range) return fail(kOutOfRange);
  if (!now) return fail("expected ISO-8601 (2026-11-25T13:00:00Z) or epoch seconds");
  return fail(
      "expected ISO-8601 (2026-11-25T13:00:00Z), epoch seconds, 'now' or a relative time ('15m ago')");
}

}  // namespace

std::optional<uint64_t> parse_time(std::string_view text, uint64_t now, std::string* error) {
  return parse_time_of(text, &now, error);
}

std::optional<uint64_t> parse_absolute_time(std::string_view text, std::string* error) {
  return parse_time_of(text, nullptr, error);
}

std::string epoch_text(uint64_t ns) {
  return fmt::format("{}.{:09}", ns / 1000000000ull, ns % 1000000000ull);
}

std::string format_time(uint64_t ns) {
  time_t secs = static_cast<time_t>(ns / 1000000000ull);
  struct tm t;
  gmtime_r(&secs, &t);
  return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:09}Z", t.tm_year + 1900, t.tm_mon + 1, t.tm_mday,
                     t.tm_hour, t.tm_min, t.tm_sec, ns % 1000000000ull);
}

}  // namespace tmach::util
