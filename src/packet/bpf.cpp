#include "packet/bpf.h"

#include <cstdio>

#include "util/pcap.h"

namespace tmach::packet {
namespace {

// The netmask a file's filter is compiled with: tcpdump -r's, 0 (it has no interface to ask;
// `ip broadcast` then matches 255.255.255.255 and 0.0.0.0). A live handle's is unknown (libpcap
// then refuses `ip broadcast`, as tcpdump -i does on an interface without an IPv4 address).
constexpr bpf_u_int32 kFileNetmask = 0;

}  // namespace

int dlt_for_linktype(uint32_t linktype) { return linktype == 101 ? DLT_RAW : static_cast<int>(linktype); }

pcap_t* open_compiler(uint32_t linktype) {
  util::pcap::FileHeader h;  // (native order: libpcap takes the file as not swapped)
  h.linktype = linktype;
  h.snaplen = 262144;
  if (FILE* f = fmemopen(nullptr, sizeof h, "w+b")) {
    char err[PCAP_ERRBUF_SIZE];
    if (fwrite(&h, sizeof h, 1, f) == 1 && fseek(f, 0, SEEK_SET) == 0)
      if (pcap_t* p = pcap_fopen_offline_with_tstamp_precision(f, PCAP_TSTAMP_PRECISION_NANO, err))
        return p;  // (pcap_close closes f)
    fclose(f);
  }
  return pcap_open_dead_with_tstamp_precision(dlt_for_linktype(linktype), 262144, PCAP_TSTAMP_PRECISION_NANO);
}

std::string bpf_compile_error(const std::string& text, uint32_t linktype, bool live) {
  pcap_t* p = live ? pcap_open_dead_with_tstamp_precision(dlt_for_linktype(linktype), 262144,
                                                          PCAP_TSTAMP_PRECISION_NANO)
                   : open_compiler(linktype);
  bpf_program prog;
  std::string err;
  if (pcap_compile(p, &prog, text.c_str(), 1, live ? PCAP_NETMASK_UNKNOWN : kFileNetmask) != 0)
    err = pcap_geterr(p);
  else
    pcap_freecode(&prog);
  pcap_close(p);
  return err;
}

BpfPrograms::BpfPrograms(std::vector<std::string> filters) : filters_(std::move(filters)) {}

BpfPrograms::~BpfPrograms() {
  for (auto& [lt, c] : by_link_)
    for (size_t i = 0; i < c->progs_.size(); ++i)
      if (c->mode_[i] == Compiled::kProgram) pcap_freecode(&c->progs_[i]);
}

const BpfPrograms::Compiled& BpfPrograms::compile(uint32_t linktype) {
  auto it = by_link_.find(linktype);
  if (it == by_link_.end()) {
    auto c = std::make_unique<Compiled>();
    c->progs_.resize(filters_.size());
    c->mode_.resize(filters_.size(), Compiled::kAll);
    c->errors_.resize(filters_.size());
    pcap_t* p = open_compiler(linktype);
    for (size_t i = 0; i < filters_.size(); ++i) {
      if (filters_[i].empty()) continue;
      if (pcap_compile(p, &c->progs_[i], filters_[i].c_str(), 1, kFileNetmask) == 0) {
        c->mode_[i] = Compiled::kProgram;
      } else {
        c->mode_[i] = Compiled::kNever;
        c->errors_[i] = pcap_geterr(p);
      }
    }
    pcap_close(p);
    it = by_link_.emplace(linktype, std::move(c)).first;
  }
  last_link_ = linktype;
  last_ = it->second.get();
  return *last_;
}

}  // namespace tmach::packet
