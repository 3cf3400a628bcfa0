// util/pcapng_writer.h: pcapng answers (one interface per link type, nanosecond timestamps),
// read back by tm's own pcapng parser, checked block by block, and read by libpcap.
#include <gtest/gtest.h>
#include <pcap/pcap.h>

#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "capture/pcapng.h"
#include "temp_dir.h"
#include "util/pcapng_writer.h"

using namespace tmach;
namespace ng = tmach::util::pcapng;
namespace pc = tmach::util::pcap;

namespace {

struct Pkt {
  uint64_t ts_ns;
  uint32_t linktype;
  uint32_t wirelen;
  std::string data;
};

// Lengths 0..5 cover every padding; timestamps past 2^32 ns and past 2106 (32-bit seconds).
const std::vector<Pkt> kMixed = {
    {1700000000123456789ull, 1, 60, std::string(14, 'e')},
    {1700000000123456790ull, 113, 16, std::string(1, 's')},
    {1700000001000000000ull, 1, 2, std::string(2, 'f')},
    {1700000002000000001ull, 101, 3, std::string(3, 'r')},
    {1700000003000000002ull, 113, 100, std::string(5, 't')},
    {5000000000000000000ull, 101, 0, std::string()},
};

std::string write(const std::vector<Pkt>& pkts, size_t chunk = 1 << 16, std::vector<uint32_t> declared = {}) {
  std::string out;
  ng::Writer w([&](const char* p, size_t n) { out.append(p, n); }, chunk, std::move(declared));
  for (auto& p : pkts)
    EXPECT_TRUE(w.write(p.ts_ns, p.linktype, static_cast<uint32_t>(p.data.size()), p.wirelen,
                        reinterpret_cast<const uint8_t*>(p.data.data())));
  w.finish();
  EXPECT_EQ(w.packets(), pkts.size());
  EXPECT_EQ(w.bytes(), out.size());
  return out;
}

uint32_t u32(const std::string& b, size_t off) {
  uint32_t v;
  std::memcpy(&v, b.data() + off, 4);
  return v;
}

// The blocks' types, each block's length checked: a multiple of 4, equal at both ends.
std::vector<uint32_t> block_types(const std::string& b) {
  std::vector<uint32_t> types;
  size_t off = 0;
  while (off < b.size()) {
    EXPECT_LE(off + 12, b.size());
    uint32_t len = u32(b, off + 4);
    EXPECT_EQ(len % 4, 0u) << "block at " << off;
    EXPECT_LE(off + len, b.size());
    EXPECT_EQ(u32(b, off + len - 4), len) << "block at " << off;
    types.push_back(u32(b, off));
    off += len;
  }
  EXPECT_EQ(off, b.size());
  return types;
}

}  // namespace

TEST(PcapngWriter, BlocksAndOneInterfacePerLinkTypeAsTheyCome) {
  std::string b = write(kMixed);
  ASSERT_EQ(b.size() % 4, 0u);
  std::vector<uint32_t> want = {
      ng::kBlockSection,  ng::kBlockInterface, ng::kBlockEnhanced, ng::kBlockInterface, ng::kBlockEnhanced,
      ng::kBlockEnhanced, ng::kBlockInterface, ng::kBlockEnhanced, ng::kBlockEnhanced,  ng::kBlockEnhanced};
  EXPECT_EQ(block_types(b), want);
  EXPECT_EQ(u32(b, 8), ng::kByteOrderMagic);
}

