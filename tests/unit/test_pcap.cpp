// util/pcap.h: the headers, the record cursor, the writer.
#include <gtest/gtest.h>
#include <pcap/pcap.h>

#include <algorithm>
#include <fstream>
#include <string>
#include <vector>

#include "store/pcap_scan.h"
#include "temp_dir.h"
#include "util/pcap.h"

using namespace tmach;
namespace pc = tmach::util::pcap;

namespace {

struct Pkt {
  uint64_t ts_ns;
  uint32_t wirelen;
  std::string data;
};

// Timestamps whose nanoseconds matter (a microsecond file could not hold them).
const std::vector<Pkt> kPkts = {
    {1700000000123456789ull, 60, std::string(60, 'a')},
    {1700000000123456790ull, 1514, std::string(100, 'b')},  // cut by a snap length
    {1700000001000000001ull, 0, ""},
    {1700000002999999999ull, 9000, std::string(9000, 'c')},
};

std::string write_pcap(const std::vector<Pkt>& pkts, uint32_t linktype, size_t chunk = 1 << 16) {
  std::string out;
  pc::Writer w([&](const char* p, size_t n) { out.append(p, n); }, chunk);
  for (auto& p : pkts)
    EXPECT_TRUE(w.write(p.ts_ns, linktype, static_cast<uint32_t>(p.data.size()), p.wirelen,
                        reinterpret_cast<const uint8_t*>(p.data.data())));
  w.finish();
  return out;
}

std::vector<Pkt> read_all(const std::string& bytes, pc::RecordCursor::Step* last, uint64_t* end = nullptr,
                          uint32_t* linktype = nullptr) {
  auto f = pc::parse_file_header(reinterpret_cast<const uint8_t*>(bytes.data()));
  EXPECT_TRUE(f.has_value());
  if (!f) return {};
  if (linktype) *linktype = f->linktype;
  pc::RecordCursor cur(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), *f);
  std::vector<Pkt> got;
  pc::Record r;
  pc::RecordCursor::Step s;
  while ((s = cur.next(r)) == pc::RecordCursor::Step::kRecord)
    got.push_back(Pkt{r.ts_ns, r.wirelen, std::string(reinterpret_cast<const char*>(r.data), r.caplen)});
  *last = s;
  if (end) *end = cur.pos();
  return got;
}

void expect_same(const std::vector<Pkt>& got, const std::vector<Pkt>& want) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < want.size(); ++i) {
    EXPECT_EQ(got[i].ts_ns, want[i].ts_ns) << i;
    EXPECT_EQ(got[i].wirelen, want[i].wirelen) << i;
    EXPECT_EQ(got[i].data, want[i].data) << i;
  }
}

}  // namespace

TEST(Pcap, WriterReadBackByTheCursor) {
  for (size_t chunk : {size_t{1}, size_t{100}, size_t{1} << 16}) {
    std::string bytes = write_pcap(kPkts, 101, chunk);
    EXPECT_EQ(bytes.size(), 24 + 4 * 16 + 60 + 100 + 0 + 9000u);
    pc::RecordCursor::Step last;
    uint32_t lt = 0;
    uint64_t end = 0;
    expect_same(read_all(bytes, &last, &end, &lt), kPkts);
    EXPECT_EQ(last, pc::RecordCursor::Step::kEnd);
    EXPECT_EQ(end, bytes.size());
    EXPECT_EQ(lt, 101u);
  }
}

TEST(Pcap, WriterCountsOtherLinkTypesAndWritesAnEmptyFile) {
  std::string out;
  pc::Writer w([&](const char* p, size_t n) { out.append(p, n); });
  const uint8_t d[4] = {1, 2, 3, 4};
  EXPECT_TRUE(w.write(5, 12, 4, 4, d));
  EXPECT_FALSE(w.write(6, 1, 4, 4, d));
  EXPECT_TRUE(w.write(7, 12, 4, 4, d));
  EXPECT_EQ(out.size(), 0u);  // buffered until the chunk fills or finish()
  w.finish();
  EXPECT_EQ(w.packets(), 2u);
  EXPECT_EQ(w.other_link(), 1u);
  EXPECT_EQ(w.linktype(), 12u);
  EXPECT_EQ(w.bytes(), out.size());
  EXPECT_EQ(out.size(), 24 + 2 * (16 + 4u));

  std::string empty;
  pc::Writer e([&](const char* p, size_t n) { empty.append(p, n); });
  e.finish();
  ASSERT_EQ(empty.size(), 24u);
  pc::FileHeader fh;
  EXPECT_EQ(empty, std::string(reinterpret_cast<const char*>(&fh), sizeof(fh)));
  auto f = pc::parse_file_header(reinterpret_cast<const uint8_t*>(empty.data()));
  ASSERT_TRUE(f);
  EXPECT_TRUE(f->nsec);
  EXPECT_FALSE(f->swap);
  EXPECT_EQ(f->linktype, 1u);
}

