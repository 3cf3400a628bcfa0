// Cluster mode: the balancing hash, the local split, worker selection (checked for soundness
// against the exact evaluator on real packets), the pcap stream parser, the bounded k-way
// merge and the flow merge.
#include <arpa/inet.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "capture/source.h"
#include "cluster/balance.h"
#include "cluster/cluster_config.h"
#include "cluster/flow_merge.h"
#include "cluster/pcap_merge.h"
#include "cluster/selection.h"
#include "config/config.h"
#include "packet/decoder.h"
#include "query/eval.h"
#include "query/parser.h"
#include "server/flow_format.h"
#include "util/pcap.h"

namespace tmach::cluster {
namespace {

using packet::IpAddr;

IpAddr v4(const char* s) {
  uint8_t b[4];
  EXPECT_EQ(inet_pton(AF_INET, s, b), 1);
  return IpAddr::v4(b);
}

struct Frame {
  uint64_t ts;
  uint32_t linktype, wirelen;
  std::vector<uint8_t> data;
};

std::vector<Frame> read_corpus(const char* rel) {
  auto src = capture::open_file_source(std::string(TM_CORPUS_DIR) + "/" + rel);
  std::vector<Frame> out;
  std::vector<capture::RawPacket> b(256);
  while (size_t n = src->next_batch(b.data(), b.size()))
    for (size_t i = 0; i < n; ++i)
      out.push_back({b[i].ts_ns, b[i].linktype, b[i].wirelen,
                     std::vector<uint8_t>(b[i].data, b[i].data + b[i].caplen)});
  return out;
}

// An Ethernet/IPv4/TCP or UDP frame.
std::vector<uint8_t> ip_frame(const char* src, const char* dst, uint8_t proto, uint16_t sp, uint16_t dp,
                              uint16_t frag = 0) {
  std::vector<uint8_t> f(14 + 20 + 20, 0);
  f[12] = 0x08;
  uint8_t* ip = f.data() + 14;
  ip[0] = 0x45;
  ip[2] = 0;
  ip[3] = 40;
  ip[6] = static_cast<uint8_t>(frag >> 8);
  ip[7] = static_cast<uint8_t>(frag);
  ip[8] = 64;
  ip[9] = proto;
  inet_pton(AF_INET, src, ip + 12);
  inet_pton(AF_INET, dst, ip + 16);
  uint8_t* l4 = ip + 20;
  l4[0] = static_cast<uint8_t>(sp >> 8);
  l4[1] = static_cast<uint8_t>(sp);
  l4[2] = static_cast<uint8_t>(dp >> 8);
  l4[3] = static_cast<uint8_t>(dp);
  if (proto == 6) l4[12] = 0x50;
  if (proto == 17) l4[5] = 20;
  return f;
}

uint64_t hash_of(Scheme s, const std::vector<uint8_t>& f, uint32_t linktype = 1) {
  packet::PacketInfo info;
  packet::decode(linktype, f.data(), static_cast<uint32_t>(f.size()), info);
  return packet_hash(s, info, f.data(), static_cast<uint32_t>(f.size()));
}

TEST(Balance, HashIsSymmetricAndFixed) {
  IpAddr a = v4("10.0.0.1"), b = v4("192.168.7.9");
  EXPECT_EQ(flow_hash(a, b, 0, 0, 0), flow_hash(b, a, 0, 0, 0));
  EXPECT_EQ(flow_hash(a, b, 1234, 80, 6), flow_hash(b, a, 80, 1234, 6));
  EXPECT_NE(flow_hash(a, b, 1234, 80, 6), flow_hash(a, b, 1234, 80, 17));
  EXPECT_NE(flow_hash(a, b, 1234, 80, 6), flow_hash(a, b, 1235, 80, 6));
  EXPECT_NE(flow_hash(a, b, 0, 0, 0), flow_hash(a, v4("192.168.7.10"), 0, 0, 0));
  // The split of stored traffic depends on this value: a change of the function would
  // silently break worker selection over stores recorded before it.
  EXPECT_EQ(flow_hash(a, b, 0, 0, 0), 3633980109458080571ull);
}

TEST(Balance, BothDirectionsOfAPacketMeetAtOneWorker) {
  for (Scheme s : {Scheme::kPair, Scheme::kFiveTuple}) {
    EXPECT_EQ(hash_of(s, ip_frame("10.0.0.1", "10.0.0.2", 6, 40000, 443)),
              hash_of(s, ip_frame("10.0.0.2", "10.0.0.1", 6, 443, 40000)));
    EXPECT_EQ(hash_of(s, ip_frame("10.0.0.1", "10.0.0.2", 17, 5353, 53)),
              hash_of(s, ip_frame("10.0.0.2", "10.0.0.1", 17, 53, 5353)));
  }
  // pair ignores ports; 5tuple does not, except on fragments (ports and protocol left out).
  EXPECT_EQ(hash_of(Scheme::kPair, ip_frame("10.0.0.1", "10.0.0.2", 6, 1, 2)),
            hash_of(Scheme::kPair, ip_frame("10.0.0.1", "10.0.0.2", 17, 3, 4)));
  EXPECT_NE(hash_of(Scheme::kFiveTuple, ip_frame("10.0.0.1", "10.0.0.2", 6, 1, 2)),
            hash_of(Scheme::kFiveTuple, ip_frame("10.0.0.1", "10.0.0.2", 6, 1, 3)));
  EXPECT_EQ(hash_of(Scheme::kFiveTuple, ip_frame("10.0.0.1", "10.0.0.2", 17, 1, 2, 0x2000)),  // MF
            flow_hash(v4("10.0.0.1"), v4("10.0.0.2"), 0, 0, 0));
}

TEST(Balance, ArpGoesWithItsAddressPair) {
  std::vector<uint8_t> f(42, 0);
  f[12] = 0x08;
  f[13] = 0x06;
  uint8_t* a = f.data() + 14;
  a[1] = 1;
  a[2] = 0x08;
  a[4] = 6;
  a[5] = 4;
  a[7] = 1;
  inet_pton(AF_INET, "10.0.0.7", a + 14);
  inet_pton(AF_INET, "10.0.0.8", a + 24);
  EXPECT_EQ(hash_of(Scheme::kPair, f), flow_hash(v4("10.0.0.8"), v4("10.0.0.7"), 0, 0, 0));
}

TEST(Balance, SpreadsConnectionsEvenly) {
  std::mt19937 rng(7);
  std::vector<int> n(3);
  for (int i = 0; i < 30000; ++i) {
    uint32_t x = rng(), y = rng();
    IpAddr a = IpAddr::v4(reinterpret_cast<uint8_t*>(&x)), b = IpAddr::v4(reinterpret_cast<uint8_t*>(&y));
    n[worker_of(flow_hash(a, b, static_cast<uint16_t>(rng()), 443, 6), 3)]++;
  }
  for (int c : n) EXPECT_NEAR(c, 10000, 400);
}

TEST(Balance, ShareFiltersPartitionACapture) {
  auto frames = read_corpus("mixed/var-services-std-ports.pcap");
  ASSERT_GT(frames.size(), 100u);
  for (Scheme s : {Scheme::kPair, Scheme::kFiveTuple}) {
    std::vector<int> owner(frames.size(), -1);
    for (uint32_t w = 0; w < 3; ++w) {
      ShareFilter f(w, 3, s);
      std::vector<capture::RawPacket> raw;
      for (auto& fr : frames)
        raw.push_back(
            {fr.ts, static_cast<uint32_t>(fr.data.size()), fr.wirelen, fr.linktype, fr.data.data()});
      size_t kept = f.keep(raw.data(), raw.size());
      EXPECT_EQ(f.kept_packets(), kept);
      EXPECT_EQ(f.kept_packets() + f.other_packets(), frames.size());
      for (size_t i = 0; i < kept; ++i) {
        size_t idx =
            static_cast<size_t>(std::find_if(frames.begin(), frames.end(),
                                             [&](const Frame& x) { return x.data.data() == raw[i].data; }) -
                                frames.begin());
        EXPECT_EQ(owner[idx], -1);
        owner[idx] = static_cast<int>(w);
      }
      EXPECT_GT(kept, 0u) << scheme_name(s) << " worker " << w;
    }
    EXPECT_EQ(std::count(owner.begin(), owner.end(), -1), 0);
  }
}

BalanceInfo info(Scheme s, bool tunnels = false, uint32_t n = 3) {
  BalanceInfo b;
  b.known = true;
  b.scheme = s;
  b.workers = n;
  b.tunnels = tunnels;
  return b;
}

Selection sel(const char* f, const BalanceInfo& b) { return select_workers(query::parse_expr(f), b); }

TEST(Selection, PinnedPairAsksOneWorker) {
  auto b = info(Scheme::kPair);
  uint32_t w = worker_of(flow_hash(v4("10.0.0.1"), v4("10.0.0.2"), 0, 0, 0), 3);
  for (const char* f : {"host 10.0.0.1 and host 10.0.0.2", "src host 10.0.0.2 and dst host 10.0.0.1 and tcp",
                        "host 10.0.0.1 and (port 80 or port 443) and host 10.0.0.2",
                        "host 10.0.0.1 and host 10.0.0.2 and not port 22",
                        // (libpcap's part of a split filter narrows tm's terms: they pin the pair)
                        "tcp[13] & 2 != 0 and host 10.0.0.1 and host 10.0.0.2"}) {
    Selection s = sel(f, b);
    EXPECT_FALSE(s.all) << f;
    EXPECT_EQ(s.workers, std::vector<uint32_t>{w}) << f;
  }
  for (const char* f :
       {"host 10.0.0.1", "host 10.0.0.1 or host 10.0.0.2",
        "(host 10.0.0.1 or host 10.0.0.3) and host 10.0.0.2", "not host 10.0.0.1 and host 10.0.0.2",
        "net 10.0.0.0/24 and host 10.0.0.2", "", "tcp[13] & 2 != 0 or host 10.0.0.1 and host 10.0.0.2"})
    EXPECT_TRUE(sel(f, b).all) << f;
  EXPECT_TRUE(sel("host 10.0.0.1 and host 10.0.0.2", BalanceInfo{}).all);  // scheme unknown
}

TEST(Selection, TunnelsNeedOuterPins) {
  auto b = info(Scheme::kPair, /*tunnels=*/true);
  EXPECT_TRUE(sel("host 10.0.0.1 and host 10.0.0.2", b).all);
  EXPECT_TRUE(sel("inner host 10.0.0.1 and inner host 10.0.0.2", b).all);
  EXPECT_FALSE(sel("outer host 10.0.0.1 and outer host 10.0.0.2", b).all);
}

TEST(Selection, FiveTupleNeedsBothPortsAndNamesThe5TupleWorkersAndThePairs) {
  auto b = info(Scheme::kFiveTuple, false, 16);
  EXPECT_TRUE(sel("host 10.0.0.1 and host 10.0.0.2", b).all);
  EXPECT_TRUE(sel("host 10.0.0.1 and host 10.0.0.2 and port 80", b).all);
  EXPECT_TRUE(sel("host 10.0.0.1 and host 10.0.0.2 and port 80 and port 80", b).all);
  Selection s = sel("tcp and host 10.0.0.1 and host 10.0.0.2 and port 80 and port 4000", b);
  ASSERT_FALSE(s.all);
  std::set<uint32_t> want = {worker_of(flow_hash(v4("10.0.0.1"), v4("10.0.0.2"), 4000, 80, 6), 16),
                             worker_of(flow_hash(v4("10.0.0.1"), v4("10.0.0.2"), 0, 0, 0), 16)};
  EXPECT_EQ(std::set<uint32_t>(s.workers.begin(), s.workers.end()), want);
  EXPECT_FALSE(sel("udp and host 10.0.0.1 and host 10.0.0.2 and src port 53 and dst port 53", b).all);
  EXPECT_LE(sel("host 10.0.0.1 and host 10.0.0.2 and port 80 and port 4000", b).workers.size(), 4u);
}

// Soundness on real packets: for filters pinning each packet's own pair (and ports), the packet
// matches the filter and its worker is among those selected.
TEST(Selection, SoundOnCorpusPackets) {
  size_t checked = 0, tunnelled = 0;
  for (const char* rel :
       {"tunnels/4in4.pcap", "tunnels/gre-pptp.pcap", "tunnels/vxlan.pcap", "tunnels/gtp_ext_header.pcap",
        "tunnels/6in4.pcap", "mixed/afs.pcap", "mixed/var-services-std-ports.pcap", "ipv4/fragmented-1.pcap",
        "ipv6/ipv6-fragmented-dns.pcap", "mixed/wikipedia.pcap"}) {
    for (auto& fr : read_corpus(rel)) {
      packet::PacketInfo p;
      packet::decode(fr.linktype, fr.data.data(), static_cast<uint32_t>(fr.data.size()), p);
      if (p.ip_count == 0) continue;
      const auto& l = p.ip[0];
      if (p.ip_count > 1) {
        // Tunnelled: only pins on the outer layer select (tunnels = true).
        auto pr = query::parse_expr("outer host " + l.src.str() + " and outer host " + l.dst.str());
        if (l.src == l.dst || !query::matches(pr.expr, p)) continue;
        Selection s = select_workers(pr, info(Scheme::kPair, true, 3));
        EXPECT_FALSE(s.all);
        EXPECT_EQ(
            s.workers,
            std::vector<uint32_t>{worker_of(
                packet_hash(Scheme::kPair, p, fr.data.data(), static_cast<uint32_t>(fr.data.size())), 3)})
            << rel;
        ++tunnelled;
        continue;
      }
      std::string pair = "host " + l.src.str() + " and host " + l.dst.str();
      std::vector<std::pair<Scheme, std::string>> filters = {{Scheme::kPair, pair}};
      if (l.has_ports && l.frag_offset == 0 && l.sport != l.dport && (l.proto == 6 || l.proto == 17))
        filters.push_back({Scheme::kFiveTuple, pair + " and port " + std::to_string(l.sport) + " and port " +
                                                   std::to_string(l.dport)});
      for (auto& [scheme, f] : filters) {
        if (l.src == l.dst) continue;
        auto pr = query::parse_expr(f);
        ASSERT_EQ(pr.kind, query::ParseResult::Kind::kIndexed) << f;
        if (!query::matches(pr.expr, p)) continue;
        for (uint32_t n : {2u, 3u, 7u}) {
          Selection s = select_workers(pr, info(scheme, false, n));
          uint32_t w =
              worker_of(packet_hash(scheme, p, fr.data.data(), static_cast<uint32_t>(fr.data.size())), n);
          EXPECT_TRUE(s.all || std::count(s.workers.begin(), s.workers.end(), w)) << rel << ": " << f;
          ++checked;
        }
      }
    }
  }
  EXPECT_GT(checked, 1000u);
  EXPECT_GT(tunnelled, 10u);
}

std::string pcap_bytes(const std::vector<std::pair<uint64_t, std::string>>& pkts, uint32_t linktype = 1) {
  std::string s;
  util::pcap::Writer w([&](const char* p, size_t n) { s.append(p, n); });
  for (auto& [ts, d] : pkts)
    w.write(ts, linktype, static_cast<uint32_t>(d.size()), static_cast<uint32_t>(d.size()) + 4,
            reinterpret_cast<const uint8_t*>(d.data()));
  w.finish();
  return s;
}

TEST(PcapMerge, ParserTakesAnyChunking) {
  std::vector<std::pair<uint64_t, std::string>> pkts = {
      {5, "abc"}, {1000000007, ""}, {2000000000, std::string(300, 'x')}};
  std::string bytes = pcap_bytes(pkts, 101);
  for (size_t chunk : {1ul, 7ul, 24ul, 1000ul}) {
    PcapStreamParser p;
    std::vector<MergePacket> got;
    for (size_t i = 0; i < bytes.size(); i += chunk)
      ASSERT_TRUE(p.feed(bytes.data() + i, std::min(chunk, bytes.size() - i),
                         [&](MergePacket&& m) { got.push_back(std::move(m)); }));
    ASSERT_EQ(got.size(), pkts.size());
    for (size_t i = 0; i < pkts.size(); ++i) {
      EXPECT_EQ(got[i].ts_ns, pkts[i].first);
      EXPECT_EQ(got[i].data, pkts[i].second);
      EXPECT_EQ(got[i].wirelen, pkts[i].second.size() + 4);
      EXPECT_EQ(got[i].linktype, 101u);
    }
    EXPECT_EQ(p.pending(), 0u);
  }
  PcapStreamParser bad;
  std::string junk(24, 'j');
  EXPECT_FALSE(bad.feed(junk.data(), junk.size(), [](MergePacket&&) {}));
  PcapStreamParser cut;
  ASSERT_TRUE(cut.feed(bytes.data(), bytes.size() - 1, [](MergePacket&&) {}));
  EXPECT_GT(cut.pending(), 0u);
}

TEST(PcapMerge, KWayMergeIsOrderedAndBounded) {
  constexpr size_t kLimit = 4096;
  std::mt19937 rng(3);
  std::vector<std::vector<uint64_t>> streams(4);
  for (auto& s : streams) {
    uint64_t t = 0;
    for (int i = 0; i < 3000; ++i) s.push_back(t += rng() % 1000);
  }
  std::vector<std::unique_ptr<PacketQueue>> qs;
  for (size_t i = 0; i < streams.size(); ++i) qs.push_back(std::make_unique<PacketQueue>(kLimit));
  std::vector<std::thread> producers;
  for (size_t i = 0; i < streams.size(); ++i)
    producers.emplace_back([&, i] {
      for (uint64_t t : streams[i]) {
        MergePacket m;
        m.ts_ns = t;
        m.data = std::string(100, static_cast<char>('a' + i));
        if (!qs[i]->push(std::move(m))) return;
        EXPECT_LE(qs[i]->bytes(), kLimit + 100 + sizeof(MergePacket));
      }
      qs[i]->close();
    });
  std::vector<PacketQueue*> ptrs;
  for (auto& q : qs) ptrs.push_back(q.get());
  std::vector<std::pair<uint64_t, size_t>> got;
  while (auto i = merge_next(ptrs, std::chrono::seconds(10), nullptr)) {
    auto m = ptrs[*i]->pop();
    got.push_back({m.ts_ns, *i});
  }
  for (auto& t : producers) t.join();
  std::vector<std::pair<uint64_t, size_t>> want;
  for (size_t i = 0; i < streams.size(); ++i)
    for (uint64_t t : streams[i]) want.push_back({t, i});
  std::sort(want.begin(), want.end());  // ties: the lower worker first
  EXPECT_EQ(got, want);
}

TEST(PcapMerge, StuckQueueIsGivenUp) {
  PacketQueue a(1 << 20), b(1 << 20);
  MergePacket m;
  m.ts_ns = 1;
  ASSERT_TRUE(a.push(std::move(m)));
  a.close();
  std::vector<PacketQueue*> qs = {&a, &b};  // b stays open and silent
  std::vector<size_t> stuck;
  auto t0 = std::chrono::steady_clock::now();
  auto i = merge_next(qs, std::chrono::milliseconds(200), &stuck);
  EXPECT_GE(std::chrono::steady_clock::now() - t0, std::chrono::milliseconds(190));
  ASSERT_TRUE(i);
  EXPECT_EQ(*i, 0u);
  EXPECT_EQ(stuck, std::vector<size_t>{1});
  MergePacket late;
  EXPECT_FALSE(b.push(std::move(late)));  // its producer learns it was given up
}

TEST(FlowMerge, JsonRoundTripAndTopOverUnion) {
  std::vector<std::vector<flow::FlowRow>> parts(3);
  std::mt19937 rng(11);
  for (int i = 0; i < 60; ++i) {
    flow::FlowRow r;
    r.rec = flow::FlowRecord{};
    r.rec.id = rng();
    r.rec.first_ts = 1700000000000000000ull + (rng() % 1000) * 1000000007ull;
    r.rec.last_ts = r.rec.first_ts + rng() % 100000000000ull;
    r.rec.proto = i % 3 ? 6 : 17;
    r.rec.version = 4;
    r.rec.orig = v4("10.0.0.1");
    r.rec.resp = v4("10.0.0.2");
    r.rec.orig_port = static_cast<uint16_t>(rng());
    r.rec.resp_port = 443;
    r.rec.pkts[0] = rng() % 50;
    r.rec.bytes[0] = rng() % 5000;
    r.rec.bytes[1] = (i % 7) * 1000;  // ties
    r.rec.tcp_flags[0] = 0x1b;
    r.rec.end = static_cast<uint8_t>(i % 5);
    r.rec.cut = i % 2;
    r.rec.cutoff_ts = r.rec.cut ? r.rec.first_ts + 5 : 0;
    r.cls = "default";
    r.packets = flow::FlowRow::Packets::kSome;
    parts[static_cast<size_t>(i) % 3].push_back(r);
  }
  std::vector<flow::FlowRow> all;
  for (auto& p : parts) all.insert(all.end(), p.begin(), p.end());
  std::sort(all.begin(), all.end(), [](auto& a, auto& b) {
    return a.rec.first_ts != b.rec.first_ts ? a.rec.first_ts < b.rec.first_ts : a.rec.id < b.rec.id;
  });
  for (const char* by : {"bytes", "packets", "duration"}) {
    auto want = all;
    server::top_flows(want, 10, by);
    // Each worker answers its own top 10, rendered as JSON lines; the union's top 10 equals
    // the top 10 of everything.
    std::vector<std::vector<flow::FlowRow>> answers;
    for (auto p : parts) {
      std::sort(p.begin(), p.end(), [](auto& a, auto& b) {
        return a.rec.first_ts != b.rec.first_ts ? a.rec.first_ts < b.rec.first_ts : a.rec.id < b.rec.id;
      });
      server::top_flows(p, 10, by);
      answers.push_back(server::parse_flow_lines(server::render_flows(p, "json")));
    }
    auto got = merge_flows(answers, 10, by);
    for (const char* fmt : {"json", "csv", "text"})
      EXPECT_EQ(server::render_flows(got, fmt), server::render_flows(want, fmt)) << by;
  }
}

TEST(ClusterConfig, ReadsWorkersAndNamesErrors) {
  auto c = load_cluster_config_string(R"(
balance = "5tuple"
tunnels = false
timeout = "2s"
[[worker]]
url = "http://10.0.0.1:8910"
[[worker]]
url = "http://10.0.0.2:8910/"
timeout = 7
)",
                                      "c.toml");
  EXPECT_TRUE(c.balance.known);
  EXPECT_EQ(c.balance.scheme, Scheme::kFiveTuple);
  EXPECT_FALSE(c.balance.tunnels);
  finalize_cluster_config(c);
  ASSERT_EQ(c.workers.size(), 2u);
  EXPECT_EQ(c.workers[0].timeout_s, 2);
  EXPECT_EQ(c.workers[1].timeout_s, 7);
  EXPECT_EQ(c.workers[1].url, "http://10.0.0.2:8910");
  EXPECT_EQ(c.balance.workers, 2u);
  try {
    load_cluster_config_string("balance = \"round-robin\"\n", "c.toml");
    FAIL();
  } catch (const config::ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("c.toml:1"), std::string::npos) << e.what();
  }
  EXPECT_THROW(load_cluster_config_string("[[worker]]\nurl = \"x\"\nbogus = 1\n", "c.toml"),
               config::ConfigError);
  auto none = load_cluster_config_string("", "c.toml");
  EXPECT_THROW(finalize_cluster_config(none), std::runtime_error);
}

