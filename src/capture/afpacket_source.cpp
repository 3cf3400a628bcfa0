// Live capture on AF_PACKET with a TPACKET_V3 block ring (see afpacket_source.h).
//
// The kernel fills blocks of the ring with packets and hands a block to user space when it is
// full or when its retire timer fires (so an idle link still hands packets on). next_batch()
// walks the current block; the block goes back to the kernel at the following next_batch()
// call, so a batch's bytes stay valid until then (the contract of PacketSource). A batch
// spans one block at most.
#include "capture/afpacket_source.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#ifdef __linux__
#include <arpa/inet.h>
#include <linux/filter.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <net/if_arp.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <fstream>
#include <mutex>
#include <set>
#endif

#include "capture/fanout_program.h"
#include "capture/start_gate.h"
#include "capture/tpacket_block.h"

namespace tmach::capture {

#ifdef __linux__
namespace {

constexpr uint32_t kLinktypeEthernet = 1;
constexpr uint32_t kVlanTagLen = 4;
constexpr uint32_t kMacAddrsLen = 12;  // destination and source MAC: the tag goes after them
// The ring's blocks. The kernel hands a block on when it is full or when its retire timer
// fires, and a block handed on holds only what came in meanwhile: at a rate r the ring holds
// block_nr * min(block_size, r * timeout) bytes, so blocks too large for the timer leave most
// of capture.buffer_size unused exactly when it is needed — a capture thread waiting for its
// writer (when_ring_full = wait) leaves the overflow in this ring. With the smallest block a
// frame fits in (128 KiB at least; 512 KiB at the default snaplen) and 50 ms, the whole
// buffer is used above ~10 MB/s and below that it holds block_nr * 50 ms (25 s for 256 MiB);
// an idle link's packets reach tm within 50 ms (libpcap's ring, as tm opens it: 100 ms).
constexpr uint32_t kMinBlockSize = 128u << 10;
constexpr unsigned kRetireTimeoutMs = 50;

std::string errno_text(int e) {
  const char* name = strerrorname_np(e);
  return fmt::format("{} ({})", strerror(e), name ? name : std::to_string(e));
}

[[noreturn]] void fail(const std::string& ifc, const std::string& what, int e) {
  throw SourceError(fmt::format("interface {}: {}: {}", ifc, what, errno_text(e)));
}

// The interface's index and ARPHRD_* type, and whether it is up (`up`, when given). Returns
// false (errno set) when it cannot be looked up.
bool lookup_interface(const std::string& ifc, int& index, int& hwtype, bool* up = nullptr) {
  if (ifc.empty() || ifc.size() >= IFNAMSIZ) {
    errno = ENODEV;
    return false;
  }
  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  struct ifreq ifr;
  memset(&ifr, 0, sizeof(ifr));
  memcpy(ifr.ifr_name, ifc.data(), ifc.size());
  bool ok = ioctl(fd, SIOCGIFINDEX, &ifr) == 0;
  if (ok) index = ifr.ifr_ifindex;
  ok = ok && ioctl(fd, SIOCGIFHWADDR, &ifr) == 0;
  if (ok) hwtype = ifr.ifr_hwaddr.sa_family;
  if (ok && up) *up = ioctl(fd, SIOCGIFFLAGS, &ifr) == 0 && (ifr.ifr_flags & IFF_UP);
  int e = errno;
  close(fd);
  errno = e;
  return ok;
}

// Packets the interface's hardware dropped, as libpcap counts them (ps_ifdrop, pcap-linux.c
// linux_if_drops): rx_missed_errors + rx_fifo_errors, since the boot. Not rx_dropped: the stack
// raises it for frames it discards after every packet socket had them (VLAN frames without a
// VLAN device, unknown EtherTypes), which were captured.
uint64_t interface_rx_dropped(const std::string& ifc) {
  uint64_t sum = 0;
  for (const char* stat : {"rx_missed_errors", "rx_fifo_errors"}) {
    std::ifstream f("/sys/class/net/" + ifc + "/statistics/" + stat);
    uint64_t v = 0;
    f >> v;
    sum += v;
  }
  return sum;
}

class AfPacketSource : public PacketSource {
 public:
  explicit AfPacketSource(const LiveOptions& o)
      : name_(o.interface),
        snaplen_(static_cast<uint32_t>(o.snaplen)),
        idle_wait_ms_(o.idle_wait_ms),
        interface_drops_(o.interface_drops) {
    try {
      open(o);
    } catch (...) {
      cleanup();
      throw;
    }
  }
  ~AfPacketSource() override { cleanup(); }

