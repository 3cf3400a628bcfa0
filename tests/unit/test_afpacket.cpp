// AF_PACKET TPACKET_V3 capture (src/capture/afpacket_source.cpp) on a veth pair in a network
// namespace of the test's own: frames sent on one end with a raw packet socket are read on the
// other. Needs root and `ip`; skipped otherwise. Each test runs in a forked child that leaves
// the test process's namespace alone.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <pcap/pcap.h>
#include <poll.h>
#include <sched.h>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <functional>
#include <map>
#include <set>
#include <sstream>
#include <vector>

#include "capture/afpacket_source.h"
#include "capture/fanout_program.h"
#include "capture/source.h"

namespace tmach::capture {
namespace {

using Bytes = std::vector<uint8_t>;
constexpr const char* kSend = "tmua";
constexpr const char* kCap = "tmub";
constexpr int kSkip = 77;

// Runs `body` in a forked child in a fresh network namespace holding the veth pair kSend-kCap,
// both up, without IPv6 (no router solicitations): the capture end sees only what is sent.
// Returns the child's exit status: 0 passed, kSkip could not set up, else failed.
int in_netns(const std::function<void()>& body) {
  if (geteuid() != 0) return kSkip;
  if (system("command -v ip >/dev/null 2>&1") != 0) return kSkip;
  fflush(stdout);
  pid_t pid = fork();
  if (pid < 0) return 1;
  if (pid == 0) {
    if (unshare(CLONE_NEWNET) != 0) _exit(kSkip);
    if (system("sysctl -q -w net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1 "
               ">/dev/null 2>&1; ip link add tmua type veth peer name tmub && ip link set tmua up && "
               "ip link set tmub up") != 0)
      _exit(kSkip);
    try {
      body();
    } catch (const std::exception& e) {
      ADD_FAILURE() << "exception: " << e.what();
    }
    fflush(stdout);
    _exit(::testing::Test::HasFailure() ? 1 : 0);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

#define RUN_IN_NETNS(...)                                                            \
  do {                                                                               \
    int rc_ = in_netns(__VA_ARGS__);                                                 \
    if (rc_ == kSkip) GTEST_SKIP() << "needs root, `ip` and network namespaces";     \
    EXPECT_EQ(rc_, 0) << "the test's child process failed (its messages are above)"; \
  } while (0)

class Sender {
 public:
  Sender() {
    fd_ = socket(AF_PACKET, SOCK_RAW, 0);
    EXPECT_GE(fd_, 0) << strerror(errno);
    struct sockaddr_ll sll;
    memset(&sll, 0, sizeof(sll));
    sll.sll_family = AF_PACKET;
    sll.sll_ifindex = static_cast<int>(if_nametoindex(kSend));
    EXPECT_EQ(bind(fd_, reinterpret_cast<struct sockaddr*>(&sll), sizeof(sll)), 0) << strerror(errno);
  }
  ~Sender() { close(fd_); }
  void send(const Bytes& f) { ASSERT_EQ(::send(fd_, f.data(), f.size(), 0), static_cast<ssize_t>(f.size())); }

 private:
  int fd_ = -1;
};

void put16(Bytes& b, uint16_t v) {
  b.push_back(static_cast<uint8_t>(v >> 8));
  b.push_back(static_cast<uint8_t>(v));
}
void put32(Bytes& b, uint32_t v) {
  put16(b, static_cast<uint16_t>(v >> 16));
  put16(b, static_cast<uint16_t>(v));
}

struct FrameSpec {
  std::vector<std::pair<uint16_t, uint16_t>> tags;  // (TPID, TCI), outermost first
  bool v6 = false;
  uint8_t proto = 17;  // UDP or TCP (6)
  uint32_t src = 0x0a000001, dst = 0x0a000002;
  uint16_t sport = 1000, dport = 2000;
  uint32_t seq = 0;  // in the payload: which frame this is
  size_t payload = 40;
};

// An Ethernet frame with our marker source MAC 02:74:6d:00:00:01.
Bytes frame(const FrameSpec& s) {
  Bytes f = {0x02, 0x74, 0x6d, 0, 0, 2, 0x02, 0x74, 0x6d, 0, 0, 1};
  for (auto [tpid, tci] : s.tags) {
    put16(f, tpid);
    put16(f, tci);
  }
  Bytes l4;
  put16(l4, s.sport);
  put16(l4, s.dport);
  if (s.proto == 6) {
    put32(l4, s.seq);
    put32(l4, 0);
    put16(l4, 0x5010);  // header length 20, ACK
    put16(l4, 65535);
    put32(l4, 0);
  } else {
    put16(l4, static_cast<uint16_t>(8 + s.payload + 4));
    put16(l4, 0);
  }
  put32(l4, s.seq);
  for (size_t i = 0; i < s.payload; ++i) l4.push_back(static_cast<uint8_t>(i));
  if (!s.v6) {
    put16(f, 0x0800);
    put16(f, 0x4500);
    put16(f, static_cast<uint16_t>(20 + l4.size()));
    put32(f, 0x00004000);  // id 0, DF
    f.push_back(64);
    f.push_back(s.proto);
    put16(f, 0);
    put32(f, s.src);
    put32(f, s.dst);
  } else {
    put16(f, 0x86dd);
    put32(f, 0x60000000);
    put16(f, static_cast<uint16_t>(l4.size()));
    f.push_back(s.proto);
    f.push_back(64);
    for (uint32_t a : {s.src, s.dst}) {
      put32(f, 0x20010db8);
      put32(f, 0);
      put32(f, 0);
      put32(f, a);
    }
  }
  f.insert(f.end(), l4.begin(), l4.end());
  return f;
}

struct Got {
  Bytes data;
  uint32_t wirelen, linktype;
  uint64_t ts_ns;
};

bool ours(const RawPacket& p) {
  return p.caplen >= 12 && p.data[6] == 0x02 && p.data[7] == 0x74 && p.data[8] == 0x6d;
}

// Reads until `want` of our frames came or a long idle spell (a guard against hanging, no timing).
std::vector<Got> read_frames(PacketSource& src, size_t want) {
  std::vector<Got> got;
  RawPacket batch[64];
  for (int idle = 0; got.size() < want && idle < 250;) {
    size_t n = src.next_batch(batch, 64);
    idle = n == 0 ? idle + 1 : 0;
    for (size_t i = 0; i < n; ++i)
      if (ours(batch[i]))
        got.push_back({Bytes(batch[i].data, batch[i].data + batch[i].caplen), batch[i].wirelen,
                       batch[i].linktype, batch[i].ts_ns});
  }
  return got;
}

LiveOptions options(int snaplen = 262144, uint64_t buffer = 4 << 20) {
  LiveOptions o;
  o.interface = kCap;
  o.method = LiveMethod::kAfPacket;
  o.snaplen = snaplen;
  o.buffer_bytes = buffer;
  return o;
}

uint64_t now_ns() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                   std::chrono::system_clock::now().time_since_epoch())
                                   .count());
}

TEST(AfPacket, FramesAsOnTheWireWithVlanTagsPutBack) {
  RUN_IN_NETNS([] {
    auto src = open_live_source(options());
    ASSERT_TRUE(src->is_live());
    std::vector<Bytes> sent;
    FrameSpec plain;
    sent.push_back(frame(plain));
    FrameSpec vlan;
    vlan.tags = {{0x8100, 0x602a}};  // priority 3, VLAN 42: the kernel takes it into tp_vlan_tci
    sent.push_back(frame(vlan));
    FrameSpec qinq;
    qinq.tags = {{0x88a8, 0x0064}, {0x8100, 0x0007}};  // 802.1ad outer tag (tp_vlan_tpid), inner in the frame
    sent.push_back(frame(qinq));
    FrameSpec prio;
    prio.tags = {{0x8100, 0xe000}};  // priority tag only: VLAN 0
    sent.push_back(frame(prio));
    FrameSpec big;
    big.payload = 1400;
    big.tags = {{0x8100, 5}};
    sent.push_back(frame(big));
    uint64_t before = now_ns();
    Sender tx;
    for (auto& f : sent) tx.send(f);
    auto got = read_frames(*src, sent.size());
    uint64_t after = now_ns();
    ASSERT_EQ(got.size(), sent.size());
    for (size_t i = 0; i < sent.size(); ++i) {
      EXPECT_EQ(got[i].data, sent[i]) << "frame " << i;
      EXPECT_EQ(got[i].wirelen, sent[i].size()) << "frame " << i;
      EXPECT_EQ(got[i].linktype, 1u);
      EXPECT_GE(got[i].ts_ns, before);
      EXPECT_LE(got[i].ts_ns, after);
    }
    auto st = src->stats();
    EXPECT_GE(st.kernel_received, sent.size());
    EXPECT_EQ(st.kernel_dropped, 0u);
  });
}

TEST(AfPacket, SnaplenCutsFramesAfterTheTagIsBack) {
  RUN_IN_NETNS([] {
    auto src = open_live_source(options(64));
    FrameSpec s;
    s.payload = 900;
    Bytes plain = frame(s);
    s.tags = {{0x8100, 9}};
    Bytes tagged = frame(s);
    Sender tx;
    tx.send(plain);
    tx.send(tagged);
    auto got = read_frames(*src, 2);
    ASSERT_EQ(got.size(), 2u);
    EXPECT_EQ(got[0].data, Bytes(plain.begin(), plain.begin() + 64));
    EXPECT_EQ(got[0].wirelen, plain.size());
    EXPECT_EQ(got[1].data, Bytes(tagged.begin(), tagged.begin() + 64));
    EXPECT_EQ(got[1].wirelen, tagged.size());
  });
}

TEST(AfPacket, RingFullDropsAreCountedAndAddUp) {
  RUN_IN_NETNS([] {
    // A ring of a few small blocks, not read while the frames arrive: the kernel drops.
    auto src = open_live_source(options(128, 64 << 10));
    constexpr size_t kSent = 3000;
    Sender tx;
    FrameSpec s;
    for (size_t i = 0; i < kSent; ++i) {
      s.seq = static_cast<uint32_t>(i);
      tx.send(frame(s));
    }
    auto first = src->stats();  // PACKET_STATISTICS resets the kernel's counters: they must add up here
    auto got = read_frames(*src, kSent - first.kernel_dropped);
    auto second = src->stats();
    EXPECT_GT(first.kernel_dropped, 0u);
    EXPECT_GT(first.ring_freezes, 0u);
    EXPECT_EQ(second.kernel_dropped, first.kernel_dropped);
    EXPECT_EQ(second.kernel_received, kSent);
    EXPECT_EQ(got.size() + second.kernel_dropped, kSent);
    // What came through came in order, each frame once (the sequence number follows the UDP header).
    auto seq = [](const Bytes& d) {
      uint32_t v;
      std::memcpy(&v, &d[14 + 20 + 8], 4);  // (unaligned in the frame)
      return ntohl(v);
    };
    for (size_t i = 1; i < got.size(); ++i) EXPECT_LT(seq(got[i - 1].data), seq(got[i].data));
  });
}

// The frame's (flow, sequence) from its addresses, ports and payload tag.
struct Key {
  uint32_t lo, hi;
  uint16_t plo, phi;
  bool v6;
  auto operator<=>(const Key&) const = default;
};

// Two sources on the test interface, members of fanout group `group`.
std::pair<std::unique_ptr<PacketSource>, std::unique_ptr<PacketSource>> fanout_pair(int group) {
  auto o = options();
  o.fanout_group = group;
  auto a = open_live_source(o);
  return {std::move(a), open_live_source(o)};
}

// Reads the two sockets of a fanout group in turn until `want` of our frames came or a long
// idle spell (a guard against hanging, no timing); `on` gets each of our frames and the socket
// (0 or 1) it came from. Returns how many came.
size_t read_fanout(PacketSource& a, PacketSource& b, size_t want,
                   const std::function<void(const RawPacket&, int which)>& on) {
  size_t total = 0;
  RawPacket batch[64];
  PacketSource* srcs[2] = {&a, &b};
  for (int idle = 0; total < want && idle < 250;) {
    size_t round = 0;
    for (int which = 0; which < 2; ++which) {
      size_t n = srcs[which]->next_batch(batch, 64);
      for (size_t i = 0; i < n; ++i) {
        if (!ours(batch[i])) continue;
        on(batch[i], which);
        ++total;
        ++round;
      }
    }
    idle = round == 0 ? idle + 1 : 0;
  }
  return total;
}

// The IPv4 frame `whole` (no tags) as its two fragments, cut after `at` bytes of IP payload (a
// multiple of 8).
std::pair<Bytes, Bytes> fragments_of(const Bytes& whole, size_t at) {
  Bytes f1(whole.begin(), whole.begin() + static_cast<long>(14 + 20 + at));
  Bytes f2(whole.begin(), whole.begin() + 14 + 20);
  f2.insert(f2.end(), whole.begin() + static_cast<long>(14 + 20 + at), whole.end());
  auto set_ip = [](Bytes& f, uint16_t frag) {
    uint16_t len = static_cast<uint16_t>(f.size() - 14);
    f[16] = static_cast<uint8_t>(len >> 8);
    f[17] = static_cast<uint8_t>(len);
    f[18] = 0;
    f[19] = 0;
    f[20] = static_cast<uint8_t>(frag >> 8);
    f[21] = static_cast<uint8_t>(frag);
  };
  set_ip(f1, 0x2000);  // more fragments, offset 0
  set_ip(f2, static_cast<uint16_t>(at / 8));
  return {f1, f2};
}

TEST(AfPacket, FanoutPutsBothDirectionsOfAConnectionOnOneSocket) {
  RUN_IN_NETNS([] {
    auto [a, b] = fanout_pair(4242);
    // 64 connections, IPv4 and IPv6, TCP and UDP, 3 frames each way.
    std::vector<std::pair<Key, Bytes>> sent;
    for (uint32_t c = 0; c < 64; ++c) {
      for (int dir = 0; dir < 2; ++dir)
        for (uint32_t k = 0; k < 3; ++k) {
          FrameSpec s;
          s.v6 = c % 2;
          s.proto = c % 4 < 2 ? 6 : 17;
          uint32_t h1 = 0x0a000000 + c * 7 + 1, h2 = 0xc0a80000 + c * 13 + 2;
          uint16_t p1 = static_cast<uint16_t>(30000 + c), p2 = static_cast<uint16_t>(c % 3 ? 443 : 53);
          s.src = dir ? h2 : h1;
          s.dst = dir ? h1 : h2;
          s.sport = dir ? p2 : p1;
          s.dport = dir ? p1 : p2;
          s.seq = static_cast<uint32_t>(sent.size());
          sent.push_back({Key{h1, h2, p1, p2, s.v6}, frame(s)});
        }
    }
    Sender tx;
    for (auto& [k, f] : sent) tx.send(f);
    auto text = [](const uint8_t* d, size_t n) { return std::string(reinterpret_cast<const char*>(d), n); };
    std::map<std::string, size_t> index;  // frame bytes -> position in `sent`
    for (size_t i = 0; i < sent.size(); ++i) index[text(sent[i].second.data(), sent[i].second.size())] = i;
    std::vector<int> seen(sent.size(), 0);
    std::map<Key, std::set<int>> sockets;
    read_fanout(*a, *b, sent.size(), [&](const RawPacket& p, int which) {
      auto it = index.find(text(p.data, p.caplen));
      ASSERT_NE(it, index.end()) << "a frame that was not sent";
      ++seen[it->second];
      sockets[sent[it->second].first].insert(which);
    });
    for (size_t i = 0; i < sent.size(); ++i) EXPECT_EQ(seen[i], 1) << "frame " << i;
    std::set<int> used;
    for (auto& [k, s] : sockets) {
      EXPECT_EQ(s.size(), 1u) << "a connection's frames on both sockets";
      used.insert(s.begin(), s.end());
    }
    EXPECT_EQ(used.size(), 2u) << "64 connections, all on one socket";
  });
}

// The fanout program (fanout_program.h), run by libpcap's interpreter as the kernel runs it, on
// data that starts where the kernel's does, with the values of its two ancillary loads (packet
// type, protocol) put in as constants. What it returns for the frame.
uint32_t run_fanout(const uint8_t* data, size_t n, uint32_t pkttype, uint32_t protocol) {
  std::vector<bpf_insn> prog;
  for (const auto& i : host_pair_fanout_program()) {
    bpf_insn j{i.code, i.jt, i.jf, i.k};
    if (i.code == (BPF_LD | BPF_W | BPF_ABS) && (i.k == kAncillaryPacketType || i.k == kAncillaryProtocol))
      j = BPF_STMT(BPF_LD | BPF_IMM, i.k == kAncillaryPacketType ? pkttype : protocol);
    prog.push_back(j);
  }
  return bpf_filter(prog.data(), data, static_cast<u_int>(n), static_cast<u_int>(n));
}
// A frame this host sent: the data starts at the Ethernet header.
uint32_t fanout_sent(const Bytes& f) { return run_fanout(f.data(), f.size(), kPacketOutgoing, 0); }
// A frame received: the kernel took the Ethernet header and the outer VLAN tag, if any, out of
// the data; the protocol is the type after them.
uint32_t fanout_received(const Bytes& f) {
  size_t at = 12;
  auto type = [&] { return static_cast<uint32_t>(f[at] << 8 | f[at + 1]); };
  if (type() == 0x8100 || type() == 0x88a8) at += 4;
  const uint32_t proto = type();
  return run_fanout(f.data() + at + 2, f.size() - at - 2, 0 /* PACKET_HOST */, proto);
}
// The same, both ways: they must agree.
uint32_t fanout_of(const Bytes& f) {
  const uint32_t sent = fanout_sent(f);
  EXPECT_EQ(fanout_received(f), sent) << "a frame received and the same frame sent";
  return sent;
}

// The IPv4 frame `f` (no tags) as an IP fragment: more fragments and/or an offset (8-byte units).
Bytes as_fragment(Bytes f, bool more, uint16_t offset) {
  uint16_t v = static_cast<uint16_t>((more ? 0x2000 : 0) | offset);
  f[20] = static_cast<uint8_t>(v >> 8);
  f[21] = static_cast<uint8_t>(v);
  return f;
}

// `f` with its EtherType replaced by `head` (tags, shim headers, and the type of what follows).
Bytes encapsulated(Bytes f, const Bytes& head) {
  f.erase(f.begin() + 12, f.begin() + 14);
  f.insert(f.begin() + 12, head.begin(), head.end());
  return f;
}

TEST(FanoutProgram, EveryPacketBetweenTwoHostsGetsOneSocket) {
  for (bool v6 : {false, true}) {
    for (uint32_t c = 0; c < 32; ++c) {
      SCOPED_TRACE(testing::Message() << (v6 ? "IPv6" : "IPv4") << " connection " << c);
      FrameSpec s;
      s.v6 = v6;
      s.proto = c % 2 ? 6 : 17;
      s.src = 0x0a000000 + c * 7 + 1;
      s.dst = 0xc0a80000 + c * 13 + 2;
      s.sport = static_cast<uint16_t>(30000 + c);
      s.dport = 443;
      const Bytes there = frame(s);
      const uint32_t want = fanout_of(there);
      EXPECT_NE(want, 0u) << "the first socket, as for what the program does not read";
      std::swap(s.src, s.dst);
      std::swap(s.sport, s.dport);
      EXPECT_EQ(fanout_of(frame(s)), want) << "the other direction";
      s.sport = 53;  // another connection of the same hosts
      EXPECT_EQ(fanout_of(frame(s)), want) << "another connection of the two hosts";
      const Bytes ip(there.begin() + 14, there.end());
      const uint16_t type = v6 ? 0x86dd : 0x0800;
      auto be16 = [](uint16_t v) { return Bytes{static_cast<uint8_t>(v >> 8), static_cast<uint8_t>(v)}; };
      auto cat = [](std::initializer_list<Bytes> parts) {
        Bytes o;
        for (const auto& p : parts) o.insert(o.end(), p.begin(), p.end());
        return o;
      };
      EXPECT_EQ(fanout_of(encapsulated(there, cat({be16(0x8100), be16(5), be16(type)}))), want) << "VLAN";
      EXPECT_EQ(
          fanout_of(encapsulated(there, cat({be16(0x88a8), be16(5), be16(0x8100), be16(6), be16(type)}))),
          want)
          << "QinQ";
      EXPECT_EQ(
          fanout_of(encapsulated(there, cat({be16(0x8864), Bytes{0x11, 0, 0, 1},
                                             be16(uint16_t(ip.size() + 2)), be16(v6 ? 0x0057 : 0x0021)}))),
          want)
          << "PPPoE";
      EXPECT_EQ(
          fanout_of(encapsulated(there, cat({be16(0x8847), Bytes{0, 0x10, 0, 64}, Bytes{0, 0x20, 1, 64}}))),
          want)
          << "two MPLS labels";
      if (!v6) {
        EXPECT_EQ(fanout_of(as_fragment(there, true, 0)), want) << "a first fragment";
        EXPECT_EQ(fanout_of(as_fragment(there, false, 185)), want) << "a later fragment";
      }
    }
  }
}

TEST(FanoutProgram, HostPairsAreSpreadAndTheRestGoesToTheFirstSocket) {
  // Peers that differ in one octet only (10.<site>.0.5 and one server), IPv4 and IPv6, over 2, 3
  // and 4 sockets: each socket gets a fair share (the low bits of a product depend on its
  // factor's low bits only: a hash mixed without folding the high half in put all on one).
  for (bool v6 : {false, true})
    for (int octet = 0; octet < 4; ++octet)
      for (uint32_t members : {2u, 3u, 4u}) {
        std::map<uint32_t, int> on;
        for (uint32_t c = 0; c < 256; ++c) {
          FrameSpec s;
          s.v6 = v6;
          s.src = 0x0a000005 | c << (8 * octet);
          s.dst = 0xc0a80101;
          on[fanout_of(frame(s)) % members]++;
        }
        SCOPED_TRACE(testing::Message()
                     << (v6 ? "IPv6" : "IPv4") << ", octet " << octet << ", " << members << " sockets");
        EXPECT_EQ(on.size(), members);
        for (auto [m, n] : on) EXPECT_GT(n, 256 / static_cast<int>(members) / 2) << "socket " << m;
      }
  Bytes arp = {0x02, 0x74, 0x6d, 0, 0, 2, 0x02, 0x74, 0x6d, 0, 0, 1, 0x08, 0x06};
  arp.resize(60);
  EXPECT_EQ(fanout_of(arp), 0u);
  Bytes cut = frame(FrameSpec{});
  cut.resize(14 + 14);  // before the addresses
  EXPECT_EQ(fanout_of(cut), 0u);
  Bytes mpls_deep = encapsulated(frame(FrameSpec{}),
                                 {0x88, 0x47, 0, 0, 0, 64, 0, 0, 0, 64, 0,    0,
                                  0,    64,   0, 0, 0, 64, 0, 0, 0, 64, 0x08, 0x00});  // 5 labels, no bottom
  EXPECT_EQ(fanout_of(mpls_deep), 0u);
}

// No PACKET_FANOUT_FLAG_DEFRAG: with it, the socket got one reassembled datagram instead of the
// two fragments sent.
TEST(AfPacket, FanoutKeepsIpv4FragmentsAsOnTheWireOnOneSocket) {
  RUN_IN_NETNS([] {
    auto [a, b] = fanout_pair(77);
    FrameSpec s;
    s.payload = 1000;
    auto [f1, f2] = fragments_of(frame(s), 512);
    Sender tx;
    tx.send(f1);
    tx.send(f2);
    std::vector<Bytes> got;
    std::set<int> sockets;
    read_fanout(*a, *b, 2, [&](const RawPacket& p, int which) {
      got.emplace_back(p.data, p.data + p.caplen);
      sockets.insert(which);
    });
    ASSERT_EQ(got.size(), 2u);
    EXPECT_EQ(got[0], f1);
    EXPECT_EQ(got[1], f2);
    EXPECT_EQ(sockets.size(), 1u) << "the fragments of one datagram on both sockets";
  });
}

// The kernel's flow hash covers an unfragmented packet's ports but not a fragment's: a UDP
// connection whose datagrams are sometimes fragmented was split between two sockets (two capture
// threads, two connection entries, the cutoff counted twice). The fanout program hashes the
// addresses only: each connection's frames, fragments or not, on one socket.
TEST(AfPacket, FanoutKeepsAConnectionsFragmentsWithItsOtherPackets) {
  RUN_IN_NETNS([] {
    auto [a, b] = fanout_pair(78);
    std::map<std::string, uint32_t> conn_of;  // frame bytes -> connection
    Sender tx;
    for (uint32_t c = 0; c < 16; ++c) {
      FrameSpec s;
      s.src = 0x0a000000 + c * 7 + 1;
      s.dst = 0xc0a80000 + c * 13 + 2;
      s.sport = static_cast<uint16_t>(30000 + c);
      s.seq = c;
      Bytes small = frame(s);
      s.payload = 1000;
      auto [f1, f2] = fragments_of(frame(s), 512);
      for (const Bytes* f : {&small, &f1, &f2}) {
        conn_of[std::string(f->begin(), f->end())] = c;
        tx.send(*f);
      }
    }
    std::map<uint32_t, std::set<int>> sockets;
    size_t got = read_fanout(*a, *b, conn_of.size(), [&](const RawPacket& p, int which) {
      auto it = conn_of.find(std::string(p.data, p.data + p.caplen));
      ASSERT_NE(it, conn_of.end()) << "a frame that was not sent";
      sockets[it->second].insert(which);
    });
    ASSERT_EQ(got, conn_of.size());
    std::set<int> used;
    for (auto& [c, on] : sockets) {
      EXPECT_EQ(on.size(), 1u) << "connection " << c
                               << ": its fragments and its other packet on both sockets";
      used.insert(on.begin(), on.end());
    }
    EXPECT_EQ(used.size(), 2u) << "16 connections of 16 host pairs, all on one socket";
  });
}

// A kernel before 4.3, as join_fanout sees it (set_fanout_setsockopt_for_test): no CBPF fanout
// mode (EINVAL) and no PACKET_FANOUT_DATA (ENOPROTOOPT); the rest goes to the real kernel.
int kernel_without_cbpf(int fd, int level, int name, const void* value, socklen_t len) {
  if (level == SOL_PACKET && name == PACKET_FANOUT &&
      ((*static_cast<const int*>(value) >> 16) & 0xff) == PACKET_FANOUT_CBPF) {
    errno = EINVAL;
    return -1;
  }
  if (level == SOL_PACKET && name == PACKET_FANOUT_DATA) {
    errno = ENOPROTOOPT;
    return -1;
  }
  return setsockopt(fd, level, name, value, len);
}

// Refuses a CBPF join for another reason than an old kernel.
int cbpf_join_refused(int fd, int level, int name, const void* value, socklen_t len) {
  if (level == SOL_PACKET && name == PACKET_FANOUT &&
      ((*static_cast<const int*>(value) >> 16) & 0xff) == PACKET_FANOUT_CBPF) {
    errno = ENOMEM;
    return -1;
  }
  return setsockopt(fd, level, name, value, len);
}

// A packet socket bound to the capture end (what join_fanout is given).
int bound_packet_socket() {
  int fd = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, htons(ETH_P_ALL));
  EXPECT_GE(fd, 0) << strerror(errno);
  struct sockaddr_ll sll;
  memset(&sll, 0, sizeof(sll));
  sll.sll_family = AF_PACKET;
  sll.sll_protocol = htons(ETH_P_ALL);
  sll.sll_ifindex = static_cast<int>(if_nametoindex(kCap));
  EXPECT_EQ(bind(fd, reinterpret_cast<struct sockaddr*>(&sll), sizeof(sll)), 0) << strerror(errno);
  return fd;
}

