#include "query/packet_filter.h"

#include "packet/decoder.h"
#include "query/eval.h"

namespace tmach::query {

PacketFilter::PacketFilter(std::string text, const ParseResult& parsed)
    : parsed_(parsed), bpf_({std::move(text)}) {}

bool PacketFilter::matches(uint32_t linktype, const uint8_t* data, uint32_t caplen, uint32_t wirelen,
                           packet::FragmentLayers& frags, uint64_t ts_ns,
                           packet::FragmentLayers::Outcome& outcome) {
  outcome = packet::FragmentLayers::Outcome::kNone;
  if (bpf()) return matches(linktype, data, caplen, wirelen);
  packet::decode(linktype, data, caplen, info_);
  outcome = frags.apply(info_, ts_ns);
  return query::matches(parsed_.expr, info_);
}

bool PacketFilter::matches(uint32_t linktype, const uint8_t* data, uint32_t caplen, uint32_t wirelen) {
  if (!bpf()) {
    packet::decode(linktype, data, caplen, info_);
    return query::matches(parsed_.expr, info_);
  }
  return bpf_.for_link(linktype).matches(0, data, caplen, wirelen);
}

}  // namespace tmach::query