  size_t next_batch(RawPacket* out, size_t max) override {
    gate_.tick();
    if (pace_.due()) {
      std::lock_guard<std::mutex> lock(stats_mu_);
      add_kernel_counts();
    }
    if (release_pending_) release_current();
    bool waited = false;
    while (!in_block_) {
      auto* bd = block(cur_);
      if (__atomic_load_n(&bd->hdr.bh1.block_status, __ATOMIC_ACQUIRE) & TP_STATUS_USER) {
        if (down_logged_) recheck_interface();
        frames_.start(reinterpret_cast<uint8_t*>(bd), block_size_, kVlanTagLen);
        in_block_ = true;
        if (frames_.left() == 0) release_current();  // nothing in it: next block
        continue;
      }
      if (waited || stopped_.load(std::memory_order_relaxed)) return 0;
      wait();
      waited = true;
    }
    size_t n = 0;
    while (n < max) {
      tpacket3_hdr* h = frames_.next();
      if (!h) break;
      if (gate_.discard(frame_ns(h))) [[unlikely]]
        continue;
      out[n++] = to_raw(h);
    }
    if (frames_.left() == 0) {
      if (frames_.damaged() > 0) [[unlikely]]
        count_damaged();
      // The block goes back to the kernel at the next call: the batch points into it.
      release_pending_ = true;
    }
    return n;
  }

  std::string name() const override { return name_; }
  bool is_live() const override { return true; }
  void stop() override { stopped_ = true; }
  int fanout_group() const override { return fanout_; }
  void start_at(uint64_t realtime_ns) override {
    if (fanout_ >= 0) gate_.set(realtime_ns);
  }

  SourceStats stats() const override {
    std::lock_guard<std::mutex> lock(stats_mu_);
    add_kernel_counts();
    SourceStats s;
    s.kernel_received = gate_.received(received_);
    s.kernel_dropped = dropped_;
    s.ring_freezes = freezes_;
    s.ring_damaged = damaged_;
    if (interface_drops_) {
      uint64_t ifd = interface_rx_dropped(name_);
      s.iface_dropped = ifd > ifdrop_base_ ? ifd - ifdrop_base_ : 0;
    }
    return s;
  }

 private:
  void open(const LiveOptions& o) {
    int ifindex = 0, hwtype = 0;
    bool up = false;
    if (!lookup_interface(o.interface, ifindex, hwtype, &up))
      fail(name_, "cannot find it (ioctl SIOCGIFINDEX)", errno);
    ifindex_ = ifindex;
    if (!up && o.fanout_group != 0) throw_down_for_fanout();
    if (!up) {  // (a sensor may start before its link: it waits, as after the link went down)
      spdlog::warn("interface {}: it is not up; capture starts when it is", name_);
      down_logged_ = true;
    }
    if (hwtype != ARPHRD_ETHER)
      throw SourceError(
          fmt::format("interface {}: not Ethernet (ARPHRD type {}): AF_PACKET capture reads "
                      "Ethernet interfaces only (capture.method = \"libpcap\" reads others)",
                      name_, hwtype));
    // Protocol 0: nothing is queued before the ring is set up and the socket bound below.
    fd_ = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0);
    if (fd_ < 0) fail(name_, "socket(AF_PACKET, SOCK_RAW) (needs CAP_NET_RAW)", errno);
    int version = TPACKET_V3;
    if (setsockopt(fd_, SOL_PACKET, PACKET_VERSION, &version, sizeof(version)) != 0)
      fail(name_, "setsockopt(PACKET_VERSION, TPACKET_V3)", errno);
    // Room in front of each frame for the VLAN tag that the kernel took out (see to_raw()).
    unsigned reserve = kVlanTagLen;
    if (setsockopt(fd_, SOL_PACKET, PACKET_RESERVE, &reserve, sizeof(reserve)) != 0)
      fail(name_, "setsockopt(PACKET_RESERVE)", errno);
    if (snaplen_ < 262144) {
      // The kernel copies at most what a socket filter returns: keep the ring for snaplen bytes.
      struct sock_filter code[] = {{BPF_RET | BPF_K, 0, 0, snaplen_}};
      struct sock_fprog prog {
        1, code
      };
      if (setsockopt(fd_, SOL_SOCKET, SO_ATTACH_FILTER, &prog, sizeof(prog)) != 0)
        fail(name_, "setsockopt(SO_ATTACH_FILTER) of the snaplen filter", errno);
    }
    setup_ring(o.buffer_bytes);
    struct sockaddr_ll sll;
    memset(&sll, 0, sizeof(sll));
    sll.sll_family = AF_PACKET;
    sll.sll_protocol = htons(ETH_P_ALL);
    promisc_ = o.promisc;
    if (!o.defer_bind) bind_and_join(o.fanout_group);
  }

