#include <fmt/format.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include "config/component_options.h"
#include "config/config.h"
#include "record/classifier.h"
#include "store/ring.h"

using namespace tmach;

namespace {
std::string error_of(const std::string& text) {
  try {
    auto c = config::load_config_string(text, "tm.toml");
    config::finalize_classes(c);
    record::Classifier cl(c.classes);
  } catch (const config::ConfigError& e) {
    return e.what();
  }
  return "";
}
}  // namespace

TEST(Config, Defaults) {
  auto c = config::load_config_string("", "tm.toml");
  config::finalize_classes(c);
  ASSERT_EQ(c.classes.size(), 1u);
  EXPECT_EQ(c.classes[0].name, "default");
  EXPECT_EQ(c.classes[0].cutoff, 15u * 1024);
  EXPECT_EQ(c.segment_size, 256ull << 20);
}

TEST(Config, ClassesSortedByPrecedenceWithCatchAll) {
  auto c = config::load_config_string(R"(
[store]
path = "/tmp/x"
segment_size = "64m"
[[class]]
name = "low"
filter = "udp"
cutoff = "1k"
[[class]]
name = "high"
filter = "tcp port 22"
cutoff = "none"
precedence = 5
disk_budget = "1g"
)",
                                      "tm.toml");
  config::finalize_classes(c);
  ASSERT_EQ(c.classes.size(), 3u);
  EXPECT_EQ(c.classes[0].name, "high");
  EXPECT_EQ(c.classes[0].cutoff, UINT64_MAX);
  EXPECT_EQ(c.classes[0].disk_budget, 1ull << 30);
  EXPECT_EQ(c.classes[1].name, "low");
  EXPECT_EQ(c.classes[2].name, "default");
  EXPECT_EQ(c.store, "/tmp/x");
}

TEST(Config, ErrorsNameLineAndKey) {
  EXPECT_EQ(error_of("[store]\nsegment_size = \"huge\"\n").rfind("tm.toml:2: store.segment_size:", 0), 0u);
  EXPECT_NE(error_of("[[class]]\nname = \"a\"\ncutoff = true\n").find("tm.toml:3: class 'a'.cutoff"),
            std::string::npos);
  EXPECT_NE(error_of("[connections]\ntcp_timeout = \"forever\"\n").find("tm.toml:2: connections.tcp_timeout"),
            std::string::npos);
  EXPECT_NE(error_of("[capture]\nsnaplen = 10\n").find("capture.snaplen: must be between"),
            std::string::npos);
  EXPECT_NE(error_of("nonsense = 1\n").find("tm.toml:1: nonsense: unknown key"), std::string::npos);
  EXPECT_NE(error_of("[store\n").find("tm.toml:1"), std::string::npos);
  EXPECT_EQ(error_of("[[class]]\nname = \"a\"\n[[class]]\nname = \"a\"\n"),
            "tm.toml:4: class 'a'.name: defined twice (first at line 2)");
  EXPECT_NE(error_of("[[class]]\nfilter = \"tcp\"\n").find("needs a name"), std::string::npos);
  EXPECT_EQ(error_of("[[class]]\nname = \"bad\"\nfilter = \"port port\"\n")
                .rfind("tm.toml:3: class 'bad'.filter: 'port port': ", 0),
            0u);
  EXPECT_NE(error_of("[[class]]\nname = \"x y\"\n").find("letters, digits"), std::string::npos);
  // A capture filter is a live handle's (the kernel's: `inbound` is one); a class's is tm's, on
  // stored frames, as for a file (which have no direction).
  EXPECT_EQ(config::load_config_string("[capture]\nfilter = \"inbound and tcp\"\n", "tm.toml").capture_filter,
            "inbound and tcp");
  EXPECT_NE(error_of("[[class]]\nname = \"in\"\nfilter = \"inbound\"\n").find("class 'in'.filter"),
            std::string::npos);
  EXPECT_EQ(error_of("[[class]]\nfilter = \"tcp\"\nname = \"\"\n"),
            "tm.toml:3: class.name: every [[class]] needs a name");
  // A class's directory is named after it: the names of the store's own entries are refused
  // ('quarantine' was taken, and its packets stored where no query, stats or --class saw them).
  for (const char* name : {"flows", "quarantine", "STORE", "LOCK", "VERIFIED"})
    EXPECT_EQ(error_of(fmt::format("[[class]]\nname = \"{}\"\n", name))
                  .rfind(fmt::format("tm.toml:2: class '{}'.name: '{}' is reserved: ", name, name), 0),
              0u)
        << name;
  EXPECT_EQ(
      error_of("[[class]]\nname = \"quarantine\"\n"),
      "tm.toml:2: class 'quarantine'.name: 'quarantine' is reserved: the store's own entry of that name "
      "holds files set aside");
  EXPECT_NE(error_of("[[class]]\nname = \"r\"\nram_budget = \"1k\"\n").find("ram_budget"), std::string::npos);
  // A NUL in a string would cut it for every consumer (the filter "tcp" alone, a path's prefix).
  EXPECT_EQ(error_of("[[class]]\nname = \"ssh\"\nfilter = \"tcp\\u0000 and port 22\"\n"),
            "tm.toml:3: class[0].filter: a string may not contain a NUL (\\u0000)");
  EXPECT_EQ(error_of("[store]\npath = \"a\\u0000b\"\n"),
            "tm.toml:2: store.path: a string may not contain a NUL (\\u0000)");
  EXPECT_EQ(error_of("[capture]\ninterfaces = [\"eth0\", \"e\\u0000\"]\n"),
            "tm.toml:2: capture.interfaces[1]: a string may not contain a NUL (\\u0000)");
}

