// libpcap BPF filters over raw frames: the one place that turns a LINKTYPE_* into a DLT,
// checks a filter up front, and compiles filters once per link type. Used by the recorder's
// class selection (one filter per class) and by queries and subscriptions (one filter).
#pragma once

#include <pcap/pcap.h>

#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

namespace tmach::packet {

// The DLT libpcap wants for a LINKTYPE_* value (they differ for raw IP: 101 vs DLT_RAW).
int dlt_for_linktype(uint32_t linktype);

// A pcap_t to compile filters with, as `tcpdump -r` compiles them for a file of that link type
// (LINKTYPE_*): opened on a capture file's header in memory, not "dead" as for a live capture,
// whose code differs: a BSD loopback (DLT_NULL, DLT_LOOP) IPv6 packet is one whose address
// family is a file's 24, 28 or 30, not the running system's AF_INET6 (Linux's 10). Falls back
// to pcap_open_dead where libpcap does not open such a file. pcap_close() it.
pcap_t* open_compiler(uint32_t linktype);

// libpcap's error compiling `text` for a link type (LINKTYPE_*; Ethernet unless told), or ""
// when it compiles: how a filter is checked up front (a class's, a query's), so that a bad
// one is an error, not an empty answer.
// `live`: as for a live capture's handle (a capture filter, which the kernel or libpcap runs
// there: `inbound`, `ifindex` are valid), not as for a file.
std::string bpf_compile_error(const std::string& text, uint32_t linktype = 1, bool live = false);

// Filters compiled lazily, once per link type. An empty filter matches every frame; one that
// cannot be compiled for a link type (e.g. `ether host` on raw IP) matches none of its frames.
// Not thread-safe: one per reader.
class BpfPrograms {
 public:
  explicit BpfPrograms(std::vector<std::string> filters);
  ~BpfPrograms();
  BpfPrograms(const BpfPrograms&) = delete;
  BpfPrograms& operator=(const BpfPrograms&) = delete;

  // The filters compiled for one link type.
  class Compiled {
   public:
    bool matches(size_t i, const uint8_t* data, uint32_t caplen, uint32_t wirelen) const {
      if (mode_[i] == kAll) return true;
      return mode_[i] == kProgram && bpf_filter(progs_[i].bf_insns, data, wirelen, caplen) != 0;
    }
    // Filter i could not be compiled for this link type: libpcap's error, else "".
    const std::string& error(size_t i) const { return errors_[i]; }

   private:
    friend class BpfPrograms;
    enum Mode : uint8_t { kAll = 0, kProgram = 1, kNever = 2 };
    std::vector<bpf_program> progs_;  // per filter; compiled when mode_ is kProgram
    std::vector<uint8_t> mode_;
    std::vector<std::string> errors_;  // per filter; set when mode_ is kNever
  };
  const Compiled& for_link(uint32_t linktype) {
    if (linktype == last_link_) return *last_;
    return compile(linktype);
  }
  size_t size() const { return filters_.size(); }

 private:
  const Compiled& compile(uint32_t linktype);

  std::vector<std::string> filters_;
  std::unordered_map<uint32_t, std::unique_ptr<Compiled>> by_link_;
  uint32_t last_link_ = UINT32_MAX;
  Compiled* last_ = nullptr;
};

}  // namespace tmach::packet
