#include <gtest/gtest.h>
#include <zstd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "flow/flow_file.h"
#include "flow/flow_query.h"
#include "flow/flow_store.h"
#include "store/catalog.h"
#include "store/layout.h"
#include "store/sidecar.h"
#include "temp_dir.h"
#include "util/crc32.h"

using namespace tmach;

namespace {

flow::FlowRecord record(uint64_t i) {
  flow::FlowRecord r{};
  r.id = i * 7919;
  r.first_ts = 1000 + i;
  r.last_ts = 2000 + i;
  uint8_t a[4] = {10, 0, static_cast<uint8_t>(i >> 8), static_cast<uint8_t>(i)};
  uint8_t b[4] = {192, 168, 1, static_cast<uint8_t>(i % 7)};
  r.orig = packet::IpAddr::v4(a);
  r.resp = packet::IpAddr::v4(b);
  r.orig_port = static_cast<uint16_t>(1024 + i % 5000);
  r.resp_port = i % 3 ? 443 : 53;
  r.proto = i % 3 ? 6 : 17;
  r.version = 4;
  r.pkts[0] = i;
  r.bytes[1] = 3 * i;
  return r;
}

// Written behind (blocks compressed on a thread of their own) or inline, a flow file holds the
// same records in the same order, and its sidecar is the same.
TEST(FlowFile, WriteBehindWritesTheSameFile) {
  TempDir d;
  const std::string inline_base = (d.p / "00000001-1000-lt0").string(),
                    behind_base = (d.p / "00000002-1000-lt0").string();
  const size_t n = 3 * 4096 + 123;  // several blocks and a partial one
  {
    flow::FlowFileWriter a(inline_base, 1, {"default"}), b(behind_base, 1, {"default"});
    b.write_behind();
    for (size_t i = 0; i < n; ++i) {
      a.add(record(i));
      b.add(record(i));
      if (i == 5000) {  // an explicit flush in the middle, as the writer makes every second
        a.flush_block();
        b.flush_block();
      }
    }
    a.seal();
    b.seal();
    EXPECT_EQ(a.file_bytes(), b.file_bytes());
  }
  flow::FlowFileContents x = flow::read_flow_file(inline_base + ".flows"),
                         y = flow::read_flow_file(behind_base + ".flows");
  ASSERT_EQ(x.records.size(), n);
  ASSERT_EQ(y.records.size(), n);
  EXPECT_TRUE(y.problem.empty()) << y.problem;
  for (size_t i = 0; i < n; ++i)
    ASSERT_EQ(std::memcmp(&x.records[i], &y.records[i], sizeof(flow::FlowRecord)), 0) << "record " << i;
  store::SidecarBody sx = store::read_sidecar_body(inline_base + ".idx"),
                     sy = store::read_sidecar_body(behind_base + ".idx");
  EXPECT_EQ(sx.offsets, sy.offsets);
  ASSERT_EQ(sx.index.addr.size(), sy.index.addr.size());
  for (const auto& [k, bm] : sx.index.addr) EXPECT_TRUE(bm == sy.index.addr.at(k));
}

// A flow file in format version `version` (the last byte of the magic) with `blocks` of
// records compressed as they are in memory: version 1 is how tm wrote flow files before
// their blocks were byte-transposed.
void write_rows_file(const std::string& path, uint8_t version,
                     const std::vector<std::vector<flow::FlowRecord>>& blocks) {
  std::ofstream out(path, std::ios::binary);
  const char magic[8] = {'T', 'M', 'F', 'L', 'O', 'W', 0, static_cast<char>(version)};
  const std::string names = std::string("default") + '\0';
  const uint32_t n = static_cast<uint32_t>(names.size());
  out.write(magic, 8);
  out.write(reinterpret_cast<const char*>(&n), 4);
  out.write(names.data(), n);
  for (const auto& b : blocks) {
    const size_t raw = b.size() * sizeof(flow::FlowRecord);
    std::vector<uint8_t> z(ZSTD_compressBound(raw));
    const size_t zn = ZSTD_compress(z.data(), z.size(), b.data(), raw, 1);
    ASSERT_FALSE(ZSTD_isError(zn));
    const uint32_t hdr[4] = {0x4b4f4c42, static_cast<uint32_t>(b.size()), static_cast<uint32_t>(zn),
                             util::crc32(z.data(), zn)};
    out.write(reinterpret_cast<const char*>(hdr), 16);
    out.write(reinterpret_cast<const char*>(z.data()), static_cast<std::streamsize>(zn));
  }
}

// Files of version 1 (records compressed as they are) are still read, record for record,
// and the same records written now (version 3: byte-transposed blocks, as version 2, and the
// class names' CRC) read back the same.
TEST(FlowFile, ReadsVersionOneFilesAndWritesVersionThree) {
  TempDir d;
  std::vector<std::vector<flow::FlowRecord>> blocks(2);
  for (size_t i = 0; i < 4096; ++i) blocks[0].push_back(record(i));
  for (size_t i = 4096; i < 4096 + 77; ++i) blocks[1].push_back(record(i));
  const std::string v1 = (d.p / "old.flows").string();
  write_rows_file(v1, 1, blocks);
  const std::string base = (d.p / "00000001-1000-lt0").string();
  {
    flow::FlowFileWriter w(base, 1, {"default"});
    for (auto& b : blocks)
      for (auto& r : b) w.add(r);
    w.seal();
  }
  flow::FlowFileContents old = flow::read_flow_file(v1), now = flow::read_flow_file(base + ".flows");
  EXPECT_TRUE(old.problem.empty()) << old.problem;
  EXPECT_TRUE(now.problem.empty()) << now.problem;
  EXPECT_EQ(old.classes, std::vector<std::string>{"default"});
  EXPECT_EQ(old.valid_end, old.file_size);
  ASSERT_EQ(old.records.size(), 4096u + 77);
  ASSERT_EQ(now.records.size(), 4096u + 77);
  for (size_t i = 0; i < old.records.size(); ++i) {
    const flow::FlowRecord want = record(i);
    ASSERT_EQ(std::memcmp(&old.records[i], &want, sizeof want), 0) << "record " << i;
    ASSERT_EQ(std::memcmp(&now.records[i], &want, sizeof want), 0) << "record " << i;
  }
  std::ifstream in(base + ".flows", std::ios::binary);
  char magic[8];
  in.read(magic, 8);
  EXPECT_EQ(magic[7], 3);
  // The blocks are not stored as version 1 would store them.
  EXPECT_NE(std::filesystem::file_size(base + ".flows"), std::filesystem::file_size(v1));
}

// Version 2 (byte-transposed blocks, no CRC of the class names: written until version 3) is still
// read: a version 3 file without the names' CRC, its version byte 2.
TEST(FlowFile, ReadsVersionTwoFiles) {
  TempDir d;
  const std::string base = (d.p / "00000001-1000-lt0").string();
  {
    flow::FlowFileWriter w(base, 1, {"default"});
    for (size_t i = 0; i < 5000; ++i) w.add(record(i));
    w.seal();
  }
  std::ifstream in(base + ".flows", std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const size_t names_end = 12 + std::string("default").size() + 1;
  bytes.erase(names_end, 4);
  bytes[7] = 2;
  const std::string v2 = (d.p / "v2.flows").string();
  std::ofstream(v2, std::ios::binary) << bytes;
  flow::FlowFileContents c = flow::read_flow_file(v2);
  EXPECT_TRUE(c.problem.empty()) << c.problem;
  EXPECT_TRUE(c.names_problem.empty()) << c.names_problem;
  EXPECT_EQ(c.classes, std::vector<std::string>{"default"});
  ASSERT_EQ(c.records.size(), 5000u);
  for (size_t i = 0; i < c.records.size(); ++i) {
    const flow::FlowRecord want = record(i);
    ASSERT_EQ(std::memcmp(&c.records[i], &want, sizeof want), 0) << "record " << i;
  }
}

// A version this tm does not know is refused with an error naming it, not read as garbage.
TEST(FlowFile, RefusesAnUnknownVersion) {
  TempDir d;
  const std::string v4 = (d.p / "new.flows").string();
  write_rows_file(v4, 4, {{record(1)}});
  try {
    flow::read_flow_file(v4);
    FAIL() << "read a version 4 file";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("version 4"), std::string::npos) << e.what();
  }
}

// A bit flipped in the class names (version 3 has their CRC) is said, and the records are read
// with their classes unknown (an empty list: shown as #N), not under another class's name.
TEST(FlowFile, DamagedClassNamesAreSaidAndNotTrusted) {
  TempDir d;
  const std::string base = (d.p / "00000001-1000-lt0").string();
  {
    flow::FlowFileWriter w(base, 1, {"default", "web"});
    for (size_t i = 0; i < 100; ++i) w.add(record(i));
    w.seal();
  }
  const std::string path = base + ".flows";
  {
    std::fstream io(path, std::ios::binary | std::ios::in | std::ios::out);
    io.seekp(12);  // "default"'s first byte
    io.put('e');
  }
  flow::FlowFileContents c = flow::read_flow_file(path);
  EXPECT_TRUE(c.classes.empty());
  EXPECT_NE(c.names_problem.find("class names are damaged"), std::string::npos) << c.names_problem;
  EXPECT_TRUE(c.problem.empty()) << c.problem;  // (no record lost)
  ASSERT_EQ(c.records.size(), 100u);
  EXPECT_EQ(c.valid_end, c.file_size);
  Roaring wanted;
  wanted.add(7);
  flow::FlowRecordsRead r = flow::read_flow_records(path, wanted);
  EXPECT_TRUE(r.classes.empty());
  EXPECT_NE(r.names_problem.find("class names are damaged"), std::string::npos) << r.names_problem;
  EXPECT_TRUE(r.problem.empty()) << r.problem;
  ASSERT_EQ(r.records.size(), 1u);
  const flow::FlowRecord want = record(7);
  EXPECT_EQ(std::memcmp(&r.records[0].second, &want, sizeof want), 0);
}

// read_flow_records() reads only the blocks that hold a wanted record: the records it returns
// are those read_flow_file() has at the same ordinals (blocks of fewer records mid-file too, as
// the writer's periodic flushes make them), a damaged block that holds none of them is not
// met (read_flow_file() stops there), a count damaged in a block it passes over is caught, and
// a wanted record past the file's end or in a damaged block is said.
TEST(FlowFile, ReadsOnlyTheBlocksOfTheWantedRecords) {
  TempDir d;
  const std::string base = (d.p / "00000001-1000-lt0").string();
  const size_t n = 3 * 4096 + 110;  // blocks of 100, 4096, 4096, 4096 and 14 records
  {
    flow::FlowFileWriter w(base, 1, {"default", "web"});
    for (size_t i = 0; i < n; ++i) {
      w.add(record(i));
      if (i == 99) w.flush_block();
    }
    w.seal();
  }
  const std::string path = base + ".flows";
  const flow::FlowFileContents all = flow::read_flow_file(path);
  ASSERT_EQ(all.records.size(), n);
  auto ords = [](std::vector<uint32_t> v) { return Roaring(v.size(), v.data()); };
  const std::vector<uint32_t> wanted = {0, 99, 100, 4195, 9000, 9001, 12387, 12388, 12397};
  flow::FlowRecordsRead got = flow::read_flow_records(path, Roaring(wanted.size(), wanted.data()));
  EXPECT_TRUE(got.problem.empty()) << got.problem;
  EXPECT_EQ(got.classes, (std::vector<std::string>{"default", "web"}));
  ASSERT_EQ(got.records.size(), wanted.size());
  for (size_t i = 0; i < wanted.size(); ++i) {
    EXPECT_EQ(got.records[i].first, wanted[i]);
    EXPECT_EQ(std::memcmp(&got.records[i].second, &all.records[wanted[i]], sizeof(flow::FlowRecord)), 0)
        << "record " << wanted[i];
  }
  EXPECT_TRUE(flow::read_flow_records(path, Roaring()).records.empty());

  // The blocks' offsets.
  std::vector<uint64_t> at;
  {
    std::ifstream in(path, std::ios::binary);
    for (uint64_t pos = 12 + 12 + 4;
         at.size() < 5;) {  // the magic, the names' size, "default\0web\0", their CRC
      at.push_back(pos);
      uint32_t hdr[4];
      in.seekg(static_cast<std::streamoff>(pos));
      in.read(reinterpret_cast<char*>(hdr), 16);
      pos += 16 + hdr[2];
    }
  }
  auto poke = [&](uint64_t off, const void* bytes, size_t len) {
    std::fstream io(path, std::ios::binary | std::ios::in | std::ios::out);
    io.seekp(static_cast<std::streamoff>(off));
    io.write(static_cast<const char*>(bytes), static_cast<std::streamsize>(len));
  };
  // The third block's compressed bytes damaged (its CRC then fails).
  poke(at[2] + 16 + 20, "\x55\x2a\x11", 3);
  EXPECT_EQ(flow::read_flow_file(path).records.size(), 4196u);  // stops at the damage (recovery)
  // A query reads past it: the block's header is sound, so the next one is found (one damaged
  // block hid every record after it).
  const flow::FlowFileContents past = flow::read_flow_file(path, true);
  EXPECT_EQ(past.records.size(), n - 4096);
  EXPECT_EQ(past.records[4196].id, record(4196 + 4096).id);
  EXPECT_NE(past.problem.find("checksum mismatch at offset " + std::to_string(at[2]) +
                              " (its 4096 records skipped)"),
            std::string::npos)
      << past.problem;
  got = flow::read_flow_records(path, ords({1, 9000, 12390}));
  EXPECT_TRUE(got.problem.empty()) << got.problem;
  ASSERT_EQ(got.records.size(), 3u);
  EXPECT_EQ(got.records[2].first, 12390u);
  EXPECT_EQ(got.records[2].second.id, record(12390).id);
  got = flow::read_flow_records(path, ords({1, 5000, 9000}));
  EXPECT_NE(got.problem.find("checksum mismatch at offset " + std::to_string(at[2]) +
                             " (its 4096 records skipped)"),
            std::string::npos)
      << got.problem;
  ASSERT_EQ(got.records.size(), 2u);  // the damaged block's record lost, not those after it
  EXPECT_EQ(got.records[1].first, 9000u);
  EXPECT_EQ(got.records[1].second.id, record(9000).id);
  got = flow::read_flow_records(path, ords({9000, static_cast<uint32_t>(n)}));
  EXPECT_NE(got.problem.find("before record " + std::to_string(n)), std::string::npos) << got.problem;
  EXPECT_EQ(got.records.size(), 1u);
  // Left without its sidecar (a crash), it is rebuilt past the damaged block: cut there, the
  // whole blocks after it were lost too. Its records are lost; the others keep their ordinals.
  {
    const auto size = std::filesystem::file_size(path);
    std::filesystem::remove(base + ".idx");
    std::string damage;
    EXPECT_EQ(flow::recover_flow_file(base, &damage), n - 4096);
    EXPECT_NE(damage.find("(its 4096 records skipped)"), std::string::npos) << damage;
    EXPECT_EQ(std::filesystem::file_size(path), size);
    got = flow::read_flow_records(path, ords({1, 5000, 9000, 12390}));
    ASSERT_EQ(got.records.size(), 3u) << got.problem;
    EXPECT_EQ(got.records[1].first, 9000u);
    EXPECT_EQ(got.records[1].second.id, record(9000).id);
    EXPECT_EQ(got.records[2].second.id, record(12390).id);
    // Its index names the records kept where they are.
    auto view = store::SidecarView::open(base + ".idx");
    EXPECT_EQ(view->meta().packets, n);
  }
  // The second block's count damaged (4096 -> 4095): the blocks after it would be read one
  // ordinal off.
  const uint32_t count = 4095;
  poke(at[1] + 4, &count, 4);
  got = flow::read_flow_records(path, ords({1, 12390}));
  EXPECT_NE(got.problem.find("count of records"), std::string::npos) << got.problem;
  EXPECT_EQ(got.records.size(), 1u);
  // Read whole (a query without the index, a rebuild) it ends there too: skipped with the count
  // it gives, every later record would be indexed at another ordinal than queries count.
  const flow::FlowFileContents cut = flow::read_flow_file(path, true);
  EXPECT_NE(cut.problem.find("count of records"), std::string::npos) << cut.problem;
  EXPECT_EQ(cut.records.size(), 100u);
  EXPECT_EQ(cut.valid_end, at[1]);
}

// Whether a flow's packets are still on disk, from the segments' time ranges: `no` wherever
// no segment that could hold one spans its time; else the class's oldest segment against the
// flow's first packet and its last stored one.
TEST(FlowFile, PacketsLeftAreNoWhereNoSegmentSpansTheFlow) {
  using P = flow::FlowRow::Packets;
  flow::SegmentsOnDisk disk;
  disk.add("default", 100, 200);  // an older capture recorded after a newer one (1000-2000),
  disk.add("default", 300, 400);  // whose segments were deleted
  disk.add("alert", 5000, 6000);
  disk.add("bulk", 7000, UINT64_MAX);  // being written
  disk.seal();
  auto flow = [](uint64_t first, uint64_t last) {
    flow::FlowRecord r{};
    r.first_ts = first;
    r.last_ts = last;
    r.stored = 3;
    r.end = static_cast<uint8_t>(flow::EndState::kFin);
    return r;
  };
  EXPECT_EQ(disk.packets_left(flow(1500, 1600), "default"), P::kNone);  // the estimate said yes
  EXPECT_EQ(disk.packets_left(flow(150, 160), "default"), P::kAll);
  EXPECT_EQ(disk.packets_left(flow(250, 260), "default"), P::kNone);  // between two segments
  EXPECT_EQ(disk.packets_left(flow(200, 200), "default"), P::kAll);   // on a segment's last packet
  EXPECT_EQ(disk.packets_left(flow(50, 100), "default"), P::kSome);   // on its first
  EXPECT_EQ(disk.packets_left(flow(50, 99), "default"), P::kNone);
  EXPECT_EQ(disk.packets_left(flow(5500, 5600), "default"), P::kNone);  // another class's time
  EXPECT_EQ(disk.packets_left(flow(9000, 9001), "bulk"), P::kAll);
  EXPECT_EQ(disk.packets_left(flow(150, 160), "gone"), P::kNone);
  auto nothing = flow(150, 160);
  nothing.stored = 0;
  EXPECT_EQ(disk.packets_left(nothing, "default"), P::kNone);
  // Cut at 40 after its first packet at 10: its stored packets end at 40, before the oldest.
  auto cut = flow(10, 150);
  cut.cutoff_ts = 40;
  EXPECT_EQ(disk.packets_left(cut, "default"), P::kNone);
  cut.flags = flow::kFlowControlAfterCut;  // its FIN kept after the cutoff, at 150
  EXPECT_EQ(disk.packets_left(cut, "default"), P::kSome);
  // Still open: its interim record's last packet is not its last.
  auto open = flow(380, 390);
  open.end = static_cast<uint8_t>(flow::EndState::kOpen);
  EXPECT_EQ(disk.packets_left(flow(4000, 4100), "alert"), P::kNone);
  open.first_ts = 4000;
  open.last_ts = 4100;
  EXPECT_EQ(disk.packets_left(open, "alert"), P::kSome);
  // Moved from another class while open: its first packets are there, so only `no` is certain.
  auto moved = flow(5500, 5600);
  moved.flags = flow::kFlowClassMoved;
  EXPECT_EQ(disk.packets_left(moved, "default"), P::kSome);
  EXPECT_EQ(disk.packets_left(moved, "gone"), P::kSome);
  moved.first_ts = 2000;
  moved.last_ts = 2100;
  EXPECT_EQ(disk.packets_left(moved, "alert"), P::kNone);
}

}  // namespace