TEST(Classifier, FirstMatchByPrecedence) {
  auto c = config::load_config_string(R"(
[[class]]
name = "web"
filter = "tcp port 80"
precedence = 2
[[class]]
name = "tcp"
filter = "tcp"
precedence = 1
)",
                                      "tm.toml");
  config::finalize_classes(c);
  record::Classifier cl(c.classes);
  // Ethernet + IPv4 + TCP 1.2.3.4:1000 -> 5.6.7.8:80
  uint8_t f[54] = {0};
  f[12] = 0x08;
  f[14] = 0x45;
  f[16] = 0;
  f[17] = 40;
  f[22] = 64;
  f[23] = 6;
  f[34] = 1000 >> 8;
  f[35] = 1000 & 0xff;
  f[37] = 80;
  f[46] = 0x50;
  EXPECT_EQ(c.classes[cl.classify(1, f, sizeof f, sizeof f)].name, "web");
  f[37] = 81;
  EXPECT_EQ(c.classes[cl.classify(1, f, sizeof f, sizeof f)].name, "tcp");
  f[23] = 17;
  EXPECT_EQ(c.classes[cl.classify(1, f, sizeof f, sizeof f)].name, "default");
}

// What used to pass unchecked, or was found only once the store was open: each names file, line and key.
TEST(Config, FiltersNamesAndSizesCheckedWithTheirLines) {
  EXPECT_EQ(error_of("[capture]\nfilter = \"tcp port\"\n").rfind("tm.toml:2: capture.filter: ", 0), 0u);
  EXPECT_EQ(error_of("[store]\nsegment_size = \"4g\"\n"),
            "tm.toml:2: store.segment_size: must be between 4k and 3g");
  EXPECT_EQ(error_of("[connections]\ntcp_timeout = 9223372036854775807\n"),
            "tm.toml:2: connections.tcp_timeout: 9223372036854775807 is too large");
  EXPECT_EQ(error_of("[capture]\nbuffer_size = \"1000t\"\n").rfind("tm.toml:2: capture.buffer_size: ", 0),
            0u);
  EXPECT_EQ(error_of("[[class]]\nname = \"a\"\nram_budget = \"1000t\"\n")
                .rfind("tm.toml:3: class 'a'.ram_budget: ", 0),
            0u);
  // A second catch-all and a filter written twice: the class that would never get a packet.
  EXPECT_EQ(
      error_of("[[class]]\nname = \"a\"\n[[class]]\nname = \"b\"\nprecedence = 1\n"),
      "tm.toml:2: class 'a': a second catch-all (no filter): class 'b' (line 4) takes all its packets first");
  EXPECT_EQ(error_of("[[class]]\nname = \"a\"\nfilter = \"tcp  port 22\"\n[[class]]\nname = \"b\"\n"
                     "filter = \"tcp port 22\"\n"),
            "tm.toml:6: class 'b': the same filter as another class: class 'a' (line 2) takes all its "
            "packets first");
}

