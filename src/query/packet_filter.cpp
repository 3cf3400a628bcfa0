#include "query/packet_filter.h"

#include <fmt/format.h>

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
  const packet::BpfPrograms::Compiled& c = bpf_.for_link(linktype);
  if (!c.error(0).empty()) [[unlikely]]
    uncompiled_.try_emplace(linktype, c.error(0));  // (no node built once the link type is noted)
  return c.matches(0, data, caplen, wirelen);
}

std::vector<std::string> PacketFilter::problems() const {
  std::vector<std::string> out;
  for (const auto& [linktype, err] : uncompiled_)
    out.push_back(fmt::format(
        "the filter cannot be applied to packets of link type {} (libpcap: {}): none of them was matched",
        linktype, err));
  return out;
}

}  // namespace tmach::query