// The mode of the fanout group `fd` is in (PACKET_FANOUT_HASH, _CBPF, ...).
int fanout_mode(int fd) {
  int v = 0;
  socklen_t len = sizeof(v);
  EXPECT_EQ(getsockopt(fd, SOL_PACKET, PACKET_FANOUT, &v, &len), 0) << strerror(errno);
  return (v >> 16) & 0xff;
}

// std::string of what `body` logged.
std::string logged(const std::function<void()>& body) {
  std::ostringstream log;
  auto before = spdlog::default_logger();
  spdlog::set_default_logger(
      std::make_shared<spdlog::logger>("test", std::make_shared<spdlog::sinks::ostream_sink_mt>(log)));
  body();
  spdlog::set_default_logger(before);
  return log.str();
}

// Before Linux 4.3 joining in CBPF mode fails with EINVAL: the group is made with the kernel's
// flow hash instead, every member alike, with one warning that says what that loses. Any
// other refusal stays an error, and so does EINVAL from a kernel that has CBPF (there it means
// the group exists in another mode).
TEST(AfPacket, FanoutFallsBackToTheFlowHashOnAKernelWithoutCbpf) {
  RUN_IN_NETNS([] {
    const int a = bound_packet_socket(), b = bound_packet_socket();
    int group = 0;
    set_fanout_setsockopt_for_test(kernel_without_cbpf);
    const std::string log = logged([&] {
      group = join_fanout(a, kCap, kNewFanoutGroup);
      EXPECT_EQ(join_fanout(b, kCap, kFanoutId | group), group);
    });
    set_fanout_setsockopt_for_test(nullptr);
    EXPECT_EQ(fanout_mode(a), PACKET_FANOUT_HASH);
    EXPECT_EQ(fanout_mode(b), PACKET_FANOUT_HASH);
    const std::string warning = "interface tmub: this kernel has no PACKET_FANOUT_CBPF";
    ASSERT_NE(log.find(warning), std::string::npos) << log;
    EXPECT_NE(log.find("fragments of a connection may reach another thread"), std::string::npos) << log;
    EXPECT_EQ(log.find(warning, log.find(warning) + 1), std::string::npos) << "warned twice: " << log;

    // This kernel has CBPF: its EINVAL for a group that exists in hash mode is an error.
    const int c = bound_packet_socket();
    try {
      join_fanout(c, kCap, kFanoutId | group);
      ADD_FAILURE() << "joined a hash group in cbpf mode";
    } catch (const SourceError& e) {
      EXPECT_NE(std::string(e.what()).find("EINVAL"), std::string::npos) << e.what();
    }
    set_fanout_setsockopt_for_test(cbpf_join_refused);
    try {
      join_fanout(c, kCap, kNewFanoutGroup);
      ADD_FAILURE() << "fell back on ENOMEM";
    } catch (const SourceError& e) {
      EXPECT_NE(std::string(e.what()).find("setsockopt(PACKET_FANOUT, new group, cbpf): "), std::string::npos)
          << e.what();
      EXPECT_NE(std::string(e.what()).find("ENOMEM"), std::string::npos) << e.what();
    }
    set_fanout_setsockopt_for_test(nullptr);
    EXPECT_EQ(fanout_mode(c), 0) << "in a group after refusals";
    close(a);
    close(b);
    close(c);
  });
}

