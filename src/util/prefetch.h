// Software prefetch for a buffer streamed through once, front to back, in variable-size
// records: the pcap file's mapping on the capture thread, the RAM ring on both of its sides.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>

namespace tmach::util {

enum class PrefetchFor { kRead, kWrite };

// Asks for the cache lines of base[done, min(pos + ahead, limit)), advancing `done` (the caller
// keeps it, starting at or below the first record). The memory is read once and has never
// been in the cache, and the hardware prefetcher stops at every 4 KiB boundary and does not
// follow variable-size records: without this, each record's header (and the frame decoded
// and copied next) is a cache miss of its own.
//
// Three lines per call without a test (a record of a minimum-size frame spans two or three; a
// prefetch is never a fault, even past the end of a mapping, and one of a line already asked
// for costs next to nothing), then a loop for the rest of a larger record's: a loop run a
// varying number of times per record was a mispredicted branch on most records of small
// frames (callgrind --branch-sim, stop 28).
template <PrefetchFor kFor>
[[gnu::always_inline]] inline void prefetch_ahead(const uint8_t* base, size_t pos, size_t ahead, size_t limit,
                                                  size_t& done) noexcept {
  constexpr int kRw = kFor == PrefetchFor::kWrite ? 1 : 0;
  if (done < pos) done = pos & ~size_t{63};  // a record larger than `ahead` went past it
  const size_t end = std::min(limit, pos + ahead);
  __builtin_prefetch(base + done, kRw);
  __builtin_prefetch(base + done + 64, kRw);
  __builtin_prefetch(base + done + 128, kRw);
  done = std::max(done, std::min(done + 192, end));
  for (; done < end; done += 64) __builtin_prefetch(base + done, kRw);
}

}  // namespace tmach::util
