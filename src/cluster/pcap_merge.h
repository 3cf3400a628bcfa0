// The pieces of the front-end's time-ordered merge of pcap answers, apart from HTTP:
//  - PcapStreamParser: turns the bytes of one pcap or pcapng answer, in chunks as they arrive,
//    into packets (either byte order, micro- or nanosecond timestamps; util/pcap.h and
//    capture/pcapng.h read them), each with its link type.
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

#include "capture/pcapng.h"
#include "util/pcap.h"

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
  // (and sets error()) when the stream is not a pcap. A pcapng stream (a worker's answer of
  // several link types) is read by capture/pcapng.h, each packet with its interface's link type.
  template <typename Emit>
  bool feed(const char* p, size_t n, Emit&& emit) {
    buf_.append(p, n);
    size_t pos = 0;
    if (!format_ && !ng_) {
      if (buf_.size() < 4) return true;
      if (capture::pcapng::is_pcapng(reinterpret_cast<const uint8_t*>(buf_.data()))) ng_.emplace();
    }
    if (ng_) return feed_ng(emit);
    if (!format_) {
      if (buf_.size() < sizeof(util::pcap::FileHeader)) return true;
      format_ = util::pcap::parse_file_header(reinterpret_cast<const uint8_t*>(buf_.data()));
      if (!format_) {
        error_ = "not a pcap stream (bad magic)";
        return false;
      }
      pos = sizeof(util::pcap::FileHeader);
    }
    util::pcap::RecordCursor cur(reinterpret_cast<const uint8_t*>(buf_.data()), buf_.size(), *format_, pos,
                                 1u << 26);
    util::pcap::Record r;
    util::pcap::RecordCursor::Step step;
    while ((step = cur.next(r)) == util::pcap::RecordCursor::Step::kRecord) {
      MergePacket m;
      m.ts_ns = r.ts_ns;
      m.wirelen = r.wirelen;
      m.linktype = format_->linktype;
      m.data.assign(reinterpret_cast<const char*>(r.data), r.caplen);
      emit(std::move(m));
    }
    if (step == util::pcap::RecordCursor::Step::kTooLarge) {
      error_ = "record larger than 64 MiB: not a pcap stream";
      return false;
    }
    buf_.erase(0, cur.pos());
    return true;
  }
  bool has_header() const { return format_.has_value() || ng_header_; }
  uint32_t linktype() const { return format_ ? format_->linktype : 0; }  // of a classic pcap
  // Bytes of an incomplete record (or header) left at the end: non-zero when a stream ends cut.
  size_t pending() const { return buf_.size(); }
  const std::string& error() const { return error_; }

 private:
  template <typename Emit>
  bool feed_ng(Emit& emit) {
    size_t pos = 0;
    for (;;) {
      auto s = ng_->next(reinterpret_cast<const uint8_t*>(buf_.data()) + pos, buf_.size() - pos, false);
      if (s.kind == capture::pcapng::Step::kNeed || s.kind == capture::pcapng::Step::kEnd) break;
      if (s.kind == capture::pcapng::Step::kSkip) {
        error_ = "damaged pcapng stream: " + s.why;
        return false;
      }
      if (s.kind == capture::pcapng::Step::kPacket) {
        MergePacket m;
        m.ts_ns = s.ts_ns;
        m.wirelen = s.wirelen;
        m.linktype = s.linktype;
        m.data.assign(reinterpret_cast<const char*>(s.data), s.caplen);
        emit(std::move(m));
      }
      ng_header_ = true;
      pos += s.consumed;
    }
    buf_.erase(0, pos);
    return true;
  }

  std::string buf_;
  std::optional<capture::pcapng::Parser> ng_;
  bool ng_header_ = false;  // a pcapng block was read
  std::optional<util::pcap::Format> format_;
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
