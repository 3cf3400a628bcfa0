// Time points given by users: ISO-8601, epoch seconds, or relative ("15m ago", "now").
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace tmach::util {

uint64_t now_ns();
// The clock max_age is measured on, from the newest packet (or flow record) written: no later
// than a minute past the wall clock, so that one stamped in the future (a damaged record, a
// sensor's clock gone wrong) cannot age away, and delete, all of the present at once for good
// (that clock never goes back).
inline uint64_t age_clock(uint64_t newest_ns) {
  const uint64_t limit = now_ns() + 60ull * 1000000000ull;
  return newest_ns < limit ? newest_ns : limit;
}

// Parses a time point into nanoseconds since the epoch. `now` anchors relative forms.
// Accepted: "now", "15m ago" / "2h ago" / "-15m", epoch seconds with optional fraction
// ("1732540000.5"), ISO-8601 "2026-11-25T13:00:00Z", "2026-11-25 13:00:00", with optional
// fraction and "Z" or "+hh:mm" offset (no offset = UTC), or a date alone "2026-11-25".
// Returns nullopt with `error` set when the text is none of these.
std::optional<uint64_t> parse_time(std::string_view text, uint64_t now, std::string* error);
// parse_time without the relative forms ("now", "15m ago", "-2h"), which it refuses: a time
// written by another program (an IDS alert's), where no "now" is meant.
std::optional<uint64_t> parse_absolute_time(std::string_view text, std::string* error);

// "2026-11-25T13:00:00.123456789Z"
std::string format_time(uint64_t ns);
// "1764075600.123456789": epoch seconds exact to the nanosecond, as parse_time() reads them
// back (a query's from/to made from a recorded time).
std::string epoch_text(uint64_t ns);

}  // namespace tmach::util
