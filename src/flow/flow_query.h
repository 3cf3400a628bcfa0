// Answers a filter over the flow records of a store: prunes files by time, plans through
// their indexes, re-checks each record exactly, keeps the newest record of each connection
// (interim records are superseded by later ones).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "flow/flow_record.h"
#include "query/parser.h"

namespace tmach::flow {

struct FlowRow {
  FlowRecord rec;
  std::string cls;
  enum class Packets : uint8_t { kNone, kSome, kAll } packets = Packets::kNone;  // still on disk
};

// Whether a flow's stored packets are still on disk, from the time ranges of the segments on
// disk (a store's catalog, or add() for tests): `no` is certain where no segment that could
// hold one spans any of the flow's time; `yes` and `some` compare the oldest segment of the
// flow's class with its first packet and its last stored one (an estimate: docs/USAGE.md).
class SegmentsOnDisk {
 public:
  static SegmentsOnDisk of(const std::string& store);  // throws when the store cannot be listed
  // A segment of class `cls` holding packets from `lo` to `hi` (UINT64_MAX: open); then seal().
  void add(const std::string& cls, uint64_t lo, uint64_t hi);
  void seal();
  FlowRow::Packets packets_left(const FlowRecord& r, const std::string& cls) const;

 private:
  // Time ranges sorted by their first packet, each with the latest last packet of it and those
  // before it: whether any overlaps a window is one binary search.
  struct Ranges {
    std::vector<std::pair<uint64_t, uint64_t>> r;  // (first packet, latest last packet so far)
    bool overlaps(uint64_t from, uint64_t to) const;
  };
  std::map<std::string, Ranges> by_class_;
  Ranges all_;
};

struct FlowQueryStats {
  size_t files = 0, files_skipped = 0, files_indexed = 0, files_scanned = 0;
  uint64_t candidates = 0, matched = 0;
  std::vector<std::string> warnings;
  std::vector<std::string> lost;  // those of the warnings that say records could not be read
};

// A test on a record that the flow index cannot answer (its id, its Community ID): every
// record of one connection passes or fails it alike.
using FlowPredicate = std::function<bool(const FlowRecord&)>;

// Records overlapping [from, to) that match `parsed` (kIndexed or kBpfOnly is refused: the
// flow index knows addresses, ports and protocols only) and `keep` where it is given: records
// it refuses are dropped as they are read, not held. Sorted by first timestamp.
std::vector<FlowRow> query_flows(const std::string& store, const query::ParseResult& parsed, uint64_t from,
                                 uint64_t to, FlowQueryStats& st, const FlowPredicate& keep = {});
// Why flow records cannot answer the filter `parsed` ("" when they can): a part libpcap would
// answer (it needs packets' bytes), or a VLAN, tunnel or SPI selector or `outer`. A record
// holds its connection's innermost layer (its addresses, ports, protocol) and a hash of the
// layers around it; matched against it, `vlan 10` selected no flow and `not vlan` every one,
// tagged or not. query_flows() throws it; a service refuses the request with it.
std::string flow_filter_refusal(const query::ParseResult& parsed);
// The record with this id, if any flow file still has it. `problems` (when given) gets the
// damage the flow files showed (records of theirs that could not be read: the one asked for
// may be among them; FlowQueryStats::lost).
bool find_flow(const std::string& store, uint64_t id, FlowRow& out,
               std::vector<std::string>* problems = nullptr);
// The packets of flow `id` (tm query --flow, a query's flow_id): a filter for its connection
// (connections_filter) and its lifetime [first_ns, end_ns): end_ns is just after its last
// packet; when its newest record is an interim one (the connection was still open then: it may
// have packets after that record), the first packet of the next flow of its connection (same_connection), or
// UINT64_MAX when there is none. nullopt when no flow file has it.
// A flow record's connection as the recorder keyed it (conn::make_key: the innermost IP
// layer's addresses, ports and protocol, and the hash of the layers around it). A query of a
// flow's packets (tm query --flow, --community-id) checks every packet its filter matched
// against it (of_connections): the filter alone took packets of other connections with the
// same addresses, ports and protocol — the same inner 5-tuple in another tunnel (another VXLAN
// VNI), or a tunnel's packets whose outer addresses and inner protocol matched a plain flow's.
struct FlowConnection {
  packet::IpAddr orig, resp;
  uint16_t orig_port = 0, resp_port = 0;
  uint8_t proto = 0;
  uint32_t tunnel = 0;
  // An ESP/AH connection whose record names its SA pair's second SPI (kFlowSaPartner; 0: none
  // seen): its packets are its naming SA's (their own SPI's key is the record's) and that SPI's.
  bool sa_known = false;
  uint32_t sa_partner = 0;
};
FlowConnection connection_of(const FlowRecord& r);
// Whether two records are of one connection as the recorder keys it: the same addresses, ports
// (either direction) and protocol, and the same layers around them (tunnel hash; for ESP/AH the
// SA pair). Two flows of one 5-tuple in two tunnels are not. (ESP/AH records from before
// kFlowSaPartner: any SA pair, as of_connections() matches their packets.)
bool same_connection(const FlowConnection& a, const FlowConnection& b);
// Whether decoded packet `p` (a later fragment with its datagram's layers where the query knew
// them) is of one of `conns`: its conn::make_key() is one of theirs. A later fragment whose
// first the query did not see has no ports (its addresses, protocol and tunnel must match),
// and an ESP or AH packet is of its SA pair: the SA that names the pair (in the record's tunnel
// hash) or the pair's second SA (its SPI in the record: kFlowSaPartner). A record from before
// that field, keyed by an SA pair that one packet does not tell, matches an ESP or AH packet by
// its addresses and protocol, as the filter did before.
bool of_connections(const std::vector<FlowConnection>& conns, const packet::PacketInfo& p);

struct FlowPackets {
  std::string filter;
  FlowConnection conn;
  uint64_t first_ns = 0, end_ns = UINT64_MAX;
  // The class whose segments hold its packets; empty when any may (moved to another class
  // while open, or a class its flow file does not name).
  std::string cls;
  uint64_t stored = 0;  // the packets its newest record says tm stored
};
std::optional<FlowPackets> flow_packets(const std::string& store, uint64_t id,
                                        std::vector<std::string>* problems = nullptr);  // (as find_flow)
// A query of flow `id` (`f`) over the time range [from_ns, to_ns) its request gave (0 and
// UINT64_MAX where it gave none; an empty range stays as it is): that range narrowed to
// the flow's lifetime — the filter names its connection's 5-tuple, which other flows had before
// and after it — or, when they do not overlap, which bound ("from", "to") misses the flow and
// why, naming the flow's packet ("the time given is after flow N's last packet (T)").
struct FlowWindow {
  uint64_t from_ns = 0, to_ns = UINT64_MAX;
  const char* bound = "";  // (when `problem` is set)
  std::string problem;
};
FlowWindow flow_window(const std::string& id, const FlowPackets& f, uint64_t from_ns, uint64_t to_ns);

// A record whose Community ID (seed 0) is `id`.
FlowPredicate has_community_id(const std::string& id);
// A filter (tcpdump syntax) for the packets of these rows' connections: their protocol,
// addresses and ports, or'ed. Empty when `rows` is. A row with ports 0 and 0 (packets without
// ports) is its pair and protocol when `checked` (each packet the filter matches is then
// checked against the connection: of_connections), else those packets with no port of
// 1-65535 (`not portrange 1-65535`, which misses a frame cut before its ports).
std::string connections_filter(const std::vector<FlowRow>& rows, bool checked = true);
// connections_filter() of every flow record of `store` with Community ID `id` (whenever it
// was seen: the ID names a 5-tuple); empty when none has it. `stored` (when given) gets the
// packets those records say tm stored.
// `conns` (when given) gets those records' connections.
std::string community_filter(const std::string& store, const std::string& id,
                             std::vector<std::string>* problems = nullptr,  // (as find_flow)
                             uint64_t* stored = nullptr, std::vector<FlowConnection>* conns = nullptr);

}  // namespace tmach::flow