TEST(PcapngWriter, TmsParserReadsBackEveryPacketWithItsLinkType) {
  for (size_t chunk : {size_t{1}, size_t{1} << 16}) {
    std::string b = write(kMixed, chunk);
    capture::pcapng::Parser p;
    size_t off = 0, i = 0;
    for (;;) {
      auto s = p.next(reinterpret_cast<const uint8_t*>(b.data()) + off, b.size() - off, true);
      if (s.kind == capture::pcapng::Step::kEnd) break;
      ASSERT_NE(s.kind, capture::pcapng::Step::kSkip) << s.why;
      ASSERT_NE(s.kind, capture::pcapng::Step::kNeed);
      if (s.kind == capture::pcapng::Step::kPacket) {
        ASSERT_LT(i, kMixed.size());
        const Pkt& w = kMixed[i++];
        EXPECT_EQ(s.ts_ns, w.ts_ns);
        EXPECT_EQ(s.linktype, w.linktype);
        EXPECT_EQ(s.wirelen, w.wirelen);
        EXPECT_EQ(std::string(reinterpret_cast<const char*>(s.data), s.caplen), w.data);
      }
      off += s.consumed;
    }
    EXPECT_EQ(i, kMixed.size());
    ASSERT_EQ(p.interfaces().size(), 3u);
    EXPECT_EQ(p.interfaces()[0].linktype, 1u);
    EXPECT_EQ(p.interfaces()[1].linktype, 113u);
    EXPECT_EQ(p.interfaces()[2].linktype, 101u);
    for (auto& f : p.interfaces()) {
      EXPECT_EQ(f.tsresol_exp, 9);
      EXPECT_FALSE(f.tsresol_pow2);
      EXPECT_EQ(f.snaplen, pc::kSnaplen);
    }
  }
}

// libpcap (1.10) reads a pcapng of one link type only ("an interface has a type ... different
// from the type of the first interface"): an answer of one link type has one interface.
TEST(PcapngWriter, LibpcapReadsOneLinkTypeInNanoseconds) {
  std::vector<Pkt> one;
  for (auto& p : kMixed)
    if (p.linktype == 113) one.push_back(p);
  TempDir d;
  std::string path = (d.p / "a.pcapng").string();
  { std::ofstream(path, std::ios::binary) << write(one); }
  char err[PCAP_ERRBUF_SIZE];
  pcap_t* p = pcap_open_offline_with_tstamp_precision(path.c_str(), PCAP_TSTAMP_PRECISION_NANO, err);
  ASSERT_NE(p, nullptr) << err;
  EXPECT_EQ(pcap_datalink(p), 113);
  pcap_pkthdr* h;
  const u_char* data;
  size_t i = 0;
  int rc;
  while ((rc = pcap_next_ex(p, &h, &data)) == 1) {
    ASSERT_LT(i, one.size());
    EXPECT_EQ(static_cast<uint64_t>(h->ts.tv_sec) * 1000000000ull + static_cast<uint64_t>(h->ts.tv_usec),
              one[i].ts_ns);
    EXPECT_EQ(h->len, one[i].wirelen);
    EXPECT_EQ(std::string(reinterpret_cast<const char*>(data), h->caplen), one[i].data);
    ++i;
  }
  EXPECT_EQ(rc, PCAP_ERROR_BREAK);
  EXPECT_EQ(i, one.size());
  pcap_close(p);
}

