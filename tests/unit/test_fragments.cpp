// Later fragments as their datagram (packet/fragment_layers.h): inheritance of ports, SPI and
// inner layers from the first fragment; orphans; expiry; the index builder indexing them
// (also out of order); the query re-check (PacketFilter) matching them.
#include <gtest/gtest.h>
#include <pcap/pcap.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "corpus_packets.h"
#include "packet/decoder.h"
#include "packet/fragment_layers.h"
#include "query/packet_filter.h"
#include "query/parser.h"
#include "store/catalog.h"
#include "store/index.h"
#include "store/recovery.h"
#include "store/segment_writer.h"
#include "store/sidecar.h"

namespace {

using namespace tmach;
using packet::PacketInfo;
using Outcome = packet::FragmentLayers::Outcome;

using tmtest::Pkt;
using tmtest::read;

PacketInfo dec(const Pkt& p) {
  PacketInfo pi;
  packet::decode(p.linktype, p.data.data(), uint32_t(p.data.size()), pi);
  return pi;
}

// ipv4/fragmented-3.pcap: one TCP segment 210.54.213.247:1265 -> 131.243.1.10:21 in five
// fragments, in order (tcpdump -v -nr ipv4/fragmented-3.pcap: offsets 0, 1480, ... 5920).
TEST(FragmentLayers, LaterFragmentsInheritTheFirstOnesPorts) {
  auto pkts = read("ipv4/fragmented-3.pcap");
  ASSERT_EQ(pkts.size(), 5u);
  packet::FragmentLayers fl;
  PacketInfo first = dec(pkts[0]);
  EXPECT_EQ(fl.apply(first, 1), Outcome::kFirst);
  for (size_t i = 1; i < pkts.size(); ++i) {
    PacketInfo pi = dec(pkts[i]);
    ASSERT_FALSE(pi.ip[0].has_ports);
    ASSERT_EQ(fl.apply(pi, 1 + i), Outcome::kInherited);
    EXPECT_TRUE(pi.ip[0].has_ports);
    EXPECT_EQ(pi.ip[0].sport, 1265);
    EXPECT_EQ(pi.ip[0].dport, 21);
    EXPECT_FALSE(pi.ip[0].has_l4);  // no TCP header in this packet
    EXPECT_NE(pi.ip[0].frag_offset, 0);
  }
  // Unfragmented packets are left alone; a later fragment of another datagram is an orphan.
  PacketInfo plain = dec(read("ipv4/udp-packet.pcap")[0]);
  EXPECT_EQ(fl.apply(plain, 10), Outcome::kNone);
  PacketInfo other = dec(pkts[1]);
  other.ip[0].frag_id ^= 1;
  EXPECT_EQ(fl.apply(other, 10), Outcome::kOrphan);
  EXPECT_FALSE(other.ip[0].has_ports);
}

TEST(FragmentLayers, Expiry) {
  auto pkts = read("ipv4/fragmented-3.pcap");
  packet::FragmentLayers fl(16, 100);
  PacketInfo first = dec(pkts[0]), later = dec(pkts[1]);
  EXPECT_EQ(fl.apply(first, 1000), Outcome::kFirst);
  EXPECT_EQ(fl.apply(later, 1101), Outcome::kOrphan);
}

// Up to its capacity, every datagram begun is remembered, whatever its id (a direct-mapped
// table of 1024 slots lost ~40 of 300 outstanding datagrams to collisions); beyond it, the
// oldest first fragment is forgotten first.
TEST(FragmentLayers, RemembersEveryDatagramUpToItsCapacity) {
  auto pkts = read("ipv4/fragmented-3.pcap");
  for (size_t cap : {size_t{8}, size_t{4096}}) {
    packet::FragmentLayers fl(cap);
    const size_t n = cap + 1;
    for (size_t i = 0; i < n; ++i) {
      PacketInfo first = dec(pkts[0]);
      first.ip[0].frag_id = static_cast<uint32_t>(7 * i + 1);
      ASSERT_EQ(fl.apply(first, 1 + i), Outcome::kFirst);
    }
    for (size_t i = 0; i < n; ++i) {
      PacketInfo later = dec(pkts[1]);
      later.ip[0].frag_id = static_cast<uint32_t>(7 * i + 1);
      EXPECT_EQ(fl.apply(later, 100 + i), i == 0 ? Outcome::kOrphan : Outcome::kInherited) << cap << " " << i;
    }
    // A first fragment sent again is remembered once: it does not push another datagram out.
    PacketInfo again = dec(pkts[0]);
    again.ip[0].frag_id = 7 * 1 + 1;
    EXPECT_EQ(fl.apply(again, 200), Outcome::kFirst);
    PacketInfo later = dec(pkts[1]);
    later.ip[0].frag_id = 7 * 2 + 1;
    EXPECT_EQ(fl.apply(later, 201), Outcome::kInherited);
  }
}

// A tunnel fragmented outside: GTP-U datagrams whose outer IPv4 is fragmented; a later
// fragment gets the first one's inner layer (tcpdump -v: id 11505 offset 0 then 1480).
TEST(FragmentLayers, TunnelFragmentedOutsideGetsItsInnerLayers) {
  auto pkts = read("tunnels/gtp1_gn_normal_incl_fragmentation.pcap");
  packet::FragmentLayers fl;
  size_t inherited = 0;
  uint64_t t = 0;
  std::vector<PacketInfo> firsts;
  for (const auto& p : pkts) {
    PacketInfo pi = dec(p);
    const PacketInfo before = pi;
    Outcome o = fl.apply(pi, ++t);
    if (o == Outcome::kFirst) firsts.push_back(before);
    if (o != Outcome::kInherited) continue;
    ++inherited;
    ASSERT_EQ(before.ip_count, 1);
    ASSERT_GE(pi.ip_count, 2);
    // Its inner layer is the one of the first fragment of the same datagram.
    bool found = false;
    for (const auto& f : firsts)
      if (f.ip[0].frag_id == before.ip[0].frag_id && f.ip[0].src == before.ip[0].src && f.ip_count >= 2)
        found = found || (f.ip[1].src == pi.ip[1].src && f.ip[1].dst == pi.ip[1].dst);
    EXPECT_TRUE(found);
    EXPECT_EQ(pi.ip[1].tunnel, packet::kTunnelGtp);
  }
  EXPECT_GT(inherited, 0u);
}

// The index builder: a later fragment is in the port index; one that comes before its first
// in the segment is added when the first arrives; without the memory, as decoded.
TEST(FragmentLayers, IndexBuilderIndexesLaterFragmentsAlsoOutOfOrder) {
  auto pkts = read("ipv4/fragmented-3.pcap");
  const size_t order[] = {1, 2, 0, 3, 4};  // two later fragments before the first
  packet::FragmentLayers fl;
  store::IndexBuilder with, without;
  for (uint32_t ord = 0; ord < 5; ++ord) {
    PacketInfo pi = dec(pkts[order[ord]]);
    with.add_packet(ord, pi, &fl, 1000 + ord);
    without.add_packet(ord, pi);
  }
  store::SegmentIndex a = with.finish(), b = without.finish();
  ASSERT_TRUE(a.port.count(21));
  EXPECT_EQ(a.port.at(21).cardinality(), 5u);
  for (uint32_t ord = 0; ord < 5; ++ord) EXPECT_TRUE(a.port.at(21).contains(ord)) << ord;
  ASSERT_TRUE(b.port.count(21));
  EXPECT_EQ(b.port.at(21).cardinality(), 1u);
  EXPECT_TRUE(b.port.at(21).contains(2));
}

// The query re-check: with the memory, `port 21` matches every fragment; BPF-only filters
// keep tcpdump's semantics.
TEST(FragmentLayers, PacketFilterMatchesLaterFragments) {
  auto pkts = read("ipv4/fragmented-3.pcap");
  for (const char* text : {"port 21", "tcp port 21 and host 131.243.1.10", "not port 80"}) {
    SCOPED_TRACE(text);
    query::ParseResult pr = query::parse_expr(text);
    ASSERT_EQ(pr.kind, query::ParseResult::Kind::kIndexed);
    query::PacketFilter f(text, pr);
    packet::FragmentLayers fl;
    size_t n = 0;
    for (const auto& p : pkts) {
      Outcome o;
      n += f.matches(p.linktype, p.data.data(), uint32_t(p.data.size()), uint32_t(p.data.size()), fl, 1, o);
    }
    EXPECT_EQ(n, 5u);
  }
  query::ParseResult none = query::parse_expr("port 80");
  query::PacketFilter f80("port 80", none);
  packet::FragmentLayers fl;
  for (const auto& p : pkts) {
    Outcome o;
    EXPECT_FALSE(
        f80.matches(p.linktype, p.data.data(), uint32_t(p.data.size()), uint32_t(p.data.size()), fl, 1, o));
  }
  // BPF: `tcp dst port 21 or less 0` is not planned; libpcap sees one packet with ports.
  query::ParseResult bpf = query::parse_expr("tcp dst port 21 or less 0");
  ASSERT_EQ(bpf.kind, query::ParseResult::Kind::kBpfOnly);
  ASSERT_FALSE(bpf.split());
  query::PacketFilter fb("tcp dst port 21 or less 0", bpf);
  packet::FragmentLayers fl2;
  size_t n = 0;
  for (const auto& p : pkts) {
    Outcome o;
    n += fb.matches(p.linktype, p.data.data(), uint32_t(p.data.size()), uint32_t(p.data.size()), fl2, 1, o);
    EXPECT_EQ(o, Outcome::kNone);
  }
  EXPECT_EQ(n, 1u);
  // Split (`and greater 0` libpcap's): tm's `tcp dst port 21` joins the later fragments, as a
  // planned filter's does, and libpcap's `greater 0` takes them all.
  query::ParseResult split = query::parse_expr("tcp dst port 21 and greater 0");
  ASSERT_TRUE(split.split());
  query::PacketFilter fs("tcp dst port 21 and greater 0", split);
  packet::FragmentLayers fl3;
  n = 0;
  for (const auto& p : pkts) {
    Outcome o;
    n += fs.matches(p.linktype, p.data.data(), uint32_t(p.data.size()), uint32_t(p.data.size()), fl3, 1, o);
  }
  EXPECT_EQ(n, 5u);
}

// Both index paths that write sidecars: the segment writer (sealed) and crash recovery
// (rebuilt from the pcap alone) index all five fragments under port 21, out of order too.
TEST(FragmentLayers, SegmentWriterAndRecoveryIndexEveryFragment) {
  namespace fs = std::filesystem;
  auto pkts = read("ipv4/fragmented-3.pcap");
  char tmpl[] = "/tmp/tm-unit-XXXXXX";
  const fs::path dir = mkdtemp(tmpl);
  fs::create_directories(dir / "default");
  std::ofstream(dir / "STORE") << "tm store format 1\n";
  const size_t order[] = {1, 2, 0, 3, 4};
  auto write = [&](const std::string& base, uint64_t seq, bool seal) {
    store::SegmentWriter w(base, seq, 1, {});
    for (size_t k = 0; k < 5; ++k) {
      const auto& d = pkts[order[k]].data;
      w.append(1000 + k, uint32_t(d.size()), d.data(), uint32_t(d.size()));
    }
    if (seal)
      w.seal();
    else
      w.flush();  // no seal: as if the process died
  };
  const std::string sealed = (dir / "default" / "00000001-1000-lt1").string();
  const std::string crashed = (dir / "default" / "00000002-1000-lt1").string();
  write(sealed, 1, true);
  write(crashed, 2, false);
  store::Catalog cat = store::Catalog::scan(dir.string());
  for (auto& seg : cat.segments)
    if (seg.state == store::SegmentInfo::State::kOpen) store::recover_segment(seg);
  for (const std::string& base : {sealed, crashed}) {
    SCOPED_TRACE(base);
    store::SidecarBody b = store::read_sidecar_body(base + ".idx");
    ASSERT_TRUE(b.index.port.count(21));
    EXPECT_EQ(b.index.port.at(21).cardinality(), 5u);
  }
  fs::remove_all(dir);
}

}  // namespace
