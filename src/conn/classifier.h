// Storage classes chosen by libpcap BPF filters, evaluated once per connection.
#pragma once

#include <pcap/pcap.h>

#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "config/config.h"

namespace tmach::conn {

class Classifier {
 public:
  // Classes in precedence order (config::finalize_classes). Throws config::ConfigError when a
  // filter does not compile for Ethernet (the check at start; other link types compile lazily).
  explicit Classifier(const std::vector<config::ClassConfig>& classes);
  ~Classifier();
  Classifier(const Classifier&) = delete;
  Classifier& operator=(const Classifier&) = delete;

  // Index of the first class whose filter accepts the frame. A filter that cannot be
  // compiled for this link type (e.g. `ether host` on raw IP) never matches it.
  uint16_t classify(uint32_t linktype, const uint8_t* data, uint32_t caplen, uint32_t wirelen);

 private:
  struct Compiled {
    std::vector<bpf_program> progs;  // per class; bf_insns null = match all / never (see valid)
    std::vector<uint8_t> mode;       // 0 match all, 1 program, 2 never
  };
  Compiled& for_link(uint32_t linktype);

  std::vector<config::ClassConfig> classes_;
  std::unordered_map<uint32_t, std::unique_ptr<Compiled>> by_link_;
  uint32_t last_link_ = UINT32_MAX;
  Compiled* last_ = nullptr;
};

}  // namespace tmach::conn
