// One parsed filter applied to raw frames: the exact evaluator for what the parser planned,
// libpcap BPF (compiled once per link type) for everything else. Used by queries (re-check
// of candidates) and by live subscriptions. Not thread-safe: one per reader.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "packet/bpf.h"
#include "packet/fragment_layers.h"
#include "packet/packet_info.h"
#include "query/parser.h"

namespace tmach::query {

// (packet/bpf.h; named here too for the query's callers)
using packet::bpf_compile_error;

class PacketFilter {
 public:
  PacketFilter(std::string text, const ParseResult& parsed);
  PacketFilter(const PacketFilter&) = delete;
  PacketFilter& operator=(const PacketFilter&) = delete;

  bool bpf() const { return parsed_.kind == ParseResult::Kind::kBpfOnly; }
  // A frame of a link type the BPF filter cannot apply to never matches.
  bool matches(uint32_t linktype, const uint8_t* data, uint32_t caplen, uint32_t wirelen);
  // The same for a query's re-check, frames in capture order: a later fragment whose first
  // fragment `frags` remembers is matched as its datagram (its ports and inner layers; see
  // packet/fragment_layers.h), and `outcome` says what `frags` made of the frame. A BPF
  // filter keeps tcpdump's semantics (BPF knows nothing of fragments): outcome kNone.
  bool matches(uint32_t linktype, const uint8_t* data, uint32_t caplen, uint32_t wirelen,
               packet::FragmentLayers& frags, uint64_t ts_ns, packet::FragmentLayers::Outcome& outcome);
  // Per link type whose frames the BPF filter was asked about but libpcap could not compile it
  // for (e.g. NFLOG, where libpcap filters nothing; tcpdump refuses the file): what to tell the
  // user, as their frames were answered "no match" without being looked at.
  std::vector<std::string> problems() const;
  // The frame the exact evaluator decoded last (with what `frags` gave it), valid until the next
  // matches() call: the query's re-check asks it for a fragment's datagram.
  const packet::PacketInfo& last() const { return info_; }

 private:
  const ParseResult& parsed_;
  packet::PacketInfo info_;
  packet::BpfPrograms bpf_;                     // the text, when it is a BPF filter
  std::map<uint32_t, std::string> uncompiled_;  // link type -> libpcap's error (problems())
};

}  // namespace tmach::query