TEST(Pcap, LibpcapReadsTheWritersNanoseconds) {
  TempDir d;
  std::string path = (d.p / "w.pcap").string();
  std::string bytes = write_pcap(kPkts, 1);
  { std::ofstream(path, std::ios::binary) << bytes; }
  char err[PCAP_ERRBUF_SIZE];
  pcap_t* p = pcap_open_offline_with_tstamp_precision(path.c_str(), PCAP_TSTAMP_PRECISION_NANO, err);
  ASSERT_NE(p, nullptr) << err;
  EXPECT_EQ(pcap_datalink(p), 1);
  EXPECT_EQ(pcap_snapshot(p), static_cast<int>(pc::kSnaplen));
  pcap_pkthdr* h;
  const u_char* data;
  size_t i = 0;
  int rc;
  while ((rc = pcap_next_ex(p, &h, &data)) == 1) {
    ASSERT_LT(i, kPkts.size());
    const Pkt& want = kPkts[i++];
    EXPECT_EQ(static_cast<uint64_t>(h->ts.tv_sec) * 1000000000ull + static_cast<uint64_t>(h->ts.tv_usec),
              want.ts_ns);
    EXPECT_EQ(h->caplen, want.data.size());
    EXPECT_EQ(h->len, std::max<uint32_t>(want.wirelen, static_cast<uint32_t>(want.data.size())));
    EXPECT_EQ(std::string(reinterpret_cast<const char*>(data), h->caplen), want.data);
  }
  EXPECT_EQ(rc, PCAP_ERROR_BREAK);  // the end, not an error
  EXPECT_EQ(i, kPkts.size());
  pcap_close(p);
}

TEST(Pcap, CursorReadsTheOtherByteOrderInMicroseconds) {
  auto be = [](std::string& s, uint32_t v) {
    v = __builtin_bswap32(v);
    s.append(reinterpret_cast<const char*>(&v), 4);
  };
  std::string b;
  be(b, pc::kMagicUsec);
  b += std::string("\x00\x02\x00\x04", 4);  // version 2.4, big-endian
  be(b, 0);
  be(b, 0);
  be(b, 65535);
  be(b, 0x24000000u | 105);  // FCS present (bit 26) and its length (2 x 16 bits) above the link type
  be(b, 7);
  be(b, 999999);
  be(b, 3);
  be(b, 64);
  b += "xyz";
  pc::RecordCursor::Step last;
  uint32_t lt = 0;
  auto got = read_all(b, &last, nullptr, &lt);
  EXPECT_EQ(lt, 105u);
  EXPECT_EQ(last, pc::RecordCursor::Step::kEnd);
  expect_same(got, {{7999999000ull, 64, "xyz"}});

  std::string junk(24, 'j');
  EXPECT_FALSE(pc::parse_file_header(reinterpret_cast<const uint8_t*>(junk.data())));
}

TEST(Pcap, TruncatedLastRecordIsNotReturned) {
  std::string bytes = write_pcap(kPkts, 1);
  const uint64_t last_at = bytes.size() - 16 - 9000;
  std::vector<Pkt> head(kPkts.begin(), kPkts.end() - 1);
  // Cut in the last record's data, and in its header.
  for (size_t cut : {size_t{1}, size_t{8999}, size_t{9000}, size_t{9001}, size_t{9015}}) {
    std::string b = bytes.substr(0, bytes.size() - cut);
    pc::RecordCursor::Step last;
    uint64_t end = 0;
    expect_same(read_all(b, &last, &end), head);
    EXPECT_EQ(last, pc::RecordCursor::Step::kTruncated) << cut;
    EXPECT_EQ(end, last_at) << cut;
  }
  // The store's scan stops at the same place (and says where the valid part ends).
  TempDir d;
  std::string path = (d.p / "cut.pcap").string();
  { std::ofstream(path, std::ios::binary) << bytes.substr(0, bytes.size() - 100); }
  std::vector<uint64_t> ts;
  store::ScanResult r = store::scan_pcap(
      path, [&](uint64_t, uint64_t t, uint32_t, uint32_t, const uint8_t*) { ts.push_back(t); });
  EXPECT_TRUE(r.header_ok);
  EXPECT_EQ(r.packets, 3u);
  EXPECT_EQ(r.valid_end, last_at);
  EXPECT_EQ(ts, (std::vector<uint64_t>{kPkts[0].ts_ns, kPkts[1].ts_ns, kPkts[2].ts_ns}));
}

TEST(Pcap, CursorRefusesAnImplausibleRecord) {
  std::string bytes = write_pcap(kPkts, 1);
  auto f = pc::parse_file_header(reinterpret_cast<const uint8_t*>(bytes.data()));
  ASSERT_TRUE(f);
  pc::RecordCursor cur(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), *f, 24, 1000);
  pc::Record r;
  int n = 0;
  pc::RecordCursor::Step s;
  while ((s = cur.next(r)) == pc::RecordCursor::Step::kRecord) ++n;
  EXPECT_EQ(n, 3);
  EXPECT_EQ(s, pc::RecordCursor::Step::kTooLarge);
  EXPECT_EQ(cur.next(r), pc::RecordCursor::Step::kTooLarge);  // stays put
}