// The flow writer indexes a record by flow::index_keys(r), built from its fields: the same
// keys, in the same order, as the general index_keys() gives the record's packet view (what
// it indexed before, and what `tm flows` filters evaluate).
TEST(FlowFile, RecordKeysAreThoseOfItsPacketView) {
  auto same = [](const store::IndexKeys& a, const store::IndexKeys& b) {
    if (a.n_v4 != b.n_v4 || a.n_v6 != b.n_v6 || a.n_scalars != b.n_scalars) return false;
    for (int i = 0; i < a.n_v4; ++i)
      if (a.v4[i] != b.v4[i]) return false;
    for (int i = 0; i < a.n_v6; ++i)
      if (a.v6[i] != b.v6[i]) return false;
    for (int i = 0; i < a.n_scalars; ++i)
      if (a.scalars[i] != b.scalars[i]) return false;
    return true;
  };
  uint8_t v6a[16] = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
  uint8_t v6b[16] = {0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x12, 0x34};
  uint8_t v4a[4] = {10, 1, 2, 3};
  const packet::IpAddr addrs[] = {packet::IpAddr::v4(v4a), packet::IpAddr::v6(v6a), packet::IpAddr::v6(v6b)};
  const uint8_t protos[] = {6, 17, 132, 1, 58, 47, 50, 0, 255};
  int cases = 0;
  for (const auto& o : addrs)
    for (const auto& r : addrs)
      for (uint8_t proto : protos) {
        flow::FlowRecord rec = record(static_cast<uint64_t>(cases));
        rec.orig = o;
        rec.resp = r;
        rec.version = o.is_v4() && r.is_v4() ? 4 : 6;
        rec.proto = proto;
        rec.orig_port = static_cast<uint16_t>(40000 + cases);
        rec.resp_port = 443;
        rec.tcp_flags[0] = 0x12;
        rec.tunnel = cases % 2 ? 7 : 0;  // (a flow's packet view has no tunnel layer)
        store::IndexKeys direct, general;
        flow::index_keys(rec, direct);
        store::index_keys(flow::as_packet(rec), general);
        EXPECT_TRUE(same(direct, general)) << "case " << cases << " proto " << int{proto};
        EXPECT_EQ(direct.n_scalars, proto == 6 || proto == 17 || proto == 132 ? 4 : 2);
        ++cases;
      }
}