 public:
  bool bound() const override { return bound_; }
  [[noreturn]] void throw_down_for_fanout() const { throw SourceError(down_for_fanout_error(name_)); }
  void bind_and_join(int group) override {
    if (bound_) return;
    struct sockaddr_ll sll;
    memset(&sll, 0, sizeof(sll));
    sll.sll_family = AF_PACKET;
    sll.sll_protocol = htons(ETH_P_ALL);
    sll.sll_ifindex = ifindex_;
    // Once bound, the socket receives every packet until it joins its fanout group (StartGate):
    // the group is joined right after binding, and the capture starts when it has joined.
    if (bind(fd_, reinterpret_cast<struct sockaddr*>(&sll), sizeof(sll)) != 0)
      fail(name_, "bind(AF_PACKET)", errno);
    bound_ = true;
    if (group != 0) {
      try {
        fanout_ = join_fanout(fd_, name_, group);
      } catch (const SourceError&) {
        // (Down since it was opened: the kernel's refusal, EINVAL, says nothing of that.)
        int index = 0, hwtype = 0;
        bool up = true;
        if (lookup_interface(name_, index, hwtype, &up) && !up) throw_down_for_fanout();
        throw;
      }
      gate_.set(StartGate::now_ns(CLOCK_REALTIME));
    }
    if (promisc_) {
      struct packet_mreq mr;
      memset(&mr, 0, sizeof(mr));
      mr.mr_ifindex = ifindex_;
      mr.mr_type = PACKET_MR_PROMISC;
      if (setsockopt(fd_, SOL_PACKET, PACKET_ADD_MEMBERSHIP, &mr, sizeof(mr)) != 0)
        fail(name_, "setsockopt(PACKET_ADD_MEMBERSHIP, PACKET_MR_PROMISC)", errno);
    }
    ifdrop_base_ = interface_rx_dropped(name_);
  }

 private:
  void setup_ring(uint64_t buffer_bytes) {
    // A frame holds the headers, the reserve and snaplen bytes; a block holds one frame at
    // least: the smallest such power of two, 128 KiB at least (see kMinBlockSize), smaller for
    // a small buffer (8 blocks at least where possible).
    uint32_t frame = TPACKET_ALIGN(TPACKET3_HDRLEN + 16 + kVlanTagLen + snaplen_);
    uint32_t page = static_cast<uint32_t>(sysconf(_SC_PAGESIZE));
    uint32_t bs = std::max(kMinBlockSize, page);
    while (bs < frame) bs *= 2;
    while (bs / 2 >= frame && bs / 2 >= page && buffer_bytes / bs < 8) bs /= 2;
    uint64_t nr = std::max<uint64_t>(2, buffer_bytes / bs);
    nr = std::min<uint64_t>(nr, (1ull << 31) / bs);  // the kernel takes an int-sized ring
    struct tpacket_req3 req;
    memset(&req, 0, sizeof(req));
    req.tp_block_size = bs;
    req.tp_block_nr = static_cast<unsigned>(nr);
    req.tp_frame_size = frame;
    req.tp_frame_nr = static_cast<unsigned>((bs / frame) * nr);
    req.tp_retire_blk_tov = kRetireTimeoutMs;
    if (setsockopt(fd_, SOL_PACKET, PACKET_RX_RING, &req, sizeof(req)) != 0)
      fail(name_, fmt::format("setsockopt(PACKET_RX_RING, {} blocks of {} bytes)", nr, bs), errno);
    block_size_ = bs;
    block_nr_ = static_cast<uint32_t>(nr);
    ring_len_ = static_cast<size_t>(bs) * nr;
    void* m = mmap(nullptr, ring_len_, PROT_READ | PROT_WRITE, MAP_SHARED, fd_, 0);
    if (m == MAP_FAILED) fail(name_, fmt::format("mmap of the {} byte packet ring", ring_len_), errno);
    ring_ = static_cast<uint8_t*>(m);
  }

