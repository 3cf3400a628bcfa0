// One parsed filter applied to raw frames: the exact evaluator for what the parser planned,
// libpcap BPF (compiled once per link type) for everything else. Used by queries (re-check
// of candidates) and by live subscriptions. Not thread-safe: one per reader.
#pragma once

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "packet/bpf.h"
#include "packet/fragment_layers.h"
#include "packet/packet_info.h"
#include "query/parser.h"

namespace tmach::query {

// (packet/bpf.h; named here too for the query's callers)
using packet::bpf_compile_error;
// A filter that tm's parser hands to libpcap whole (ParseResult::Kind::kBpfOnly) and libpcap
// cannot compile: the error as a query reports it, naming the filter (libpcap's message has no
// position for a caret); "" when it compiles for one of `links`, the link types (LINKTYPE_*)
// of the segments the query reads (Ethernet when none is given): `wlan host A` is a filter for
// a store of 802.11 frames, where Ethernet's compiler refuses it. (A segment of another link
// type than those it compiles for has none of its packets matched, and the query warns.)
// With `size_cap`, a filter longer than kLibpcapMaxFilter is refused here rather than
// compiled: libpcap's compile time grows faster than the filter (a 600-term `host A or host
// B ...` of 11 KB takes it 10 s of CPU, as tcpdump; 5000 terms, unoptimised, 110 s), and a
// query slot cannot stop it. The cap is for the filter a user gives (LocalService checks it
// before tm joins a flow's connection to it: the executor's own check passes size_cap false).
// Filters tm indexes are not compiled by libpcap beyond that size either (PacketFilter).
inline constexpr size_t kLibpcapMaxFilter = 4096;
// What libpcap compiles of a filter (`text`, parsed): a split filter's part for libpcap
// (ParseResult::split), else the whole text. What libpcap_filter_error checks.
inline const std::string& libpcap_text(const std::string& text, const ParseResult& parsed) {
  return parsed.split() ? parsed.libpcap : text;
}
std::string libpcap_filter_error(const std::string& text, const std::set<uint32_t>& links = {},
                                 bool size_cap = true);

// Whether tm and libpcap read a frame cut short before its keys (store::cut_before_its_keys)
// alike: a link layer libpcap reads as tm does, straight to IPv4, IPv6 or ARP, or cut before
// its EtherType; no VLAN or MPLS tag, no tunnel, no IPv6 extension header followed, no
// fragment, no RARP — none of what tm deliberately reads otherwise than libpcap (docs/USAGE.md).
bool cut_frame_for_libpcap(uint32_t linktype, const uint8_t* data, uint32_t caplen,
                           const packet::PacketInfo& p);
// Whether an expression means the same to libpcap: host, net, port, portrange, protocols,
// ip/ip6, arp/rarp, on any layer (not tm's own vlan, tunnel, SPI, outer/inner selectors).
bool libpcap_alike(const Expr& e);

class PacketFilter {
 public:
  PacketFilter(std::string text, const ParseResult& parsed);
  PacketFilter(const PacketFilter&) = delete;
  PacketFilter& operator=(const PacketFilter&) = delete;

  bool bpf() const { return parsed_.kind == ParseResult::Kind::kBpfOnly; }
  // libpcap answers the whole filter: matches() decodes nothing (last() is not the frame's).
  bool libpcap_whole() const { return bpf() && !parsed_.split(); }
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
  // A frame the exact evaluator decoded as cut short inside its headers is judged by libpcap
  // instead, as tcpdump judges it, where both read it alike (cut_frame_for_libpcap()) and the
  // filter means the same to both (libpcap_alike_): libpcap rejects a frame whose filter reads
  // past its captured bytes, even under `not`, and reads what was captured (`ip` of a frame
  // cut inside its IP header), where tm's keys would say "no ports", "no IP layer".
  bool judged_by_libpcap(uint32_t linktype, const uint8_t* data, uint32_t caplen, uint32_t wirelen,
                         bool& hit);
  // The verdict on the frame decoded in info_: tm's (with the above), for a split filter tm's
  // terms and then libpcap's program kPart.
  bool by_tm(uint32_t linktype, const uint8_t* data, uint32_t caplen, uint32_t wirelen);
  // libpcap's program i (whole_, kPart) on the frame.
  bool by_libpcap(size_t i, uint32_t linktype, const uint8_t* data, uint32_t caplen, uint32_t wirelen);
  const ParseResult& parsed_;
  size_t text_size_ = 0;  // beyond kLibpcapMaxFilter: libpcap is not given the whole text
  bool libpcap_alike_ = false;
  packet::PacketInfo info_;
  packet::BpfPrograms bpf_;                     // the text, or a split filter's libpcap part (and the text)
  static constexpr size_t kPart = 0;            // bpf_'s program of a split filter's libpcap part
  size_t whole_;                                // bpf_'s program of the whole text (when it has one)
  std::map<uint32_t, std::string> uncompiled_;  // link type -> libpcap's error (problems())
};

}  // namespace tmach::query
