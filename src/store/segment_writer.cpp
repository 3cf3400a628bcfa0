#include "store/segment_writer.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <future>
#include <stdexcept>

#include "packet/decoder.h"
#include "store/layout.h"
#include "util/file_io.h"
#include "util/pcap.h"

namespace tmach::store {

SegmentWriter::SegmentWriter(std::string base, uint64_t seq, uint32_t linktype, WriterOptions opts,
                             IndexBuilder builder)
    : base_(std::move(base)), opts_(std::move(opts)), builder_(std::move(builder)) {
  if (!opts_.fragments) opts_.fragments = std::make_shared<packet::FragmentLayers>();
  builder_.clear();
  offsets_.reserve(opts_.expect_packets);
  std::string path = base_ + ".pcap";
  fd_ = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd_ < 0) {
    const int e = errno;
    throw util::IoError(fmt::format("cannot create {}: {}", path, std::strerror(e)), e);
  }
  // (buf_ grows only where packets are copied rather than written in place — fragments,
  // recovery: reserving its 4 MiB up front cost every open segment that much resident memory.)
  meta_.seq = seq;
  meta_.linktype = linktype;
  if (auto n = parse_segment_name(std::filesystem::path(base_).filename().string())) {
    renamable_ = true;
    name_ts_ = durable_name_ts_ = n->first_ns;
  }
  util::pcap::FileHeader fh;
  fh.linktype = linktype;
  const auto* p = reinterpret_cast<const uint8_t*>(&fh);
  buf_.insert(buf_.end(), p, p + sizeof(fh));
  file_bytes_ = sizeof(fh);
}

SegmentWriter::~SegmentWriter() {
  if (fd_ >= 0) {
    if (!sealed_) {
      try {
        flush();
      } catch (const std::exception& e) {  // (the data is lost either way; say so)
        spdlog::error("{}", e.what());
      }
    }
    ::close(fd_);
  }
}

// Per packet, from the appends below only (this file): inlined there.
[[gnu::always_inline]] inline uint32_t SegmentWriter::note_packet(uint64_t ts_ns, uint32_t wirelen,
                                                                  uint32_t caplen) {
  if (ts_ns < name_ts_ && renamable_) rename_to(ts_ns - ts_ns % kRenameGrain);  // (throws before any change)
  uint32_t ord = static_cast<uint32_t>(meta_.packets);
  uint64_t off = file_bytes_;
  if (meta_.packets == 0) {
    meta_.first_ts = meta_.last_ts = ts_ns;
  } else {
    if (ts_ns < meta_.last_ts) meta_.monotonic = false;
    if (ts_ns < meta_.first_ts) meta_.first_ts = ts_ns;
    if (ts_ns > meta_.last_ts) meta_.last_ts = ts_ns;
  }
  if (ord == next_dir_ord_ ||
      off - last_dir_offset_ >= opts_.directory_bytes) {               // (ordinal 0 is the first target)
    if (ord == next_dir_ord_) next_dir_ord_ += opts_.directory_every;  // (a division per packet otherwise)
    body_.directory.push_back(DirEntry{ord, static_cast<uint32_t>(off), ts_ns});
    last_dir_offset_ = off;
  }
  offsets_.push_back(static_cast<uint32_t>(off));
  file_bytes_ += sizeof(util::pcap::RecordHeader) + caplen;
  meta_.packets++;
  meta_.wire_bytes += wirelen;
  return ord;
}

void SegmentWriter::append(uint64_t ts_ns, uint32_t wirelen, const uint8_t* data, uint32_t caplen,
                           const IndexKeys& keys) {
  if (n_in_place_) flush();  // (before the packet is counted: a failed flush leaves it unappended)
  builder_.add(note_packet(ts_ns, wirelen, caplen), keys);
  write_record(ts_ns, wirelen, data, caplen);
}

void SegmentWriter::append(uint64_t ts_ns, uint32_t wirelen, const uint8_t* data, uint32_t caplen) {
  // Nobody decoded it (recovery, tests) or it is an IP fragment (the recorder leaves those to
  // the writer's fragment memory): decode, and index it as its datagram.
  if (n_in_place_) flush();  // (as above)
  packet::PacketInfo info;
  packet::decode(meta_.linktype, data, caplen, info);
  builder_.add_packet(note_packet(ts_ns, wirelen, caplen), info, opts_.fragments.get(), ts_ns);
  write_record(ts_ns, wirelen, data, caplen);
}

void SegmentWriter::write_record(uint64_t ts_ns, uint32_t wirelen, const uint8_t* data, uint32_t caplen) {
  // (No in-place batch is pending here: buf_ would be part of its writev. The appends flush
  // it before counting the packet, so that a flush that fails leaves the packet out whole.)
  const util::pcap::RecordHeader rh = util::pcap::record_header(ts_ns, caplen, wirelen);
  const auto* p = reinterpret_cast<const uint8_t*>(&rh);
  buf_.insert(buf_.end(), p, p + sizeof(rh));
  buf_.insert(buf_.end(), data, data + caplen);
  if (buf_.size() >= opts_.buffer_bytes) flush();
  if (opts_.fsync_bytes && unsynced_bytes() >= opts_.fsync_bytes) fsync_data();
}

