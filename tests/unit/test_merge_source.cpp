#include <gtest/gtest.h>

#include <cstring>
#include <fstream>
#include <string>
#include <utility>
#include <vector>

#include "capture/merge_source.h"
#include "capture/source.h"
#include "temp_dir.h"

using namespace tmach;

namespace {

constexpr uint64_t kSec = 1000000000ull;

struct Rec {
  uint64_t ts_ns;
  uint8_t mark;  // the frame's first byte: which packet this is
};

// A classic pcap (microseconds) of 20-byte frames starting with their mark.
void write_pcap(const std::string& path, const std::vector<Rec>& recs, uint32_t linktype = 1,
                size_t cut_last = 0) {
  std::string out;
  auto u32 = [&](uint32_t v) { out.append(reinterpret_cast<const char*>(&v), 4); };
  auto u16 = [&](uint16_t v) { out.append(reinterpret_cast<const char*>(&v), 2); };
  u32(0xa1b2c3d4);
  u16(2), u16(4);
  u32(0), u32(0), u32(65535), u32(linktype);
  for (const Rec& r : recs) {
    u32(static_cast<uint32_t>(r.ts_ns / kSec));
    u32(static_cast<uint32_t>(r.ts_ns % kSec / 1000));
    u32(20), u32(20);
    std::string frame(20, '\0');
    frame[0] = static_cast<char>(r.mark);
    out += frame;
  }
  out.resize(out.size() - cut_last);
  std::ofstream(path, std::ios::binary) << out;
}

// A source that reuses one buffer for every batch, overwriting the bytes of its previous
// batch, as a source may (capture/source.h): a merged batch holding a packet of its previous
// batch after reading it again would show the wrong mark.
class ReusingSource : public capture::PacketSource {
 public:
  ReusingSource(std::vector<Rec> recs, size_t batch) : recs_(std::move(recs)), batch_(batch) {}
  size_t next_batch(capture::RawPacket* out, size_t max) override {
    bytes_.assign(batch_, 0xee);
    size_t n = 0;
    while (n < max && n < batch_ && pos_ < recs_.size()) {
      bytes_[n] = recs_[pos_].mark;
      out[n] = capture::RawPacket{recs_[pos_].ts_ns, 1, 1, 1, nullptr};
      ++n, ++pos_;
    }
    for (size_t i = 0; i < n; ++i) out[i].data = &bytes_[i];
    return n;
  }
  std::string name() const override { return "reusing"; }

 private:
  std::vector<Rec> recs_;
  size_t batch_;
  size_t pos_ = 0;
  std::vector<uint8_t> bytes_;
};

struct Got {
  uint64_t ts;
  uint8_t mark;
  uint32_t linktype;
};

// Drains `src` in batches of at most `max`, reading every packet's bytes before the next call.
std::vector<Got> drain(capture::PacketSource& src, size_t max = 256) {
  std::vector<Got> got;
  std::vector<capture::RawPacket> b(max);
  for (;;) {
    size_t n = src.next_batch(b.data(), b.size());
    if (n == 0) break;
    for (size_t i = 0; i < n; ++i) got.push_back(Got{b[i].ts_ns, b[i].data[0], b[i].linktype});
  }
  return got;
}

std::vector<uint8_t> marks(const std::vector<Got>& g) {
  std::vector<uint8_t> m;
  for (auto& x : g) m.push_back(x.mark);
  return m;
}

capture::MergeSource merge_files(const std::vector<std::string>& paths, size_t input_batch = 256) {
  std::vector<std::unique_ptr<capture::PacketSource>> in;
  for (auto& p : paths) in.push_back(capture::open_file_source(p));
  return capture::MergeSource(std::move(in), input_batch);
}

}  // namespace

TEST(MergeSource, InterleavedFilesComeOutInTimeOrder) {
  TempDir d;
  std::string a = (d.p / "a.pcap").string(), b = (d.p / "b.pcap").string();
  // b is the older file but starts later on the command line; its packets fall between a's.
  write_pcap(a, {{1 * kSec, 1}, {3 * kSec, 3}, {5 * kSec, 5}, {7 * kSec, 7}, {9 * kSec, 9}});
  write_pcap(b, {{2 * kSec, 2}, {4 * kSec, 4}, {6 * kSec, 6}});
  for (size_t input_batch : {1, 2, 3, 256})
    for (size_t max : {1, 2, 256}) {
      auto m = merge_files({b, a}, input_batch);
      auto got = drain(m, max);
      EXPECT_EQ(marks(got), (std::vector<uint8_t>{1, 2, 3, 4, 5, 6, 7, 9}))
          << "input batch " << input_batch << ", output batch " << max;
      for (size_t i = 1; i < got.size(); ++i) EXPECT_LE(got[i - 1].ts, got[i].ts);
    }
}

TEST(MergeSource, EqualTimestampsEarlierInputFirstAndFileOrderKept) {
  TempDir d;
  std::string a = (d.p / "a.pcap").string(), b = (d.p / "b.pcap").string();
  write_pcap(a, {{5 * kSec, 10}, {5 * kSec, 11}, {6 * kSec, 12}});
  write_pcap(b, {{5 * kSec, 20}, {5 * kSec, 21}, {6 * kSec, 22}});
  for (size_t input_batch : {1, 256}) {
    auto ab = merge_files({a, b}, input_batch);
    EXPECT_EQ(marks(drain(ab)), (std::vector<uint8_t>{10, 11, 20, 21, 12, 22}));
    auto ba = merge_files({b, a}, input_batch);
    EXPECT_EQ(marks(drain(ba)), (std::vector<uint8_t>{20, 21, 10, 11, 22, 12}));
  }
}