// The capture socket's wait (wait_capture_socket) on a UDP socket with IP_RECVERR (no root
// needed): an ICMP port unreachable for what it sent sets the socket's error and queues the ICMP
// error in its error queue. The error is fatal, as on a capture socket; once SO_ERROR has read
// it, poll() still reports POLLERR (for the queue) at once, with no error: the wait must neither
// return at once (the capture thread, idle, would call it again and again at full CPU) nor leave
// the queue as it is.
namespace {

// A UDP socket (IP_RECVERR) whose datagram to a closed loopback port came back as an ICMP
// error: SO_ERROR set (ECONNREFUSED) and the error queued; poll() reports POLLERR.
int socket_with_an_error() {
  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  EXPECT_GE(fd, 0) << strerror(errno);
  int on = 1;
  EXPECT_EQ(setsockopt(fd, IPPROTO_IP, IP_RECVERR, &on, sizeof(on)), 0) << strerror(errno);
  // A loopback port nobody listens on: one just bound, then closed.
  struct sockaddr_in to;
  memset(&to, 0, sizeof(to));
  to.sin_family = AF_INET;
  to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  int probe = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  EXPECT_EQ(bind(probe, reinterpret_cast<struct sockaddr*>(&to), sizeof(to)), 0) << strerror(errno);
  socklen_t tolen = sizeof(to);
  EXPECT_EQ(getsockname(probe, reinterpret_cast<struct sockaddr*>(&to), &tolen), 0);
  close(probe);
  EXPECT_EQ(connect(fd, reinterpret_cast<struct sockaddr*>(&to), sizeof(to)), 0) << strerror(errno);
  EXPECT_EQ(send(fd, "x", 1, 0), 1) << strerror(errno);
  struct pollfd pfd {
    fd, POLLIN, 0
  };
  EXPECT_EQ(poll(&pfd, 1, 5000), 1) << "no ICMP error came back";
  EXPECT_TRUE(pfd.revents & POLLERR);
  return fd;
}

}  // namespace

