#include "record/recorder.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <stdexcept>
#include <thread>

#include "conn/flow_key.h"
#include "flow/flow_record.h"
#include "packet/decoder.h"
#include "packet/fragment_layers.h"
#include "util/pcap.h"

namespace tmach::record {

void add(RecorderTotals& t, const RecorderTotals& o) {
  if (t.cls.size() < o.cls.size()) t.cls.resize(o.cls.size());
  for (size_t i = 0; i < o.cls.size(); ++i) {
    ClassCounters& a = t.cls[i];
    const ClassCounters& b = o.cls[i];
    a.seen_packets += b.seen_packets;
    a.seen_bytes += b.seen_bytes;
    a.stored_packets += b.stored_packets;
    a.stored_bytes += b.stored_bytes;
    a.cut_packets += b.cut_packets;
    a.cut_bytes += b.cut_bytes;
    a.dropped_ring_full += b.dropped_ring_full;
    a.dropped_too_large += b.dropped_too_large;
    a.control_kept += b.control_kept;
    a.connections += b.connections;
    a.connections_cut += b.connections_cut;
  }
  const RecorderCounters& c = o.tot;
  t.tot.packets += c.packets;
  t.tot.bytes += c.bytes;
  for (size_t i = 0; i < std::size(c.status); ++i) t.tot.status[i] += c.status[i];
  t.tot.untracked += c.untracked;
  t.tot.ring_waits += c.ring_waits;
  t.tot.non_ip += c.non_ip;
  t.tot.cut_to_snaplen += c.cut_to_snaplen;
  t.tot.outside_pcap_time += c.outside_pcap_time;
  t.tot.null_family_swapped += c.null_family_swapped;
  const conn::ConnTableStats& s = o.table;
  t.table.created += s.created;
  t.table.expired += s.expired;
  t.table.evicted += s.evicted;
  t.table.untracked += s.untracked;
  t.table.reopened += s.reopened;
  t.table.hand_steps += s.hand_steps;
  t.table.peak += s.peak;
  t.table_max += o.table_max;
  t.table_open += o.table_open;
}

RecorderTotals totals(const std::vector<const Recorder*>& recs) {
  RecorderTotals t;
  for (const Recorder* r : recs)
    add(t, RecorderTotals{r->class_counters(), r->counters(), r->table().stats(),
                          r->table().max_connections(), r->table().size()});
  return t;
}

Recorder::Recorder(const config::Config& cfg, store::StoreWriter& writer, flow::FlowDrain* flows,
                   uint16_t shard, uint16_t shards)
    : cfg_(cfg),
      writer_(writer),
      flows_(flows),
      shard_(shard),
      classifier_(cfg.classes),
      table_(std::max<size_t>(16, cfg.max_connections / std::max<uint16_t>(1, shards)), cfg.timeouts,
             [this](const conn::ConnEntry& e, conn::EndReason why) {
               if (e.cut) per_class_[e.cls].connections_cut++;
               flow::EndState st = why == conn::EndReason::kShutdown ? flow::EndState::kShutdown
                                   : e.rst_seen                      ? flow::EndState::kRst
                                   : e.fin_seen == 3                 ? flow::EndState::kFin
                                                                     : flow::EndState::kTimeout;
               if (why == conn::EndReason::kShutdown && e.closed())
                 st = e.rst_seen ? flow::EndState::kRst : flow::EndState::kFin;
               add_flow(flow::make_record(e, st));
             }),
      per_class_(cfg.classes.size()) {
  for (const auto& c : cfg_.classes) cutoff_.push_back(c.cutoff);
  interim_ns_ = std::max<uint64_t>(1, cfg_.flow_interim_ns);
  if (cfg_.classes.size() > conn::kMaxClasses)
    throw std::runtime_error(fmt::format("at most {} classes", conn::kMaxClasses));
}

void Recorder::process(const capture::RawPacket* pkts, size_t n, bool wait_when_full) {
  // Three passes per small batch: decode and hash everything, asking the CPU to fetch each
  // connection's index slot; then, those slots loaded, ask for the entries they name; then
  // do the lookups once those cache misses are under way.
  for (size_t base = 0; base < n; base += kBatch) {
    const size_t in_batch = std::min(kBatch, n - base);
    size_t m = 0;           // the batch's packets to record (batch_[0..m))
    uint64_t clock = now_;  // as handle() will advance it: the fragment and SA memories' time
    for (size_t j = 0; j < in_batch; ++j) {
      const size_t i = m;
      batch_[i] = &pkts[base + j];
      if (batch_[i]->ts_ns >= util::pcap::kTimeLimitNs) [[unlikely]] {
        totals_.outside_pcap_time++;  // (a pcapng time past 2106, or before 1970: saturated)
        continue;
      }
      ++m;
      if (batch_[i]->caplen > util::pcap::kSnaplen) [[unlikely]] {
        clipped_[i] = *batch_[i];
        clipped_[i].wirelen = std::max(batch_[i]->wirelen, batch_[i]->caplen);
        clipped_[i].caplen = util::pcap::kSnaplen;
        batch_[i] = &clipped_[i];
        totals_.cut_to_snaplen++;
      }
      if (batch_[i]->linktype == packet::kLinkNull &&
          packet::null_family_swapped(batch_[i]->data, batch_[i]->caplen)) [[unlikely]] {
        std::vector<uint8_t>& bytes = reordered_[i];
        bytes.assign(batch_[i]->data, batch_[i]->data + batch_[i]->caplen);
        uint32_t family;
        std::memcpy(&family, bytes.data(), 4);
        family = __builtin_bswap32(family);
        std::memcpy(bytes.data(), &family, 4);
        clipped_[i] = *batch_[i];
        clipped_[i].data = bytes.data();
        batch_[i] = &clipped_[i];
        totals_.null_family_swapped++;
      }
      const capture::RawPacket& pk = *batch_[i];
      packet::decode(pk.linktype, pk.data, pk.caplen, infos_[i]);
      clock = std::max(clock, pk.ts_ns);
      keyed_[i] = keyer_.key(infos_[i], clock, keys_[i]);
      if (keyed_[i]) table_.prefetch(keys_[i].hash);
    }
    for (size_t i = 0; i < m; ++i)
      if (keyed_[i]) table_.prefetch_entry(keys_[i].hash);
    for (size_t i = 0; i < m; ++i)
      handle(*batch_[i], infos_[i], keyed_[i] ? &keys_[i] : nullptr, wait_when_full);
  }
  table_.expire_step(now_, 2 * n + 64);
  push_flows();  // what ended in this batch, on its way
}

void Recorder::handle(const capture::RawPacket& pk, const packet::PacketInfo& info,
                      const conn::KeyedPacket* kp, bool wait_when_full) {
  totals_.packets++;
  totals_.bytes += pk.wirelen;
  if (pk.ts_ns > now_) now_ = pk.ts_ns;  // the clock: the newest time seen, never backwards
  totals_.status[static_cast<int>(info.status)]++;

  uint16_t cls;
  bool store = true;
  if (kp) {
    bool created;
    // A TCP SYN without ACK opens a connection: its sequence number (folded) tells a new one on
    // a closed connection's 5-tuple from the same SYN sent again (ConnTable::find_or_insert).
    const packet::IpLayer& inner = *info.inner();
    int32_t opening = -1;
    if (inner.proto == packet::kProtoTcp && inner.has_l4 &&
        (inner.tcp_flags & (packet::kTcpSyn | packet::kTcpAck)) == packet::kTcpSyn) [[unlikely]] {
      const uint8_t* s = pk.data + inner.l4_offset + 4;  // (has_l4: the whole TCP header was captured)
      opening = conn::fold_syn_seq(static_cast<uint32_t>(s[0]) << 24 | static_cast<uint32_t>(s[1]) << 16 |
                                   static_cast<uint32_t>(s[2]) << 8 | s[3]);
    }
    conn::ConnEntry* e = table_.find_or_insert(*kp, pk.ts_ns, now_, created, opening);
    if (e) {
      if (created) {
        if (opening >= 0) e->syn_seq = static_cast<uint16_t>(opening) & 0xffffu;
        e->cls = classifier_.classify(pk.linktype, pk.data, pk.caplen, pk.wirelen);
        if (!host_class_.empty()) apply_host_class(*e);
        per_class_[e->cls].connections++;
      }
      cls = e->cls;
      const packet::IpLayer& l = *info.inner();
      int dir = (kp->src_is_a == static_cast<bool>(e->orig_is_a)) ? 0 : 1;
      // A later fragment whose first fragment was not found is kept up to kOrphanAllowance
      // times the cutoff: its connection is not known (it is keyed by its addresses alone, with
      // every other such fragment between them, and their sum must not cut connections that
      // are far below), yet a flood of such fragments is not stored whole.
      const uint64_t limit = !kp->orphan_fragment                           ? cutoff_[cls]
                             : cutoff_[cls] > UINT64_MAX / kOrphanAllowance ? UINT64_MAX
                                                                            : cutoff_[cls] * kOrphanAllowance;
      if (!e->suspend_cutoff && e->bytes() >= limit) {
        store = false;
        if (cfg_.keep_tcp_control && l.proto == packet::kProtoTcp && l.has_l4 && l.l4_payload == 0 &&
            (l.tcp_flags & (packet::kTcpSyn | packet::kTcpFin | packet::kTcpRst))) {
          store = true;
          e->control_after_cut = 1;
          per_class_[cls].control_kept++;
        }
        if (!e->cut) {
          e->cut = 1;
          e->cutoff_ts = pk.ts_ns;
          // Packets stored before this one but later in time (input out of order): the
          // stored packets reach past cutoff_ts, as with a control packet kept after it.
          if (e->last_ts > pk.ts_ns) e->control_after_cut = 1;
        }
      }
      e->pkts[dir]++;
      e->wire[dir] += pk.wirelen;
      if (pk.ts_ns > e->last_ts) e->last_ts = pk.ts_ns;
      if (pk.ts_ns < e->first_ts) e->first_ts = pk.ts_ns;
      const uint64_t before = e->active_clock;
      e->active_clock = now_;
      if (kp->sa_partner) [[unlikely]]
        conn::note_sa_partner(*e, kp->sa_partner);
      if (l.proto == packet::kProtoTcp && l.has_l4) {
        e->tcp_flags[dir] |= l.tcp_flags;
        if (l.tcp_flags & packet::kTcpFin) e->fin_seen |= static_cast<uint8_t>(1 << dir);
        if (l.tcp_flags & packet::kTcpRst) e->rst_seen = 1;
      }
      if (store) e->stored++;
      // A long-lived connection is visible in the flow records while open: an interim record
      // each time its age on the clock (which never goes backwards) passes a multiple of the
      // interval, i.e. floor(age / interval) grew since its last packet. (The first test
      // spares short connections the division.)
      if (now_ - e->born_clock >= interim_ns_ &&
          (before - e->born_clock) % interim_ns_ + (now_ - before) >= interim_ns_)
        add_flow(flow::make_record(*e, flow::EndState::kOpen));
    } else {
      totals_.untracked++;
      cls = classifier_.classify(pk.linktype, pk.data, pk.caplen, pk.wirelen);
    }
  } else {
    // No IP layer (ARP, LLDP, undecodable frames): stored as they come, per class filter.
    totals_.non_ip++;
    cls = classifier_.classify(pk.linktype, pk.data, pk.caplen, pk.wirelen);
  }

  ClassCounters& cc = per_class_[cls];
  cc.seen_packets++;
  cc.seen_bytes += pk.wirelen;
  if (!store) {
    cc.cut_packets++;
    cc.cut_bytes += pk.wirelen;
    return;
  }
  // The index keys come from the decode done above: the writer only copies and indexes.
  // IP fragments (rare) go without: the writer decodes them and indexes a later fragment as
  // its datagram through its fragment memory, which must see every fragment in order
  // (IndexBuilder::add_packet) — one place for that, shared with recovery.
  // The keys go straight into the ring record. A refused push (rare) has them in index_keys_
  // (only the ring's fallback refuses, and it computed them there): for too_large() and the
  // retries, without a second index_keys().
  const bool whole = packet::fragmented_layer(info) < 0;
  bool pushed =
      whole ? writer_.push_decoded(shard_, cls, pk.ts_ns, pk.linktype, pk.wirelen, pk.data, pk.caplen, info,
                                   index_keys_)
            : writer_.push(shard_, cls, pk.ts_ns, pk.linktype, pk.wirelen, pk.data, pk.caplen, nullptr);
  bool never = false;
  if (!pushed) {
    const store::IndexKeys* keys = whole ? &index_keys_ : nullptr;
    never = writer_.too_large(cls, pk.caplen, keys);
    if (!never && wait_when_full && !stalled_) {
      // The stall is timed from the writer's last progress, not from the start of the wait:
      // room comes back a chunk at a time (the budget's eighth), which a slow but working
      // writer can take longer than the limit to free (a 1 MiB budget at 20 ms a frame: 2.4 s).
      auto since = std::chrono::steady_clock::now();
      uint64_t progress = writer_.ram_released(cls);
      uint64_t write_errors = writer_.write_errors();
      // The writer cannot write: it says so (a full disk with nothing left to delete), or its
      // writes keep failing since its last progress (a file system gone read-only, a class
      // directory removed: room is found, yet every write fails, a few a millisecond; one
      // error it then makes room for, a full disk's, is no such failure).
      auto cannot_write = [&] {
        return !writer_.problem().empty() || writer_.write_errors() - write_errors >= kFailingWrites;
      };
      while (!pushed && writer_.error().empty()) {
        if (stall_limit_.count()) {
          const auto now = std::chrono::steady_clock::now();
          const bool stopping = stopping_ && stopping_->load(std::memory_order_relaxed);
          if (const uint64_t p = writer_.ram_released(cls); p != progress) {
            progress = p;
            since = now;
            write_errors = writer_.write_errors();
          } else if (now - since > stall_limit_ &&
                     (now - since > (stopping ? stop_limit_ : hung_limit_) || cannot_write())) {
            stalled_ = true;
            break;
          }
        }
        totals_.ring_waits++;
        std::this_thread::sleep_for(std::chrono::microseconds(50));
        pushed = writer_.push(shard_, cls, pk.ts_ns, pk.linktype, pk.wirelen, pk.data, pk.caplen, keys);
      }
    }
  }
  if (pushed) {
    stalled_ = false;
    cc.stored_packets++;
    cc.stored_bytes += pk.caplen;
  } else if (never) {
    cc.dropped_too_large++;
  } else {
    cc.dropped_ring_full++;
  }
}

void Recorder::advance(uint64_t ts_ns, size_t n) {
  if (n == 0) return;
  if (ts_ns < util::pcap::kTimeLimitNs && ts_ns > now_) now_ = ts_ns;  // (as handle() does)
  table_.expire_step(now_, 2 * n);
  push_flows();
}

void Recorder::finish() {
  table_.end_all(now_);
  push_flows();
}

void Recorder::apply_host_class(conn::ConnEntry& e) {
  auto it = host_class_.find(e.key.a);
  if (it == host_class_.end()) it = host_class_.find(e.key.b);
  if (it != host_class_.end()) e.cls = it->second;
}

size_t Recorder::set_host_class(const packet::IpAddr& host, uint16_t cls) {
  host_class_[host] = cls;
  size_t moved = 0;
  table_.for_each_mutable([&](conn::ConnEntry& e) {
    if ((AddrEq{}(e.key.a, host) || AddrEq{}(e.key.b, host)) && e.cls != cls) {
      e.cls = cls;
      e.class_moved = 1;
      // An interim record says so at once: the newest record of a connection names its class,
      // and where its packets may be (its former class's segments too).
      add_flow(flow::make_record(e, flow::EndState::kOpen));
      ++moved;
    }
  });
  return moved;
}

void Recorder::clear_host_class(const packet::IpAddr& host) { host_class_.erase(host); }

size_t Recorder::report_open(const std::function<bool(const conn::ConnEntry&)>& which) {
  size_t n = 0;
  table_.for_each([&](const conn::ConnEntry& e) {
    if (!which(e)) return;
    add_flow(flow::make_record(e, flow::EndState::kOpen));
    ++n;
  });
  push_flows();
  return n;
}

}  // namespace tmach::record
