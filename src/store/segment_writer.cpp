#include "store/segment_writer.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>

#include "packet/decoder.h"
#include "store/pcap_format.h"

namespace tmach::store {

SegmentWriter::SegmentWriter(std::string base, uint64_t seq, uint32_t linktype, WriterOptions opts,
                             IndexBuilder builder)
    : base_(std::move(base)), opts_(opts), builder_(std::move(builder)) {
  builder_.clear();
  body_.offsets.reserve(opts_.expect_packets);
  std::string path = base_ + ".pcap";
  fd_ = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd_ < 0) throw std::runtime_error(fmt::format("cannot create {}: {}", path, std::strerror(errno)));
  buf_.reserve(opts_.buffer_bytes + 65536 + 16);
  meta_.seq = seq;
  meta_.linktype = linktype;
  PcapFileHeader fh;
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
      } catch (...) {
      }
    }
    ::close(fd_);
  }
}

void SegmentWriter::append(uint64_t ts_ns, uint32_t wirelen, const uint8_t* data, uint32_t caplen) {
  packet::PacketInfo info;
  packet::decode(meta_.linktype, data, caplen, info);
  IndexKeys keys;
  index_keys(info, keys);
  append(ts_ns, wirelen, data, caplen, keys);
}

void SegmentWriter::append(uint64_t ts_ns, uint32_t wirelen, const uint8_t* data, uint32_t caplen,
                           const IndexKeys& keys) {
  uint32_t ord = static_cast<uint32_t>(meta_.packets);
  uint64_t off = file_bytes_;
  if (meta_.packets == 0) {
    meta_.first_ts = meta_.last_ts = ts_ns;
  } else {
    if (ts_ns < meta_.last_ts) meta_.monotonic = false;
    if (ts_ns < meta_.first_ts) meta_.first_ts = ts_ns;
    if (ts_ns > meta_.last_ts) meta_.last_ts = ts_ns;
  }
  if (ord % opts_.directory_every == 0 || off - last_dir_offset_ >= opts_.directory_bytes || ord == 0) {
    body_.directory.push_back(DirEntry{ord, static_cast<uint32_t>(off), ts_ns});
    last_dir_offset_ = off;
  }
  body_.offsets.push_back(static_cast<uint32_t>(off));

  builder_.add(ord, keys);

  PcapRecordHeader rh{static_cast<uint32_t>(ts_ns / 1000000000ull),
                      static_cast<uint32_t>(ts_ns % 1000000000ull), caplen, wirelen};
  const auto* p = reinterpret_cast<const uint8_t*>(&rh);
  buf_.insert(buf_.end(), p, p + sizeof(rh));
  buf_.insert(buf_.end(), data, data + caplen);
  file_bytes_ += sizeof(rh) + caplen;
  meta_.packets++;
  meta_.wire_bytes += wirelen;
  if (buf_.size() >= opts_.buffer_bytes) flush();
  if (opts_.fsync_bytes && unsynced_bytes() >= opts_.fsync_bytes) fsync_data();
}

void SegmentWriter::flush() {
  size_t done = 0;
  while (done < buf_.size()) {
    ssize_t r = ::write(fd_, buf_.data() + done, buf_.size() - done);
    if (r < 0) {
      if (errno == EINTR) continue;
      throw std::runtime_error(fmt::format("write to {}.pcap failed: {}", base_, std::strerror(errno)));
    }
    done += static_cast<size_t>(r);
  }
  buf_.clear();
}

void SegmentWriter::fsync_data() {
  flush();
  ::fdatasync(fd_);
  synced_bytes_ = file_bytes_;
}

uint64_t SegmentWriter::seal() {
  fsync_data();
  meta_.pcap_bytes = file_bytes_;
  body_.index = builder_.finish();
  uint64_t n = write_sidecar(base_ + ".idx", meta_, body_);
  sealed_ = true;
  ::close(fd_);
  fd_ = -1;
  return n;
}

SidecarBody SegmentWriter::snapshot() const {
  SidecarBody b;
  b.directory = body_.directory;
  b.offsets = body_.offsets;
  b.index = builder_.snapshot();
  return b;
}

}  // namespace tmach::store