TEST(AfPacket, PollerrWithNoErrorPendingIsNoBusyLoop) {
  const int fd = socket_with_an_error();
  ASSERT_GE(fd, 0);
  struct pollfd pfd {
    fd, POLLIN, 0
  };
  try {
    wait_capture_socket(fd, 20, "tm-test0");
    ADD_FAILURE() << "a socket error (ECONNREFUSED) was not fatal";
  } catch (const SourceError& e) {
    EXPECT_NE(std::string(e.what()).find("interface tm-test0: capture socket error: "), std::string::npos)
        << e.what();
    EXPECT_NE(std::string(e.what()).find("ECONNREFUSED"), std::string::npos) << e.what();
  }
  pfd.revents = 0;
  ASSERT_EQ(poll(&pfd, 1, 0), 1);
  ASSERT_TRUE(pfd.revents & POLLERR) << "the error queue is empty: nothing left to test";

  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_EQ(wait_capture_socket(fd, 20, "tm-test0"), SocketWait::kNoErrorPending);
  for (int i = 0; i < 4; ++i) EXPECT_EQ(wait_capture_socket(fd, 20, "tm-test0"), SocketWait::kTimedOut);
  const auto took = std::chrono::steady_clock::now() - t0;
  EXPECT_GE(took, std::chrono::milliseconds(95)) << "5 waits of 20 ms returned early";
  pfd.revents = 0;
  EXPECT_EQ(poll(&pfd, 1, 0), 0) << "revents " << pfd.revents << ": the error queue was not read";
  close(fd);
}