  void cleanup() {
    if (ring_) munmap(ring_, ring_len_);
    ring_ = nullptr;
    if (fd_ >= 0) close(fd_);
    fd_ = -1;
  }

  tpacket_block_desc* block(uint32_t i) const {
    return reinterpret_cast<tpacket_block_desc*>(ring_ + static_cast<size_t>(i) * block_size_);
  }

  void release_current() {
    __atomic_store_n(&block(cur_)->hdr.bh1.block_status, TP_STATUS_KERNEL, __ATOMIC_RELEASE);
    cur_ = (cur_ + 1) % block_nr_;
    in_block_ = false;
    release_pending_ = false;
  }

  // A block whose frames' offsets were impossible (TpacketBlock): what it held past the first
  // such frame is lost, counted in SourceStats::ring_damaged. Logged at the first block only:
  // a ring that is damaged once (a kernel bug, memory scribbled on) is likely to be again, and
  // a line per block would flood the log. Not an exception: the other blocks are still good.
  void count_damaged() {
    const uint32_t k = frames_.damaged();
    uint64_t total;
    {
      std::lock_guard<std::mutex> lock(stats_mu_);
      total = damaged_ += k;
    }
    if (!damaged_logged_) {
      damaged_logged_ = true;
      spdlog::warn(
          "interface {}: block {} of the AF_PACKET ring ({} bytes) holds a frame whose offsets are "
          "impossible (outside the block, or overlapping the frame before): its last {} frame(s) skipped "
          "unread (counted as kernel.ring_damaged, {} so far; not logged again)",
          name_, cur_, block_size_, k, total);
    }
  }

  // PACKET_STATISTICS resets the kernel's counters at each read: added up here (under
  // stats_mu_), on the capture thread once a second too (StatsPace: they are 32-bit).
  void add_kernel_counts() const {
    struct tpacket_stats_v3 st;
    memset(&st, 0, sizeof(st));
    socklen_t len = sizeof(st);
    if (fd_ >= 0 && getsockopt(fd_, SOL_PACKET, PACKET_STATISTICS, &st, &len) == 0) {
      received_ += st.tp_packets;  // includes the dropped ones
      dropped_ += st.tp_drops;
      freezes_ += st.tp_freeze_q_cnt;
    }
  }

  // Waits up to idle_wait_ms for a block. The interface going down is no end: the socket stays
  // bound to it and its packets come again once it is up (as libpcap carries on). Gone (its
  // index no longer exists: deleted), it is the end, once the blocks the kernel filled before
  // are read: the kernel hands over a block it was filling within its retire timeout. While the
  // interface is down it is looked up again four times a second: deleted then (a deletion takes
  // it down first), no second ENETDOWN would say so. A poll() that returns at once for nothing
  // still takes the whole wait (wait_capture_socket).
  void wait() {
    if (!gone_.empty() && StartGate::now_ns(CLOCK_MONOTONIC) >= gone_deadline_ns_) throw SourceError(gone_);
    if (wait_capture_socket(fd_, idle_wait_ms_, name_, SocketOwner::kAfPacket, &pollerr_logged_) ==
        SocketWait::kInterfaceDown) {
      if (!down_logged_)
        spdlog::warn("interface {}: it went down; capture goes on when it is up again", name_);
      down_logged_ = true;
      next_check_ns_ = 0;
    }
    if (down_logged_) recheck_interface();
  }

