#include <gtest/gtest.h>
#include <sys/mman.h>
#include <unistd.h>

#include <vector>

#include "util/crc32.h"
#include "util/prefaulter.h"
#include "util/timespec.h"
#include "util/units.h"

using namespace tmach;

TEST(Units, Sizes) {
  EXPECT_EQ(util::parse_size("15k"), 15 * 1024u);
  EXPECT_EQ(util::parse_size("64m"), 64ull << 20);
  EXPECT_EQ(util::parse_size("10G"), 10ull << 30);
  EXPECT_EQ(util::parse_size("1500"), 1500u);
  EXPECT_EQ(util::parse_size("none"), util::kUnlimited);
  EXPECT_EQ(util::parse_size("1.5k"), 1536u);
  EXPECT_FALSE(util::parse_size("12 parsecs"));
  EXPECT_FALSE(util::parse_size(""));
  EXPECT_FALSE(util::parse_size("-5k"));
  EXPECT_FALSE(util::parse_size("k"));
  EXPECT_EQ(util::parse_size("8t"), 8ull << 40);
  EXPECT_FALSE(util::parse_size("99999999999t"));
}

TEST(Units, ErrorsSayWhetherAnAmountIsTooLargeOrNoAmount) {
  EXPECT_EQ(util::size_error("99999999999t"), "'99999999999t' is too large (at most 16 EiB)");
  EXPECT_TRUE(util::size_overflows("99999999999t"));
  EXPECT_FALSE(util::size_overflows("64m"));
  EXPECT_FALSE(util::size_overflows("lots"));
  EXPECT_EQ(util::size_error("lots"), "'lots' is not a size (examples: 15k, 64m, 10g, none)");
  EXPECT_EQ(util::size_error("12 parsecs"), "'12 parsecs' is not a size (examples: 15k, 64m, 10g, none)");
  EXPECT_FALSE(util::parse_duration_ns("99999999w"));
  EXPECT_EQ(util::duration_error("99999999w"), "'99999999w' is too long (at most about 570 years)");
  EXPECT_EQ(util::duration_error("soon"), "'soon' is not a duration (examples: 30s, 5m, 2h, 7d)");
}

TEST(Units, Durations) {
  EXPECT_EQ(util::parse_duration_ns("30s"), 30000000000ull);
  EXPECT_EQ(util::parse_duration_ns("5m"), 300000000000ull);
  EXPECT_EQ(util::parse_duration_ns("2h"), 7200000000000ull);
  EXPECT_EQ(util::parse_duration_ns("250ms"), 250000000ull);
  EXPECT_EQ(util::parse_duration_ns("10"), 10000000000ull);
  EXPECT_FALSE(util::parse_duration_ns("soon"));
}

TEST(Time, AbsoluteFormsOnly) {
  std::string err;
  EXPECT_EQ(util::parse_absolute_time("1764077400.5", &err), 1764077400500000000ull);
  EXPECT_EQ(util::parse_absolute_time(" 2025-11-25T13:30:00Z", &err), 1764077400000000000ull);
  EXPECT_FALSE(util::parse_absolute_time("now", &err));
  EXPECT_EQ(err,
            "bad time 'now': expected an absolute time: ISO-8601 (2026-11-25T13:00:00Z) or epoch seconds");
  EXPECT_FALSE(util::parse_absolute_time("-2h", &err));
  EXPECT_FALSE(util::parse_absolute_time("2h ago", &err));
  EXPECT_FALSE(util::parse_absolute_time("soon", &err));
  EXPECT_EQ(err, "bad time 'soon': expected ISO-8601 (2026-11-25T13:00:00Z) or epoch seconds");
}

