// The packet path: decode, connection lookup, class, cutoff, copy into the class's ring.
// Runs on the capture thread; never blocks on disk (except in "wait" mode for file input,
// where waiting for the writer is what a user replaying a file wants).
#pragma once

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "capture/source.h"
#include "config/config.h"
#include "conn/conn_keyer.h"
#include "conn/conn_table.h"
#include "conn/flow_key.h"
#include "flow/flow_drain.h"
#include "flow/flow_record.h"
#include "packet/packet_info.h"
#include "record/classifier.h"
#include "store/index_keys.h"
#include "store/store_writer.h"

namespace tmach::record {

struct ClassCounters {
  uint64_t seen_packets = 0, seen_bytes = 0;      // wire bytes
  uint64_t stored_packets = 0, stored_bytes = 0;  // handed to the writer (captured bytes)
  uint64_t cut_packets = 0, cut_bytes = 0;        // beyond the connection cutoff
  uint64_t dropped_ring_full = 0;                 // packets lost because the class's RAM buffer was full
  uint64_t dropped_too_large = 0;                 // packets lost because larger than a chunk of it
  uint64_t control_kept = 0;                      // TCP SYN/FIN/RST kept after the cutoff
  uint64_t connections = 0;
  uint64_t connections_cut = 0;
};

struct RecorderCounters {
  uint64_t packets = 0, bytes = 0;
  uint64_t status[5] = {0, 0, 0, 0, 0};  // by packet::DecodeStatus
  uint64_t untracked = 0;                // stored without cutoff: table full of never-evicted entries
  uint64_t ring_waits = 0;               // wait mode: times the capture thread waited for the writer
  uint64_t non_ip = 0;
  // Records longer than util::pcap::kSnaplen (262144, the most tcpdump and Wireshark read) in
  // the input: stored cut to it, as a capture with that snaplen would have them, so that every
  // answer stays readable (libpcap refuses a file holding one).
  uint64_t cut_to_snaplen = 0;
  // Packets stamped where a pcap record's time cannot go (from 2106-02-07 06:28:16 UTC on: its
  // seconds are 32 bits; a pcapng time before 1970 comes saturated there): not recorded, as
  // their segment would hold another time than the index. Not in `packets`.
  uint64_t outside_pcap_time = 0;
  // BSD loopback frames whose address family was in the other byte order than the store's
  // (packet::null_family_swapped): stored with it in the store's, as libpcap reads it there.
  uint64_t null_family_swapped = 0;
};

// The counters of several recorders (a session's shards, one per capture thread) added up.
struct RecorderTotals {
  std::vector<ClassCounters> cls;
  RecorderCounters tot;
  conn::ConnTableStats table;  // peak: the sum of the shards' peaks
  uint64_t table_max = 0, table_open = 0;
};

class Recorder;
RecorderTotals totals(const std::vector<const Recorder*>& recs);
void add(RecorderTotals& to, const RecorderTotals& from);

class Recorder {
 public:
  // Later IP fragments whose first fragment was not found are stored until their address
  // pair's count reaches this many times the cutoff (docs/CONFIG.md, "The cutoff rule").
  static constexpr uint64_t kOrphanAllowance = 64;

  // The packets go to `writer` (as its producer `shard`, of `shards` capture threads), the
  // flow records to `flows` (null: flow records are off). A shard's connection table holds
  // connections.max / shards.
  Recorder(const config::Config& cfg, store::StoreWriter& writer, flow::FlowDrain* flows, uint16_t shard = 0,
           uint16_t shards = 1);

  // `wait_when_full`: block until the writer makes room instead of dropping.
  void process(const capture::RawPacket* pkts, size_t n, bool wait_when_full);
  // Live capture: once the writer has made no progress (given no record back) while a packet
  // waits for `cannot_write` and cannot write (StoreWriter::problem(): a full disk with nothing
  // left to delete; or writes keep failing), or for `no_progress` whatever it says (a disk hung
  // in a write or a sync; once the recording is stopping, set_stopping's limit),
  // that packet and the next ones are dropped
  // (counted, dropped_ring_full) without waiting until a push succeeds again, so the capture
  // thread still counts, serves its commands and stops. A writer that is merely slow — one
  // write or sync taking seconds on a loaded disk — is waited for meanwhile, the kernel's
  // capture buffer holding what comes in, as tcpdump's write() would be. Zero (files): wait
  // for ever.
  void set_stall_limits(std::chrono::nanoseconds cannot_write, std::chrono::nanoseconds no_progress) {
    stall_limit_ = cannot_write;
    hung_limit_ = std::max(cannot_write, no_progress);
  }
  // The session's stop flag (any thread sets it): once it is set, a writer that gives nothing
  // back is waited for `limit` at most (the drain at a stop: the time it has), not no_progress.
  void set_stopping(const std::atomic<bool>* stopping, std::chrono::nanoseconds limit) {
    stopping_ = stopping;
    stop_limit_ = limit;
  }
  // Time seen in `n` packets that are not this recorder's (a worker's split: the other
  // workers' share, left out before process()), the newest at `ts_ns`: the clock and the
  // expiry sweep advance as a single recorder's would, so connections time out, and end at
  // finish(), as they would there (a connection idle at the end ends as a timeout, not a
  // shutdown, whoever saw the last packet).
  void advance(uint64_t ts_ns, size_t n);
  // Ends every connection at shutdown (each leaves its flow record).
  void finish();

