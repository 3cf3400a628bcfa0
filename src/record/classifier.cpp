#include "record/classifier.h"

#include <fmt/format.h>

namespace tmach::record {
namespace {

std::vector<std::string> filters(const std::vector<config::ClassConfig>& classes) {
  // Compile for Ethernet now so that a bad filter is reported at start, with its class.
  std::vector<std::string> out;
  for (const auto& c : classes) {
    if (!c.filter.empty()) {
      std::string err = packet::bpf_compile_error(c.filter);
      if (!err.empty())
        throw config::ConfigError(fmt::format("class '{}': filter '{}': {}", c.name, c.filter, err));
    }
    out.push_back(c.filter);
  }
  return out;
}

}  // namespace

Classifier::Classifier(const std::vector<config::ClassConfig>& classes) : progs_(filters(classes)) {}

uint16_t Classifier::classify(uint32_t linktype, const uint8_t* data, uint32_t caplen, uint32_t wirelen) {
  const size_t n = progs_.size();
  if (n == 1) return 0;
  const auto& c = progs_.for_link(linktype);
  for (size_t i = 0; i < n; ++i)
    if (c.matches(i, data, caplen, wirelen)) return static_cast<uint16_t>(i);
  return static_cast<uint16_t>(n - 1);  // the catch-all is last
}

}  // namespace tmach::record
