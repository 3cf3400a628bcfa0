#include "query/packet_filter.h"

#include "packet/decoder.h"
#include "query/eval.h"

namespace tmach::query {

int dlt_for_linktype(uint32_t linktype) { return linktype == 101 ? DLT_RAW : static_cast<int>(linktype); }

std::string bpf_compile_error(const std::string& text) {
  pcap_t* p = pcap_open_dead_with_tstamp_precision(DLT_EN10MB, 262144, PCAP_TSTAMP_PRECISION_NANO);
  bpf_program prog;
  std::string err;
  if (pcap_compile(p, &prog, text.c_str(), 1, PCAP_NETMASK_UNKNOWN) != 0)
    err = pcap_geterr(p);
  else
    pcap_freecode(&prog);
  pcap_close(p);
  return err;
}

PacketFilter::PacketFilter(std::string text, const ParseResult& parsed)
    : text_(std::move(text)), parsed_(parsed) {}

PacketFilter::~PacketFilter() {
  for (auto& [lt, p] : progs_)
    if (p.second) pcap_freecode(&p.first);
}

bool PacketFilter::matches(uint32_t linktype, const uint8_t* data, uint32_t caplen, uint32_t wirelen,
                           conn::FragmentLayers& frags, uint64_t ts_ns,
                           conn::FragmentLayers::Outcome& outcome) {
  outcome = conn::FragmentLayers::Outcome::kNone;
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
  auto it = progs_.find(linktype);
  if (it == progs_.end()) {
    pcap_t* p =
        pcap_open_dead_with_tstamp_precision(dlt_for_linktype(linktype), 262144, PCAP_TSTAMP_PRECISION_NANO);
    bpf_program prog{};
    bool ok = pcap_compile(p, &prog, text_.c_str(), 1, PCAP_NETMASK_UNKNOWN) == 0;
    pcap_close(p);
    it = progs_.emplace(linktype, std::make_pair(prog, ok)).first;
  }
  return it->second.second && bpf_filter(it->second.first.bf_insns, data, wirelen, caplen) != 0;
}

}  // namespace tmach::query
