#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>

#include "record/recorder.h"
#include "store/pcap_scan.h"

using namespace tmach;
namespace fs = std::filesystem;

namespace {

struct Fixture {
  fs::path dir;
  config::Config cfg;
  Fixture(uint64_t cutoff) {
    char tmpl[] = "/tmp/tm-rec-XXXXXX";
    dir = mkdtemp(tmpl);
    cfg.store = (dir / "store").string();
    config::finalize_classes(cfg);
    cfg.classes[0].cutoff = cutoff;
    cfg.classes[0].ram_budget = 4 << 20;
  }
  ~Fixture() { fs::remove_all(dir); }
  std::vector<uint64_t> stored_timestamps() {
    std::vector<uint64_t> ts;
    for (auto& f : fs::directory_iterator(dir / "store" / "default"))
      if (f.path().extension() == ".pcap")
        store::scan_pcap(f.path().string(),
                         [&](uint64_t, uint64_t t, uint32_t, uint32_t, const uint8_t*) { ts.push_back(t); });
    std::sort(ts.begin(), ts.end());
    return ts;
  }
};

// Ethernet/IPv4/TCP between 10.0.0.1:1000 and 10.0.0.2:80; `fwd` picks the direction.
std::vector<uint8_t> tcp_frame(bool fwd, uint8_t flags, size_t payload) {
  std::vector<uint8_t> f(54 + payload, 0);
  f[12] = 0x08;
  f[14] = 0x45;
  uint16_t tot = static_cast<uint16_t>(40 + payload);
  f[16] = static_cast<uint8_t>(tot >> 8), f[17] = static_cast<uint8_t>(tot);
  f[22] = 64, f[23] = 6;
  f[26] = 10, f[29] = fwd ? 1 : 2;
  f[30] = 10, f[33] = fwd ? 2 : 1;
  uint16_t sp = fwd ? 1000 : 80, dp = fwd ? 80 : 1000;
  f[34] = static_cast<uint8_t>(sp >> 8), f[35] = static_cast<uint8_t>(sp);
  f[36] = static_cast<uint8_t>(dp >> 8), f[37] = static_cast<uint8_t>(dp);
  f[46] = 0x50;
  f[47] = flags;
  return f;
}

}  // namespace

TEST(Recorder, CutoffCountsBothDirectionsAndStopsAfterTheCrossingPacket) {
  Fixture fx(1000);
  store::StoreWriter w(fx.cfg, fx.cfg.classes);
  record::Recorder rec(fx.cfg, w);
  w.start();
  std::vector<std::vector<uint8_t>> frames;
  frames.push_back(tcp_frame(true, 0x02, 0));     // SYN, 54 bytes: before = 0
  frames.push_back(tcp_frame(false, 0x12, 0));    // SYN-ACK: before = 54
  frames.push_back(tcp_frame(true, 0x10, 400));   // before = 108
  frames.push_back(tcp_frame(false, 0x10, 500));  // before = 562 -> stored, crosses 1000
  frames.push_back(tcp_frame(true, 0x10, 10));    // before = 1116 -> cut
  frames.push_back(tcp_frame(false, 0x10, 0));    // pure ACK -> cut (not SYN/FIN/RST)
  frames.push_back(tcp_frame(true, 0x11, 0));     // FIN without payload -> kept (keep_tcp_control)
  frames.push_back(tcp_frame(false, 0x11, 5));    // FIN with payload -> cut
  std::vector<capture::RawPacket> pk;
  for (size_t i = 0; i < frames.size(); ++i)
    pk.push_back(capture::RawPacket{100 + i, static_cast<uint32_t>(frames[i].size()),
                                    static_cast<uint32_t>(frames[i].size()), 1, frames[i].data()});
  rec.process(pk.data(), pk.size(), true);
  rec.finish();
  w.finish();
  const auto& c = rec.class_counters()[0];
  EXPECT_EQ(c.seen_packets, 8u);
  EXPECT_EQ(c.stored_packets, 5u);
  EXPECT_EQ(c.cut_packets, 3u);
  EXPECT_EQ(c.control_kept, 1u);
  EXPECT_EQ(c.connections, 1u);
  EXPECT_EQ(fx.stored_timestamps(), (std::vector<uint64_t>{100, 101, 102, 103, 106}));
}

TEST(Recorder, WireLengthNotCapturedLengthCounts) {
  Fixture fx(1000);
  store::StoreWriter w(fx.cfg, fx.cfg.classes);
  record::Recorder rec(fx.cfg, w);
  w.start();
  auto f = tcp_frame(true, 0x10, 10);
  // Captured 64 bytes of 1500-byte packets (a snaplen): the first crosses the cutoff alone.
  std::vector<capture::RawPacket> pk;
  for (int i = 0; i < 3; ++i)
    pk.push_back(capture::RawPacket{static_cast<uint64_t>(i), 64, 1500, 1, f.data()});
  rec.process(pk.data(), pk.size(), true);
  w.finish();
  EXPECT_EQ(rec.class_counters()[0].stored_packets, 1u);
  EXPECT_EQ(rec.class_counters()[0].cut_packets, 2u);
}

TEST(Recorder, NoCutoffStoresEverything) {
  Fixture fx(UINT64_MAX);
  store::StoreWriter w(fx.cfg, fx.cfg.classes);
  record::Recorder rec(fx.cfg, w);
  w.start();
  auto f = tcp_frame(true, 0x10, 1400);
  std::vector<capture::RawPacket> pk;
  for (int i = 0; i < 1000; ++i)
    pk.push_back(capture::RawPacket{static_cast<uint64_t>(i), static_cast<uint32_t>(f.size()),
                                    static_cast<uint32_t>(f.size()), 1, f.data()});
  rec.process(pk.data(), pk.size(), true);
  w.finish();
  EXPECT_EQ(rec.class_counters()[0].stored_packets, 1000u);
  EXPECT_EQ(fx.stored_timestamps().size(), 1000u);
}