TEST(Time, Forms) {
  const uint64_t now = 1764077400ull * 1000000000ull;  // 2025-11-25T13:30:00Z
  std::string err;
  EXPECT_EQ(util::parse_time("now", now, &err), now);
  EXPECT_EQ(util::parse_time("15m ago", now, &err), now - 900ull * 1000000000ull);
  EXPECT_EQ(util::parse_time("-2h", now, &err), now - 7200ull * 1000000000ull);
  EXPECT_EQ(util::parse_time("15m  ago", now, &err), now - 900ull * 1000000000ull);
  // A relative time without a unit is refused (seconds? minutes?), not taken for seconds.
  for (const char* t : {"-1", "5 ago", "-1.5", "10 ago"}) {
    err.clear();
    EXPECT_FALSE(util::parse_time(t, now, &err)) << t;
    EXPECT_NE(err.find("a relative time needs a unit"), std::string::npos) << err;
  }
  EXPECT_EQ(util::parse_time("1764077400", now, &err), now);
  EXPECT_EQ(util::parse_time("1764077400.5", now, &err), now + 500000000ull);
  EXPECT_EQ(util::parse_time("2025-11-25T13:30:00Z", now, &err), now);
  EXPECT_EQ(util::parse_time("2025-11-25 13:30:00", now, &err), now);
  EXPECT_EQ(util::parse_time("2025-11-25T14:30:00+01:00", now, &err), now);
  EXPECT_EQ(util::parse_time("2025-11-25T13:30:00.25Z", now, &err), now + 250000000ull);
  // Digits past the nanoseconds: a time between two nanoseconds is the later one (a packet at
  // the earlier is before it, whether it bounds from or to); zeros change nothing.
  EXPECT_EQ(util::parse_time("2025-11-25T13:30:00.250000000001Z", now, &err), now + 250000001ull);
  EXPECT_EQ(util::parse_time("2025-11-25T13:30:00.250000000000Z", now, &err), now + 250000000ull);
  EXPECT_EQ(util::parse_time("2025-11-25T13:29:59.9999999999Z", now, &err), now);
  EXPECT_EQ(util::parse_time("1764077400.0000000001", now, &err), now + 1);
  EXPECT_EQ(util::parse_time("1764077400.1234567890", now, &err), now + 123456789ull);
  EXPECT_EQ(util::parse_time("1764077399.99999999999", now, &err), now);
  EXPECT_EQ(util::parse_time("2025-11-25", now, &err), now - (13 * 3600 + 1800) * 1000000000ull);
  EXPECT_FALSE(util::parse_time("yesterday", now, &err));
  EXPECT_NE(err.find("yesterday"), std::string::npos);
  EXPECT_FALSE(util::parse_time("2025-13-01", now, &err));
  // A day past its month's end is refused, not carried into the next month.
  EXPECT_FALSE(util::parse_time("2023-02-30", now, &err));
  EXPECT_NE(err.find("2023-02-30"), std::string::npos) << err;
  EXPECT_FALSE(util::parse_time("2023-02-29T10:00:00Z", now, &err));
  EXPECT_FALSE(util::parse_time("2100-02-29", now, &err));
  EXPECT_FALSE(util::parse_time("2025-04-31", now, &err));
  EXPECT_TRUE(util::parse_time("2024-02-29", now, &err));
  EXPECT_TRUE(util::parse_time("2000-02-29", now, &err));
  EXPECT_TRUE(util::parse_time("2025-12-31T23:59:59Z", now, &err));
  // A year whose nanoseconds overflow 64 bits, or an offset that is none: refused, not wrapped.
  EXPECT_FALSE(util::parse_time("9999-12-31T23:59:59Z", now, &err));
  EXPECT_FALSE(util::parse_time("2014-01-14T17:04:05+9900", now, &err));
  EXPECT_FALSE(util::parse_time("2014-01-14T17:04:05+05:60", now, &err));
  EXPECT_EQ(util::parse_time("2014-01-14T17:04:05+0530", now, &err), 1389699245ull * 1000000000ull);
  // Too many digits for a number: an answer, not std::stoull's exception.
  EXPECT_FALSE(util::parse_time("99999999999999999999999", now, &err));
  EXPECT_NE(err.find("out of range: times run from 1970"), std::string::npos) << err;
  EXPECT_EQ(util::format_time(now + 5), "2025-11-25T13:30:00.000000005Z");
}

TEST(Crc32, KnownValue) { EXPECT_EQ(util::crc32("123456789", 9), 0xCBF43926u); }

// The carry-less path (lengths >= 16: one lane below 64, four from there) against the tables, at every length
// and alignment around its block sizes, and continuing a running CRC.
TEST(Crc32, FastPathMatchesTables) {
  std::vector<uint8_t> buf(5000);
  uint32_t x = 12345;
  for (auto& b : buf) b = static_cast<uint8_t>((x = x * 1103515245u + 12345u) >> 24);
  for (size_t off = 0; off < 16; off += 3)
    for (size_t len = 0; len + off <= buf.size(); len += (len < 300 ? 1 : 97)) {
      ASSERT_EQ(util::crc32(buf.data() + off, len), util::crc32_portable(buf.data() + off, len))
          << off << " " << len;
      ASSERT_EQ(util::crc32(buf.data() + off, len, 0xdeadbeef),
                util::crc32_portable(buf.data() + off, len, 0xdeadbeef));
    }
  // Split anywhere, the running CRC is the whole one.
  uint32_t whole = util::crc32(buf.data(), buf.size());
  for (size_t cut : {0, 1, 63, 64, 65, 1000, 4999})
    EXPECT_EQ(util::crc32(buf.data() + cut, buf.size() - cut, util::crc32(buf.data(), cut)), whole);
}

