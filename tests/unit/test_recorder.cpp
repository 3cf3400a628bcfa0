#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>

#include "config/component_options.h"
#include "flow/flow_drain.h"
#include "flow/flow_file.h"
#include "flow/flow_query.h"
#include "flow/flow_record.h"
#include "record/recorder.h"
#include "store/pcap_scan.h"
#include "util/pcap.h"

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

// A recorder over a store writer and flow drain, as a session makes them; end() shuts them down
// in the session's order.
struct Rig {
  store::StoreWriter w;
  flow::FlowDrain fl;
  record::Recorder rec;
  // `writer_delay_us`: the writer's test hook (a slow disk), as --test-writer-delay-us.
  explicit Rig(const config::Config& cfg, uint32_t writer_delay_us = 0)
      : w(config::store_options(cfg)),
        fl(config::flow_options(cfg), config::class_names(cfg), nullptr),
        rec(cfg, w, &fl) {
    w.set_tick([this](uint64_t t) { fl.tick(t); });
    if (writer_delay_us) w.set_test_delay_us(writer_delay_us);
    w.start();
  }
  void process(std::vector<capture::RawPacket>& pk) { rec.process(pk.data(), pk.size(), true); }
  // `hold`: the flow writer moves to its own thread first (Session::finish).
  void end(bool finish_recorder = true, bool hold = false) {
    if (hold) fl.hold();
    if (finish_recorder) rec.finish();
    fl.close();
    w.finish();
    fl.join();
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
  Rig r(fx.cfg);
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
  r.process(pk);
  r.end();
  const auto& c = r.rec.class_counters()[0];
  EXPECT_EQ(c.seen_packets, 8u);
  EXPECT_EQ(c.stored_packets, 5u);
  EXPECT_EQ(c.cut_packets, 3u);
  EXPECT_EQ(c.control_kept, 1u);
  EXPECT_EQ(c.connections, 1u);
  EXPECT_EQ(fx.stored_timestamps(), (std::vector<uint64_t>{100, 101, 102, 103, 106}));
}

namespace {
// `n` Ethernet frames `f`, at times 0, 1, ... ns.
std::vector<capture::RawPacket> copies(const std::vector<uint8_t>& f, uint64_t n) {
  std::vector<capture::RawPacket> pk;
  for (uint64_t i = 0; i < n; ++i)
    pk.push_back(
        capture::RawPacket{i, static_cast<uint32_t>(f.size()), static_cast<uint32_t>(f.size()), 1, f.data()});
  return pk;
}
}  // namespace

// A writer that is slow but working is not taken for a stalled one: room comes back a chunk at
// a time (here 16 KiB, ~27 frames: ~270 ms at 10 ms a frame), longer than the stall limit
// (200 ms), but the writer gives a record back every 10 ms, and the limit counts from that.
// (Timed from the start of each wait, a live capture dropped the rest of a burst once the
// writer took longer than the limit to free a chunk: tests/e2e/test_backpressure.py under load.)
TEST(Recorder, ASlowWriterIsNotAStalledOne) {
  Fixture fx(UINT64_MAX);
  fx.cfg.classes[0].ram_budget = 128 << 10;  // 8 chunks of 16 KiB (below the config's least: a test)
  Rig r(fx.cfg, 10000);
  r.rec.set_stall_limits(std::chrono::milliseconds(200), std::chrono::milliseconds(200));
  auto f = tcp_frame(true, 0x10, 550);
  auto pk = copies(f, 200);
  r.process(pk);
  r.end(false);
  const auto& c = r.rec.class_counters()[0];
  EXPECT_EQ(c.dropped_ring_full, 0u);
  EXPECT_EQ(c.stored_packets, 200u);
  EXPECT_GT(r.rec.counters().ring_waits, 0u) << "the budget never filled: the test proves nothing";
  EXPECT_EQ(fx.stored_timestamps().size(), 200u);
}

// A writer that gives nothing back for longer than the short stall limit, but says nothing is
// wrong (one write or sync taking seconds on a loaded disk: here the test hook's 100 ms a
// frame), is waited for up to the long limit; the same writer under a long limit as short as
// the short one is taken for a stalled one and the rest of the burst dropped, which tells the
// two apart. (Under load, a sync of over 2 s made e2e test_backpressure drop part of a burst.)
TEST(Recorder, AWriterSlowInOneWriteIsWaitedForUnlessItCannotWrite) {
  auto f = tcp_frame(true, 0x10, 12000);  // one frame a 16 KiB chunk of the budget
  for (bool long_limit : {true, false}) {
    SCOPED_TRACE(long_limit);
    Fixture fx(UINT64_MAX);
    fx.cfg.classes[0].ram_budget = 128 << 10;  // 8 chunks of 16 KiB (below the config's least: a test)
    Rig r(fx.cfg, 100000);
    r.rec.set_stall_limits(std::chrono::milliseconds(30),
                           long_limit ? std::chrono::seconds(20) : std::chrono::milliseconds(30));
    auto pk = copies(f, 12);
    r.process(pk);
    r.end(false);
    const auto& c = r.rec.class_counters()[0];
    EXPECT_GT(r.rec.counters().ring_waits, 0u) << "the budget never filled: the test proves nothing";
    if (long_limit) {
      EXPECT_EQ(c.dropped_ring_full, 0u);
      EXPECT_EQ(fx.stored_timestamps().size(), 12u);
    } else {
      EXPECT_GT(c.dropped_ring_full, 0u);
      EXPECT_EQ(c.stored_packets + c.dropped_ring_full, 12u);
    }
  }
}

TEST(Recorder, WireLengthNotCapturedLengthCounts) {
  Fixture fx(1000);
  Rig r(fx.cfg);
  auto f = tcp_frame(true, 0x10, 10);
  // Captured 64 bytes of 1500-byte packets (a snaplen): the first crosses the cutoff alone.
  std::vector<capture::RawPacket> pk;
  for (int i = 0; i < 3; ++i)
    pk.push_back(capture::RawPacket{static_cast<uint64_t>(i), 64, 1500, 1, f.data()});
  r.process(pk);
  r.end(false);
  EXPECT_EQ(r.rec.class_counters()[0].stored_packets, 1u);
  EXPECT_EQ(r.rec.class_counters()[0].cut_packets, 2u);
}

TEST(Recorder, NoCutoffStoresEverything) {
  Fixture fx(UINT64_MAX);
  Rig r(fx.cfg);
  auto f = tcp_frame(true, 0x10, 1400);
  std::vector<capture::RawPacket> pk;
  for (int i = 0; i < 1000; ++i)
    pk.push_back(capture::RawPacket{static_cast<uint64_t>(i), static_cast<uint32_t>(f.size()),
                                    static_cast<uint32_t>(f.size()), 1, f.data()});
  r.process(pk);
  r.end(false);
  EXPECT_EQ(r.rec.class_counters()[0].stored_packets, 1000u);
  EXPECT_EQ(fx.stored_timestamps().size(), 1000u);
}

// A malformed IPv4 header (header length 4) keeps its addresses and protocol but no ports: in
// the connection table it is what a packet cut before its TCP ports is, the connection
// (10.0.0.1, 10.0.0.2, TCP, no ports), counted against the cutoff apart from the real one.
TEST(Recorder, MalformedIpHeaderIsCountedAsItsAddressesWithoutPorts) {
  Fixture fx(1000);
  Rig r(fx.cfg);
  auto syn = tcp_frame(true, 0x02, 0);
  auto bad_ihl = tcp_frame(true, 0x10, 546);  // 600 bytes
  bad_ihl[14] = 0x44;
  auto cut = tcp_frame(true, 0x10, 546);  // captured up to 3 bytes into TCP: no ports
  std::vector<capture::RawPacket> pk = {
      {100, static_cast<uint32_t>(syn.size()), static_cast<uint32_t>(syn.size()), 1, syn.data()},
      {101, 600, 600, 1, bad_ihl.data()},      // before = 0: stored
      {102, 14 + 20 + 3, 600, 1, cut.data()},  // before = 600: stored
      {103, 600, 600, 1, bad_ihl.data()},      // before = 1200: cut
      {104, static_cast<uint32_t>(syn.size()), static_cast<uint32_t>(syn.size()), 1, syn.data()},
  };
  r.process(pk);
  r.end();
  const auto& c = r.rec.class_counters()[0];
  EXPECT_EQ(c.seen_packets, 5u);
  EXPECT_EQ(c.connections, 2u);
  EXPECT_EQ(c.stored_packets, 4u);
  EXPECT_EQ(c.cut_packets, 1u);
  EXPECT_EQ(fx.stored_timestamps(), (std::vector<uint64_t>{100, 101, 102, 104}));
}

// A packet stamped where a pcap record's 32-bit seconds cannot go (2106-02-07 06:28:16 on; a
// pcapng time before 1970 comes saturated to the largest time) is not recorded, and counted:
// its segment would hold another time (wrapped) than its index.
TEST(Recorder, APacketStampedWhereAPcapRecordCannotGoIsCountedNotStored) {
  Fixture fx(UINT64_MAX);
  Rig r(fx.cfg);
  auto f = tcp_frame(true, 0x10, 10);
  const uint64_t last = util::pcap::kTimeLimitNs - 1;  // 2106-02-07 06:28:15.999999999
  std::vector<capture::RawPacket> pk;
  for (uint64_t ts : {uint64_t{5}, util::pcap::kTimeLimitNs, last, UINT64_MAX, uint64_t{6}})
    pk.push_back(capture::RawPacket{ts, static_cast<uint32_t>(f.size()), static_cast<uint32_t>(f.size()), 1,
                                    f.data()});
  r.process(pk);
  r.end();
  EXPECT_EQ(r.rec.counters().outside_pcap_time, 2u);
  EXPECT_EQ(r.rec.counters().packets, 3u);
  EXPECT_EQ(r.rec.class_counters()[0].stored_packets, 3u);
  EXPECT_EQ(fx.stored_timestamps(), (std::vector<uint64_t>{5, 6, last}));
}

// A record longer than tcpdump's and Wireshark's limit (262144 bytes; a pcap written by a
// tool with a larger snaplen, or BIG TCP on loopback) is stored cut to it, as a capture with
// that snaplen would hold it: an answer holding the whole record would be refused by both.
TEST(Recorder, ARecordLongerThanTheSnaplenLimitIsStoredCutToIt) {
  Fixture fx(UINT64_MAX);
  fx.cfg.classes[0].ram_budget = 16 << 20;
  Rig r(fx.cfg);
  auto small = tcp_frame(true, 0x10, 10);
  auto big = tcp_frame(true, 0x10, 300000 - 54);
  std::vector<capture::RawPacket> pk;
  pk.push_back(capture::RawPacket{1, static_cast<uint32_t>(small.size()), static_cast<uint32_t>(small.size()),
                                  1, small.data()});
  pk.push_back(capture::RawPacket{2, 300000, 300000, 1, big.data()});
  pk.push_back(capture::RawPacket{3, static_cast<uint32_t>(small.size()), static_cast<uint32_t>(small.size()),
                                  1, small.data()});
  r.process(pk);
  r.end();
  EXPECT_EQ(r.rec.counters().cut_to_snaplen, 1u);
  EXPECT_EQ(r.rec.class_counters()[0].stored_packets, 3u);
  std::vector<std::pair<uint32_t, uint32_t>> lens;  // (caplen, wirelen) by time
  std::vector<uint64_t> ts;
  for (auto& f : fs::directory_iterator(fx.dir / "store" / "default"))
    if (f.path().extension() == ".pcap") {
      store::scan_pcap(f.path().string(),
                       [&](uint64_t, uint64_t t, uint32_t cap, uint32_t wire, const uint8_t* d) {
                         ts.push_back(t);
                         lens.emplace_back(cap, wire);
                         if (t == 2) {
                           EXPECT_EQ(std::memcmp(d, big.data(), cap), 0);
                         }
                       });
    }
  ASSERT_EQ(ts, (std::vector<uint64_t>{1, 2, 3}));
  EXPECT_EQ(lens[1], (std::pair<uint32_t, uint32_t>{262144, 300000}));
  EXPECT_EQ(lens[0].first, small.size());
}

namespace {

// tcp_frame() between 10.0.0.1:`sport` and 10.0.0.2:80, from 10.0.0.1.
std::vector<uint8_t> tcp_frame_from(uint16_t sport, size_t payload = 0) {
  auto f = tcp_frame(true, 0x10, payload);
  f[34] = static_cast<uint8_t>(sport >> 8), f[35] = static_cast<uint8_t>(sport);
  return f;
}

// Every flow record the store holds, interim ones included, in file order.
std::vector<flow::FlowRecord> all_flow_records(const fs::path& store) {
  std::vector<fs::path> files;
  for (auto& f : fs::recursive_directory_iterator(store))
    if (f.path().extension() == ".flows") files.push_back(f.path());
  std::sort(files.begin(), files.end());
  std::vector<flow::FlowRecord> out;
  for (auto& p : files)
    for (auto& r : flow::read_flow_file(p.string()).records) out.push_back(r);
  return out;
}

struct TimedFrame {
  uint64_t ts;
  const std::vector<uint8_t>* frame;
};

// Hands the packets over one per batch, as a slow reader would: the expiry sweep runs
// between any two of them.
void feed_one_by_one(record::Recorder& rec, const std::vector<TimedFrame>& pkts) {
  for (auto& p : pkts) {
    capture::RawPacket pk{p.ts, static_cast<uint32_t>(p.frame->size()),
                          static_cast<uint32_t>(p.frame->size()), 1, p.frame->data()};
    rec.process(&pk, 1, true);
  }
}

constexpr uint64_t kS = 1000000000ull;

}  // namespace

TEST(Recorder, PacketsOlderThanTheClockNeitherExpireNorSplitTheirConnection) {
  // As in a capture whose timestamps jump back years: connection A at t = 1000 s, then the
  // packets of connection B from t = 10 s, then an A packet older than A's first one. The
  // clock stays at 1000 s: B is idle for no time at all between its packets.
  Fixture fx(UINT64_MAX);
  fx.cfg.max_connections = 16;  // a small table: each sweep step looks at every entry
  Rig r(fx.cfg);
  auto a = tcp_frame_from(1000), b = tcp_frame_from(2000);
  feed_one_by_one(r.rec, {{1000 * kS, &a},
                          {1001 * kS, &a},
                          {10 * kS, &b},
                          {11 * kS, &b},
                          {12 * kS, &b},
                          {13 * kS, &b},
                          {5 * kS, &a},
                          {14 * kS, &b}});
  EXPECT_EQ(r.rec.table().size(), 2u);
  EXPECT_EQ(r.rec.table().stats().expired, 0u);
  r.end(true, true);
  auto recs = all_flow_records(fx.cfg.store);
  ASSERT_EQ(recs.size(), 2u);
  std::sort(recs.begin(), recs.end(), [](auto& x, auto& y) { return x.orig_port < y.orig_port; });
  EXPECT_EQ(recs[0].orig_port, 1000);
  EXPECT_EQ(recs[0].pkts[0], 3u);
  EXPECT_EQ(recs[0].first_ts, 5 * kS);  // the smallest of its packets' times
  EXPECT_EQ(recs[0].last_ts, 1001 * kS);
  EXPECT_EQ(recs[1].orig_port, 2000);
  EXPECT_EQ(recs[1].pkts[0], 5u);
  EXPECT_EQ(recs[1].first_ts, 10 * kS);
  EXPECT_EQ(recs[1].last_ts, 14 * kS);
  EXPECT_EQ(recs[1].end, static_cast<uint8_t>(flow::EndState::kShutdown));
}

TEST(Recorder, IdleTimeIsMeasuredOnTheClock) {
  // B's packets are old, but B ends by timeout once the clock has moved on past its timeout
  // since B's last packet (not since B's own last timestamp).
  Fixture fx(UINT64_MAX);
  fx.cfg.max_connections = 16;
  fx.cfg.timeouts.tcp_ns = 100 * kS;
  Rig r(fx.cfg);
  auto a = tcp_frame_from(1000), b = tcp_frame_from(2000);
  feed_one_by_one(r.rec, {{1000 * kS, &a}, {10 * kS, &b}, {1090 * kS, &a}, {1099 * kS, &a}});
  EXPECT_EQ(r.rec.table().size(), 2u);  // B idle for 99 s of the clock
  feed_one_by_one(r.rec, {{1101 * kS, &a}, {1102 * kS, &a}});
  EXPECT_EQ(r.rec.table().size(), 1u);  // B idle for 101 s: ended
  r.end(true, true);
}

TEST(Recorder, InterimRecordsKeepTheIdWhenAnOlderPacketComes) {
  Fixture fx(UINT64_MAX);
  fx.cfg.flow_interim_ns = 10 * kS;
  Rig r(fx.cfg);
  auto a = tcp_frame_from(1000);
  // Created at 100 s; 50 s and 90 s are older than its first packet; interim records when its
  // age on the clock passes 10 s (at 112) and 20 s (at 125), not for the old packets.
  feed_one_by_one(r.rec, {{100 * kS, &a},
                          {105 * kS, &a},
                          {50 * kS, &a},
                          {112 * kS, &a},
                          {90 * kS, &a},
                          {125 * kS, &a},
                          {126 * kS, &a}});
  r.end(true, true);
  auto recs = all_flow_records(fx.cfg.store);
  ASSERT_EQ(recs.size(), 3u);
  EXPECT_EQ(recs[0].end, static_cast<uint8_t>(flow::EndState::kOpen));
  EXPECT_EQ(recs[0].pkts[0], 4u);
  EXPECT_EQ(recs[0].first_ts, 50 * kS);
  EXPECT_EQ(recs[1].end, static_cast<uint8_t>(flow::EndState::kOpen));
  EXPECT_EQ(recs[1].pkts[0], 6u);
  EXPECT_EQ(recs[2].end, static_cast<uint8_t>(flow::EndState::kShutdown));
  EXPECT_EQ(recs[2].pkts[0], 7u);
  EXPECT_EQ(recs[2].first_ts, 50 * kS);
  EXPECT_EQ(recs[2].last_ts, 126 * kS);
  EXPECT_EQ(recs[0].id, recs[2].id);
  EXPECT_EQ(recs[1].id, recs[2].id);
}

// A flow record says where its stored packets may be. Cut by a packet older than some stored
// before it (input out of order), they reach past the cutoff's time (kFlowControlAfterCut).
// Moved to another class while open, its first packets are in the former class's segments:
// an interim record says so at once (kFlowClassMoved), and so does its last.
TEST(Recorder, FlowRecordsSayWhereTheirStoredPacketsMayBe) {
  Fixture fx(100);  // the cutoff: 108 bytes before it, the third 54-byte frame is cut
  config::ClassConfig alert = fx.cfg.classes[0];
  alert.name = "alert";
  fx.cfg.classes.push_back(alert);
  Rig r(fx.cfg);
  auto a = tcp_frame_from(1000), b = tcp_frame_from(2000);
  feed_one_by_one(r.rec, {{100 * kS, &a}, {200 * kS, &a}, {50 * kS, &a}, {300 * kS, &b}});
  uint8_t host[4] = {10, 0, 0, 1};
  EXPECT_EQ(r.rec.set_host_class(packet::IpAddr::v4(host), 1), 2u);
  feed_one_by_one(r.rec, {{301 * kS, &b}});
  r.end(true, true);
  auto recs = all_flow_records(fx.cfg.store);
  ASSERT_EQ(recs.size(), 4u);  // an interim record of each at the move, and the last of each
  for (const auto& f : recs) {
    SCOPED_TRACE(f.orig_port);
    EXPECT_TRUE(f.flags & flow::kFlowClassMoved);
    EXPECT_EQ(f.cls, 1u);
    if (f.orig_port == 1000) {
      EXPECT_TRUE(f.cut);
      EXPECT_EQ(f.cutoff_ts, 50 * kS);
      EXPECT_EQ(f.stored, 2u);
      EXPECT_TRUE(f.flags & flow::kFlowControlAfterCut);
    } else {
      EXPECT_FALSE(f.cut);
      EXPECT_FALSE(f.flags & flow::kFlowControlAfterCut);
    }
  }
  EXPECT_EQ(recs[0].end, static_cast<uint8_t>(flow::EndState::kOpen));
  EXPECT_EQ(recs[1].end, static_cast<uint8_t>(flow::EndState::kOpen));
  EXPECT_EQ(recs[3].end, static_cast<uint8_t>(flow::EndState::kShutdown));
}

// A test the flow index cannot answer (a flow's id, its Community ID) keeps only the records
// that pass it: `tm query --flow ID` and `--community-id` hold no row of another connection.
TEST(Recorder, FlowQueriesKeepOnlyTheRecordsTheirTestPasses) {
  Fixture fx(0);
  Rig r(fx.cfg);
  auto a = tcp_frame_from(1000), b = tcp_frame_from(2000);
  feed_one_by_one(r.rec, {{100 * kS, &a}, {200 * kS, &b}, {300 * kS, &a}});
  r.end(true, true);
  flow::FlowQueryStats st;
  auto all = flow::query_flows(fx.cfg.store, query::parse_expr(""), 0, UINT64_MAX, st);
  ASSERT_EQ(all.size(), 2u);
  ASSERT_NE(all[0].rec.orig_port, all[1].rec.orig_port);
  for (const auto& want : all) {
    SCOPED_TRACE(want.rec.orig_port);
    flow::FlowRow got;
    ASSERT_TRUE(flow::find_flow(fx.cfg.store, want.rec.id, got));
    EXPECT_EQ(got.rec.orig_port, want.rec.orig_port);
    EXPECT_EQ(got.rec.pkts[0] + got.rec.pkts[1], want.rec.pkts[0] + want.rec.pkts[1]);
    flow::FlowQueryStats cs;
    auto same = flow::query_flows(fx.cfg.store, query::parse_expr(""), 0, UINT64_MAX, cs,
                                  flow::has_community_id(flow::community_id(want.rec)));
    ASSERT_EQ(same.size(), 1u);
    EXPECT_EQ(same[0].rec.id, want.rec.id);
    EXPECT_EQ(cs.matched, 1u);
  }
  flow::FlowRow none;
  EXPECT_FALSE(flow::find_flow(fx.cfg.store, all[0].rec.id ^ all[1].rec.id, none));
}