// The same worker twice would answer everything twice: refused, naming it (a trailing slash or
// the case of the host does not make it another).
TEST(ClusterConfig, SameWorkerTwiceIsRefused) {
  auto worker = [](std::string url) {
    WorkerConfig w;
    w.url = std::move(url);
    return w;
  };
  for (std::string second : {"http://w1:8910", "http://w1:8910/", "http://W1:8910"}) {
    ClusterConfig c;
    c.workers.push_back(worker("http://w1:8910"));
    c.workers.push_back(worker("http://w2:8910"));
    c.workers.push_back(worker(second));
    try {
      finalize_cluster_config(c);
      FAIL() << second;
    } catch (const std::runtime_error& e) {
      while (second.back() == '/') second.pop_back();
      EXPECT_EQ(std::string(e.what()), "worker 2: '" + second + "' is worker 0 again (each worker once)");
    }
  }
  ClusterConfig other;  // another port is another worker
  other.workers.push_back(worker("http://w1:8910"));
  other.workers.push_back(worker("http://w1:8911"));
  EXPECT_NO_THROW(finalize_cluster_config(other));
}

// A worker URL with a path, a user or a bad port was taken, the worker then missing at every
// request ("no answer (Connection)"): refused at start.
TEST(ClusterConfig, AWorkerUrlIsAnAddressAlone) {
  for (const char* bad :
       {"http://w1:8910/api", "http://u:p@w1:8910", "http://w1:8910?x=1", "http://w1:99999", "https://"}) {
    ClusterConfig c;
    c.workers.push_back(WorkerConfig{});
    c.workers.back().url = bad;
    try {
      finalize_cluster_config(c);
      ADD_FAILURE() << bad;
    } catch (const std::runtime_error& e) {
      EXPECT_EQ(std::string(e.what()).rfind("worker 0: ", 0), 0u) << e.what();
    }
  }
  for (const char* good : {"http://w1:8910", "https://[2001:db8::1]:8910/", "http://w1", "http://[::1]"}) {
    ClusterConfig c;
    c.workers.push_back(WorkerConfig{});
    c.workers.back().url = good;
    EXPECT_NO_THROW(finalize_cluster_config(c)) << good;
  }
}

