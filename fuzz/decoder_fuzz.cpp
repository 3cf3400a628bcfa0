// libFuzzer target: one frame through the decoder, and through the pure code that reads
// what the decoder produced (connection key with its fragment and SA-pair memories, the
// fragment inheritance of queries, the exact query evaluator).
//
// Input: byte 0 picks the link type (kLinkTypes[byte % count]), the rest is the frame.
// Beyond the sanitizers, it checks the decoder's contract (decoder.h): status returned ==
// out.status, layer count bounded, offsets inside the frame.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "conn/conn_keyer.h"
#include "conn/flow_key.h"
#include "fuzz/link_types.h"
#include "packet/decoder.h"
#include "packet/fragment_layers.h"
#include "query/eval.h"
#include "query/parser.h"

namespace {

using namespace tmach;

// A broken invariant is a finding: say which, then crash so libFuzzer keeps the input.
#define CHECK(cond)                                          \
  do {                                                       \
    if (!(cond)) {                                           \
      std::fprintf(stderr, "invariant failed: %s\n", #cond); \
      std::abort();                                          \
    }                                                        \
  } while (0)

// A few filters covering every predicate kind and layer selector; parsed once.
const std::vector<query::Expr>& filters() {
  static const std::vector<query::Expr> exprs = [] {
    const char* texts[] = {
        "host 10.0.0.1 or net 2001:db8::/32",
        "tcp port 80 or udp portrange 50-60 or sctp",
        "inner host 192.168.1.1 and outer udp",
        "arp or vlan 100 or esp or spi 256",
        "gre or vxlan 42 or tunnel or ip6 and not icmp6",
        "src net 10.0.0.0/8 and dst port 53",
    };
    std::vector<query::Expr> v;
    for (const char* t : texts) {
      query::ParseResult r = query::parse_expr(t);
      CHECK(r.kind == query::ParseResult::Kind::kIndexed);
      v.push_back(r.expr);
    }
    return v;
  }();
  return exprs;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const uint32_t linktype = fuzz::kLinkTypes[data[0] % fuzz::kLinkTypeCount];
  // A copy of exactly the frame's length, so ASan sees any read past caplen.
  std::vector<uint8_t> frame(data + 1, data + size);
  const uint32_t caplen = static_cast<uint32_t>(frame.size());

  packet::PacketInfo info;
  packet::DecodeStatus st = packet::decode(linktype, frame.data(), caplen, info);
  CHECK(st == info.status);
  CHECK(info.ip_count <= packet::PacketInfo::kMaxIpLayers);
  // vlan_count counts every tag (readers clamp to kMaxVlans); ip_count never exceeds the array.
  for (int i = 0; i < info.ip_count; ++i) {
    const packet::IpLayer& l = info.ip[i];
    CHECK(l.version == 4 || l.version == 6);
    CHECK(l.l3_offset < caplen);
    if (l.has_l4) CHECK(l.l4_offset <= caplen);
  }

  // Persistent across inputs, like the recorder's and the query's: later fragments meet
  // earlier first fragments, ESP/AH SAs meet their reverse.
  static conn::ConnKeyer keyer;
  static packet::FragmentLayers frag_layers(64);
  static uint64_t now = 0;
  now += 1'000'000;
  if (keyer.key(info, now)) CHECK(conn::make_key(info).has_value());
  (void)conn::tunnel_hash(info);

  packet::PacketInfo whole = info;  // a later fragment completed by its first, as queries see it
  frag_layers.apply(whole, now);
  CHECK(whole.ip_count <= packet::PacketInfo::kMaxIpLayers);
  for (const query::Expr& e : filters()) {
    (void)query::matches(e, info);
    (void)query::matches(e, whole);
  }
  return 0;
}
