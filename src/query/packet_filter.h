// One parsed filter applied to raw frames: the exact evaluator for what the parser planned,
// libpcap BPF (compiled once per link type) for everything else. Used by queries (re-check
// of candidates) and by live subscriptions. Not thread-safe: one per reader.
#pragma once

#include <pcap/pcap.h>

#include <cstdint>
#include <map>
#include <string>

#include "conn/fragment_layers.h"
#include "packet/packet_info.h"
#include "query/parser.h"

namespace tmach::query {

// The DLT libpcap wants for a LINKTYPE_* value (they differ for raw IP: 101 vs DLT_RAW).
int dlt_for_linktype(uint32_t linktype);

// libpcap's error compiling `text` for Ethernet, or "" when it compiles: how a filter is
// checked up front (a class's, a query's), so that a bad one is an error, not an empty answer.
std::string bpf_compile_error(const std::string& text);

class PacketFilter {
 public:
  PacketFilter(std::string text, const ParseResult& parsed);
  ~PacketFilter();
  PacketFilter(const PacketFilter&) = delete;
  PacketFilter& operator=(const PacketFilter&) = delete;

  bool bpf() const { return parsed_.kind == ParseResult::Kind::kBpfOnly; }
  // A frame of a link type the BPF filter cannot apply to never matches.
  bool matches(uint32_t linktype, const uint8_t* data, uint32_t caplen, uint32_t wirelen);
  // The same for a query's re-check, frames in capture order: a later fragment whose first
  // fragment `frags` remembers is matched as its datagram (its ports and inner layers; see
  // conn/fragment_layers.h), and `outcome` says what `frags` made of the frame. A BPF
  // filter keeps tcpdump's semantics (BPF knows nothing of fragments): outcome kNone.
  bool matches(uint32_t linktype, const uint8_t* data, uint32_t caplen, uint32_t wirelen,
               conn::FragmentLayers& frags, uint64_t ts_ns, conn::FragmentLayers::Outcome& outcome);

 private:
  std::string text_;
  const ParseResult& parsed_;
  packet::PacketInfo info_;
  std::map<uint32_t, std::pair<bpf_program, bool>> progs_;  // per link type; false: did not compile
};

}  // namespace tmach::query