TEST(ClusterConfig, TlsKeys) {
  // The files must exist (finalize checks they can be read): this file stands in for all.
  std::string f = __FILE__;
  auto c = load_cluster_config_string("tls_cert = \"" + f + "\"\ntls_key = \"k.pem\"\nworker_ca = \"" + f +
                                          "\"\n[[worker]]\nurl = \"https://w1:8910\"\n[[worker]]\nurl = "
                                          "\"http://w2:8910\"\nca = \"" +
                                          f + "\"\ncert = \"" + f + "\"\nkey = \"" + f + "\"\n",
                                      "c.toml");
  EXPECT_EQ(c.tls.cert, f);
  EXPECT_EQ(c.tls.cert_what, "c.toml:1: tls_cert");
  EXPECT_EQ(c.tls.key_what, "c.toml:2: tls_key");
  finalize_cluster_config(c);
  EXPECT_EQ(c.workers[0].ca, f);  // the cluster's worker_ca
  EXPECT_EQ(c.workers[0].cert, "");
  EXPECT_EQ(c.workers[1].cert, f);
  try {
    load_cluster_config_string("worker_ca = \"\"\n", "c.toml");
    FAIL();
  } catch (const config::ConfigError& e) {
    EXPECT_EQ(std::string(e.what()), "c.toml:1: worker_ca: empty: give a file");
  }
  auto half =
      load_cluster_config_string("[[worker]]\nurl = \"https://w1:1\"\ncert = \"" + f + "\"\n", "c.toml");
  EXPECT_THROW(finalize_cluster_config(half), std::runtime_error);  // a cert without its key
  auto missing = load_cluster_config_string(
      "worker_ca = \"/nonexistent/ca.pem\"\n[[worker]]\nurl = \"https://w1:1\"\n", "c.toml");
  try {
    finalize_cluster_config(missing);
    FAIL();
  } catch (const std::runtime_error& e) {
    EXPECT_EQ(std::string(e.what()), "worker 0 ca: cannot read /nonexistent/ca.pem");
  }
}

}  // namespace
}  // namespace tmach::cluster
