// Packet sources: where frames come from. A source hands out batches of packets whose
// bytes stay valid until the next call to next_batch() on that source.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "capture/start_gate.h"

namespace tmach::capture {

struct RawPacket {
  uint64_t ts_ns;     // capture time, nanoseconds since the epoch
  uint32_t caplen;    // bytes present at `data`
  uint32_t wirelen;   // original length on the wire
  uint32_t linktype;  // LINKTYPE_* of this frame
  const uint8_t* data;
};

// Raised for sources that cannot be opened or are unreadable; the message names the
// source and, for files, the byte offset.
class SourceError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct SourceStats {
  uint64_t kernel_received = 0;  // live: packets the kernel saw (pcap_stats ps_recv)
  uint64_t kernel_dropped = 0;   // live: dropped by the kernel buffer (ps_drop)
  uint64_t iface_dropped = 0;    // live: dropped by the interface/driver (ps_ifdrop)
  uint64_t ring_freezes = 0;     // live, AF_PACKET: times the kernel found its ring full (tp_freeze_q_cnt)
  // Live, AF_PACKET: frames of ring blocks whose layout was impossible (an offset pointing outside
  // the block: capture/tpacket_block.h), skipped unread. The kernel counted them as received.
  uint64_t ring_damaged = 0;
};

// A live source's kernel counters are 32-bit (PACKET_STATISTICS between two reads, libpcap's
// pcap_stat totals): read and added up into 64-bit totals at least this often, by its capture
// thread (StatsPace) as well as whenever stats() is asked, so a long capture's totals never wrap
// (2^32 packets: 72 minutes at 1 Mpps).
inline constexpr uint64_t kStatsEveryNs = 1000000000ull;
class StatsPace {
 public:
  // Once per batch: true when the counters are due (CLOCK_MONOTONIC_COARSE, a few ns).
  bool due() {
    const uint64_t now = StartGate::now_ns(CLOCK_MONOTONIC_COARSE);
    if (now < next_ns_) return false;
    next_ns_ = now + kStatsEveryNs;
    return true;
  }