  // At most four times a second while down: up again (said, and the next going down is said again),
  // or gone: the end, once the blocks the kernel filled before are read (it hands over a
  // block it was filling within its retire timeout).
  void recheck_interface() {
    const uint64_t now = StartGate::now_ns(CLOCK_MONOTONIC);
    if (!gone_.empty() || now < next_check_ns_) return;
    next_check_ns_ = now + 250000000ull;
    // By the socket's index: an interface renamed (Linux renames only a down one) is the same
    // one, and the socket stays bound to it.
    char ifname[IF_NAMESIZE] = {0};
    if (!if_indextoname(static_cast<unsigned>(ifindex_), ifname)) {
      if (errno != ENXIO && errno != ENODEV) {  // (not known: another look at the next check)
        if (!lookup_warned_)
          spdlog::warn("interface {}: cannot look it up while it is down: {} (tried again)", name_,
                       errno_text(errno));
        lookup_warned_ = true;
        return;
      }
      gone_ = fmt::format("interface {}: capture socket error: {}: the interface is gone", name_,
                          errno_text(ENETDOWN));
      gone_deadline_ns_ = now + 4ull * kRetireTimeoutMs * 1000000;
      return;
    }
    int index = 0, hwtype = 0;
    bool up = false;
    if (lookup_interface(ifname, index, hwtype, &up) && index == ifindex_ && up) {
      down_logged_ = false;
      spdlog::warn("interface {}: it is up again{}", name_,
                   ifname == name_ ? std::string() : fmt::format(" (now named {})", ifname));
    }
  }

  static uint64_t frame_ns(const tpacket3_hdr* h) {
    return static_cast<uint64_t>(h->tp_sec) * 1000000000ull + h->tp_nsec;
  }

  RawPacket to_raw(tpacket3_hdr* h) const {
    uint8_t* mac = reinterpret_cast<uint8_t*>(h) + h->tp_mac;
    uint32_t caplen = h->tp_snaplen, wirelen = h->tp_len;
    // The kernel took the outer VLAN tag out of the frame into tp_vlan_tci: put it back where
    // it was on the wire (as libpcap does), into the reserve in front of the frame.
    if ((h->tp_status & TP_STATUS_VLAN_VALID) && caplen >= kMacAddrsLen) {
      uint16_t tpid = (h->tp_status & TP_STATUS_VLAN_TPID_VALID) ? h->hv1.tp_vlan_tpid : ETH_P_8021Q;
      memmove(mac - kVlanTagLen, mac, kMacAddrsLen);
      mac -= kVlanTagLen;
      uint16_t tag[2] = {htons(tpid), htons(h->hv1.tp_vlan_tci)};
      memcpy(mac + kMacAddrsLen, tag, sizeof(tag));
      caplen += kVlanTagLen;
      wirelen += kVlanTagLen;
    }
    if (caplen > snaplen_) caplen = snaplen_;
    return RawPacket{static_cast<uint64_t>(h->tp_sec) * 1000000000ull + h->tp_nsec, caplen,
                     std::max(wirelen, caplen), kLinktypeEthernet, mac};
  }

  std::string name_;
  uint32_t snaplen_;
  int idle_wait_ms_;
  bool interface_drops_;  // LiveOptions::interface_drops
  int fd_ = -1;
  int ifindex_ = 0;  // the interface's index when the socket was made
  bool promisc_ = true;
  bool bound_ = false;
  int fanout_ = -1;
  bool down_logged_ = false;  // the interface is down (said once, until it is up again)
  std::string gone_;          // the interface went away: the error, thrown once the ring is read
  uint64_t gone_deadline_ns_ = 0;
  uint64_t next_check_ns_ = 0;  // while down: when to look the interface up again
  bool lookup_warned_ = false;
  uint8_t* ring_ = nullptr;
  size_t ring_len_ = 0;
  uint32_t block_size_ = 0, block_nr_ = 0;
  uint32_t cur_ = 0;  // the block being read or waited for
  bool in_block_ = false;
  bool release_pending_ = false;
  TpacketBlock frames_;  // the current block's frames not handed out yet
  bool damaged_logged_ = false;
  bool pollerr_logged_ = false;
  std::atomic<bool> stopped_{false};
  StartGate gate_;  // a fanout member: discards what came before its start
  uint64_t ifdrop_base_ = 0;
  mutable std::mutex stats_mu_;
  StatsPace pace_;  // the capture thread's reads of the counters
  mutable uint64_t received_ = 0, dropped_ = 0, freezes_ = 0;
  uint64_t damaged_ = 0;  // stats_mu_
};

}  // namespace