// A libpcap handle's socket: its errors are libpcap's to read (it tolerates some, as a netlink
// socket's ENOBUFS), so the wait neither fails on them nor clears them, and reads no error
// queue (on other kinds of socket MSG_ERRQUEUE may read packets); it still takes the whole wait.
TEST(AfPacket, ALibpcapSocketsErrorsAreLeftToLibpcap) {
  const int fd = socket_with_an_error();
  ASSERT_GE(fd, 0);
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_EQ(wait_capture_socket(fd, 20, "tm-test0", SocketOwner::kLibpcap), SocketWait::kNoErrorPending);
  EXPECT_GE(std::chrono::steady_clock::now() - t0, std::chrono::milliseconds(19)) << "returned at once";
  int err = 0;
  socklen_t len = sizeof(err);
  ASSERT_EQ(getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len), 0);
  EXPECT_EQ(err, ECONNREFUSED) << "the socket's error was read (cleared) by the wait";
  struct pollfd pfd {
    fd, POLLIN, 0
  };
  EXPECT_EQ(poll(&pfd, 1, 0), 1);
  EXPECT_TRUE(pfd.revents & POLLERR) << "the error queue was read";
  close(fd);
}

// A wait that poll() ends at once for nothing is logged once per source (its flag), by
// wait_capture_socket itself for both kinds of socket.
TEST(AfPacket, APollThatReturnsAtOnceIsLoggedOnce) {
  const int fd = socket_with_an_error();
  ASSERT_GE(fd, 0);
  std::ostringstream log;
  auto before = spdlog::default_logger();
  spdlog::set_default_logger(
      std::make_shared<spdlog::logger>("test", std::make_shared<spdlog::sinks::ostream_sink_mt>(log)));
  bool warned = false;
  for (int i = 0; i < 3; ++i)  // (libpcap's errors are left: each wait returns at once)
    EXPECT_EQ(wait_capture_socket(fd, 5, "tm-test0", SocketOwner::kLibpcap, &warned),
              SocketWait::kNoErrorPending);
  spdlog::set_default_logger(before);
  close(fd);
  EXPECT_TRUE(warned);
  const std::string text = log.str();
  const std::string line = "interface tm-test0: poll() returned at once";
  ASSERT_NE(text.find(line), std::string::npos) << text;
  EXPECT_EQ(text.find(line, text.find(line) + 1), std::string::npos) << "logged twice: " << text;
}