// Each capture thread has a ring of each class's RAM buffer, of two chunks (16 KiB at least)
// at least: with many threads a small ram_budget would be exceeded, silently. An error naming
// the class's ram_budget, its line, capture.threads and its line, and the least budget.
TEST(Config, RamBudgetTooSmallForTheCaptureThreads) {
  EXPECT_EQ(
      error_of("[capture]\nthreads = 40\n[[class]]\nname = \"a\"\nram_budget = \"1m\"\n"),
      "tm.toml:5: class 'a'.ram_budget: 1048576 bytes is less than the 1310720 bytes (1.2 MiB) that the "
      "RAM rings of capture.threads = 40 (line 2) take at least (two chunks of 16.0 KiB per capture "
      "thread): raise it or use fewer capture threads");
  // The same with the class first in the file.
  EXPECT_EQ(
      error_of("[[class]]\nname = \"a\"\nram_budget = 1048576\n[capture]\nthreads = 64\n")
          .rfind("tm.toml:3: class 'a'.ram_budget: 1048576 bytes is less than the 2097152 bytes (2.0 MiB) "
                 "that the RAM rings of capture.threads = 64 (line 5) take at least",
                 0),
      0u);
  // 32 threads: 32 rings of two 16 KiB chunks are 1 MiB, the smallest budget.
  EXPECT_EQ(error_of("[capture]\nthreads = 32\n[[class]]\nname = \"a\"\nram_budget = \"1m\"\n"), "");
  EXPECT_NE(error_of("[capture]\nthreads = 33\n[[class]]\nname = \"a\"\nram_budget = \"1m\"\n"), "");
  EXPECT_EQ(error_of("[capture]\nthreads = 64\n[[class]]\nname = \"a\"\nram_budget = \"2m\"\n"), "");
  EXPECT_EQ(error_of("[capture]\nthreads = 64\n[[class]]\nname = \"a\"\n"), "");  // the default 64m
}

// config::min_ram_budget is where the RAM pool (store::BufferPool) stays within its budget.
TEST(Config, MinRamBudgetIsWhereTheRamPoolFitsItsBudget) {
  for (int threads = 1; threads <= config::kMaxCaptureThreads; ++threads) {
    const uint64_t need = config::min_ram_budget(threads);
    for (uint64_t budget : {need - 1, need, need + 1, uint64_t{1} << 20, (uint64_t{1} << 20) + 12345}) {
      if (budget < (1u << 20)) continue;  // below the smallest ram_budget
      store::BufferPool pool(budget, static_cast<size_t>(threads));
      EXPECT_EQ(pool.capacity() <= budget, budget >= need) << threads << " threads, budget " << budget;
    }
  }
}

TEST(Config, EqualPrecedenceFiltersThatMayOverlapAreAWarningNamingBoth) {
  auto c = config::load_config_string(
      "[[class]]\nname = \"web\"\nfilter = \"tcp port 80\"\n[[class]]\nname = \"lan\"\n"
      "filter = \"net 10.0.0.0/8\"\n[[class]]\nname = \"ssh\"\nfilter = \"tcp port 22\"\nprecedence = 5\n",
      "tm.toml");
  ASSERT_EQ(c.warnings.size(), 1u);
  EXPECT_EQ(c.warnings[0],
            "tm.toml:5: class 'web' (line 2) and class 'lan' (line 5) have the same precedence (0) and their "
            "filters may both match a packet, which then goes to 'web' (file order): give them different "
            "precedences to choose");
}

