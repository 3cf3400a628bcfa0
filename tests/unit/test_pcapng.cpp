// capture/pcapng.h and capture/stream_source.h: pcapng read by tm itself, damaged blocks
// skipped and reported with their offsets, files of which nothing can be read refused.
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "capture/pcapng.h"
#include "capture/source.h"
#include "capture/stream_source.h"
#include "temp_dir.h"

using namespace tmach;

namespace {

// Builds pcapng bytes block by block (little-endian unless `big`).
struct Ng {
  bool big = false;
  std::string out;
  void u16(std::string& b, uint16_t v) {
    if (big) v = __builtin_bswap16(v);
    b.append(reinterpret_cast<const char*>(&v), 2);
  }
  void u32(std::string& b, uint32_t v) {
    if (big) v = __builtin_bswap32(v);
    b.append(reinterpret_cast<const char*>(&v), 4);
  }
  void block(uint32_t type, std::string body) {
    while (body.size() % 4) body.push_back('\0');
    uint32_t len = static_cast<uint32_t>(body.size() + 12);
    u32(out, type);
    u32(out, len);
    out += body;
    u32(out, len);
  }
  void shb() {
    std::string b;
    u32(b, 0x1A2B3C4D);
    u16(b, 1);
    u16(b, 0);
    b.append(8, '\xff');  // section length: unknown
    block(0x0A0D0D0A, b);
  }
  void idb(uint16_t linktype, uint32_t snaplen, int tsresol = -1) {
    std::string b;
    u16(b, linktype);
    u16(b, 0);
    u32(b, snaplen);
    if (tsresol >= 0) {
      u16(b, 9);
      u16(b, 1);
      b.push_back(static_cast<char>(tsresol));
      b.append(3, '\0');
      u16(b, 0);
      u16(b, 0);
    }
    block(1, b);
  }
  void epb(uint32_t ifid, uint64_t units, const std::string& data, uint32_t wirelen = 0) {
    std::string b;
    u32(b, ifid);
    u32(b, static_cast<uint32_t>(units >> 32));
    u32(b, static_cast<uint32_t>(units));
    u32(b, static_cast<uint32_t>(data.size()));
    u32(b, wirelen ? wirelen : static_cast<uint32_t>(data.size()));
    b += data;
    block(6, b);
  }
};

struct Got {
  uint64_t ts_ns;
  uint32_t linktype, wirelen;
  std::string data;
};

std::vector<Got> read_all(const std::string& path, std::string* warning) {
  auto src = capture::open_file_source(path);
  std::vector<capture::RawPacket> batch(4);
  std::vector<Got> got;
  size_t n;
  while ((n = src->next_batch(batch.data(), batch.size())) > 0)
    for (size_t i = 0; i < n; ++i)
      got.push_back(Got{batch[i].ts_ns, batch[i].linktype, batch[i].wirelen,
                        std::string(reinterpret_cast<const char*>(batch[i].data), batch[i].caplen)});
  if (warning) *warning = src->warning();
  return got;
}

std::string write(const TempDir& d, const std::string& name, const std::string& bytes) {
  std::string path = (d.p / name).string();
  std::ofstream(path, std::ios::binary) << bytes;
  return path;
}

std::string frame(int i) { return std::string(60, static_cast<char>('a' + i)); }

}  // namespace

TEST(Pcapng, ReadsPacketsWithEachInterfacesLinkTypeAndResolution) {
  TempDir d;
  for (bool big : {false, true}) {
    Ng f;
    f.big = big;
    f.shb();
    f.idb(1, 65535);      // Ethernet, microseconds
    f.idb(113, 8192, 9);  // Linux SLL, nanoseconds, another snapshot length (libpcap refuses this)
    f.epb(0, 1700000000123456ull, frame(0), 1514);
    f.epb(1, 1700000000123456789ull, frame(1));
    std::string warning;
    auto got = read_all(write(d, big ? "big.pcapng" : "little.pcapng", f.out), &warning);
    ASSERT_EQ(got.size(), 2u);
    EXPECT_EQ(got[0].ts_ns, 1700000000123456000ull);
    EXPECT_EQ(got[0].linktype, 1u);
    EXPECT_EQ(got[0].wirelen, 1514u);
    EXPECT_EQ(got[0].data, frame(0));
    EXPECT_EQ(got[1].ts_ns, 1700000000123456789ull);
    EXPECT_EQ(got[1].linktype, 113u);
    EXPECT_EQ(warning, "");
  }
}

TEST(Pcapng, BadBlockBeforeTheFirstPacketIsSkippedAndNamedWithItsOffset) {
  TempDir d;
  Ng f;
  f.shb();
  f.idb(1, 65535);
  size_t bad_at = f.out.size();
  f.out += std::string("\x04\x00\x00\x00\x07\x00\x00\x00garbage!", 16);  // a block of impossible length 7
  for (int i = 0; i < 10; ++i) f.epb(0, 1700000000000000ull + i, frame(i));
  std::string warning;
  auto got = read_all(write(d, "bad.pcapng", f.out), &warning);
  ASSERT_EQ(got.size(), 10u);
  for (int i = 0; i < 10; ++i) EXPECT_EQ(got[i].data, frame(i));
  EXPECT_NE(warning.find("offset " + std::to_string(bad_at)), std::string::npos) << warning;
  EXPECT_NE(warning.find("1 unreadable part(s) skipped (16 bytes"), std::string::npos) << warning;
}