  const std::vector<ClassCounters>& class_counters() const { return per_class_; }
  const RecorderCounters& counters() const { return totals_; }
  const conn::ConnTable& table() const { return table_; }
  // Per-connection controls (daemon): only while the capture thread is not in process().
  conn::ConnTable& table_mutable() { return table_; }
  const std::vector<config::ClassConfig>& classes() const { return cfg_.classes; }

  // Dynamic classes (daemon), capture thread only, between batches: the host's new
  // connections get `cls`; its ongoing ones switch now and keep the bytes already counted
  // against the cutoff. Returns the number of ongoing connections switched.
  size_t set_host_class(const packet::IpAddr& host, uint16_t cls);
  // New connections of the host are classified by the config again; ongoing ones keep their class.
  void clear_host_class(const packet::IpAddr& host);
  // An interim flow record now of each ongoing connection `which` picks (capture thread only,
  // between batches), handed to the flow writer at once: a connection put under a control is
  // in the flow records while open, as a class change puts it there. Returns how many.
  size_t report_open(const std::function<bool(const conn::ConnEntry&)>& which);

 private:
  struct AddrHash {
    size_t operator()(const packet::IpAddr& a) const {
      uint64_t x, y;
      std::memcpy(&x, a.b.data(), 8);
      std::memcpy(&y, a.b.data() + 8, 8);
      return static_cast<size_t>((x * 0x9e3779b97f4a7c15ull) ^ (y + (x >> 29)));
    }
  };
  struct AddrEq {
    bool operator()(const packet::IpAddr& a, const packet::IpAddr& b) const { return a.b == b.b; }
  };
  void apply_host_class(conn::ConnEntry& e);
  std::unordered_map<packet::IpAddr, uint16_t, AddrHash, AddrEq> host_class_;

  std::chrono::nanoseconds stall_limit_{0}, hung_limit_{0};  // set_stall_limits()
  const std::atomic<bool>* stopping_ = nullptr;              // set_stopping()
  std::chrono::nanoseconds stop_limit_{0};
  // Writes failed since the writer's last progress that make it one that cannot write.
  static constexpr uint64_t kFailingWrites = 3;
  bool stalled_ = false;  // the last wait hit a stall limit and no push succeeded since

  static constexpr size_t kBatch = 64;
  void handle(const capture::RawPacket& pk, const packet::PacketInfo& info, const conn::KeyedPacket* kp,
              bool wait_when_full);

  // Flow records of the connections ended or reported (interim) since the last hand-over.
  void add_flow(const flow::FlowRecord& r) {
    flows_out_.push_back(r);
    if (flows_out_.size() >= flow::FlowStoreWriter::kBlockRecords) push_flows();
  }
  void push_flows() {
    if (flows_)
      flows_->push(flows_out_);
    else
      flows_out_.clear();
  }
  std::vector<flow::FlowRecord> flows_out_;

  config::Config cfg_;
  store::StoreWriter& writer_;
  flow::FlowDrain* flows_;
  uint16_t shard_;
  std::vector<packet::PacketInfo> infos_ = std::vector<packet::PacketInfo>(kBatch);
  // The batch's connection keys, written in place by the keyer; keyed_[i]: packet i has one (IP).
  std::vector<conn::KeyedPacket> keys_ = std::vector<conn::KeyedPacket>(kBatch);
  std::array<bool, kBatch> keyed_{};
  std::array<capture::RawPacket, kBatch> clipped_{};  // a record cut to kSnaplen, when one was
  // A BSD loopback frame whose family is stored swapped (RecorderCounters::null_family_swapped):
  // its bytes, for the batch (allocated on first use).
  std::array<std::vector<uint8_t>, kBatch> reordered_{};
  std::array<const capture::RawPacket*, kBatch> batch_{};
  Classifier classifier_;
  conn::ConnTable table_;
  conn::ConnKeyer keyer_;        // fragments join their first one's connection, ESP/AH SA pairs one
  store::IndexKeys index_keys_;  // of the packet being pushed (scratch)
  std::vector<ClassCounters> per_class_;
  std::vector<uint64_t> cutoff_;
  RecorderCounters totals_;
  uint64_t now_ = 0;
  uint64_t interim_ns_ = 0;
};

}  // namespace tmach::record