// push() gives the producer's block back with room for a whole block, recycled or new, so
// the producer never grows one record by record; what it pushed is written in order.
TEST(FlowFile, PushGivesBackRoomForABlock) {
  TempDir d;
  flow::FlowOptions o;
  o.store = d.p.string();
  flow::FlowStoreWriter w(o, {"default"}, nullptr);
  std::vector<flow::FlowRecord> block;
  for (uint64_t round = 0; round < 3; ++round) {
    for (uint64_t i = 0; i < 10; ++i) block.push_back(record(round * 10 + i));
    w.push(block);
    EXPECT_TRUE(block.empty());
    EXPECT_GE(block.capacity(), flow::FlowStoreWriter::kBlockRecords) << "round " << round;
    if (round == 1) w.drain(0);  // spares come back from here on
  }
  w.finish();
  EXPECT_EQ(w.records_written(), 30u);
  auto files = flow::scan_flow_files(d.p.string());
  ASSERT_EQ(files.size(), 1u);
  auto c = flow::read_flow_file(files[0].base + ".flows");
  ASSERT_EQ(c.records.size(), 30u);
  for (uint64_t i = 0; i < 30; ++i) EXPECT_EQ(c.records[i].id, record(i).id);
}

// The base name of the first flow file of a store in `d` (its flows directory made).
std::string first_flow_base(const TempDir& d) {
  std::filesystem::create_directories(d.p / flow::kFlowDir);
  return (d.p / flow::kFlowDir / store::segment_base_name(store::SegmentName{1, record(0).first_ts, 0}))
      .string();
}

