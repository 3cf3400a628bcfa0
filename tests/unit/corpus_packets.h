// Every packet of a capture in ../shared/corpus, for unit tests that decode real frames.
#pragma once

#include <gtest/gtest.h>
#include <pcap/pcap.h>

#include <cstdint>
#include <string>
#include <vector>

namespace tmtest {

struct Pkt {
  std::vector<uint8_t> data;  // the captured bytes
  uint32_t linktype;          // the file's (pcap_datalink)
};

// The packets of corpus file `rel` (e.g. "ipv4/fragmented-3.pcap"); a failure to open it fails
// the test and gives none.
inline std::vector<Pkt> read(const std::string& rel) {
  std::vector<Pkt> out;
  char err[PCAP_ERRBUF_SIZE];
  pcap_t* p = pcap_open_offline((std::string(TM_CORPUS_DIR) + "/" + rel).c_str(), err);
  EXPECT_NE(p, nullptr) << rel << ": " << err;
  if (!p) return out;
  pcap_pkthdr* h;
  const u_char* d;
  while (pcap_next_ex(p, &h, &d) == 1)
    out.push_back({std::vector<uint8_t>(d, d + h->caplen), static_cast<uint32_t>(pcap_datalink(p))});
  pcap_close(p);
  return out;
}

}  // namespace tmtest
