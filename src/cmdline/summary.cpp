#include "cmdline/summary.h"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <signal.h>

#include <nlohmann/json.hpp>

#include "packet/packet_info.h"
#include "record/class_stats.h"
#include "util/json_text.h"
#include "util/pcap.h"
#include "util/units.h"

namespace tmach::cli {

namespace {

std::string signal_name(int sig) {
  if (sig == SIGINT) return "SIGINT";
  if (sig == SIGTERM) return "SIGTERM";
  if (sig == SIGHUP) return "SIGHUP";
  return fmt::format("signal {}", sig);
}

// How far an import that ended early got: "after N packets: X of Y bytes of input read, a of
// b inputs complete" (`why`: what ended it).
std::string stopped_line(const store::ImportReport& in, const std::string& why) {
  std::string s = fmt::format("{} after {} packets", why, in.packets_read);
  if (in.bytes_read && in.bytes_total)
    s += fmt::format(": {} of {} bytes of input read", *in.bytes_read, *in.bytes_total);
  else if (in.bytes_read)
    s += fmt::format(": {} bytes of input read (total size unknown)", *in.bytes_read);
  else
    s += ": input size unknown (a pipe)";
  return s + fmt::format(", {} of {} inputs complete", in.files_complete, in.files);
}

}  // namespace

std::string flow_records_lost_line(const FlowOutcome& flows) {
  if (!flows.records_lost) return "";
  return fmt::format("lost: {} flow records of ended connections were not written{}", flows.records_lost,
                     flows.error.empty() ? "" : " (" + flows.error + ")");
}

std::string interrupted_line(const store::ImportReport& in) {
  return stopped_line(in, "interrupted by " + signal_name(in.signal)) + "; what was read is stored";
}

namespace {

nlohmann::json input_json(const store::ImportReport& in) {
  nlohmann::json j = {{"files", in.files},
                      {"files_complete", in.files_complete},
                      {"packets_read", in.packets_read},
                      {"bytes_read", in.bytes_read ? nlohmann::json(*in.bytes_read) : nlohmann::json()},
                      {"bytes_total", in.bytes_total ? nlohmann::json(*in.bytes_total) : nlohmann::json()},
                      {"skipped_already_imported", in.skipped}};
  j["signal"] = in.interrupted() ? nlohmann::json(signal_name(in.signal)) : nlohmann::json();
  return j;
}

}  // namespace

void print_record_summary(std::ostream& os, const record::RecorderTotals& rec,
                          const std::vector<config::ClassConfig>& classes, const store::StoreWriter& writer,
                          const std::vector<capture::SourceStats>& kernel, double seconds, double capture_cpu,
                          bool json, const cluster::ShareFilter* share, const store::ImportReport* input,
                          const record::MemoryReport* memory, const FlowOutcome& flows) {
  const auto& t = rec.tot;
  uint64_t kdrop = 0, kifdrop = 0, krecv = 0, kfreeze = 0, kdamaged = 0;
  for (auto& k : kernel) {
    kfreeze += k.ring_freezes;
    kdamaged += k.ring_damaged;
    kdrop += k.kernel_dropped;
    kifdrop += k.iface_dropped;
    krecv += k.kernel_received;
  }
  const auto& cls = classes;
  // After the writer failed (a full disk), "stored" is what is on disk: complete records;
  // the rest of what was handed to the store is counted as lost.
  std::vector<record::ClassCounters> cc = rec.cls;
  uint64_t lost = 0;
  const bool write_errors = writer.failed() || writer.write_errors() > 0;
  if (write_errors)
    for (size_t i = 0; i < cc.size(); ++i) {
      const auto& w = writer.stats(static_cast<uint16_t>(i));
      uint64_t pk = w.written_packets.load(), by = w.written_bytes.load();
      lost += cc[i].stored_packets - std::min(cc[i].stored_packets, pk);
      cc[i].stored_packets = pk;
      cc[i].stored_bytes = by - pk * sizeof(util::pcap::RecordHeader);
    }
  if (json) {
    nlohmann::json j;
    j["seconds"] = seconds;
    j["packets"] = t.packets;
    j["bytes"] = t.bytes;
    j["connections"] = rec.table.created;
    j["untracked_packets"] = t.untracked;
    // Table pressure: `evicted` connections were ended early to make room for new ones (each
    // still has its flow record); `expired` ended by inactivity; `reopened` closed TCP connections
    // ended by a new SYN on their 5-tuple.
    const auto& ts = rec.table;
    j["connection_table"] = {{"max", rec.table_max},   {"peak", ts.peak},       {"open", rec.table_open},
                             {"expired", ts.expired},  {"evicted", ts.evicted}, {"untracked", ts.untracked},
                             {"reopened", ts.reopened}};
    j["non_ip_packets"] = t.non_ip;
    j["records_cut_to_snaplen"] = t.cut_to_snaplen;
    j["packets_outside_pcap_time"] = t.outside_pcap_time;
    j["null_family_swapped"] = t.null_family_swapped;
    // Wait mode (the default): how often the capture thread found the budget full and waited for
    // the writer; 0 means the writer kept up and the capture side bounded the run.
    j["ring_waits"] = t.ring_waits;
    // CPU seconds per thread: compared with `seconds`, they say which thread bounded the run.
    j["capture_cpu_seconds"] = capture_cpu;
    j["writer_cpu_seconds"] = writer.cpu_seconds();
    j["kernel"] = {{"received", krecv},
                   {"dropped", kdrop},
                   {"interface_dropped", kifdrop},
                   {"ring_freezes", kfreeze},
                   {"ring_damaged", kdamaged}};
    for (int s = 0; s < 5; ++s)
      j["decode"][packet::to_string(static_cast<packet::DecodeStatus>(s))] = t.status[s];
    for (size_t i = 0; i < cls.size(); ++i) {
      const auto& c = cc[i];
      j["classes"][cls[i].name] = record::class_json(cls[i], c, writer, static_cast<uint16_t>(i));
    }
    if (share) j["worker_share"] = share_json(*share);
    j["flow_files_unsealed"] = flows.files_unsealed;
    j["flow_records_lost"] = flows.records_lost;
    if (write_errors)
      j["writer"] = {{"error", writer.error()},
                     {"write_errors", writer.write_errors()},
                     {"lost_packets", lost},
                     {"unsealed", writer.unsealed()}};
    j["interrupted"] = input && input->interrupted();
    if (input) j["input"] = input_json(*input);
    if (memory) j["memory"] = record::memory_json(*memory);
    os << util::json_text(j, 2) << "\n";
    return;
  }
  if (input && input->interrupted()) os << interrupted_line(*input) << "\n";
  // The writer failed (a full disk with nothing left to delete): the import stopped there.
  if (input && !input->interrupted() && writer.failed() && input->files_complete < input->files)
    os << stopped_line(*input, "stopped by the writer's failure") << "; the rest was not read\n";
  if (input && !input->skipped.empty())
    os << fmt::format("skipped (already imported): {}\n", fmt::join(input->skipped, ", "));
  os << fmt::format("recorded {} packets, {} in {:.2f} s ({:.0f} packets/s), {} connections\n", t.packets,
                    util::format_size(t.bytes), seconds,
                    seconds > 0 ? static_cast<double>(t.packets) / seconds : 0.0, rec.table.created);
  {
    uint64_t seen = 0, stored = 0, cut = 0, cut_bytes = 0, drop = 0, ev_segs = 0, ev_bytes = 0;
    for (size_t i = 0; i < cc.size(); ++i) {
      seen += cc[i].seen_packets;
      stored += cc[i].stored_packets;
      cut += cc[i].cut_packets;
      cut_bytes += cc[i].cut_bytes;
      drop += cc[i].dropped_ring_full + cc[i].dropped_too_large;
      const auto& w = writer.stats(static_cast<uint16_t>(i));
      ev_segs += w.segments_evicted.load();
      ev_bytes += w.bytes_evicted.load();
    }
    // Live: what the kernel dropped never reached a class, but it is part of what was sent: the
    // headline counts it (the interface's own drops stay on the "dropped:" line below: a
    // driver's count may include frames the capture still saw).
    // Every packet read is in the headline: stored, cut, dropped, lost to failed writes (the
    // writer's `stored` is what is on disk), or not recorded for a time a pcap cannot hold.
    os << fmt::format("stored {} of {} packets ({} cut off by the connection cutoff, {} dropped", stored,
                      seen + kdrop + t.outside_pcap_time, cut, drop + kdrop);
    if (kdrop) os << fmt::format(": {} by the kernel before tm saw them, {} by tm", kdrop, drop);
    if (lost) os << fmt::format(", {} lost to failed writes", lost);
    if (t.outside_pcap_time) os << fmt::format(", {} stamped outside pcap time", t.outside_pcap_time);
    os << ")";
    if (ev_segs)
      os << fmt::format("; {} segments ({}) evicted by the disk budget or max_age", ev_segs,
                        util::format_size(ev_bytes));
    os << "\n";
    // An import cut by the cutoff surprises who imports evidence: say what it left out and how
    // to keep everything.
    if (input && cut)
      os << fmt::format(
          "note: the connection cutoff left out {} packets ({}) past the first bytes of their "
          "connections; to keep every packet, record with --cutoff none\n",
          cut, util::format_size(cut_bytes));
  }
  os << fmt::format("{:<14} {:>8} {:>12} {:>12} {:>12} {:>12} {:>10} {:>11} {:>9}\n", "class", "cutoff",
                    "seen", "stored", "cut off", "dropped", "conns", "disk", "segments");
  for (size_t i = 0; i < cls.size(); ++i) {
    const auto& c = cc[i];
    const auto& w = writer.stats(static_cast<uint16_t>(i));
    os << fmt::format("{:<14} {:>8} {:>12} {:>12} {:>12} {:>12} {:>10} {:>11} {:>9}\n", cls[i].name,
                      cls[i].cutoff == util::kUnlimited ? "none" : util::format_size(cls[i].cutoff),
                      c.seen_packets, c.stored_packets, c.cut_packets, c.dropped_ring_full, c.connections,
                      util::format_size(w.disk_bytes), w.segments.load());
  }
  // (Seen and cut off count the packets' lengths on the wire, stored what was captured of them:
  // with a snaplen the three do not add up, and each says what it is.)
  os << fmt::format(
      "bytes: seen {} and cut off {} on the wire, stored {} as captured\n", util::format_size(t.bytes),
      [&] {
        uint64_t s = 0;
        for (auto& c : cc) s += c.cut_bytes;
        return util::format_size(s);
      }(),
      [&] {
        uint64_t s = 0;
        for (auto& c : cc) s += c.stored_bytes;
        return util::format_size(s);
      }());
  uint64_t dropped = 0, too_large = 0, kept = 0;
  for (auto& c : cc) {
    dropped += c.dropped_ring_full;
    too_large += c.dropped_too_large;
    kept += c.control_kept;
  }
  os << fmt::format("dropped: ring full {}, kernel {}, interface {}{}\n", dropped, kdrop, kifdrop,
                    kdamaged ? fmt::format(", damaged AF_PACKET ring blocks {}", kdamaged) : std::string());
  if (write_errors)
    os << fmt::format("lost: {} packets handed to the store were not written ({} failed writes{}{})\n", lost,
                      writer.write_errors(), writer.failed() ? "; writer: " : "", writer.error());
  {
    uint64_t n = 0;
    for (size_t i = 0; i < cls.size(); ++i)
      n += writer.stats(static_cast<uint16_t>(i)).segments_unsealed.load();
    const std::string u = writer.unsealed();
    if (n)
      os << fmt::format(
          "not indexed: {} segments stored without a sidecar (queries scan them; the next tm record or tm "
          "serve "
          "on this store indexes them){}{}\n",
          n, u.empty() ? "" : "; ", u);
  }
  if (flows.files_unsealed)
    os << fmt::format(
        "not indexed: {} flow files stored without a sidecar (tm flows reads them; the next tm record or tm "
        "serve on this store indexes them)\n",
        flows.files_unsealed);
  if (flows.records_lost) os << flow_records_lost_line(flows) << "\n";
  if (too_large) os << fmt::format("dropped: larger than a RAM buffer chunk {}\n", too_large);
  os << fmt::format("decode: ok {}, non-IP {}, truncated {}, malformed {}, unsupported link {}\n",
                    t.status[0], t.status[1], t.status[2], t.status[3], t.status[4]);
  if (t.outside_pcap_time)
    os << fmt::format(
        "not recorded: {} packets stamped outside the times a pcap record holds (1970-01-01 to "
        "2106-02-07 06:28:15 UTC)\n",
        t.outside_pcap_time);
  if (t.cut_to_snaplen)
    os << fmt::format(
        "records longer than {} bytes (the most tcpdump and Wireshark read) stored cut to that length: {}\n",
        util::pcap::kSnaplen, t.cut_to_snaplen);
  if (t.null_family_swapped)
    os << fmt::format(
        "BSD loopback frames whose address family was in the other byte order, stored in this "
        "store's (as libpcap reads it): {}\n",
        t.null_family_swapped);
  if (kept) os << fmt::format("TCP control packets kept after the cutoff: {}\n", kept);
  if (rec.table.evicted)
    os << fmt::format(
        "connection table full ({} connections): {} idle connections ended early to make room\n",
        rec.table_max, rec.table.evicted);
  if (t.untracked)
    os << fmt::format("untracked (connection table full, stored without cutoff): {}\n", t.untracked);
  if (memory) {
    const auto& m = *memory;
    os << fmt::format(
        "memory: peak {} resident (RAM buffers {} of {}, connection tables {}, index building {} at its "
        "peak, flow index {} at its peak{})\n",
        util::format_size(m.process.peak_rss), util::format_size(m.ram_buffers),
        util::format_size(m.ram_budget), util::format_size(m.connection_tables),
        util::format_size(m.index_building_peak), util::format_size(m.flow_index_peak),
        m.kernel_rings ? fmt::format(", kernel rings {}", util::format_size(m.kernel_rings)) : std::string());
  }
  if (share)
    os << fmt::format(
        "worker {} of {} (balance {}): {} packets were this worker's share; {} packets ({}) left to the "
        "other "
        "workers, not counted as seen\n",
        share->worker_id(), share->workers(), cluster::scheme_name(share->scheme()), share->kept_packets(),
        share->other_packets(), util::format_size(share->other_bytes()));
}

nlohmann::json share_json(const cluster::ShareFilter& share) {
  return {{"worker_id", share.worker_id()},
          {"workers", share.workers()},
          {"balance", cluster::scheme_name(share.scheme())},
          {"kept_packets", share.kept_packets()},
          {"other_workers_packets", share.other_packets()},
          {"other_workers_bytes", share.other_bytes()}};
}

}  // namespace tmach::cli