// An answer never holds a record longer than its snaplen (262144): libpcap refuses those. A
// store written before the recorder cut such records may hold one; both writers cut it.
TEST(PcapngWriter, BothWritersCutARecordLongerThanTheSnaplen) {
  std::string big(300000, 'x');
  for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>(i * 7);
  for (bool ng_format : {false, true}) {
    SCOPED_TRACE(ng_format ? "pcapng" : "pcap");
    std::string out;
    pc::AnswerWriter w(ng_format ? pc::Output::kPcapng : pc::Output::kPcap,
                       [&](const char* p, size_t n) { out.append(p, n); });
    const uint8_t small[4] = {1, 2, 3, 4};
    w.write(1000, 1, 4, 4, small);
    w.write(2000, 1, static_cast<uint32_t>(big.size()), static_cast<uint32_t>(big.size()),
            reinterpret_cast<const uint8_t*>(big.data()));
    w.write(3000, 1, 4, 60, small);
    w.finish();
    TempDir d;
    std::string path = (d.p / "a").string();
    { std::ofstream(path, std::ios::binary) << out; }
    char err[PCAP_ERRBUF_SIZE];
    pcap_t* p = pcap_open_offline_with_tstamp_precision(path.c_str(), PCAP_TSTAMP_PRECISION_NANO, err);
    ASSERT_NE(p, nullptr) << err;
    pcap_pkthdr* h;
    const u_char* data;
    std::vector<std::pair<uint32_t, uint32_t>> lens;
    int rc;
    while ((rc = pcap_next_ex(p, &h, &data)) == 1) {
      lens.emplace_back(h->caplen, h->len);
      if (h->caplen > 4) {
        EXPECT_EQ(std::string(reinterpret_cast<const char*>(data), h->caplen), big.substr(0, pc::kSnaplen));
      }
    }
    EXPECT_EQ(rc, PCAP_ERROR_BREAK) << pcap_geterr(p);
    pcap_close(p);
    EXPECT_EQ(lens, (std::vector<std::pair<uint32_t, uint32_t>>{{4, 4}, {pc::kSnaplen, 300000}, {4, 60}}));
  }
}

TEST(PcapngWriter, EmptyAnswerHasAnInterfaceAndDeclaredOnesComeFirst) {
  std::string empty = write({});
  EXPECT_EQ(block_types(empty), (std::vector<uint32_t>{ng::kBlockSection, ng::kBlockInterface}));
  TempDir d;
  std::string path = (d.p / "e.pcapng").string();
  { std::ofstream(path, std::ios::binary) << empty; }
  char err[PCAP_ERRBUF_SIZE];
  pcap_t* p = pcap_open_offline(path.c_str(), err);
  ASSERT_NE(p, nullptr) << err;
  EXPECT_EQ(pcap_datalink(p), 1);
  pcap_close(p);

  std::string decl = write({kMixed[0]}, 1 << 16, {113, 1});
  EXPECT_EQ(block_types(decl), (std::vector<uint32_t>{ng::kBlockSection, ng::kBlockInterface,
                                                      ng::kBlockInterface, ng::kBlockEnhanced}));
  // The packet (Ethernet) names interface 1, the second declared.
  size_t epb = 40 + 32 + 32;  // section header, two interfaces
  EXPECT_EQ(u32(decl, epb + 8), 1u);
}

TEST(PcapngWriter, AnswerWriterPcapLeavesOtherLinkTypesOutPcapngKeepsThem) {
  std::string a, b;
  pc::AnswerWriter p(pc::Output::kPcap, [&](const char* d, size_t n) { a.append(d, n); });
  pc::AnswerWriter n(pc::Output::kPcapng, [&](const char* d, size_t k) { b.append(d, k); });
  for (auto& k : kMixed) {
    p.write(k.ts_ns, k.linktype, static_cast<uint32_t>(k.data.size()), k.wirelen,
            reinterpret_cast<const uint8_t*>(k.data.data()));
    n.write(k.ts_ns, k.linktype, static_cast<uint32_t>(k.data.size()), k.wirelen,
            reinterpret_cast<const uint8_t*>(k.data.data()));
  }
  p.finish();
  n.finish();
  EXPECT_EQ(p.packets(), 2u);
  EXPECT_EQ(p.other_link(), 4u);
  EXPECT_EQ(p.describe(), "pcap (link type 1)");
  EXPECT_EQ(n.packets(), kMixed.size());
  EXPECT_EQ(n.other_link(), 0u);
  EXPECT_EQ(n.describe(), "pcapng (link types 1, 113, 101)");
  EXPECT_EQ(pc::parse_output("pcapng"), pc::Output::kPcapng);
  EXPECT_EQ(pc::parse_output("pcap"), pc::Output::kPcap);
  EXPECT_FALSE(pc::parse_output("PCAP-NG"));
}