TEST(MergeSource, AFileGoingBackwardsKeepsItsOrder) {
  TempDir d;
  std::string a = (d.p / "a.pcap").string(), b = (d.p / "b.pcap").string();
  write_pcap(a, {{10 * kSec, 1}, {2 * kSec, 2}, {11 * kSec, 3}});
  write_pcap(b, {{5 * kSec, 4}, {12 * kSec, 5}});
  auto m = merge_files({a, b}, 1);
  // Merging compares the inputs' next packets: a's packet from 2 s waits behind its 10 s one.
  EXPECT_EQ(marks(drain(m)), (std::vector<uint8_t>{4, 1, 2, 3, 5}));
}

TEST(MergeSource, EmptyFileAndDifferentLinkTypes) {
  TempDir d;
  std::string a = (d.p / "a.pcap").string(), e = (d.p / "empty.pcap").string(),
              r = (d.p / "raw.pcap").string();
  write_pcap(a, {{1 * kSec, 1}, {3 * kSec, 3}}, 1);
  write_pcap(e, {}, 1);
  write_pcap(r, {{2 * kSec, 2}}, 101);
  auto m = merge_files({e, a, r});
  auto got = drain(m);
  ASSERT_EQ(marks(got), (std::vector<uint8_t>{1, 2, 3}));
  EXPECT_EQ(got[0].linktype, 1u);
  EXPECT_EQ(got[1].linktype, 101u);
  EXPECT_EQ(got[2].linktype, 1u);
  EXPECT_EQ(m.warning(), "");
}

TEST(MergeSource, TruncatedFileWarnsWithItsNameAndTheRestIsMerged) {
  TempDir d;
  std::string a = (d.p / "a.pcap").string(), t = (d.p / "cut.pcap").string();
  write_pcap(a, {{1 * kSec, 1}, {4 * kSec, 4}});
  write_pcap(t, {{2 * kSec, 2}, {3 * kSec, 3}, {5 * kSec, 5}}, 1, 7);  // the last record cut short
  auto m = merge_files({a, t}, 1);
  EXPECT_EQ(marks(drain(m)), (std::vector<uint8_t>{1, 2, 3, 4}));
  EXPECT_NE(m.warning().find(t), std::string::npos) << m.warning();
  EXPECT_NE(m.warning().find("truncated"), std::string::npos) << m.warning();
  EXPECT_EQ(m.inputs()[0]->warning(), "");
  EXPECT_NE(m.inputs()[1]->warning(), "");
}

TEST(MergeSource, BatchEndsBeforeAnInputMustBeReadAgain) {
  // Each input overwrites its previous batch's bytes when read again: every packet of a
  // merged batch must still show its own mark when the batch is handed out.
  for (size_t batch : {1, 2, 3}) {
    std::vector<std::unique_ptr<capture::PacketSource>> in;
    in.push_back(std::make_unique<ReusingSource>(
        std::vector<Rec>{{1, 1}, {2, 2}, {3, 3}, {7, 7}, {8, 8}, {9, 9}}, batch));
    in.push_back(std::make_unique<ReusingSource>(std::vector<Rec>{{4, 4}, {5, 5}, {6, 6}, {10, 10}}, batch));
    capture::MergeSource m(std::move(in), batch);
    EXPECT_EQ(marks(drain(m)), (std::vector<uint8_t>{1, 2, 3, 4, 5, 6, 7, 8, 9, 10})) << "batch " << batch;
  }
}

TEST(MergeSource, OneInputPassesThrough) {
  TempDir d;
  std::string a = (d.p / "a.pcap").string();
  write_pcap(a, {{3 * kSec, 3}, {1 * kSec, 1}, {2 * kSec, 2}});
  auto m = merge_files({a});
  EXPECT_EQ(m.name(), a);
  EXPECT_EQ(marks(drain(m, 2)), (std::vector<uint8_t>{3, 1, 2}));
}

// Each packet's input is told, and an input is finished once its end was read (before the
// others): what tm record's import log needs (per-input counts, inputs read whole).
TEST(MergeSource, TellsEachPacketsInputAndWhichInputsAreFinished) {
  TempDir d;
  std::string a = (d.p / "a.pcap").string(), b = (d.p / "b.pcap").string();
  write_pcap(a, {{1 * kSec, 1}, {2 * kSec, 2}});
  write_pcap(b, {{3 * kSec, 3}, {4 * kSec, 4}, {5 * kSec, 5}});
  for (size_t input_batch : {1, 256}) {
    auto m = merge_files({b, a}, input_batch);
    std::vector<capture::RawPacket> out(2);
    std::vector<uint32_t> from(2);
    std::vector<std::pair<uint8_t, uint32_t>> got;
    bool a_finished_early = false;
    for (;;) {
      size_t n = m.next_batch(out.data(), out.size(), from.data());
      for (size_t i = 0; i < n; ++i) got.emplace_back(out[i].data[0], from[i]);
      if (m.finished(1) && !m.finished(0)) a_finished_early = true;
      if (n == 0) break;
    }
    EXPECT_EQ(got, (std::vector<std::pair<uint8_t, uint32_t>>{{1, 1}, {2, 1}, {3, 0}, {4, 0}, {5, 0}}));
    EXPECT_TRUE(a_finished_early) << input_batch;
    EXPECT_TRUE(m.finished(0));
  }
  auto one = merge_files({a});
  std::vector<capture::RawPacket> out(8);
  std::vector<uint32_t> from(8, 7);
  EXPECT_EQ(one.next_batch(out.data(), out.size(), from.data()), 2u);
  EXPECT_EQ(from[0], 0u);
  EXPECT_EQ(from[1], 0u);
  EXPECT_FALSE(one.finished(0));
  EXPECT_EQ(one.next_batch(out.data(), out.size(), from.data()), 0u);
  EXPECT_TRUE(one.finished(0));
}
