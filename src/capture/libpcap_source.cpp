// Sources read through libpcap: live interfaces, and capture files of formats tm does not read
// itself (open_file_source() picks the reader).
#include <fcntl.h>
#include <fmt/format.h>
#include <net/if.h>
#include <pcap/pcap.h>
#include <poll.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <mutex>

#include "capture/afpacket_source.h"
#include "capture/mmap_pcap_source.h"
#include "capture/pcapng.h"
#include "capture/source.h"
#include "capture/start_gate.h"
#include "capture/stream_source.h"

namespace tmach::capture {
namespace {

class PcapHandleSource : public PacketSource {
 public:
  PcapHandleSource(pcap_t* p, std::string name, bool live, int idle_wait_ms = 20)
      : p_(p), name_(std::move(name)), live_(live), idle_wait_ms_(idle_wait_ms) {
    if (live_) fd_ = pcap_get_selectable_fd(p_);
    linktype_ = static_cast<uint32_t>(pcap_datalink(p_));
    nsec_ = pcap_get_tstamp_precision(p_) == PCAP_TSTAMP_PRECISION_NANO;
  }
  ~PcapHandleSource() override { pcap_close(p_); }
  int fanout_group() const override { return fanout_; }
  int fanout_ = -1;              // set by open_libpcap_live_source
  bool interface_drops_ = true;  // the same (LiveOptions::interface_drops)
  void start_at(uint64_t realtime_ns) override {
    if (fanout_ >= 0) gate_.set(realtime_ns);
  }

  size_t next_batch(RawPacket* out, size_t max) override {
    // Packets handed out must stay valid until the next call; libpcap reuses its buffer
    // per pcap_next_ex, so copy into our own arena for the batch.
    arena_.clear();
    size_t n = 0;
    std::vector<size_t> offs;
    offs.reserve(max);
    if (live_) return next_live_batch(out, max, offs);
    while (n < max && !stopped_.load(std::memory_order_relaxed)) {
      struct pcap_pkthdr* h;
      const u_char* data;
      int rc = pcap_next_ex(p_, &h, &data);
      if (rc == 1) {
        uint64_t frac =
            nsec_ ? static_cast<uint64_t>(h->ts.tv_usec) : static_cast<uint64_t>(h->ts.tv_usec) * 1000;
        offs.push_back(arena_.size());
        arena_.insert(arena_.end(), data, data + h->caplen);
        out[n++] = RawPacket{static_cast<uint64_t>(h->ts.tv_sec) * 1000000000ull + frac, h->caplen,
                             std::max(h->len, h->caplen), linktype_, nullptr};
      } else if (rc == 0) {
        if (n > 0) break;  // live timeout: hand out what we have
        continue;
      } else if (rc == PCAP_ERROR_BREAK) {
        break;
      } else {
        std::string err = pcap_geterr(p_);
        if (live_) throw SourceError(fmt::format("{}: {}", name_, err));
        warning_ = fmt::format("{}: {}", name_, err);
        done_ = true;
        break;
      }
    }
    for (size_t i = 0; i < n; ++i) out[i].data = arena_.data() + offs[i];
    return n;
  }
  std::string name() const override { return name_; }
  bool is_live() const override { return live_; }
  std::string warning() const override { return warning_; }
  std::optional<uint64_t> bytes_read() const override {
    if (live_) return std::nullopt;
    long pos = ftell(pcap_file(p_));  // -1 for a pipe (stdin)
    return pos < 0 ? std::nullopt : std::optional<uint64_t>(static_cast<uint64_t>(pos));
  }
  void stop() override {
    stopped_ = true;
    pcap_breakloop(p_);
  }
  SourceStats stats() const override {
    SourceStats s;
    if (!live_) return s;
    std::lock_guard<std::mutex> lock(stats_mu_);
    add_counts();
    s.kernel_received = gate_.received(recv_.total);
    s.kernel_dropped = drop_.total;
    if (interface_drops_) s.iface_dropped = ifdrop_.total;
    return s;
  }

