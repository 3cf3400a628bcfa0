#include "conn/classifier.h"

#include <fmt/format.h>

#include "query/packet_filter.h"

namespace tmach::conn {

Classifier::Classifier(const std::vector<config::ClassConfig>& classes) : classes_(classes) {
  // Compile for Ethernet now so that a bad filter is reported at start, with its class.
  for (const auto& c : classes_) {
    if (c.filter.empty()) continue;
    std::string err = query::bpf_compile_error(c.filter);
    if (!err.empty())
      throw config::ConfigError(fmt::format("class '{}': filter '{}': {}", c.name, c.filter, err));
  }
}

Classifier::~Classifier() {
  for (auto& [lt, c] : by_link_)
    for (size_t i = 0; i < c->progs.size(); ++i)
      if (c->mode[i] == 1) pcap_freecode(&c->progs[i]);
}

Classifier::Compiled& Classifier::for_link(uint32_t linktype) {
  if (linktype == last_link_) return *last_;
  auto it = by_link_.find(linktype);
  if (it == by_link_.end()) {
    auto c = std::make_unique<Compiled>();
    c->progs.resize(classes_.size());
    c->mode.resize(classes_.size(), 0);
    int dlt = query::dlt_for_linktype(linktype);
    pcap_t* p = pcap_open_dead_with_tstamp_precision(dlt, 262144, PCAP_TSTAMP_PRECISION_NANO);
    for (size_t i = 0; i < classes_.size(); ++i) {
      if (classes_[i].filter.empty()) continue;
      c->mode[i] =
          pcap_compile(p, &c->progs[i], classes_[i].filter.c_str(), 1, PCAP_NETMASK_UNKNOWN) == 0 ? 1 : 2;
    }
    pcap_close(p);
    it = by_link_.emplace(linktype, std::move(c)).first;
  }
  last_link_ = linktype;
  last_ = it->second.get();
  return *last_;
}

uint16_t Classifier::classify(uint32_t linktype, const uint8_t* data, uint32_t caplen, uint32_t wirelen) {
  if (classes_.size() == 1) return 0;
  Compiled& c = for_link(linktype);
  for (size_t i = 0; i < classes_.size(); ++i) {
    if (c.mode[i] == 0) return static_cast<uint16_t>(i);
    if (c.mode[i] == 2) continue;
    if (bpf_filter(c.progs[i].bf_insns, data, wirelen, caplen) != 0) return static_cast<uint16_t>(i);
  }
  return static_cast<uint16_t>(classes_.size() - 1);  // the catch-all is last
}

}  // namespace tmach::conn
