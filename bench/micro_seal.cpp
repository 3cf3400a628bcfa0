// Micro benchmark of a segment seal's CPU parts (make bench builds it; run
// build/micro_seal): grouping the index builder's log into postings (a counting sort over a
// segment's keys) and writing the sidecar's bitmaps from them. The input imitates a 256 MiB
// segment of the ingest bench's small-packet capture: 1M packets of 300k connections
// (Pareto-like sizes), two IPv4 addresses, two ports, protocol and network kind each.
#include <benchmark/benchmark.h>

#include <random>
#include <vector>

#include "store/index.h"
#include "store/index_keys.h"
#include "store/roaring_writer.h"

namespace {

using tmach::store::IndexBuilder;
using tmach::store::IndexKeys;
using tmach::store::PostingIndex;

struct Segment {
  IndexBuilder builder;
  size_t packets = 0;
  explicit Segment(size_t n) : packets(n) {
    std::mt19937_64 rng(42);
    constexpr uint32_t kConns = 300000;
    std::vector<uint32_t> left(kConns);
    IndexKeys k;
    for (size_t ord = 0; ord < n; ++ord) {
      // A few connections carry most packets: pick by a skewed draw.
      double u = std::uniform_real_distribution<double>(0.0, 1.0)(rng);
      auto c = static_cast<uint32_t>(kConns * u * u * u);
      k = IndexKeys{};
      k.n_v4 = 2;
      k.v4[0] = 0x0a000000u + c * 2654435761u % 65536u;  // clients from a /16
      k.v4[1] = 0xc0a80000u + (c * 40503u) % 4096u;      // servers
      k.n_scalars = 4;
      k.scalars[0] = 1024 + (c * 7919u) % 60000u;                             // client port
      k.scalars[1] = (c % 3 == 0) ? 53 : (c % 3 == 1 ? 443 : 80);             // server port
      k.scalars[2] = tmach::store::kScalarProtoBase + (c % 3 == 0 ? 17 : 6);  // protocol
      k.scalars[3] = tmach::store::kScalarNetFlag | 4;
      builder.add(static_cast<uint32_t>(ord), k);
    }
  }
};

Segment& segment() {
  static Segment s(1u << 20);
  return s;
}

void BM_BuildPostings(benchmark::State& st) {
  Segment& s = segment();
  PostingIndex p;
  for (auto _ : st) {
    s.builder.build_postings(p);
    benchmark::DoNotOptimize(p.ords.data());
  }
  st.SetItemsProcessed(static_cast<int64_t>(st.iterations() * s.packets));
}
BENCHMARK(BM_BuildPostings)->Unit(benchmark::kMillisecond);

void BM_SerializeBitmaps(benchmark::State& st) {
  Segment& s = segment();
  PostingIndex p;
  s.builder.build_postings(p);
  std::vector<uint8_t> out;
  for (auto _ : st) {
    size_t total = 0;
    for (auto* f : {&p.port, &p.proto, &p.net}) {
      for (auto& [key, span] : *f) total += span.bytes;
    }
    for (auto& [key, span] : p.addr) total += span.bytes;
    out.resize(total);
    uint8_t* at = out.data();
    for (auto& [key, span] : p.addr)
      at += tmach::store::roaring_portable_write(p.of(span).data(), span.size, at);
    for (auto* f : {&p.port, &p.proto, &p.net})
      for (auto& [key, span] : *f)
        at += tmach::store::roaring_portable_write(p.of(span).data(), span.size, at);
    benchmark::DoNotOptimize(out.data());
  }
  st.SetItemsProcessed(static_cast<int64_t>(st.iterations() * s.packets));
}
BENCHMARK(BM_SerializeBitmaps)->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