// A flow file a killed run left cut short before its header's end cannot be read or rebuilt:
// it is left as it is, and its number is not used again (a new file of the same name, the
// same input's first flow, could not be created: the run used to end in std::terminate).
TEST(FlowFile, AnUnreadableLeftoverKeepsItsNumber) {
  TempDir d;
  flow::FlowOptions o;
  o.store = d.p.string();
  const std::string left = first_flow_base(d);
  { std::ofstream(left + ".flows", std::ios::binary) << "TMFLOW"; }
  std::vector<std::string> problems;
  flow::FlowStoreWriter w(o, {"default"}, &problems);
  EXPECT_EQ(problems.size(), 1u);
  std::vector<flow::FlowRecord> block = {record(0), record(1)};
  w.push(block);
  EXPECT_NO_THROW(w.finish());
  EXPECT_EQ(w.records_written(), 2u);
  auto files = flow::scan_flow_files(d.p.string());
  ASSERT_EQ(files.size(), 2u);
  EXPECT_EQ(files[0].base, left);
  EXPECT_FALSE(files[0].sealed);
  EXPECT_EQ(files[1].meta.seq, 2u);
  EXPECT_EQ(flow::read_flow_file(files[1].base + ".flows").records.size(), 2u);
}

// An empty one (a writer that could write nothing, on a full disk) holds no record: removed,
// said once, not warned of at every start and flow query after.
TEST(FlowFile, AnEmptyLeftoverIsRemoved) {
  TempDir d;
  flow::FlowOptions o;
  o.store = d.p.string();
  const std::string left = first_flow_base(d);
  { std::ofstream(left + ".flows", std::ios::binary); }
  std::vector<std::string> problems;
  {
    flow::FlowStoreWriter w(o, {"default"}, &problems);
    ASSERT_EQ(problems.size(), 1u);
    EXPECT_EQ(problems[0], "flow file " + left + ".flows: empty, left by a failed write: removed");
    std::vector<flow::FlowRecord> block = {record(0)};
    w.push(block);
    w.finish();
  }
  auto files = flow::scan_flow_files(d.p.string());
  ASSERT_EQ(files.size(), 1u);
  EXPECT_TRUE(files[0].sealed);
  EXPECT_EQ(files[0].meta.seq, 2u);
  problems.clear();
  flow::FlowStoreWriter again(o, {"default"}, &problems);
  EXPECT_TRUE(problems.empty());
}