 private:
  // Live: pcap_dispatch hands out what the kernel ring holds and blocks only while it is empty.
  // (A pcap_next_ex loop would wait for more packets while holding a partial batch: on Linux,
  // TPACKET_V3 polls without a timeout when the link is idle, so up to a batch of packets stayed
  // out of the store until more traffic or a signal came.)
  size_t next_live_batch(RawPacket* out, size_t max, std::vector<size_t>& offs) {
    struct Ctx {
      PcapHandleSource* self;
      RawPacket* out;
      std::vector<size_t>* offs;
      size_t n;
    } ctx{this, out, &offs, 0};
    auto cb = [](u_char* user, const struct pcap_pkthdr* h, const u_char* data) {
      auto* c = reinterpret_cast<Ctx*>(user);
      uint64_t frac =
          c->self->nsec_ ? static_cast<uint64_t>(h->ts.tv_usec) : static_cast<uint64_t>(h->ts.tv_usec) * 1000;
      const uint64_t ts = static_cast<uint64_t>(h->ts.tv_sec) * 1000000000ull + frac;
      if (c->self->gate_.discard(ts)) [[unlikely]]
        return;
      c->offs->push_back(c->self->arena_.size());
      c->self->arena_.insert(c->self->arena_.end(), data, data + h->caplen);
      c->out[c->n++] = RawPacket{ts, h->caplen, std::max(h->len, h->caplen), c->self->linktype_, nullptr};
    };
    gate_.tick();
    if (pace_.due()) {
      std::lock_guard<std::mutex> lock(stats_mu_);
      add_counts();
    }
    // The handle is non-blocking: take what the ring holds; when it holds nothing, wait for the
    // socket at most idle_wait_ms and return (possibly with nothing). A blocking read would
    // never return on an idle link (TPACKET_V3 polls without a timeout), stalling the other
    // interfaces, the daemon's commands and its counters.
    if (stopped_.load(std::memory_order_relaxed)) {
      // Stopped (the session reads what is left): what the ring holds, without waiting. The
      // first dispatch after pcap_breakloop() returns at once, clearing its flag.
      for (int round = 0; round < 2 && ctx.n == 0; ++round) {
        int rc = pcap_dispatch(p_, static_cast<int>(max), cb, reinterpret_cast<u_char*>(&ctx));
        if (rc == PCAP_ERROR_BREAK) continue;
        if (rc < 0) throw SourceError(fmt::format("{}: {}", name_, pcap_geterr(p_)));
        break;
      }
    }
    for (int round = 0; round < 2 && ctx.n == 0 && !stopped_.load(std::memory_order_relaxed); ++round) {
      int rc = pcap_dispatch(p_, static_cast<int>(max), cb, reinterpret_cast<u_char*>(&ctx));
      if (rc == PCAP_ERROR_BREAK) break;  // stop(): what was handed out so far is still returned
      if (rc < 0) throw SourceError(fmt::format("{}: {}", name_, pcap_geterr(p_)));
      if (ctx.n == 0 && round == 0 && fd_ >= 0) wait_for_socket();
    }
    for (size_t i = 0; i < ctx.n; ++i) out[i].data = arena_.data() + offs[i];
    return ctx.n;
  }

  // Waits up to idle_wait_ms for the handle's socket. On Linux through wait_capture_socket: a
  // poll() that returns at once with nothing to read (POLLERR, POLLHUP) still takes the whole
  // wait, where a plain poll() had the capture thread call again at once and spin. The socket's
  // errors are libpcap's to read (pcap_dispatch reports those that end the capture).
  void wait_for_socket() {
#ifdef __linux__
    wait_capture_socket(fd_, idle_wait_ms_, name_, SocketOwner::kLibpcap, &pollerr_logged_);
#else
    struct pollfd pfd {
      fd_, POLLIN, 0
    };
    poll(&pfd, 1, idle_wait_ms_);
#endif
  }

  // pcap_stats' totals are 32-bit (u_int) and wrap: their moves are added up here (under
  // stats_mu_, which also keeps two threads out of pcap_stats at once), on the capture thread
  // once a second too (StatsPace), so the totals go on past 2^32.
  void add_counts() const {
    struct pcap_stat ps;
    if (pcap_stats(p_, &ps) != 0) return;
    recv_.update(ps.ps_recv);
    drop_.update(ps.ps_drop);
    ifdrop_.update(ps.ps_ifdrop);
  }