TEST(AfPacket, MethodChoice) {
  // No root needed: the interface is only looked up. `lo` is not Ethernet.
  LiveOptions o;
  o.interface = "lo";
  EXPECT_NE(afpacket_unusable(o).find("not an Ethernet"), std::string::npos);
  o.method = LiveMethod::kAfPacket;
  try {
    open_live_source(o);
    ADD_FAILURE() << "capture.method = afpacket opened a loopback interface";
  } catch (const SourceError& e) {
    EXPECT_NE(std::string(e.what()).find("interface lo: capture.method = \"afpacket\" cannot be used"),
              std::string::npos)
        << e.what();
  }
  o.interface = "tm-no-such-if0";
  try {
    afpacket_unusable(o);
    ADD_FAILURE() << "no error for a missing interface";
  } catch (const SourceError& e) {
    EXPECT_NE(std::string(e.what()).find("interface tm-no-such-if0: cannot find it (ioctl SIOCGIFINDEX): "),
              std::string::npos)
        << e.what();
    EXPECT_NE(std::string(e.what()).find("ENODEV"), std::string::npos) << e.what();
  }
  o.method = LiveMethod::kAuto;
  EXPECT_NE(afpacket_unusable(o), "");  // auto: libpcap then says what is wrong
  o.interface = "lo";
  o.bpf = "tcp";
  EXPECT_NE(afpacket_unusable(o).find("capture filter"), std::string::npos);
}

}  // namespace
}  // namespace tmach::capture
