// Micro benchmark of a segment's index (make bench builds it; run build/micro_seal): adding
// its packets' keys and sealing them (each window of 65536 packets grouped into its keys'
// containers as it completes, then a header per key), and writing the sidecar's bitmaps from
// the postings. The input imitates a 256 MiB segment of the ingest bench's small-packet
// capture: 1M packets of 300k connections (Pareto-like sizes), two IPv4 addresses, two
// ports, protocol and network kind each.
#include <benchmark/benchmark.h>

#include <random>
#include <vector>

#include "store/index.h"
#include "store/index_keys.h"

namespace {

using tmach::store::IndexBuilder;
using tmach::store::IndexKeys;
using tmach::store::PostingIndex;

struct Segment {
  // Each packet's keys, compact (an IndexKeys is ~300 bytes: streaming 1M of them would time
  // the memory, where the store writer reads ~40 bytes a packet from the ring).
  struct Packet {
    uint32_t client, server, client_port, server_port, proto;
  };
  std::vector<Packet> packets;
  explicit Segment(size_t n) : packets(n) {
    std::mt19937_64 rng(42);
    constexpr uint32_t kConns = 300000;
    for (size_t ord = 0; ord < n; ++ord) {
      // A few connections carry most packets: pick by a skewed draw.
      double u = std::uniform_real_distribution<double>(0.0, 1.0)(rng);
      auto c = static_cast<uint32_t>(kConns * u * u * u);
      packets[ord] = Packet{0x0a000000u + c * 2654435761u % 65536u,  // clients from a /16
                            0xc0a80000u + (c * 40503u) % 4096u,      // servers
                            1024 + (c * 7919u) % 60000u,             // client port
                            (c % 3 == 0) ? 53u : (c % 3 == 1 ? 443u : 80u),
                            tmach::store::kScalarProtoBase + (c % 3 == 0 ? 17 : 6)};
    }
  }
  void fill(IndexBuilder& b) const {
    IndexKeys k;
    k.n_v4 = 2;
    k.n_scalars = 4;
    k.scalars[3] = tmach::store::kScalarNetFlag | 4;
    for (size_t ord = 0; ord < packets.size(); ++ord) {
      const Packet& p = packets[ord];
      k.v4[0] = p.client;
      k.v4[1] = p.server;
      k.scalars[0] = p.client_port;
      k.scalars[1] = p.server_port;
      k.scalars[2] = p.proto;
      b.add(static_cast<uint32_t>(ord), k);
    }
  }
};

const Segment& segment() {
  static Segment s(1u << 20);
  return s;
}

void BM_IndexSegment(benchmark::State& st) {
  const Segment& s = segment();
  IndexBuilder b;  // (reused: its memory is, as a store writer's builders are)
  for (auto _ : st) {
    s.fill(b);
    benchmark::DoNotOptimize(b.finish_postings().refs.data());
  }
  st.SetItemsProcessed(static_cast<int64_t>(st.iterations() * s.packets.size()));
}
BENCHMARK(BM_IndexSegment)->Unit(benchmark::kMillisecond);

void BM_SerializeBitmaps(benchmark::State& st) {
  const Segment& s = segment();
  IndexBuilder b;
  s.fill(b);
  const PostingIndex& p = b.finish_postings();
  std::vector<uint8_t> out;
  for (auto _ : st) {
    size_t total = 0;
    for (auto* f : {&p.port, &p.proto, &p.net}) {
      for (auto& [key, span] : *f) total += span.bytes;
    }
    for (auto& [key, span] : p.addr) total += span.bytes;
    out.resize(total);
    uint8_t* at = out.data();
    for (auto& [key, span] : p.addr) {
      p.write(span, at);
      at += span.bytes;
    }
    for (auto* f : {&p.port, &p.proto, &p.net})
      for (auto& [key, span] : *f) {
        p.write(span, at);
        at += span.bytes;
      }
    benchmark::DoNotOptimize(out.data());
  }
  st.SetItemsProcessed(static_cast<int64_t>(st.iterations() * s.packets.size()));
}
BENCHMARK(BM_SerializeBitmaps)->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
