// The pieces of the front-end's time-ordered merge of pcap answers, apart from HTTP:
//  - PcapStreamParser: turns the bytes of one pcap answer, in chunks as they arrive, into
//    packets (either byte order, micro- or nanosecond timestamps).
//  - PacketQueue: a bounded queue of one worker's packets between its fetching thread and
//    the merging thread. Bounded by bytes: a fast worker waits (and, through TCP, so does
//    its server) while the merge waits for a slower one; memory stays at workers x limit.
//  - merge_next(): the k-way merge step: the earliest head among the queues, once every
//    queue still open has a head (ties: the lower worker index first).
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

namespace tmach::cluster {

struct MergePacket {
  uint64_t ts_ns = 0;
  uint32_t wirelen = 0;
  uint32_t linktype = 0;
  std::string data;  // caplen bytes
};

class PcapStreamParser {
 public:
  // Feeds the next bytes; calls emit(MergePacket&&) for each complete record. Returns false
  // (and sets error()) when the stream is not a pcap.
  template <typename Emit>
  bool feed(const char* p, size_t n, Emit&& emit) {
    buf_.append(p, n);
    size_t pos = 0;
    if (!header_) {
      if (buf_.size() < 24) return true;
      if (!parse_header()) return false;
      pos = 24;
    }
    while (buf_.size() - pos >= 16) {
      uint32_t s = u32(pos), frac = u32(pos + 4), cap = u32(pos + 8), wire = u32(pos + 12);
      if (cap > (1u << 26)) {
        error_ = "record larger than 64 MiB: not a pcap stream";
        return false;
      }
      if (buf_.size() - pos - 16 < cap) break;
      MergePacket m;
      m.ts_ns =
          static_cast<uint64_t>(s) * 1000000000ull + (nsec_ ? frac : static_cast<uint64_t>(frac) * 1000);
      m.wirelen = wire;
      m.linktype = linktype_;
      m.data.assign(buf_, pos + 16, cap);
      pos += 16 + cap;
      emit(std::move(m));
    }
    buf_.erase(0, pos);
    return true;
  }
  bool has_header() const { return header_; }
  uint32_t linktype() const { return linktype_; }
  // Bytes of an incomplete record (or header) left at the end: non-zero when a stream ends cut.
  size_t pending() const { return buf_.size(); }
  const std::string& error() const { return error_; }

 private:
  bool parse_header();
  uint32_t u32(size_t at) const;
  std::string buf_;
  bool header_ = false, swap_ = false, nsec_ = false;
  uint32_t linktype_ = 0;
  std::string error_;
};

class PacketQueue {
 public:
  explicit PacketQueue(size_t max_bytes) : max_(max_bytes) {}
  // Blocks while the queue holds max_bytes or more (one packet always fits). False when
  // the queue was cancelled.
  bool push(MergePacket&& p);
  // The producer is done (normally or not): no more packets will come.
  void close();
  // The consumer gives up: push() returns false from now on.
  void cancel();
  // Waits until the queue has a head or is closed (or until `deadline`). True: a head exists.
  bool wait_head(std::chrono::steady_clock::time_point deadline);
  // Front packet; only after wait_head() returned true.
  // (Locked: reading the deque's front races with the producer's push_back otherwise; the
  // element itself stays put, as only the consumer pops.)
  const MergePacket& head() const {
    std::lock_guard lk(mu_);
    return q_.front();
  }
  MergePacket pop();
  bool closed_and_empty() const;
  size_t bytes() const;

 private:
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<MergePacket> q_;
  size_t bytes_ = 0, max_;
  bool closed_ = false, cancelled_ = false;
};

// One step of the k-way merge: waits until every queue has a head or is closed and empty,
// then returns the index of the queue with the earliest head (lowest index on ties), or
// nullopt when all are exhausted. `deadline` bounds each wait: when it passes, the queues
// still without a head are cancelled and reported in `timed_out` (their worker is stuck
// mid-stream), and the merge goes on without them.
std::optional<size_t> merge_next(std::vector<PacketQueue*>& qs, std::chrono::steady_clock::duration stall,
                                 std::vector<size_t>* timed_out);

}  // namespace tmach::cluster
