// Live subscriptions: the writer thread offers every packet it appends to a segment; each
// subscriber keeps those matching its filter in a bounded queue that its HTTP thread streams.
#pragma once

#include <pcap/pcap.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <map>
#include <mutex>
#include <string>

#include "packet/packet_info.h"
#include "query/executor.h"
#include "query/packet_filter.h"

namespace tmach::server {

// A packet handed to a subscription (copied: owned by the queue).
struct SubPacket {
  uint64_t ts_ns;
  uint32_t linktype, wirelen;
  std::string data;
};

class Subscriber {
 public:
  Subscriber(const query::QuerySpec& q, size_t max_queue_bytes);
  ~Subscriber();
  // Writer thread: copies the packet into the queue when it matches (counts it when full).
  void offer(uint16_t cls, uint64_t ts_ns, uint32_t linktype, uint32_t wirelen, const uint8_t* data,
             uint32_t caplen);
  // HTTP thread: moves queued packets into `out`, waiting up to `wait` for some.
  void take(std::deque<SubPacket>& out, std::chrono::milliseconds wait);
  uint64_t overflow() const { return overflow_.load(); }
  uint64_t delivered() const { return delivered_.load(); }
  const query::QuerySpec& spec() const { return q_; }

 private:
  bool match(uint64_t ts_ns, uint32_t linktype, const uint8_t* data, uint32_t caplen, uint32_t wirelen);
  query::QuerySpec q_;
  size_t max_bytes_;
  query::PacketFilter filter_;    // after q_: it refers to q_'s text and parse
  packet::FragmentLayers frags_;  // later fragments match as their datagram, as in queries
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<SubPacket> q_pk_;
  size_t bytes_ = 0;
  std::atomic<uint64_t> overflow_{0}, delivered_{0};
};

}  // namespace tmach::server
