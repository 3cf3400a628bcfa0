#include "store/recovery.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <stdexcept>

#include "packet/decoder.h"
#include "packet/fragment_layers.h"
#include "store/index.h"
#include "store/layout.h"
#include "store/pcap_scan.h"
#include "store/sidecar.h"
#include "util/file_io.h"

namespace tmach::store {

RecoveryResult recover_segment(SegmentInfo& seg, uint32_t directory_every, uint64_t directory_bytes) {
  RecoveryResult res;
  SegmentMeta meta;
  meta.seq = seg.meta.seq;
  std::vector<DirEntry> directory;
  std::vector<uint32_t> offsets;  // of each record
  IndexBuilder builder;
  packet::FragmentLayers frags;  // fragments within the segment (an earlier one's are not known here)
  uint64_t last_dir = 0;
  packet::PacketInfo info;
  uint32_t linktype = seg.meta.linktype;
  ScanOptions so;
  so.min_ts = name_min_ts(seg.pcap_path());
  ScanResult sr = scan_pcap(
      seg.pcap_path(),
      [&](uint64_t off, uint64_t ts, uint32_t caplen, uint32_t wirelen, const uint8_t* data) {
        uint32_t ord = static_cast<uint32_t>(meta.packets);
        if (ord == 0) {
          meta.first_ts = meta.last_ts = ts;
        } else {
          if (ts < meta.last_ts) meta.monotonic = false;
          meta.first_ts = std::min(meta.first_ts, ts);
          meta.last_ts = std::max(meta.last_ts, ts);
        }
        if (ord == 0 || ord % directory_every == 0 || off - last_dir >= directory_bytes) {
          directory.push_back(DirEntry{ord, static_cast<uint32_t>(off), ts});
          last_dir = off;
        }
        offsets.push_back(static_cast<uint32_t>(off));
        packet::decode(linktype, data, caplen, info);
        builder.add_packet(ord, info, &frags, ts);
        meta.packets++;
        meta.wire_bytes += wirelen;
      },
      so);
  if (!sr.header_ok && sr.file_size > 0) {
    res.not_pcap = true;  // not ours to delete
    return res;
  }
  if (sr.end == ScanResult::End::kDamaged) {
    // Cutting the file there would lose what follows the damage, and a sidecar describes the
    // whole file: the segment stays as it is (queries scan it up to the damage), with its
    // name, a lower bound of its times (what is past the damage is not known).
    res.damaged = fmt::format(
        "{}: damaged record at offset {} ({}): not indexed and not cut (that would lose the {} bytes from "
        "there); queries scan its {} packets before it",
        seg.pcap_path(), sr.valid_end, sr.damage, sr.unread(), sr.packets);
    seg.meta.packets = meta.packets;
    seg.meta.wire_bytes = meta.wire_bytes;
    if (meta.packets) seg.meta.last_ts = meta.last_ts;
    seg.pcap_bytes = sr.file_size;
    return res;
  }
  if (!sr.header_ok || sr.packets == 0) {
    // Nothing recoverable (a crash before the first packet reached disk): remove it.
    std::error_code ec;
    std::filesystem::remove(seg.pcap_path(), ec);
    std::filesystem::remove(seg.idx_path(), ec);
    res.removed_empty = true;
    return res;
  }
  if (sr.valid_end < sr.file_size) {
    if (::truncate(seg.pcap_path().c_str(), static_cast<off_t>(sr.valid_end)) != 0)
      throw std::runtime_error(fmt::format("cannot truncate {}: {}", seg.pcap_path(), std::strerror(errno)));
    res.truncated_bytes = sr.file_size - sr.valid_end;
  }
  meta.linktype = sr.linktype;
  meta.pcap_bytes = sr.valid_end;
  // The name tells the smallest timestamp (a segment being written may have had a mere lower
  // bound, or a crash came between a seal's rename and its sidecar).
  std::filesystem::path base(seg.base);
  auto name = parse_segment_name(base.filename().string());
  if (name && name->first_ns != meta.first_ts) {
    std::string to =
        (base.parent_path() / segment_base_name({meta.seq, meta.first_ts, name->linktype})).string();
    // A refused sidecar under the old name goes first: a sidecar is never left without its pcap.
    std::error_code ec;
    std::filesystem::remove(seg.idx_path(), ec);
    if (::rename(seg.pcap_path().c_str(), (to + ".pcap").c_str()) != 0)
      throw std::runtime_error(
          fmt::format("cannot rename {} to {}.pcap: {}", seg.pcap_path(), to, std::strerror(errno)));
    seg.base = to;
  }
  {
    // The sidecar vouches for the packets, so they reach the disk before it (a recorder that
    // was killed, rather than cut off by a power cut, left them in the page cache). Its write
    // fsyncs the directory, which makes the rename above durable too.
    util::UniqueFd f = util::open_file(seg.pcap_path(), O_RDONLY);
    util::fdatasync_or_throw(f.get(), seg.pcap_path());
  }
  res.sidecar_bytes = write_sidecar(seg.idx_path(), meta, directory, offsets, builder.finish_postings());
  res.packets = meta.packets;
  seg.meta = meta;
  seg.pcap_bytes = meta.pcap_bytes;
  seg.idx_bytes = res.sidecar_bytes;
  seg.state = SegmentInfo::State::kSealed;
  seg.problem.clear();
  return res;
}

std::string check_sealed_sidecar(SegmentInfo& seg) {
  std::string why = verify_sidecar(seg.idx_path());
  if (why.empty()) return {};
  ScanOptions so;
  so.min_ts = name_min_ts(seg.pcap_path());
  ScanResult sr = scan_pcap(seg.pcap_path(), nullptr, so);
  if (sr.header_ok && sr.end == ScanResult::End::kDamaged)
    return fmt::format(
        "{}; not rebuilt: {} has a damaged record at offset {} ({}; a rebuild would cut {} bytes)", why,
        seg.pcap_path(), sr.valid_end, sr.damage, sr.unread());
  if (sr.header_ok && sr.valid_end < sr.file_size)
    return fmt::format(
        "{}; not rebuilt: {} is cut short in a record at offset {} (a rebuild would cut {} bytes)", why,
        seg.pcap_path(), sr.valid_end, sr.unread());
  seg.state = SegmentInfo::State::kBadSidecar;
  seg.problem = why;
  return {};
}

}  // namespace tmach::store