// The base name of the first flow file of a store in `d`, whose seal is made to fail: a directory
// in the way of its sidecar's temporary file (as a full disk would refuse it).
std::string block_first_seal(const TempDir& d) {
  const std::string first = first_flow_base(d);
  std::filesystem::create_directories(first + ".idx.tmp");
  return first;
}

// A flow file whose seal fails (its sidecar cannot be written: a directory is in the way of its
// temporary file, as a full disk would refuse it) is counted in files_unsealed and the error
// is the caller's, naming the file; its records stay in the .flows file, the next file is a
// new one, and the next start indexes the one left without a sidecar.
TEST(FlowFile, AFlowFileWhoseSealFailedIsCounted) {
  TempDir d;
  flow::FlowOptions o;
  o.store = d.p.string();
  const std::string first = block_first_seal(d);
  {
    flow::FlowStoreWriter w(o, {"default"}, nullptr);
    std::vector<flow::FlowRecord> block = {record(0), record(1)};
    w.push(block);
    w.drain(0);
    try {
      w.finish();
      ADD_FAILURE() << "the seal did not fail";
    } catch (const std::exception& e) {
      EXPECT_NE(std::string(e.what()).find(first + ".flows was not sealed"), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find(".idx.tmp"), std::string::npos) << e.what();
    }
    EXPECT_EQ(w.files_unsealed(), 1u);
    EXPECT_EQ(w.records_written(), 2u);
    EXPECT_FALSE(std::filesystem::exists(first + ".idx"));
    block = {record(2)};  // the next records go to a new file, which seals
    w.push(block);
    w.finish();
    EXPECT_EQ(w.files_unsealed(), 1u);
  }
  std::filesystem::remove(first + ".idx.tmp");
  std::vector<std::string> problems;
  flow::FlowStoreWriter again(o, {"default"}, &problems);
  EXPECT_EQ(problems, std::vector<std::string>{});
  auto files = flow::scan_flow_files(d.p.string());
  ASSERT_EQ(files.size(), 2u);
  EXPECT_EQ(files[0].base, first);
  EXPECT_TRUE(files[0].sealed);
  EXPECT_EQ(files[0].meta.packets, 2u);
  EXPECT_EQ(flow::read_flow_file(files[1].base + ".flows").records.size(), 1u);
}