TEST(Pcapng, DamagedLengthsInTheMiddleAreSkippedToTheNextBlock) {
  TempDir d;
  Ng f;
  f.shb();
  f.idb(1, 65535);
  f.epb(0, 1, frame(0));
  size_t bad_at = f.out.size();
  f.epb(0, 2, frame(1));
  f.out[bad_at + 4] = 0x7f;  // its length no longer matches its trailer
  f.epb(0, 3, frame(2));
  f.epb(0, 4, frame(3));
  size_t cut_at = f.out.size();
  f.epb(0, 5, frame(4));
  f.out.resize(f.out.size() - 10);  // the last block cut short
  std::string warning;
  auto got = read_all(write(d, "mid.pcapng", f.out), &warning);
  ASSERT_EQ(got.size(), 3u);
  EXPECT_EQ(got[0].data, frame(0));
  EXPECT_EQ(got[1].data, frame(2));
  EXPECT_EQ(got[2].data, frame(3));
  EXPECT_NE(warning.find("offset " + std::to_string(bad_at)), std::string::npos) << warning;
  EXPECT_NE(warning.find("offset " + std::to_string(cut_at)), std::string::npos) << warning;
  EXPECT_NE(warning.find("2 unreadable part(s)"), std::string::npos) << warning;
  EXPECT_NE(warning.find("; 2 packet blocks)"), std::string::npos) << warning;  // (both were packets)
}

TEST(Pcapng, PacketsOfUndefinedInterfacesAreCountedAndAFileOfNothingElseRefused) {
  TempDir d;
  Ng f;
  f.shb();
  f.idb(1, 65535);
  f.epb(0, 1, frame(0));
  f.epb(3, 2, frame(1));  // no interface 3
  std::string warning;
  auto got = read_all(write(d, "some.pcapng", f.out), &warning);
  EXPECT_EQ(got.size(), 1u);
  EXPECT_NE(warning.find("interface 3"), std::string::npos) << warning;
  EXPECT_NE(warning.find("1 packet blocks"), std::string::npos) << warning;

  Ng g;
  g.shb();
  g.epb(0, 1, frame(0));  // no interface block at all
  g.epb(0, 2, frame(1));
  std::string path = write(d, "none.pcapng", g.out);
  try {
    capture::open_file_source(path);
    FAIL() << "a file of which no packet can be read is refused";
  } catch (const capture::SourceError& e) {
    EXPECT_NE(std::string(e.what()).find("no packet could be read"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("none.pcapng"), std::string::npos) << e.what();
  }
}

TEST(Pcapng, AnEmptyCaptureIsNoError) {
  TempDir d;
  Ng f;
  f.shb();
  f.idb(1, 65535);
  std::string warning;
  EXPECT_TRUE(read_all(write(d, "empty.pcapng", f.out), &warning).empty());
  EXPECT_EQ(warning, "");
}

TEST(Pcapng, CorpusFileWithInterfacesOfDifferentSnapshotLengthsIsRead) {
  // libpcap (tcpdump) refuses it; tshark reads 18 packets.
  std::string warning;
  auto got = read_all(std::string(TM_CORPUS_DIR) + "/pcapng/gap-data-missing.pcapng", &warning);
  EXPECT_EQ(got.size(), 18u);
  EXPECT_EQ(warning, "");
}

TEST(ClassicPcap, AFileWhoseFirstRecordIsDamagedIsRefused) {
  TempDir d;
  std::string hdr("\xd4\xc3\xb2\xa1\x02\x00\x04\x00\0\0\0\0\0\0\0\0\xff\xff\0\0\x01\0\0\0", 24);
  std::string rec("\0\0\0\0\0\0\0\0\x00\x10\0\0\x00\x10\0\0", 16);  // 4096 bytes claimed, 10 present
  std::string path = write(d, "cut.pcap", hdr + rec + std::string(10, 'x'));
  EXPECT_THROW(capture::open_file_source(path), capture::SourceError);
  EXPECT_NO_THROW(capture::open_file_source(write(d, "empty.pcap", hdr)));
}

// A pipe that stays open: what came is handed on after a short idle time, and stop() ends a
// wait for more at once (what tm record --read - needs for SIGTERM on an idle pipe).
TEST(StreamSource, IdlePipeHandsOnItsPacketsAndStopEndsTheWait) {
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  Ng f;
  f.shb();
  f.idb(1, 65535);
  for (int i = 0; i < 3; ++i) f.epb(0, 1700000000000000ull + i, frame(i));
  ASSERT_EQ(write(fds[1], f.out.data(), f.out.size()), static_cast<ssize_t>(f.out.size()));
  auto src = capture::open_stream_source(fds[0], "pipe");
  std::vector<capture::RawPacket> batch(256);
  auto t0 = std::chrono::steady_clock::now();
  EXPECT_EQ(src->next_batch(batch.data(), batch.size()), 3u);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::milliseconds(100));
  std::thread stopper([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    src->stop();
  });
  t0 = std::chrono::steady_clock::now();
  EXPECT_EQ(src->next_batch(batch.data(), batch.size()), 0u);  // blocked on the idle pipe until stop()
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::milliseconds(500));
  stopper.join();
  close(fds[1]);
}