 private:
  uint64_t next_ns_ = 0;
};

// A 32-bit count that wraps (libpcap's pcap_stat totals), added up into 64 bits: read less
// than 2^32 counts apart, the total never wraps.
struct WrappingTotal {
  uint64_t total = 0;
  uint32_t last = 0;
  void update(uint32_t now) {
    total += static_cast<uint32_t>(now - last);
    last = now;
  }
};

class PacketSource {
 public:
  virtual ~PacketSource() = default;
  // Fills `out` with up to `max` packets. Returns the number filled. For a file, 0 means the
  // source is finished; a live source returns 0 also when its link was idle for a short
  // wait (LiveOptions::idle_wait_ms), so a caller polling several interfaces never stalls
  // on one. Throws SourceError on a fatal read error. A truncated last record ends the
  // source with a warning (warning()).
  virtual size_t next_batch(RawPacket* out, size_t max) = 0;
  virtual std::string name() const = 0;
  virtual bool is_live() const { return false; }
  virtual SourceStats stats() const { return {}; }
  // Asks a blocking live source to return 0 soon. Safe to call from a signal handler's
  // helper thread (not from the handler itself).
  virtual void stop() {}
  // Live, Linux: the id of the PACKET_FANOUT group the source's socket joined (0..65535: the
  // kernel may pick 0 for a new group), or -1 when none.
  virtual int fanout_group() const { return -1; }
  // Live, AF_PACKET opened with LiveOptions::defer_bind: its socket has its ring (the slow part
  // of opening it) but is not bound yet: bind_and_join binds it to its interface and joins it
  // to `group` (as LiveOptions::fanout_group; 0: none). Other sources are bound when opened.
  virtual bool bound() const { return true; }
  virtual void bind_and_join(int /*group*/) {}
  // Live, a fanout member: packets stamped before `realtime_ns` (CLOCK_REALTIME) are not
  // captured (discarded, not counted as received; capture/start_gate.h). Before the source's
  // thread starts.
  virtual void start_at(uint64_t /*realtime_ns*/) {}
  // Non-empty when the source ended early on damaged input (e.g. "truncated record at offset 123").
  virtual std::string warning() const { return {}; }
  // Files: how many bytes of the input were consumed so far (libpcap: up to its read-ahead);
  // nullopt when not known (stdin, live).
  virtual std::optional<uint64_t> bytes_read() const { return std::nullopt; }
};

// Opens a capture file: classic pcap through mmap (fast path), pcapng, stdin ("-") and pipes
// through tm's own reader (stream_source.h: damaged parts skipped and reported), other formats
// through libpcap. Throws SourceError for a file that cannot be read, or of which no packet
// can be read.
std::unique_ptr<PacketSource> open_file_source(const std::string& path);

// How a live interface is read: AF_PACKET TPACKET_V3 directly (Linux, Ethernet interfaces, no
// capture filter), or libpcap. kAuto takes AF_PACKET where it can, libpcap otherwise; kAfPacket
// fails where AF_PACKET cannot be used.
enum class LiveMethod { kAuto, kAfPacket, kLibpcap };

struct LiveOptions {
  std::string interface;
  LiveMethod method = LiveMethod::kAuto;
  uint64_t buffer_bytes = 256ull << 20;  // kernel ring (TPACKET_V3) size
  int snaplen = 262144;
  bool promisc = true;
  std::string bpf;        // optional capture filter
  int idle_wait_ms = 20;  // an idle link returns an empty batch after this long
  // Linux: joins PACKET_FANOUT group (1..65535; 0 = none; kNewFanoutGroup: a new group whose id
  // the kernel chooses, PacketSource::fanout_group(); kFanoutId | id: the group of exactly that
  // id, 0 included), so that the sockets of one group on one interface (in one network
  // namespace) share its packets, each connection's on one socket (join_fanout).
  int fanout_group = 0;
  // Whether stats() reports the interface's own drops (SourceStats::iface_dropped): they are
  // the whole interface's, so of a group's sockets only the first does (open_live_group), or
  // they would be counted once per capture thread.
  bool interface_drops = true;
  // AF_PACKET: the socket is made with its ring, and bound and joined to its group later
  // (PacketSource::bind_and_join), so that a group's sockets join it within microseconds
  // rather than each after its ring (up to seconds for 256 MiB), while the first ones had
  // every packet to themselves, discarded at the start (open_live_group). libpcap ignores it.
  bool defer_bind = false;
};
constexpr int kNewFanoutGroup = -1;
constexpr int kFanoutId = 1 << 16;
// Chooses the method (LiveOptions::method) and opens the interface.
std::unique_ptr<PacketSource> open_live_source(const LiveOptions& opts);
// `n` sources on the interface (one per capture thread): n > 1 joins them to one PACKET_FANOUT
// group (opts.fanout_group, or a new one; join_fanout), so that each gets its share of the
// interface's packets, each connection (both directions, its IP fragments) on one of them.
std::vector<std::unique_ptr<PacketSource>> open_live_group(const LiveOptions& opts, int n);
// The libpcap method itself (libpcap_source.cpp).
std::unique_ptr<PacketSource> open_libpcap_live_source(const LiveOptions& opts);
// Whether `name` is an interface (a network interface, or a device libpcap lists: any, nflog,
// ...): checked before a store is made, so that a typo leaves none behind.
bool interface_exists(const std::string& name);
// Whether `name` is a network interface that is not up (false when it cannot be looked up:
// `any`, nflog, or gone). A fanout group refuses such an interface (down_for_fanout_error).
bool interface_down(const std::string& name);
// Why several capture threads, or a cluster worker, cannot start on a down interface.
std::string down_for_fanout_error(const std::string& name);

}  // namespace tmach::capture