// A seal that fails within a drain (the file reached file_size) while recording goes on: the
// records already written are not written again (the whole batch was swapped back into the
// queue and written a second time), and the rest follow in order.
TEST(FlowFile, ASealFailedWithinADrainWritesNoRecordTwice) {
  TempDir d;
  flow::FlowOptions o;
  o.store = d.p.string();
  o.file_size = 1;  // a seal after every record
  block_first_seal(d);
  {
    flow::FlowStoreWriter w(o, {"default"}, nullptr);
    std::vector<flow::FlowRecord> block = {record(0), record(1), record(2)};
    w.push(block);
    EXPECT_THROW(w.drain(0), std::exception);
    EXPECT_EQ(w.records_written(), 1u);
    w.drain(0);
    w.finish();
    EXPECT_EQ(w.records_written(), 3u);
    EXPECT_EQ(w.files_unsealed(), 1u);
  }
  std::vector<uint64_t> ids;
  for (const auto& f : flow::scan_flow_files(d.p.string()))
    for (const auto& r : flow::read_flow_file(f.base + ".flows").records) ids.push_back(r.id);
  EXPECT_EQ(ids, (std::vector<uint64_t>{record(0).id, record(1).id, record(2).id}));
}

// A flow store writer bounded as at a shutdown (FlowStoreWriter::bound), and a producer of
// blocks of one record each, counting its pushes.
struct Bounded {
  static constexpr size_t kMax = flow::FlowStoreWriter::kMaxPending;
  TempDir d;
  flow::FlowStoreWriter w{[this] {
                            flow::FlowOptions o;
                            o.store = d.p.string();
                            return o;
                          }(),
                          {"default"},
                          nullptr};
  std::atomic<size_t> pushed{0};
  Bounded() { w.bound(true); }
  void produce(size_t blocks, uint64_t first) {
    std::vector<flow::FlowRecord> block;
    for (size_t b = 0; b < blocks; ++b) {
      block.push_back(record(first + b));
      w.push(block);
      pushed.fetch_add(1);
    }
  }
  // Waits until kMax blocks are pushed, then a little more (a producer not held pushes on);
  // polls with a generous cap: under a sanitizer on a busy machine the thread may start late.
  void settle() {
    for (int i = 0; i < 10000 && pushed.load() < kMax; ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
};

// Bounded (the shutdown, drained by a thread of its own), a producer waits once kMaxPending
// blocks are pending, goes on when a drain takes them, and never waits once unbounded again
// (the draining thread's end); every record is written, in order.
TEST(FlowFile, BoundedPushWaitsForTheDrain) {
  Bounded b;
  constexpr size_t kMax = Bounded::kMax;
  std::thread t([&] { b.produce(kMax + 1, 0); });
  b.settle();
  EXPECT_EQ(b.pushed.load(), kMax);  // held (a broken bound lets it push the last one too)
  // Drains take them, and the producer goes on.
  size_t drained = 0;
  for (int i = 0; i < 10000 && b.pushed.load() < kMax + 1; ++i) {
    drained += b.w.drain(0);
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  t.join();
  drained += b.w.drain(0);
  EXPECT_EQ(drained, kMax + 1);
  EXPECT_EQ(b.pushed.load(), kMax + 1);
  // Unbounded: a producer that pushed kMax blocks more is not held (bound(false) also wakes one
  // already waiting: the same predicate).
  b.w.bound(false);
  b.produce(2 * kMax, kMax + 1);
  EXPECT_EQ(b.pushed.load(), 3 * kMax + 1);
  b.w.finish();
  EXPECT_EQ(b.w.records_written(), 3 * kMax + 1);
  auto files = flow::scan_flow_files(b.d.p.string());
  ASSERT_EQ(files.size(), 1u);
  auto c = flow::read_flow_file(files[0].base + ".flows");
  ASSERT_EQ(c.records.size(), 3 * kMax + 1);
  for (uint64_t i = 0; i < c.records.size(); ++i) EXPECT_EQ(c.records[i].id, record(i).id);
}

// bound(false) wakes a producer waiting on a full bound (the draining thread failed or ended:
// nothing will drain, and the producer must not wait for ever).
TEST(FlowFile, UnboundWakesAWaitingProducer) {
  Bounded b;
  constexpr size_t kMax = Bounded::kMax;
  std::atomic<bool> done{false};
  std::thread t([&] {
    b.produce(kMax + 1, 0);
    done = true;
  });
  b.settle();
  EXPECT_EQ(b.pushed.load(), kMax);  // waiting for room
  EXPECT_FALSE(done.load());
  b.w.bound(false);
  t.join();
  EXPECT_TRUE(done.load());
  b.w.finish();
  EXPECT_EQ(b.w.records_written(), kMax + 1);
}

// A flow file's index is bounded as well as its size: records whose addresses are all new (an
// address scan: one source, consecutive IPv6 destinations) compress to a few bytes each but
// cost a key each in the index, which reached 6 times the file's size (2 M such records: a
// 17 MB file, a 150 MiB index). Sealed at flow_index_cap(), every record is still written and
// read back; records of a few hosts reach the file size first, and are not sealed early.
TEST(FlowFile, AFileIsSealedWhenItsIndexReachesItsCap) {
  auto scan = [](uint64_t i) {
    flow::FlowRecord r = record(i);
    uint8_t src[16] = {0x20, 0x01, 0x0d, 0xb8}, dst[16] = {0x20, 0x01, 0x0d, 0xb8, 0, 1};
    src[15] = 1;
    for (int k = 0; k < 8; ++k) dst[15 - k] = static_cast<uint8_t>(i >> (8 * k));
    r.orig = packet::IpAddr::v6(src);
    r.resp = packet::IpAddr::v6(dst);
    r.version = 6;
    return r;
  };
  // Ordinary traffic: a few hundred hosts, ids that are hashes (as make_record's), counts of
  // bytes that vary. (ingest-small's flows: 31 bytes of file a record, an index of 0.9 times
  // the file's size.)
  auto hosts = [](uint64_t i) {
    flow::FlowRecord r = record(i % 300);
    uint64_t h = (i + 1) * 0x9e3779b97f4a7c15ull;
    h ^= h >> 31;
    r.id = h * 0xbf58476d1ce4e5b9ull;
    r.bytes[0] = h % 100000;
    return r;
  };
  for (bool scanning : {true, false}) {
    SCOPED_TRACE(scanning);
    TempDir d;
    flow::FlowOptions o;
    o.store = d.p.string();
    o.file_size = 1 << 20;
    const uint64_t cap = flow::flow_index_cap(o);
    ASSERT_EQ(cap, 8u << 20);
    const uint64_t n = 200000;
    uint64_t sealed_for_memory = 0, peak = 0;
    {
      flow::FlowStoreWriter w(o, {"default"}, nullptr);
      std::vector<flow::FlowRecord> block;
      for (uint64_t i = 0; i < n; ++i) {
        block.push_back(scanning ? scan(i) : hosts(i));
        if (block.size() == flow::FlowStoreWriter::kBlockRecords) {
          w.push(block);
          w.drain(0);
        }
      }
      w.push(block);
      w.finish();
      EXPECT_EQ(w.records_written(), n);
      sealed_for_memory = w.files_sealed_for_memory();
      peak = w.index_memory_peak();
      EXPECT_EQ(w.index_memory(), 0u);  // (the last file sealed)
    }
    EXPECT_GT(peak, 0u);
    EXPECT_LT(peak, 3 * cap);
    uint64_t read = 0;
    for (const auto& f : flow::scan_flow_files(d.p.string())) {
      EXPECT_TRUE(f.sealed) << f.base;
      auto c = flow::read_flow_file(f.base + ".flows");
      EXPECT_EQ(c.problem, "") << f.base;
      for (const auto& r : c.records) EXPECT_EQ(r.id, (scanning ? scan(read++) : hosts(read++)).id);
    }
    EXPECT_EQ(read, n);
    if (scanning)
      EXPECT_GT(sealed_for_memory, 0u) << "the index never reached its cap: the test proves nothing";
    else
      EXPECT_EQ(sealed_for_memory, 0u);
  }
}

// A flow whose newest record is an interim one (its recorder stopped without a final record)
// ends, for tm query --flow, at the next flow of its connection: of its 5-tuple in the same
// tunnel, in either direction. The same 5-tuple in another tunnel (another VXLAN VNI) is
// another connection: its start cut the flow's packets short.
TEST(FlowFile, AnOpenFlowEndsAtTheNextFlowOfItsConnectionNotOfItsTupleInAnotherTunnel) {
  TempDir d;
  { std::ofstream(d.p / store::kStoreMarker) << store::store_marker_text(); }
  std::filesystem::create_directories(d.p / flow::kFlowDir);
  auto rec = [](uint64_t id, uint64_t first, uint64_t last, uint32_t tunnel, bool reversed,
                flow::EndState end) {
    flow::FlowRecord r = record(1);
    r.id = id;
    r.first_ts = first;
    r.last_ts = last;
    r.tunnel = tunnel;
    r.end = static_cast<uint8_t>(end);
    if (reversed) {
      std::swap(r.orig, r.resp);
      std::swap(r.orig_port, r.resp_port);
    }
    return r;
  };
  {
    flow::FlowFileWriter w((d.p / flow::kFlowDir / "00000001-1000-lt0").string(), 1, {"default"});
    w.add(rec(11, 1000, 2000, 0xaaaa, false, flow::EndState::kOpen));     // the flow asked for
    w.add(rec(12, 3000, 3500, 0xbbbb, false, flow::EndState::kFin));      // its tuple, another tunnel
    w.add(rec(13, 5000, 6000, 0xaaaa, true, flow::EndState::kFin));       // its connection again
    w.add(rec(14, 2500, 2600, 0xaaaa, false, flow::EndState::kOpen));     // (14 and 15: another
    w.add(rec(15, 2700, 2800, 0xbbbb, false, flow::EndState::kTimeout));  // open one, no later)
    w.seal();
  }
  auto f = flow::flow_packets(d.p.string(), 11);
  ASSERT_TRUE(f);
  EXPECT_EQ(f->first_ns, 1000u);
  EXPECT_EQ(f->end_ns, 2500u);  // flow 14, of its connection, began then
  auto g = flow::flow_packets(d.p.string(), 14);
  ASSERT_TRUE(g);
  EXPECT_EQ(g->end_ns, 5000u) << "ended by the same tuple in another tunnel (flow 15 or 12)";
  auto h = flow::flow_packets(d.p.string(), 12);
  ASSERT_TRUE(h);
  EXPECT_EQ(h->end_ns, 3501u);  // a final record: just after its last packet
  EXPECT_TRUE(flow::same_connection(flow::connection_of(rec(1, 0, 0, 7, false, flow::EndState::kFin)),
                                    flow::connection_of(rec(2, 0, 0, 7, true, flow::EndState::kFin))));
  EXPECT_FALSE(flow::same_connection(flow::connection_of(rec(1, 0, 0, 7, false, flow::EndState::kFin)),
                                     flow::connection_of(rec(2, 0, 0, 8, false, flow::EndState::kFin))));
  // ESP: an SA pair is a connection (its name in the tunnel hash). A record from before
  // kFlowSaPartner is matched by addresses and protocol whatever its SA pair, so its flow ends
  // at the next ESP flow between its hosts, as its packets are matched.
  auto esp = [&](uint32_t tunnel, bool known) {
    flow::FlowRecord r = rec(1, 0, 0, tunnel, false, flow::EndState::kFin);
    r.proto = 50;
    r.orig_port = r.resp_port = 0;
    if (known) r.flags = flow::kFlowSaPartner | uint64_t{0x1234} << flow::kFlowSaPartnerShift;
    return flow::connection_of(r);
  };
  EXPECT_EQ(esp(7, true).sa_partner, 0x1234u);
  EXPECT_FALSE(flow::same_connection(esp(7, true), esp(8, true)));
  EXPECT_TRUE(flow::same_connection(esp(7, true), esp(7, true)));
  EXPECT_TRUE(flow::same_connection(esp(7, false), esp(8, false)));
  EXPECT_TRUE(flow::same_connection(esp(7, false), esp(8, true)));
  // An interim record written before the pair's second SA was seen: its partner is not known
  // yet (its packets may come); a final one without a partner is a one-way SA.
  flow::FlowRecord open = rec(1, 0, 0, 7, false, flow::EndState::kOpen);
  open.proto = 50;
  open.flags = flow::kFlowSaPartner;
  EXPECT_FALSE(flow::connection_of(open).sa_known);
  open.end = static_cast<uint8_t>(flow::EndState::kTimeout);
  EXPECT_TRUE(flow::connection_of(open).sa_known);
}