void SegmentWriter::append_in_place(uint64_t ts_ns, uint32_t wirelen, const uint8_t* data, uint32_t caplen,
                                    const KeysView& keys) {
  if (in_place_full()) throw std::logic_error("SegmentWriter: in-place batch full, flush() first");
  if (n_in_place_ == 0) {
    if (!gather_) {
      gather_ = std::make_unique_for_overwrite<uint8_t[]>(kGatherBytes);
      iov_.reserve(kMaxIov);
    }
    iov_.clear();
    if (!buf_.empty()) iov_.push_back(iovec{buf_.data(), buf_.size()});
    gather_used_ = gather_run_ = 0;
  }
  builder_.add(note_packet(ts_ns, wirelen, caplen), keys);
  ++n_in_place_;
  const util::pcap::RecordHeader rh = util::pcap::record_header(ts_ns, caplen, wirelen);
  std::memcpy(gather_.get() + gather_used_, &rh, sizeof(rh));
  gather_used_ += sizeof(rh);
  if (caplen < kCopyBelow) {
    std::memcpy(gather_.get() + gather_used_, data, caplen);
    gather_used_ += caplen;
  } else {
    iov_.push_back(iovec{gather_.get() + gather_run_, gather_used_ - gather_run_});
    iov_.push_back(iovec{const_cast<uint8_t*>(data), caplen});
    gather_run_ = gather_used_;
  }
  if (opts_.fsync_bytes && unsynced_bytes() >= opts_.fsync_bytes) fsync_data();
}

void SegmentWriter::flush() {
  // A failed write (a full disk) leaves what it did not write pending: flush() again resumes
  // where it stopped, so the writer can make room and retry without losing a byte. (The
  // file's offset is where the last write ended.)
  if (n_in_place_) {
    // One writev() for buf_ and the batch; a short write resumes mid-iovec.
    if (gather_used_ > gather_run_) {
      iov_.push_back(iovec{gather_.get() + gather_run_, gather_used_ - gather_run_});
      gather_run_ = gather_used_;  // (pushed once, if this flush fails and is called again)
    }
    size_t first = 0;  // iov_[first] is the first entry not written in whole
    const size_t n = iov_.size();
    while (first < n) {
      ssize_t r = ::writev(fd_, iov_.data() + first, static_cast<int>(n - first));  // (n <= kMaxIov)
      if (r < 0) {
        const int e = errno;
        if (e == EINTR) continue;
        iov_.erase(iov_.begin(), iov_.begin() + static_cast<std::ptrdiff_t>(first));
        throw util::IoError(fmt::format("write to {}.pcap failed: {}", base_, std::strerror(e)), e);
      }
      written_bytes_ += static_cast<uint64_t>(r);
      auto done = static_cast<size_t>(r);
      while (first < n && done >= iov_[first].iov_len) {
        done -= iov_[first].iov_len;
        ++first;
      }
      if (first < n) {
        iov_[first].iov_base = static_cast<uint8_t*>(iov_[first].iov_base) + done;
        iov_[first].iov_len -= done;
      }
    }
    iov_.clear();
    n_in_place_ = 0;
    buf_.clear();
    start_writeback();
    return;
  }
  size_t done = 0;
  while (done < buf_.size()) {
    ssize_t r = ::write(fd_, buf_.data() + done, buf_.size() - done);
    if (r < 0) {
      const int e = errno;
      if (e == EINTR) continue;
      buf_.erase(buf_.begin(), buf_.begin() + static_cast<std::ptrdiff_t>(done));
      throw util::IoError(fmt::format("write to {}.pcap failed: {}", base_, std::strerror(e)), e);
    }
    done += static_cast<size_t>(r);
    written_bytes_ += static_cast<uint64_t>(r);
  }
  buf_.clear();
  start_writeback();
}

void SegmentWriter::start_writeback() {
  if (!opts_.writeback_bytes || written_bytes_ - writeback_start_ < opts_.writeback_bytes) return;
  // Best effort: an error here only means fdatasync() will have more to do.
  ::sync_file_range(fd_, static_cast<off_t>(writeback_start_),
                    static_cast<off_t>(written_bytes_ - writeback_start_), SYNC_FILE_RANGE_WRITE);
  writeback_start_ = written_bytes_;
}

void SegmentWriter::sync_file() {
  flush();
  util::fdatasync_or_throw(fd_, base_ + ".pcap");
  synced_bytes_ = file_bytes_;
}

void SegmentWriter::fsync_data() {
  sync_file();
  // The data synced is found after a power cut only under a name that survives it: once per
  // segment, and once after each rename since.
  if (dir_synced_) return;
  util::fsync_dir(util::parent_dir(base_));
  dir_synced_ = true;
  durable_name_ts_ = name_ts_;
}