TEST(Config, DiskBudgetAsShareOfTheFileSystemAndMaxAge) {
  auto c = config::load_config_string(R"(
[store]
path = "/tmp/tm-no-such-store/x"
disk_budget = "80%"
max_age = "7d"
[[class]]
name = "web"
filter = "tcp port 80"
disk_budget = "12.5%"
max_age = "1d"
[[class]]
name = "rest"
disk_budget = "1g"
)",
                                      "tm.toml");
  EXPECT_DOUBLE_EQ(c.disk_budget_percent, 80);
  EXPECT_EQ(c.max_age_ns, 7ull * 86400 * 1000000000);
  config::finalize_classes(c);
  ASSERT_EQ(c.classes.size(), 2u);
  EXPECT_DOUBLE_EQ(c.classes[0].disk_budget_percent, 12.5);
  EXPECT_EQ(c.classes[0].max_age_ns, 86400ull * 1000000000);
  EXPECT_EQ(c.classes[1].disk_budget, 1ull << 30);
  EXPECT_EQ(c.classes[1].disk_budget_percent, 0);
  EXPECT_EQ(c.classes[1].max_age_ns, 0u);
  // The store does not exist: its nearest existing parent's file system is measured.
  uint64_t fs = config::disk_budget_bytes(UINT64_MAX, 100, "/tmp/tm-no-such-store/x");
  EXPECT_GT(fs, 0u);
  uint64_t share = config::disk_budget_bytes(UINT64_MAX, 80, "/tmp/tm-no-such-store/x");
  EXPECT_NEAR(static_cast<double>(share), static_cast<double>(fs) * 0.8, static_cast<double>(fs) * 0.001);
  EXPECT_EQ(config::disk_budget_bytes(1234, 0, "/tmp"), 1234u);

  uint64_t bytes = 0;
  double pct = 0;
  EXPECT_TRUE(config::parse_disk_budget("80%", bytes, pct));
  EXPECT_DOUBLE_EQ(pct, 80);
  EXPECT_TRUE(config::parse_disk_budget("10g", bytes, pct));
  EXPECT_EQ(bytes, 10ull << 30);
  EXPECT_EQ(pct, 0);
  for (const char* bad :
       {"0%", "101%", "%", "x%", "80 %", "-5%", "nan%", "0", "0k", "1k", "4095", "4k", "63k"})
    EXPECT_FALSE(config::parse_disk_budget(bad, bytes, pct)) << bad;
  // (0 was taken, and deleted every segment as it was sealed)
  EXPECT_EQ(config::disk_budget_error("0"),
            "'0' would keep nothing: give a size (500g), a share of the file system (80%) or none");
  // (1k cut segments at 4 KiB, each deleted once sealed: the store kept nothing)
  EXPECT_EQ(config::disk_budget_error("1k"),
            "'1k' would keep nothing (at least 64k: a few segments of 4k, the smallest, with their "
            "sidecars): give a "
            "size (500g), a share of the file system (80%) or none");
  EXPECT_TRUE(config::parse_disk_budget("64k", bytes, pct));
}

// connections.max beyond this machine's memory, or beyond what the table takes (2^30, which it
// kept of a larger value): file:line: key: why (it was a bare std::bad_alloc).
TEST(Config, ConnectionsMaxWithinTheTableAndTheMemory) {
  const uint64_t mem = config::physical_memory();
  const uint64_t too_many = std::min<uint64_t>(mem / 128 + 1, uint64_t{1} << 30);
  if (too_many * 128 > mem) {
    const std::string e = error_of(fmt::format("[connections]\nmax = {}\n", too_many));
    EXPECT_NE(e.find("tm.toml:2: connections.max: " + std::to_string(too_many) + " connections take up to "),
              std::string::npos)
        << e;
    EXPECT_NE(e.find("more than this machine's memory"), std::string::npos) << e;
  }
  EXPECT_EQ(error_of("[connections]\nmax = 4294967296\n"),
            "tm.toml:2: connections.max: must be between 16 and 1073741824");
  EXPECT_EQ(config::load_config_string("[connections]\nmax = 1000000\n", "tm.toml").max_connections,
            1000000u);
}

// [server] listen: a bad port is refused where it is (tm record, which serves nothing, took it);
// where listen and token_file were given is kept for tm serve's errors about their values.
TEST(Config, ServerListenPortAndWhereItWasGiven) {
  EXPECT_EQ(error_of("[server]\nlisten = \"127.0.0.1:99999\"\n"),
            "tm.toml:2: server.listen: bad port '99999': expected 0 to 65535 (0: any free port)");
  EXPECT_EQ(error_of("[server]\nlisten = \"127.0.0.1:\"\n"),
            "tm.toml:2: server.listen: bad port '': expected 0 to 65535 (0: any free port)");
  auto c =
      config::load_config_string("[server]\n\nlisten = \"0.0.0.0:8910\"\ntoken_file = \"/t\"\n", "tm.toml");
  EXPECT_EQ(c.listen_at, "tm.toml:3: server.listen");
  EXPECT_EQ(c.token_file_at, "tm.toml:4: server.token_file");
}

// A class name is its directory's name: one too long for the file system failed after the store
// was made.
TEST(Config, AClassNameFitsADirectoryName) {
  EXPECT_EQ(error_of("[[class]]\nname = \"" + std::string(201, 'a') + "\"\n"),
            "tm.toml:2: class '" + std::string(201, 'a') +
                "'.name: 201 characters: at most 200 (it names the class's directory)");
  EXPECT_EQ(error_of("[[class]]\nname = \"" + std::string(200, 'a') + "\"\n"), "");
}