// The CRC of two parts checksummed apart is the whole one, at any cut (empty parts too).
TEST(Crc32, CombinesTwoParts) {
  std::vector<uint8_t> buf(70000);
  uint32_t x = 12345;
  for (auto& b : buf) b = static_cast<uint8_t>((x = x * 1103515245 + 12345) >> 16);
  const uint32_t whole = util::crc32(buf.data(), buf.size());
  for (size_t cut : {size_t{0}, size_t{1}, size_t{15}, size_t{16}, size_t{4096}, size_t{65537}, buf.size()})
    EXPECT_EQ(util::crc32_combine(util::crc32(buf.data(), cut),
                                  util::crc32(buf.data() + cut, buf.size() - cut), buf.size() - cut),
              whole)
        << cut;
  EXPECT_NE(util::crc32_combine(util::crc32(buf.data(), 10), util::crc32(buf.data() + 10, 100), 99),
            util::crc32(buf.data(), 110));  // (the length matters)
}

// Both paths against the definition (bit by bit, reflected polynomial 0xEDB88320: zlib's
// CRC-32, not CRC-32C), at every length 0..300 from unaligned starts: the tables are not
// their own reference.
TEST(Crc32, MatchesBitwiseDefinition) {
  auto bitwise = [](const uint8_t* p, size_t n) {
    uint32_t c = ~0u;
    for (size_t i = 0; i < n; ++i) {
      c ^= p[i];
      for (int k = 0; k < 8; ++k) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
    }
    return ~c;
  };
  std::vector<uint8_t> buf(320);
  for (size_t i = 0; i < buf.size(); ++i) buf[i] = static_cast<uint8_t>(i * 37 + (i >> 3));
  for (size_t off : {0, 1, 5, 7, 13})
    for (size_t len = 0; len <= 300; ++len) {
      ASSERT_EQ(util::crc32(buf.data() + off, len), bitwise(buf.data() + off, len)) << off << " " << len;
      ASSERT_EQ(util::crc32_portable(buf.data() + off, len), bitwise(buf.data() + off, len));
    }
}

// The prefaulter commits memory without changing it: pages written before keep their bytes,
// and afterwards every page of the region is resident.
TEST(Prefaulter, CommitsWithoutChangingContents) {
  const size_t n = size_t{8} << 20;
  void* p = mmap(nullptr, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  ASSERT_NE(p, MAP_FAILED);
  auto* b = static_cast<uint8_t*>(p);
  for (size_t i = 0; i < n; i += 3 * 4096 + 17) b[i] = static_cast<uint8_t>(i / 4096 + 1);  // some pages
  {
    util::Prefaulter pf;
    pf.start({{p, n}});
    for (int i = 0; i < 2000 && pf.done_bytes() < n; ++i) usleep(1000);
    pf.stop();
    if (pf.done_bytes() == 0) GTEST_SKIP() << "MADV_POPULATE_WRITE not supported by this kernel";
    EXPECT_EQ(pf.done_bytes(), n);
  }
  std::vector<unsigned char> resident(n / 4096);
  ASSERT_EQ(mincore(p, n, resident.data()), 0);
  size_t in = 0;
  for (unsigned char r : resident) in += r & 1;
  EXPECT_EQ(in, resident.size());
  for (size_t i = 0; i < n; ++i) {
    const uint8_t want = i % (3 * 4096 + 17) == 0 ? static_cast<uint8_t>(i / 4096 + 1) : 0;
    if (b[i] != want) {
      ADD_FAILURE() << "byte " << i << " is " << int(b[i]) << ", expected " << int(want);
      break;
    }
  }
  munmap(p, n);
}

// A prefaulter stopped early stops within its piece and leaves the memory usable.
TEST(Prefaulter, StopsEarly) {
  const size_t n = size_t{256} << 20;
  void* p = mmap(nullptr, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  ASSERT_NE(p, MAP_FAILED);
  {
    util::Prefaulter pf;
    pf.start({{p, n}});
    pf.stop();
    EXPECT_LE(pf.done_bytes(), n);
  }
  static_cast<uint8_t*>(p)[n - 1] = 7;
  EXPECT_EQ(static_cast<uint8_t*>(p)[n - 1], 7);
  munmap(p, n);
}