  pcap_t* p_;
  mutable std::mutex stats_mu_;
  mutable WrappingTotal recv_, drop_, ifdrop_;
  StatsPace pace_;  // the capture thread's reads of the counters
  StartGate gate_;  // a fanout member: discards what came before its start
  std::string name_;
  bool live_;
  int idle_wait_ms_ = 20;
  int fd_ = -1;
  bool pollerr_logged_ = false;
  bool nsec_ = false;
  bool done_ = false;
  uint32_t linktype_ = 0;
  std::vector<uint8_t> arena_;
  std::atomic<bool> stopped_{false};
  std::string warning_;
};

}  // namespace

std::unique_ptr<PacketSource> open_file_source(const std::string& path) {
  // Classic pcap files through mmap; pcapng files, stdin and pipes through tm's own reader
  // (stream_source.h); libpcap for what is left (its other formats, and its error text).
  if (path == "-") {
    int fd = dup(0);
    if (fd < 0) throw SourceError(fmt::format("cannot read stdin: {}", std::strerror(errno)));
    return open_stream_source(fd, "stdin");
  }
  // A named pipe is opened once, by tm's reader: opened and closed to be looked at, what its
  // writer had written was lost if it closed its end meanwhile.
  struct stat st;
  const bool pipe = ::stat(path.c_str(), &st) == 0 && !S_ISREG(st.st_mode);
  if (!pipe)
    if (auto s = open_mmap_pcap(path)) return s;
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw SourceError(fmt::format("cannot open {}: {}", path, std::strerror(errno)));
  uint8_t magic[4];
  if (fstat(fd, &st) == 0 &&
      (!S_ISREG(st.st_mode) || (pread(fd, magic, 4, 0) == 4 && pcapng::is_pcapng(magic))))
    return open_stream_source(fd, path);
  close(fd);
  char err[PCAP_ERRBUF_SIZE] = {0};
  pcap_t* p = pcap_open_offline_with_tstamp_precision(path.c_str(), PCAP_TSTAMP_PRECISION_NANO, err);
  if (!p) throw SourceError(fmt::format("cannot read {}: {}", path, err));
  return std::make_unique<PcapHandleSource>(p, path, false);
}

bool interface_exists(const std::string& name) {
  if (!name.empty() && if_nametoindex(name.c_str()) != 0) return true;
  char err[PCAP_ERRBUF_SIZE] = {0};
  pcap_if_t* all = nullptr;
  if (pcap_findalldevs(&all, err) != 0) return true;  // (unknown: opening it will say)
  // (nflog:5, nfqueue:3: a device libpcap lists, with the group or queue after a ':')
  const std::string device = name.substr(0, name.find(':'));
  bool found = false;
  for (pcap_if_t* d = all; d && !found; d = d->next)
    found = d->name && (name == d->name || device == d->name);
  pcap_freealldevs(all);
  return found;
}

std::unique_ptr<PacketSource> open_libpcap_live_source(const LiveOptions& o) {
  char err[PCAP_ERRBUF_SIZE] = {0};
  pcap_t* p = pcap_create(o.interface.c_str(), err);
  if (!p) throw SourceError(fmt::format("interface {}: {}", o.interface, err));
  auto fail = [&](const std::string& what) {
    std::string msg = fmt::format("interface {}: {}: {}", o.interface, what, pcap_geterr(p));
    pcap_close(p);
    throw SourceError(msg);
  };
  pcap_set_snaplen(p, o.snaplen);
  pcap_set_promisc(p, o.promisc ? 1 : 0);
  pcap_set_timeout(p, 100);
  // libpcap on Linux uses TPACKET_V3 by default; its ring is this buffer.
  pcap_set_buffer_size(p, static_cast<int>(std::min<uint64_t>(o.buffer_bytes, 1u << 30)));
  pcap_set_tstamp_precision(p, PCAP_TSTAMP_PRECISION_NANO);
  int rc = pcap_activate(p);
  if (rc < 0) fail("cannot start capture");
  if (pcap_setnonblock(p, 1, err) != 0) fail("cannot make the capture non-blocking");
  if (!o.bpf.empty()) {
    struct bpf_program prog;
    if (pcap_compile(p, &prog, o.bpf.c_str(), 1, PCAP_NETMASK_UNKNOWN) != 0) fail("bad capture filter");
    if (pcap_setfilter(p, &prog) != 0) {
      pcap_freecode(&prog);
      fail("cannot set capture filter");
    }
    pcap_freecode(&prog);
  }
  int group = -1;
  if (o.fanout_group != 0) {
    try {
      group = join_fanout(pcap_fileno(p), o.interface, o.fanout_group);  // libpcap's packet socket
    } catch (...) {
      pcap_close(p);
      throw;
    }
  }
  auto s = std::make_unique<PcapHandleSource>(p, o.interface, true, o.idle_wait_ms);
  s->fanout_ = group;
  s->interface_drops_ = o.interface_drops;
  s->start_at(StartGate::now_ns(CLOCK_REALTIME));  // (a fanout member only: see StartGate)
  return s;
}

}  // namespace tmach::capture