// A directory given as the config file was read as an empty one: every setting its default.
TEST(Config, ADirectoryIsNoConfigFile) {
  try {
    config::load_config_file("/tmp");
    FAIL() << "a directory was read as a config file";
  } catch (const config::ConfigError& e) {
    EXPECT_STREQ(e.what(), "/tmp: is a directory, not a config file");
  }
  try {
    config::load_config_file("/tmp/tm-no-such-dir/tm.toml");
    FAIL();
  } catch (const config::ConfigError& e) {
    EXPECT_STREQ(e.what(), "/tmp/tm-no-such-dir/tm.toml: cannot read: No such file or directory");
  }
}

// /dev/zero was taken for an empty config (every setting its default), and a pipe
// (`--config <(...)`) refused as "File could not be opened for reading".
TEST(Config, AConfigIsATextReadWholeFromAFileOrAPipe) {
  try {
    config::load_config_file("/dev/zero");
    FAIL() << "/dev/zero was read as a config file";
  } catch (const config::ConfigError& e) {
    EXPECT_STREQ(e.what(), "/dev/zero:1: a NUL byte: not a TOML text");
  }
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  const std::string text = "[store]\nsegment_size = \"1m\"\n";
  ASSERT_EQ(::write(fds[1], text.data(), text.size()), static_cast<ssize_t>(text.size()));
  ::close(fds[1]);
  const std::string path = "/dev/fd/" + std::to_string(fds[0]);
  const config::Config c = config::load_config_file(path);
  ::close(fds[0]);
  EXPECT_EQ(c.segment_size, 1u << 20);
  EXPECT_EQ(c.source_file, path);
}

TEST(Config, FlowDiskBudgetAsShareOfTheFileSystem) {
  auto c = config::load_config_string(
      "[store]\npath = \"/tmp/tm-no-such-store/x\"\n[flows]\ndisk_budget = \"5%\"\n", "tm.toml");
  EXPECT_DOUBLE_EQ(c.flow_disk_budget_percent, 5);
  uint64_t fs = config::disk_budget_bytes(UINT64_MAX, 100, "/tmp/tm-no-such-store/x");
  uint64_t got = config::flow_options(c).disk_budget;
  EXPECT_NEAR(static_cast<double>(got), static_cast<double>(fs) * 0.05, static_cast<double>(fs) * 0.001);
  // A size, as a string or a number of bytes, stays a size.
  c = config::load_config_string("[flows]\ndisk_budget = \"2g\"\n", "tm.toml");
  EXPECT_EQ(c.flow_disk_budget, 2ull << 30);
  EXPECT_EQ(c.flow_disk_budget_percent, 0);
  EXPECT_EQ(config::flow_options(c).disk_budget, 2ull << 30);
  c = config::load_config_string("[flows]\ndisk_budget = 1048576\n", "tm.toml");
  EXPECT_EQ(config::flow_options(c).disk_budget, 1ull << 20);
  EXPECT_EQ(error_of("[flows]\n\ndisk_budget = \"150%\"\n"),
            "tm.toml:3: flows.disk_budget: '150%' is not a size or a share of the file system (examples: "
            "500g, none, 80%)");
  EXPECT_EQ(error_of("[flows]\ndisk_budget = true\n"),
            "tm.toml:2: flows.disk_budget: expected a size such as \"64m\" or a number of bytes");
}

TEST(Config, DiskBudgetAndMaxAgeErrorsNameLineAndKey) {
  EXPECT_EQ(
      error_of("[store]\ndisk_budget = \"120%\"\n"),
      "tm.toml:2: store.disk_budget: '120%' is not a size or a share of the file system (examples: 500g, "
      "none, 80%)");
  EXPECT_EQ(error_of("[store]\ndisk_budget = \"99999999999t\"\n"),
            "tm.toml:2: store.disk_budget: '99999999999t' is too large (at most 16 EiB)");
  EXPECT_EQ(error_of("[store]\nsegment_size = \"99999999999t\"\n"),
            "tm.toml:2: store.segment_size: '99999999999t' is too large (at most 16 EiB)");
  EXPECT_EQ(error_of("[store]\nmax_age = \"soon\"\n"),
            "tm.toml:2: store.max_age: 'soon' is not a duration (examples: 30s, 5m, 2h, 7d)");
  EXPECT_EQ(error_of("[[class]]\nname = \"a\"\n\nmax_age = true\n"),
            "tm.toml:4: class 'a'.max_age: expected a duration such as \"5m\" or a number of seconds");
  EXPECT_EQ(error_of("[[class]]\nname = \"a\"\ndisk_budget = \"half\"\n"),
            "tm.toml:3: class 'a'.disk_budget: 'half' is not a size or a share of the file system (examples: "
            "500g, none, 80%)");
}
