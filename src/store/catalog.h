// The catalog: what a store directory holds, read from names and sidecar headers only
// (no pcap is read), so adopting a store of thousands of segments takes milliseconds.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "store/segment_meta.h"

namespace tmach::store {

struct SegmentInfo {
  enum class State : uint8_t {
    kSealed,      // pcap + valid sidecar
    kOpen,        // pcap without sidecar: being written, or left by a crash
    kBadSidecar,  // sidecar unreadable (version, checksum, truncation): answered by scanning
  };
  std::string cls;
  std::string base;  // path without extension
  SegmentMeta meta;  // for kOpen/kBadSidecar: seq, first_ts and linktype from the name only
  uint64_t pcap_bytes = 0;
  uint64_t idx_bytes = 0;
  State state = State::kSealed;
  std::string problem;  // why the sidecar was refused
  // false (Catalog::Depth::kNames): a segment with a sidecar is listed as kSealed from its
  // name alone — meta holds only seq, first_ts and linktype, pcap_bytes and idx_bytes are 0
  // — and whoever opens the sidecar checks it (the query executor does).
  bool headers_read = true;
  // kOpen, of the recorder that is writing it (Catalog::writer_running): its name is a lower
  // bound of its packets (the writer renames it before it writes an older one), not a crash's.
  bool name_bound = false;

  std::string pcap_path() const { return base + ".pcap"; }
  std::string idx_path() const { return base + ".idx"; }
  uint64_t disk_bytes() const { return pcap_bytes + idx_bytes; }
  // Time bounds usable for pruning: unknown ends are open. Without a sound sidecar the name's
  // time may be too new by up to kNameSlackNs (a rename a crash lost), unless name_bound.
  uint64_t lo_ts() const {
    if (state == State::kSealed || name_bound) return meta.first_ts;
    return meta.first_ts > kNameSlackNs ? meta.first_ts - kNameSlackNs : 0;
  }
  uint64_t hi_ts() const { return state == State::kSealed && headers_read ? meta.last_ts : UINT64_MAX; }
};

struct Catalog {
  std::string root;
  std::vector<SegmentInfo> segments;  // by class, then sequence number
  std::vector<std::string> foreign;   // files and directories the store did not write
  // Sidecars whose segment's pcap is missing (lost, or removed by hand): their packets are
  // gone. Each as a segment would be listed (its sequence number, time and link type from the
  // name), never in `segments`.
  std::vector<SegmentInfo> missing;
  std::vector<std::string> classes;  // class directories present

  enum class Depth {
    kHeaders,  // every sidecar's header read and checked against its pcap's size
    kNames,    // names only (a query, which opens the sidecars it needs anyway): for a store
               // of many small segments, reading every header was a third of a query's time
  };
  // Scans `root`. Throws std::runtime_error if it does not exist or is not a tm store.
  static Catalog scan(const std::string& root, Depth depth = Depth::kHeaders);
  // A recorder is writing the store and has recovered what a crash left at its start (tm serve
  // asking its own store): every segment without a sidecar is one it writes (name_bound), but
  // those numbered below `first_seq` of its class (the first of its own, AdoptReport::next_seq):
  // left before it began (recovery leaves a damaged one as it is).
  void writer_running(const std::map<std::string, uint64_t>& first_seq) {
    for (auto& s : segments) {
      if (s.state != SegmentInfo::State::kOpen) continue;
      auto it = first_seq.find(s.cls);
      s.name_bound = it == first_seq.end() || s.meta.seq >= it->second;
    }
  }
};

// Throws SidecarError, saying what differs, unless the sidecar's header `m` describes the
// segment `named` (its name's sequence number, time and link type: SegmentInfo::meta as the
// name gives it) whose pcap has `pcap_bytes`: the same size, sequence number and link type, and
// the name's time within the packets' (once sealed the name is the smallest; tm before
// December 2026 named a segment by its first packet). A sidecar of another segment (swapped
// in a mixed-up restore) would answer with that one's times and offsets.
void check_sidecar_fits(const std::string& idx_path, const SegmentMeta& named, const SegmentMeta& m,
                        uint64_t pcap_bytes);

// A segment's name carries its smallest timestamp, so a segment being written is renamed
// when an older packet arrives, and once more when sealed (SegmentWriter). A reader that
// listed it under its former name finds it again here: true when `seg.base` now names the
// files of the same class, sequence number and link type.
bool relocate(SegmentInfo& seg);

// True when `root` holds a STORE marker (or is an empty/new directory).
bool is_store_dir(const std::string& root);
// The STORE marker of this tm's format (kStoreFormat), a line of text.
std::string store_marker_text();
// Throws std::runtime_error, saying what it found, when `root`'s STORE marker is not this
// format's: empty (a crash as it was created), another format, or something else entirely.
void check_store_marker(const std::string& root);
// Throws std::runtime_error, saying what is wrong, unless `root` is a directory holding this
// format's STORE marker: what Catalog::scan() checks first, for readers that list no segment.
void check_store(const std::string& root);
// For a directory without marker: true when it holds what a store would (segments, LOCK, the
// import log), and the message that says how to mark it as a store again.
bool looks_like_store(const std::string& root);
std::string missing_marker_hint(const std::string& root);
// `tm record --repair`: gives a store that lost its STORE marker a new one, after checking
// that it holds a store's files only (at least one segment; top level: class directories
// of segment files, LOCK, the import log, flows/, quarantine/, dynamic classes, VERIFIED).
// Returns what it did ("" when the marker was there); throws std::runtime_error naming the
// first file that does not belong to a store (nothing changed).
std::string repair_store_marker(const std::string& root);

}  // namespace tmach::store
