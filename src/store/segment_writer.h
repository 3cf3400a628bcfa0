// Writes one segment: a pcap file appended in large sequential writes, with its directory,
// per-packet offsets and indexes built as it goes; seal() writes the sidecar.
//
// Used from the writer thread only. Not copyable.
#pragma once

#include <sys/uio.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "packet/fragment_layers.h"
#include "store/index.h"
#include "store/segment_meta.h"
#include "store/sidecar.h"
#include "util/huge_alloc.h"
#include "util/pcap.h"

namespace tmach::store {

struct WriterOptions {
  uint32_t directory_every = 4096;
  uint64_t directory_bytes = 4ull << 20;
  size_t buffer_bytes = 4u << 20;  // write() in chunks of this size
  uint64_t fsync_bytes = 0;        // 0: no periodic fsync of packet data
  // Lets later fragments be indexed as their datagram (IndexBuilder::add_packet), also when
  // the first fragment is in an earlier segment: one per store writer, shared by its
  // segments. Null: the segment writer keeps its own (fragments within the segment).
  std::shared_ptr<packet::FragmentLayers> fragments;
  size_t expect_packets = 0;  // room reserved for per-packet offsets up front (e.g. the last segment's count)
  // Start the kernel's writeback of every this many bytes written (sync_file_range, no
  // wait), so that seal()'s fdatasync finds little left to write: the writer thread does
  // not drain the rings while it waits there. 0: leave writeback to the kernel.
  uint64_t writeback_bytes = 8ull << 20;
};

class SegmentWriter {
 public:
  // Creates `base + ".pcap"` and writes the file header. Throws std::runtime_error naming the path.
  // When `base` is a segment name (store/layout.h), the name's time stays a lower bound of
  // every timestamp in the file: a packet older than it renames the file being written (to
  // that packet's time, rounded down to the minute, so that input running backwards renames
  // once a minute of its time at most), and seal() renames it to the exact smallest
  // timestamp. A name that is no segment name is never changed.
  // `builder` (empty) may come from an earlier segment (take_builder()): it keeps the memory
  // it grew to, so the next segment does not grow it again from nothing.
  SegmentWriter(std::string base, uint64_t seq, uint32_t linktype, WriterOptions opts,
                IndexBuilder builder = IndexBuilder());
  ~SegmentWriter();
  SegmentWriter(const SegmentWriter&) = delete;
  SegmentWriter& operator=(const SegmentWriter&) = delete;

  // Appends a packet with its index keys (index_keys.h), computed by whoever decoded it.
  void append(uint64_t ts_ns, uint32_t wirelen, const uint8_t* data, uint32_t caplen, const IndexKeys& keys);
  // The same for a packet nobody decoded yet, or an IP fragment: decodes it (by the segment's
  // link type) and indexes it through the writer's fragment memory (WriterOptions::fragments).
  void append(uint64_t ts_ns, uint32_t wirelen, const uint8_t* data, uint32_t caplen);
  // Like append(ts_ns, ..., keys), written in batches by one writev(): `data` may be written
  // from where it is, so it must stay valid and unchanged until flush() (or seal()) returns.
  // The writer thread uses it with frames in the RAM ring, releasing them after the flush.
  void append_in_place(uint64_t ts_ns, uint32_t wirelen, const uint8_t* data, uint32_t caplen,
                       const KeysView& keys);
  void append_in_place(uint64_t ts_ns, uint32_t wirelen, const uint8_t* data, uint32_t caplen,
                       const IndexKeys& keys) {
    append_in_place(ts_ns, wirelen, data, caplen, KeysView::of(keys));
  }
  // True when frames appended in place wait for flush().
  bool has_in_place() const { return n_in_place_ > 0; }
  // True when the in-place batch is full: flush() now (append_in_place() would throw).
  bool in_place_full() const {
    return n_in_place_ > 0 && (gather_used_ + sizeof(util::pcap::RecordHeader) + kCopyBelow > kGatherBytes ||
                               iov_.size() + 3 > kMaxIov);
  }
  // Makes everything appended so far visible to readers of the file (a write(), no fsync).
  void flush();
  // flush() and fdatasync; and the first time, and after a rename, an fsync of the directory,
  // so that the data is found under its name after a power cut.
  void fsync_data();
  // Flushes, fsyncs, writes the sidecar atomically. Returns its size in bytes. With
  // `two_threads` (the last seals at a recorder's end, which nothing else waits to run
  // beside), a helper thread fsyncs and encodes the offsets while this one builds the
  // postings, then serialises some of the index sections: the same sidecar, sooner.
  uint64_t seal(bool two_threads = false);

