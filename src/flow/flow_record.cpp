#include "flow/flow_record.h"

#include <cstring>

#include "packet/community_id.h"
#include "store/index.h"

namespace tmach::flow {

const char* to_string(EndState s) {
  switch (s) {
    case EndState::kOpen:
      return "open";
    case EndState::kFin:
      return "fin";
    case EndState::kRst:
      return "rst";
    case EndState::kTimeout:
      return "timeout";
    case EndState::kShutdown:
      return "shutdown";
  }
  return "?";
}

FlowRecord make_record(const conn::ConnEntry& e, EndState end) {
  FlowRecord r{};
  bool a_orig = e.orig_is_a;
  r.orig = a_orig ? e.key.a : e.key.b;
  r.resp = a_orig ? e.key.b : e.key.a;
  r.orig_port = a_orig ? e.key.port_a : e.key.port_b;
  r.resp_port = a_orig ? e.key.port_b : e.key.port_a;
  r.proto = e.key.proto;
  r.version = r.orig.is_v4() && r.resp.is_v4() ? 4 : 6;
  r.first_ts = e.first_ts;
  r.last_ts = e.last_ts;
  r.cutoff_ts = e.cut ? e.cutoff_ts : 0;
  r.cut = e.cut;
  r.end = static_cast<uint8_t>(end);
  const bool sa = sa_keyed(e.key.proto);
  if (!sa) {  // (an SA pair's entry keeps its second SPI there: conn::sa_partner)
    r.tcp_flags[0] = e.tcp_flags[0];
    r.tcp_flags[1] = e.tcp_flags[1];
  }
  r.cls = e.cls;
  r.tunnel = e.key.tunnel;
  for (int d = 0; d < 2; ++d) {
    r.pkts[d] = e.pkts[d];
    r.bytes[d] = e.wire[d];
  }
  r.stored = e.stored;
  r.flags = (e.control_after_cut ? kFlowControlAfterCut : 0) | (e.class_moved ? kFlowClassMoved : 0);
  if (sa) r.flags |= kFlowSaPartner | uint64_t{conn::sa_partner(e)} << kFlowSaPartnerShift;
  // The clock at the connection's creation, not first_ts: a packet older than the first one
  // seen lowers first_ts, and the id must stay the one its interim records had. (For input
  // in time order the two are the same.)
  uint64_t h = e.hash() ^ (e.born_clock * 0x9e3779b97f4a7c15ull);
  h ^= h >> 31;
  h *= 0xbf58476d1ce4e5b9ull;
  h ^= h >> 29;
  r.id = h & 0x7fffffffffffffffull;  // fits a signed 64-bit integer (JSON, CSV, spreadsheets)
  return r;
}

namespace {

// The one IP layer a flow record describes (its key's outer layer: no tunnel).
packet::IpLayer layer_of(const FlowRecord& r) {
  packet::IpLayer l;
  l.version = r.version;
  l.src = r.orig;
  l.dst = r.resp;
  l.proto = l.header_proto = r.proto;
  l.has_l4 = true;
  l.has_ports = packet::port_protocol(r.proto);
  l.sport = r.orig_port;
  l.dport = r.resp_port;
  l.tcp_flags = static_cast<uint8_t>(r.tcp_flags[0] | r.tcp_flags[1]);
  return l;
}

}  // namespace

packet::PacketInfo as_packet(const FlowRecord& r) {
  packet::PacketInfo p;
  p.ip_count = 1;
  p.ip[0] = layer_of(r);
  p.ethertype = r.version == 4 ? 0x0800 : 0x86dd;
  return p;
}

void index_keys(const FlowRecord& r, store::IndexKeys& k) {
  k.n_v4 = k.n_v6 = k.n_scalars = 0;
  store::add_layer_keys(layer_of(r), k);
}

std::string community_id(const FlowRecord& r, uint16_t seed) {
  if (r.proto == packet::kProtoIcmp || r.proto == packet::kProtoIcmp6) return {};
  return packet::community_id_v1(packet::CommunityTuple{r.orig, r.resp, r.proto, r.orig_port, r.resp_port},
                                 seed);
}

}  // namespace tmach::flow