SocketWait wait_capture_socket(int fd, int timeout_ms, const std::string& ifc, SocketOwner owner,
                               bool* warned) {
  const uint64_t t0 = StartGate::now_ns(CLOCK_MONOTONIC);
  struct pollfd pfd {
    fd, POLLIN, 0
  };
  int rc = poll(&pfd, 1, timeout_ms);
  if (rc < 0 && errno != EINTR) fail(ifc, "poll", errno);
  if (rc <= 0) return SocketWait::kTimedOut;
  if (pfd.revents & POLLNVAL) fail(ifc, "poll", EBADF);
  // Our own AF_PACKET socket: its only pending error is ENETDOWN (the interface went down or
  // away), for the caller to judge; any other is fatal. A libpcap handle's socket is left to
  // libpcap, which reads SO_ERROR itself and tolerates some (a netlink socket's ENOBUFS on
  // overflow, counted): reading it here would clear it and end a capture libpcap carries on.
  if (owner == SocketOwner::kAfPacket && (pfd.revents & POLLERR)) {
    int err = 0;
    socklen_t len = sizeof(err);
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) fail(ifc, "getsockopt(SO_ERROR)", errno);
    if (err == ENETDOWN) return SocketWait::kInterfaceDown;
    if (err != 0) fail(ifc, "capture socket error", err);
  }
  if (pfd.revents & POLLIN) return SocketWait::kReadable;
  // poll() returned at once with nothing to read and no error pending: POLLERR for what waits in
  // the socket's error queue (notifications such as transmit timestamps: poll reports them until
  // they are read, SO_ERROR does not clear them), or POLLHUP. Returning now, the capture thread
  // would call again at once and spin at full CPU for as long as that lasts: the rest of the wait
  // is taken anyway. An AF_PACKET socket's error queue is read too (a bounded number of entries:
  // more may keep coming); not another kind's, where MSG_ERRQUEUE may be ignored and the read
  // take packets (netlink, unix).
  for (int i = 0; owner == SocketOwner::kAfPacket && i < 64; ++i) {
    uint8_t data[64], control[512];
    struct iovec iov {
      data, sizeof(data)
    };
    struct msghdr msg;
    memset(&msg, 0, sizeof(msg));
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof(control);
    if (recvmsg(fd, &msg, MSG_ERRQUEUE | MSG_DONTWAIT) < 0) break;
  }
  const uint64_t want_ns = timeout_ms > 0 ? static_cast<uint64_t>(timeout_ms) * 1000000 : 0;
  const uint64_t waited_ns = StartGate::now_ns(CLOCK_MONOTONIC) - t0;
  if (waited_ns < want_ns) {
    const uint64_t rest = want_ns - waited_ns;
    struct timespec ts {
      static_cast<time_t>(rest / 1000000000), static_cast<long>(rest % 1000000000)
    };
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
  }
  if (warned && !*warned) {
    *warned = true;
    spdlog::warn(
        "interface {}: poll() returned at once on the capture socket with nothing to read and no error "
        "pending (POLLERR{}, or POLLHUP): {}the idle wait taken in full (not logged again)",
        ifc, owner == SocketOwner::kAfPacket ? " with SO_ERROR 0" : "",
        owner == SocketOwner::kAfPacket ? "its error queue was read and " : "");
  }
  return SocketWait::kNoErrorPending;
}

namespace {

SetsockoptFn g_fanout_setsockopt = nullptr;  // tests: set_fanout_setsockopt_for_test

int fanout_setsockopt(int fd, int name, const void* value, socklen_t len) {
  return g_fanout_setsockopt ? g_fanout_setsockopt(fd, SOL_PACKET, name, value, len)
                             : setsockopt(fd, SOL_PACKET, name, value, len);
}

// Whether the kernel knows PACKET_FANOUT_CBPF (Linux 4.3). PACKET_FANOUT_DATA came with it: a
// socket in no fanout group is refused that option with EINVAL where it exists and with
// ENOPROTOOPT where it does not. (Joining in CBPF mode fails with EINVAL on an older kernel,
// but also where the group exists in another mode: that one stays an error.)
bool kernel_has_fanout_cbpf(int fd) {
  sock_fprog none{0, nullptr};
  return fanout_setsockopt(fd, PACKET_FANOUT_DATA, &none, sizeof(none)) == 0 || errno != ENOPROTOOPT;
}

// Once per interface (each capture thread's socket falls back alike).
void warn_fanout_by_hash(const std::string& ifc) {
  static std::mutex mu;
  static std::set<std::string> warned;
  std::lock_guard lk(mu);
  if (!warned.insert(ifc).second) return;
  spdlog::warn(
      "interface {}: this kernel has no PACKET_FANOUT_CBPF (Linux 4.3): the capture threads share its "
      "packets by the kernel's flow hash (PACKET_FANOUT_HASH) instead of by IP address pair, so the IP "
      "fragments of a connection may reach another thread than its other packets (each thread then counts "
      "its part against the cutoff and writes a flow record of its own)",
      ifc);
}

}  // namespace