  uint64_t file_bytes() const { return file_bytes_; }  // including what is still buffered
  uint64_t packets() const { return meta_.packets; }
  // What the store writer's key cap counts: IndexBuilder::entries(), plus kKeyWeight for each
  // distinct key, so that a segment of mostly distinct keys (a scan, a flood of spoofed
  // addresses: ~100 bytes each, where an entry is 4) is sealed before its index outgrows the
  // bound (3 M packets of unique addresses built 963 MiB for a 256 MiB segment).
  static constexpr uint64_t kKeyWeight = 24;
  uint64_t index_entries() const { return builder_.entries() + kKeyWeight * builder_.keys(); }
  // The heap memory the writer holds: its index builder, the packets' offsets and directory,
  // its write buffers (the memory accounting; StoreWriter::index_memory).
  uint64_t memory_bytes() const;
  // After seal(): the memory it held at its peak (memory_bytes() with the postings built and
  // the sidecar writer's buffers, before the offsets were freed).
  uint64_t seal_peak_bytes() const { return seal_peak_bytes_; }
  const SegmentMeta& meta() const { return meta_; }
  const std::string& base() const { return base_; }  // changes when the file is renamed (above)
  uint64_t unsynced_bytes() const { return file_bytes_ - synced_bytes_; }
  // Every byte appended is handed to the kernel (nothing waits in a buffer or a failed write).
  bool all_written() const { return written_bytes_ == file_bytes_; }
  // Queries of the segment being written: a copy of what it holds so far.
  SidecarBody snapshot() const;
  // After a failed write (a full disk): cuts the file back to its last complete record, drops
  // what was not written, and closes it; the writer writes nothing more (its index is not
  // trusted: recovery rebuilds the sidecar from the file). Returns what the file holds.
  struct Cut {
    uint64_t packets = 0;       // complete records in the file
    uint64_t record_bytes = 0;  // their bytes, record headers included (not the file header)
  };
  Cut cut_to_complete();
  bool closed() const { return fd_ < 0; }  // sealed, or cut
  // After seal(): the (empty) index builder, for the next segment.
  IndexBuilder take_builder() { return std::move(builder_); }

 private:
  std::string base_;
  WriterOptions opts_;
  int fd_ = -1;
  uint32_t note_packet(uint64_t ts_ns, uint32_t wirelen, uint32_t caplen);  // its ordinal
  void rename_to(uint64_t name_ts);  // the segment's files get the name with this time
  bool renamable_ = false;           // base_ is a segment name
  uint64_t name_ts_ = 0;             // the time in base_'s name (when renamable_)
  // The name a power cut would leave (the directory was fsynced with it, or it was created with
  // it). A rename to an older name is made durable at once (the directory fsynced) only when
  // it is more than kDurableSlack older than this one: recovery tolerates a segment holding
  // packets up to an hour older than its name (pcap_scan.cpp), so the renames of live capture,
  // a minute back at a segment's start, cost no fsync, and input running backwards one per
  // 30 min of its time. fsync_data() makes the current name durable too.
  uint64_t durable_name_ts_ = 0;
  bool dir_synced_ = false;  // the directory was fsynced since the file was created or renamed
  void sync_file();          // flush() and fdatasync (no directory)
  void write_record(uint64_t ts_ns, uint32_t wirelen, const uint8_t* data, uint32_t caplen);

  std::vector<uint8_t> buf_;  // bytes to write before the in-place frames (file header, copied packets)
  // The in-place batch: one writev() of buf_, then runs of gather_ and large frames by turns.
  // Every record header goes to gather_, and so does a frame below kCopyBelow bytes: a run of
  // small packets is then one iovec, and only a large frame is written from where it lies.
  // Per iovec the kernel pays more than a copy of a small frame costs: writing 600 MB of
  // 80-byte (200-byte) packets as two iovecs each took 518 (384) ms of CPU, copied into a
  // 1 MiB buffer and written whole 353 (322) ms (a throwaway writev benchmark, perf stat).
  static constexpr uint32_t kCopyBelow = 512;
  static constexpr uint64_t kRenameGrain = 60'000'000'000ull;     // a minute
  static constexpr uint64_t kDurableSlack = 1800'000'000'000ull;  // 30 minutes
  static constexpr size_t kGatherBytes = size_t{1} << 20;
  static constexpr size_t kMaxIov = 1024;  // IOV_MAX
  size_t n_in_place_ = 0;
  std::unique_ptr<uint8_t[]> gather_;
  size_t gather_used_ = 0;  // bytes of gather_ in the batch
  size_t gather_run_ = 0;   // where the run not yet in iov_ starts
  std::vector<iovec> iov_;
  uint64_t file_bytes_ = 0;
  uint64_t synced_bytes_ = 0;
  uint64_t written_bytes_ = 0;    // handed to the kernel (write/writev returned)
  uint64_t writeback_start_ = 0;  // writeback started for [0, writeback_start_)
  void start_writeback();
  uint64_t last_dir_offset_ = 0;
  uint64_t next_dir_ord_ = 0;  // every directory_every-th packet has an entry
  SegmentMeta meta_;
  SidecarBody body_;  // the directory filled here (its offsets unused: offsets_)
  // Each packet's file offset: growing by remapping rather than copying (util::HugeVector),
  // as a segment's millions of offsets are tens of MB.
  util::HugeVector<uint32_t> offsets_;
  IndexBuilder builder_;
  bool sealed_ = false;
  uint64_t seal_peak_bytes_ = 0;
};

}  // namespace tmach::store
