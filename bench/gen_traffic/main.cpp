// gen_traffic: synthetic pcap generator for tm benchmarks.
//
//   gen_traffic --out FILE --bytes N[k|m|g] [--seed S] [--small] [--start EPOCH_SECONDS]
//               [--rate-gbps R] [--shape A] [--flood F]
//
// Sizes take binary suffixes (1g = 2^30 bytes); the file ends at the first packet boundary at or
// after N bytes. --start defaults to 1700000000, --seed to 1.
//
// Default mode writes a heavy-tailed capture that looks like a busy link: connection sizes are
// Pareto distributed (shape 1.1 unless --shape, minimum 300 payload bytes, capped at 1 GB),
// ~4000 connections are active at once and interleaved by a weighted fair scheduler (a flow's
// share of the link grows with its size, up to a cap, like real bulk transfers), ~80% IPv4 /
// ~20% IPv6, ~85% TCP (handshake, data both ways with delayed ACKs, FIN or RST close, some
// refused or unanswered SYNs) and ~15% UDP (DNS query/response pairs, QUIC, NTP, RTP-like media,
// syslog, VPN). Bulk data uses 1514-byte frames. Hosts are a few thousand addresses in
// 10.0.0.0/8, 192.168.0.0/16 and 2001:db8::/32; servers and clients are picked with Zipf
// popularity so per-host queries have interesting answers.
//
// --small writes only 64..128-byte frames (short TCP exchanges, DNS, NTP, small UDP) for a
// packets-per-second test.
//
// --flood F adds a SYN flood: F spoofed TCP SYNs (60-byte frames, on average, F may be
// fractional) after each packet of the traffic above, every one a new connection (sources
// counted through 198.18.0.0/15 and ports 1024..65535, so none repeats within 8 G SYNs) to one
// server's port 80, and never answered. The rest of the traffic is the same bytes as without
// --flood, only later on the clock (the SYNs take their share of the line rate).
//
// The output is a nanosecond pcap (magic 0xa1b23c4d, snaplen 65535, LINKTYPE_ETHERNET,
// caplen == len) whose timestamps advance at the given line rate (default 1 Gbit/s) from --start.
// IPv4, TCP and UDP checksums are valid. Output is deterministic for a given seed and options,
// and a smaller --bytes gives a prefix of a larger one.
// The simulation runs 256 MB (--small: 32 MB) of traffic, not written, before the first packet, so
// the capture starts in steady state with connections already in progress, like a real one.
//
// At the end it prints "key: value" lines: packets, bytes, connections, ..., plus
//   conn: tcp SRC SPORT DST DPORT     (a mid-sized TCP connection fully inside the capture)
//   host: ADDR                        (its client address)
// which the query benchmark uses.
//
// Only the C++ standard library and POSIX are used (no libpcap).

#include "gen_traffic.h"

using namespace gen;

namespace {

uint64_t parse_size(const char* s) {
  char* end = nullptr;
  errno = 0;
  const double v = std::strtod(s, &end);
  if (errno || end == s || v <= 0) die(std::string("bad size: ") + s);
  double mult = 1;
  const std::string_view suf(end);
  if (suf == "k" || suf == "K")
    mult = 1024.0;
  else if (suf == "m" || suf == "M")
    mult = 1024.0 * 1024;
  else if (suf == "g" || suf == "G")
    mult = 1024.0 * 1024 * 1024;
  else if (!suf.empty())
    die(std::string("bad size suffix: ") + s);
  return static_cast<uint64_t>(v * mult);
}

void usage() {
  std::fprintf(stderr,
               "usage: gen_traffic --out FILE --bytes N[k|m|g] [--seed S] [--small]\n"
               "                   [--start EPOCH_SECONDS] [--rate-gbps R] [--shape A] [--flood F]\n"
               "  --shape A  Pareto tail index of connection sizes (default 1.1)\n"
               "  --flood F  F new-connection SYNs per packet of the traffic (a SYN flood)\n");
  std::exit(2);
}

}  // namespace

int main(int argc, char** argv) {
  std::string out;
  uint64_t bytes = 0, seed = 1;
  bool small = false;
  double start = 1700000000.0, rate = 1.0, shape = kDefaultShape, flood = 0;
  for (int i = 1; i < argc; ++i) {
    const std::string_view a = argv[i];
    auto val = [&]() -> const char* {
      if (i + 1 >= argc) usage();
      return argv[++i];
    };
    if (a == "--out") {
      out = val();
    } else if (a == "--bytes") {
      bytes = parse_size(val());
    } else if (a == "--seed") {
      seed = std::strtoull(val(), nullptr, 0);
    } else if (a == "--small") {
      small = true;
    } else if (a == "--start") {
      start = std::strtod(val(), nullptr);
    } else if (a == "--rate-gbps") {
      rate = std::strtod(val(), nullptr);
    } else if (a == "--shape") {
      shape = std::strtod(val(), nullptr);
    } else if (a == "--flood") {
      flood = std::strtod(val(), nullptr);
    } else if (a == "--version") {
      std::printf("gen_traffic %d\n", kVersion);
      return 0;
    } else if (a == "-h" || a == "--help") {
      usage();
    } else {
      std::fprintf(stderr, "gen_traffic: unknown argument %s\n", argv[i]);
      usage();
    }
  }
  if (out.empty() || bytes == 0) usage();
  if (!(rate > 0)) die("--rate-gbps must be positive");
  if (!(shape > 0.5 && shape < 5)) die("--shape must be in (0.5, 5)");
  if (!(start >= 0) || start > 4e9) die("--start out of range");
  if (!(flood >= 0 && flood <= 1000)) die("--flood must be in [0, 1000]");

  const int fd = ::open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) die("cannot open " + out + ": " + std::strerror(errno));
  const auto t0 = std::chrono::steady_clock::now();
  Generator gen(seed, small, static_cast<uint64_t>(std::llround(start * 1e9)), rate, shape, flood);
  gen.run(fd, bytes);
  if (::close(fd) != 0) die(std::string("close: ") + std::strerror(errno));
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  gen.report();
  std::printf("generator: gen_traffic %d\n", kVersion);
  std::printf("generate-seconds: %.3f\n", secs);
  std::fprintf(stderr, "gen_traffic: wrote %s in %.2f s (%.0f MB/s)\n", out.c_str(), secs,
               static_cast<double>(bytes) / 1e6 / secs);
  return 0;
}