void set_fanout_setsockopt_for_test(SetsockoptFn fn) { g_fanout_setsockopt = fn; }

int join_fanout(int fd, const std::string& ifc, int group) {
  if ((group & ~0xffff) == kFanoutId)
    group &= 0xffff;  // exactly this id (0 is one the kernel may pick for a new group)
  else if (group != kNewFanoutGroup && (group < 1 || group > 0xffff))
    throw SourceError(fmt::format("interface {}: fanout group {} is not in 1..65535", ifc, group));
  // Ethernet (and loopback, whose frames have an Ethernet header): the packets are spread by
  // their IP addresses, unordered (fanout_program.h), so that every packet of a connection,
  // its IP fragments included, reaches one socket. The kernel's flow hash (PACKET_FANOUT_HASH,
  // for other interfaces) covers the ports of an unfragmented packet but not of a fragment.
  // No PACKET_FANOUT_FLAG_DEFRAG: with it the kernel hands the socket the reassembled datagram
  // instead of the fragments that were on the wire.
  // A new group: PACKET_FANOUT_FLAG_UNIQUEID has the kernel choose an id no other group in the
  // network namespace uses (so two recorders never share one by accident), read back below.
  // A kernel before 4.3 has no CBPF mode: the group falls back to the kernel's hash (every
  // member alike), losing the fragments' place with their connection (warn_fanout_by_hash).
  int ifindex = 0, hwtype = 0;
  bool by_hosts =
      lookup_interface(ifc, ifindex, hwtype) && (hwtype == ARPHRD_ETHER || hwtype == ARPHRD_LOOPBACK);
  auto join = [&](int mode) {
    int arg = group == kNewFanoutGroup ? (mode | PACKET_FANOUT_FLAG_UNIQUEID) << 16 : group | (mode << 16);
    return fanout_setsockopt(fd, PACKET_FANOUT, &arg, sizeof(arg)) == 0;
  };
  auto join_failed = [&](const char* mode_name, int e) {
    fail(ifc,
         group == kNewFanoutGroup
             ? fmt::format("setsockopt(PACKET_FANOUT, new group, {})", mode_name)
             : fmt::format("setsockopt(PACKET_FANOUT, group {}, {}) (a group is per interface and mode; "
                           "EINVAL: the group exists with another interface or mode)",
                           group, mode_name),
         e);
  };
  if (!join(by_hosts ? PACKET_FANOUT_CBPF : PACKET_FANOUT_HASH)) {
    const int e = errno;
    if (!by_hosts || e != EINVAL || kernel_has_fanout_cbpf(fd)) join_failed(by_hosts ? "cbpf" : "hash", e);
    by_hosts = false;
    if (!join(PACKET_FANOUT_HASH)) join_failed("hash, as the kernel has no cbpf", errno);
    warn_fanout_by_hash(ifc);
  }
  if (by_hosts) {
    // The group's program (each member sets the same one). Until the first member has set it,
    // the kernel gives every packet to the group's first socket.
    static const std::vector<BpfInstruction> program = host_pair_fanout_program();
    std::vector<sock_filter> code;
    for (const BpfInstruction& i : program) code.push_back({i.code, i.jt, i.jf, i.k});
    sock_fprog prog{static_cast<unsigned short>(code.size()), code.data()};
    if (fanout_setsockopt(fd, PACKET_FANOUT_DATA, &prog, sizeof(prog)) != 0)
      fail(ifc, "setsockopt(PACKET_FANOUT_DATA, the fanout program)", errno);
  }
  if (group != kNewFanoutGroup) return group;
  int got = 0;
  socklen_t len = sizeof(got);
  if (getsockopt(fd, SOL_PACKET, PACKET_FANOUT, &got, &len) != 0)
    fail(ifc, "getsockopt(PACKET_FANOUT) of the new group", errno);
  return got & 0xffff;
}