void SegmentWriter::rename_to(uint64_t name_ts) {
  SegmentName n{meta_.seq, name_ts, meta_.linktype};
  std::string to = (std::filesystem::path(base_).parent_path() / segment_base_name(n)).string();
  if (::rename((base_ + ".pcap").c_str(), (to + ".pcap").c_str()) != 0) {
    const int e = errno;
    throw util::IoError(fmt::format("cannot rename {}.pcap to {}.pcap: {}", base_, to, std::strerror(e)), e);
  }
  base_ = std::move(to);
  name_ts_ = name_ts;
  dir_synced_ = false;
  // Lost, this rename would leave a name newer than packets the file may hold after the power
  // cut: beyond what recovery tolerates, it is made durable now (see durable_name_ts_).
  if (name_ts_ + kDurableSlack < durable_name_ts_) {
    util::fsync_dir(util::parent_dir(base_));
    dir_synced_ = true;
    durable_name_ts_ = name_ts_;
  }
}

uint64_t SegmentWriter::seal(bool two_threads) {
  // With two threads, a helper (a std::async task, joined below) waits for the data to reach
  // the disk and encodes the offsets while this thread builds the postings, and
  // write_sidecar then splits the index sections between the two. The helper reads fd_ and
  // offsets_, which nothing changes until it is joined. The sidecar is the same.
  std::future<EncodedOffsets> ahead;
  if (two_threads) {
    flush();
    ahead = std::async(std::launch::async,
                       [fd = fd_, pcap = base_ + ".pcap", path = base_ + ".idx", &offsets = offsets_] {
                         util::fdatasync_or_throw(fd, pcap);  // (rethrown by get() below)
                         return encode_offsets(path, offsets);
                       });
  } else {
    sync_file();  // (the sidecar's write fsyncs the directory)
  }
  // The bitmaps are serialised straight from the builder's postings (no Roaring objects);
  // the postings stay with the builder, whose memory the next segment reuses.
  const PostingIndex& postings = builder_.finish_postings(two_threads);
  EncodedOffsets offsets = two_threads ? ahead.get() : encode_offsets(base_ + ".idx", offsets_);
  synced_bytes_ = file_bytes_;
  meta_.pcap_bytes = file_bytes_;
  // The name tells the smallest timestamp exactly once sealed (the sidecar's rename below
  // fsyncs the directory, which makes this rename durable too).
  if (renamable_ && meta_.packets > 0 && meta_.first_ts != name_ts_) rename_to(meta_.first_ts);
  uint64_t n =
      write_sidecar(base_ + ".idx", meta_, body_.directory, std::move(offsets), postings, two_threads);
  seal_peak_bytes_ = memory_bytes() + sidecar_write_memory(postings, two_threads);
  // Free the directory and offsets here, on the thread that seals (the sealer thread), rather
  // than in the destructor, which runs on the writer thread.
  body_ = SidecarBody{};
  offsets_ = util::HugeVector<uint32_t>{};
  sealed_ = true;
  ::close(fd_);
  fd_ = -1;
  return n;
}

SegmentWriter::Cut SegmentWriter::cut_to_complete() {
  Cut cut;
  if (fd_ < 0) return cut;
  constexpr uint64_t kHeader = sizeof(util::pcap::FileHeader);
  struct stat st;
  uint64_t on_disk = ::fstat(fd_, &st) == 0 ? static_cast<uint64_t>(st.st_size) : written_bytes_;
  // Record i ends where record i+1 starts; the last one at file_bytes_.
  const auto& off = offsets_;
  uint64_t end = std::min(on_disk, kHeader);
  if (file_bytes_ <= on_disk) {
    cut.packets = off.size();
    end = file_bytes_;
  } else if (!off.empty()) {
    auto it = std::upper_bound(off.begin() + 1, off.end(), on_disk);
    cut.packets = static_cast<uint64_t>(it - (off.begin() + 1));
    if (cut.packets) end = off[cut.packets];
  }
  if (on_disk > end && ::ftruncate(fd_, static_cast<off_t>(end)) != 0)
    spdlog::warn("cannot cut {}.pcap back to its last complete record: {}", base_, std::strerror(errno));
  cut.record_bytes = end > kHeader ? end - kHeader : 0;
  ::close(fd_);
  fd_ = -1;
  buf_.clear();
  iov_.clear();
  n_in_place_ = 0;
  gather_used_ = gather_run_ = 0;
  file_bytes_ = written_bytes_ = end;
  return cut;
}

uint64_t SegmentWriter::memory_bytes() const {
  return builder_.memory_bytes() + uint64_t{offsets_.capacity()} * sizeof(uint32_t) +
         uint64_t{body_.directory.capacity()} * sizeof(DirEntry) + buf_.capacity() +
         (gather_ ? kGatherBytes : 0) + uint64_t{iov_.capacity()} * sizeof(iovec);
}

SidecarBody SegmentWriter::snapshot() const {
  SidecarBody b;
  b.directory = body_.directory;
  b.offsets.assign(offsets_.begin(), offsets_.end());
  b.index = builder_.snapshot();
  return b;
}

}  // namespace tmach::store
