#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

#include "flow/flow_file.h"
#include "store/sidecar.h"
#include "temp_dir.h"

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

}  // namespace
