// Storage classes chosen by libpcap BPF filters, evaluated once per connection.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "config/config.h"
#include "packet/bpf.h"

namespace tmach::record {

class Classifier {
 public:
  // Classes in precedence order (config::finalize_classes). Throws config::ConfigError when a
  // filter does not compile for Ethernet (the check at start; other link types compile lazily).
  explicit Classifier(const std::vector<config::ClassConfig>& classes);

  // Index of the first class whose filter accepts the frame. A filter that cannot be
  // compiled for this link type (e.g. `ether host` on raw IP) never matches it.
  uint16_t classify(uint32_t linktype, const uint8_t* data, uint32_t caplen, uint32_t wirelen);

 private:
  packet::BpfPrograms progs_;  // one filter per class, in precedence order
};

}  // namespace tmach::record
