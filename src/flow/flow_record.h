// A flow record: the summary of one connection, kept far longer than its packets.
// Fixed-size binary, written in zstd-compressed blocks (flow_file.h).
#pragma once

#include <cstdint>
#include <string>

#include "conn/conn_table.h"
#include "packet/packet_info.h"
#include "store/index_keys.h"

namespace tmach::flow {

enum class EndState : uint8_t {
  kOpen = 0,      // interim record of a connection still open
  kFin = 1,       // closed by FIN in both directions
  kRst = 2,       // reset
  kTimeout = 3,   // ended by inactivity
  kShutdown = 4,  // still open when the recorder stopped
};
const char* to_string(EndState s);

// FlowRecord::flags. (Records written before December 2026 have none: the field was zero.)
// Stored packets reach past cutoff_ts, up to last_ts: a TCP control packet (SYN, FIN or RST
// without payload) was stored after the cutoff, or packets stored before the cutoff were
// later in time than the packet that reached it (input out of order).
inline constexpr uint64_t kFlowControlAfterCut = 1;
// The connection was moved to another class while open (a host's class set through the API):
// its first packets are in its former class's segments, its record names the new one.
inline constexpr uint64_t kFlowClassMoved = 2;
// An ESP/AH connection (one SA pair, conn/sa_pairs.h): the SPI of its pair's second SA, the one
// that does not name the pair, is in bits 32-63 (0: none was seen, a one-way SA). Its naming
// SA is in `tunnel`'s hash. Records written before December 2026 have neither.
inline constexpr uint64_t kFlowSaPartner = 4;
inline constexpr int kFlowSaPartnerShift = 32;
// A connection of this protocol is keyed by its SA pair (ESP, AH: conn::has_sa's protocols).
inline bool sa_keyed(uint8_t proto) { return proto == packet::kProtoEsp || proto == packet::kProtoAh; }

struct FlowRecord {
  uint64_t id;  // stable identifier: hash of the connection key and its first timestamp
  uint64_t first_ts, last_ts;
  uint64_t cutoff_ts;         // when the cutoff was reached; 0 if it was not
  packet::IpAddr orig, resp;  // originator (sent the first packet seen) and responder
  uint16_t orig_port, resp_port;
  uint8_t proto;
  uint8_t version;       // 4 or 6
  uint8_t end;           // EndState
  uint8_t cut;           // cutoff reached
  uint8_t tcp_flags[2];  // OR of TCP flags per direction (0 = originator)
  uint16_t cls;          // class index in the recorder's configuration at the time
  uint32_t tunnel;       // FlowKey::tunnel (0 = not tunnelled)
  uint64_t pkts[2];      // per direction
  uint64_t bytes[2];     // wire bytes per direction
  uint64_t stored;       // packets stored
  uint64_t flags;        // kFlow* bits; the others zero (room for later fields)
};
static_assert(sizeof(FlowRecord) == 128);
// kFlowSaPartner's SPI.
inline uint32_t sa_partner(const FlowRecord& r) {
  return static_cast<uint32_t>(r.flags >> kFlowSaPartnerShift);
}

FlowRecord make_record(const conn::ConnEntry& e, EndState end);
// A decoded-packet view of the record, so the query evaluator and the index builder apply
// to flows as they are: one IP layer with the endpoints, ports and protocol.
packet::PacketInfo as_packet(const FlowRecord& r);
// The keys a flow file indexes the record under: store::index_keys(as_packet(r)), in the
// same order — store::add_layer_keys() of the record's one IP layer, without the PacketInfo
// (most of a kilobyte to initialise) the flow writer would otherwise fill for every record.
void index_keys(const FlowRecord& r, store::IndexKeys& out);
// The record's Community ID v1 (packet/community_id.h) with `seed`; empty for ICMP and
// ICMPv6, whose connection in tm covers every type between two hosts (the ID needs one).
std::string community_id(const FlowRecord& r, uint16_t seed = 0);

}  // namespace tmach::flow