std::string afpacket_unusable(const LiveOptions& o) {
  if (!o.bpf.empty()) return "a capture filter is set (capture filters go through libpcap)";
  int ifindex = 0, hwtype = 0;
  if (!lookup_interface(o.interface, ifindex, hwtype)) {
    int e = errno;
    if (o.method == LiveMethod::kAfPacket) fail(o.interface, "cannot find it (ioctl SIOCGIFINDEX)", e);
    return fmt::format("cannot look the interface up: {}", errno_text(e));  // e.g. libpcap's "any"
  }
  if (hwtype != ARPHRD_ETHER) return fmt::format("not an Ethernet interface (ARPHRD type {})", hwtype);
  return {};
}

std::unique_ptr<PacketSource> open_afpacket_source(const LiveOptions& o) {
  return std::make_unique<AfPacketSource>(o);
}

bool interface_down(const std::string& name) {
  int index = 0, hwtype = 0;
  bool up = false;
  return lookup_interface(name, index, hwtype, &up) && !up;
}

#else  // not Linux

bool interface_down(const std::string&) { return false; }  // (libpcap says, opening it)

std::string afpacket_unusable(const LiveOptions&) { return "AF_PACKET exists on Linux only"; }

std::unique_ptr<PacketSource> open_afpacket_source(const LiveOptions& o) {
  throw SourceError(fmt::format("interface {}: AF_PACKET capture exists on Linux only", o.interface));
}

int join_fanout(int, const std::string& ifc, int) {
  throw SourceError(fmt::format("interface {}: PACKET_FANOUT exists on Linux only", ifc));
}

void set_fanout_setsockopt_for_test(SetsockoptFn) {}

SocketWait wait_capture_socket(int, int, const std::string& ifc, SocketOwner, bool*) {
  throw SourceError(fmt::format("interface {}: AF_PACKET capture exists on Linux only", ifc));
}

#endif

std::unique_ptr<PacketSource> open_live_source(const LiveOptions& o) {
  if (o.method == LiveMethod::kLibpcap) return open_libpcap_live_source(o);
  std::string why = afpacket_unusable(o);
  if (why.empty()) return open_afpacket_source(o);
  if (o.method == LiveMethod::kAfPacket)
    throw SourceError(
        fmt::format("interface {}: capture.method = \"afpacket\" cannot be used: {}", o.interface, why));
  return open_libpcap_live_source(o);
}

std::string down_for_fanout_error(const std::string& name) {
  return fmt::format(
      "interface {}: it is not up, and the kernel lets no socket of a down interface join a fanout group "
      "(several capture threads, or a cluster worker): bring it up first (ip link set {} up)",
      name, name);
}

std::vector<std::unique_ptr<PacketSource>> open_live_group(const LiveOptions& o, int n) {
  std::vector<std::unique_ptr<PacketSource>> out;
  if (n <= 1) {
    out.push_back(open_live_source(o));
    return out;
  }
  LiveOptions m = o;
  if (m.fanout_group == 0) m.fanout_group = kNewFanoutGroup;
  // AF_PACKET sockets are all made with their rings first, then bound and joined one right
  // after the other: until the last has joined, the first ones have every packet, which the
  // start below discards (they were made one after the other, each its ring first: the first
  // had every packet for seconds, lost). A libpcap handle is bound and joined when opened.
  m.defer_bind = true;
  for (int i = 0; i < n; ++i) {
    out.push_back(open_live_source(m));
    if (i == 0) {
      if (out[0]->bound()) m.fanout_group = kFanoutId | out[0]->fanout_group();  // the others join its group
      m.interface_drops = false;                                                 // (the first reports them)
    }
  }
  int group = m.fanout_group;  // (kNewFanoutGroup, or the one asked for)
  for (auto& src : out) {
    if (src->bound()) continue;
    src->bind_and_join(group);
    group = kFanoutId | src->fanout_group();
  }
  // The capture starts once the group is whole, on every socket: from then on each packet
  // reaches exactly one of them (before, the first ones had every packet to themselves).
  const uint64_t start = StartGate::now_ns(CLOCK_REALTIME);
  for (auto& src : out) src->start_at(start);
  return out;
}

}  // namespace tmach::capture
