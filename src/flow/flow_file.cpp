#include "flow/flow_file.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <pthread.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zstd.h>

#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <fstream>
#include <iterator>
#include <mutex>
#include <stdexcept>
#include <thread>
#include <utility>

#include "store/sidecar.h"
#include "util/crc32.h"
#include "util/file_io.h"

namespace tmach::flow {
namespace {

constexpr char kMagic[8] = {'T', 'M', 'F', 'L', 'O', 'W', 0, 1};
constexpr uint32_t kBlockMagic = 0x4b4f4c42;  // "BLOK"
constexpr size_t kBlockRecords = 4096;

}  // namespace

// The write-behind thread: blocks in order, a few at most waiting (the producer waits beyond
// that, so memory stays bounded), emptied blocks handed back for reuse.
class FlowFileWriter::Behind {
 public:
  explicit Behind(FlowFileWriter& w) : w_(w), t_([this] { run(); }) {}
  ~Behind() {
    try {
      finish();
    } catch (const std::exception& e) {  // (finish() reports it when called first)
      spdlog::error("flow file writer: {}", e.what());
    }
  }
  // Takes `block` (leaving it empty, with a reused block's capacity when there is one).
  void push(std::vector<FlowRecord>& block) {
    std::unique_lock lk(mu_);
    room_.wait(lk, [&] { return queue_.size() < kMaxQueued || failed_; });
    if (failed_) std::rethrow_exception(failed_);
    queue_.push_back(std::move(block));
    block.clear();
    if (!spare_.empty()) {
      block.swap(spare_.back());
      spare_.pop_back();
    }
    work_.notify_one();
  }
  // Writes what is queued, ends the thread; rethrows its failure.
  void finish() {
    {
      std::lock_guard lk(mu_);
      closing_ = true;
    }
    work_.notify_one();
    if (t_.joinable()) t_.join();
    if (failed_) std::rethrow_exception(std::exchange(failed_, nullptr));
  }

 private:
  static constexpr size_t kMaxQueued = 8;
  void run() {
    pthread_setname_np(pthread_self(), "tm-flowzip");
    std::vector<uint8_t> scratch;
    std::unique_lock lk(mu_);
    for (;;) {
      work_.wait(lk, [&] { return !queue_.empty() || closing_; });
      if (queue_.empty()) return;
      std::vector<FlowRecord> block = std::move(queue_.front());
      queue_.pop_front();
      lk.unlock();
      try {
        w_.write_block(block, scratch);
      } catch (...) {
        lk.lock();
        failed_ = std::current_exception();
        room_.notify_all();
        return;
      }
      block.clear();
      lk.lock();
      spare_.push_back(std::move(block));
      room_.notify_one();
    }
  }

  FlowFileWriter& w_;
  std::mutex mu_;
  std::condition_variable work_, room_;
  std::deque<std::vector<FlowRecord>> queue_;
  std::vector<std::vector<FlowRecord>> spare_;
  bool closing_ = false;
  std::exception_ptr failed_;
  std::thread t_;  // last: starts once the rest is built
};

FlowFileWriter::FlowFileWriter(std::string base, uint64_t seq, const std::vector<std::string>& classes)
    : base_(std::move(base)) {
  std::string path = base_ + ".flows";
  fd_ = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd_ < 0) throw std::runtime_error(fmt::format("cannot create {}: {}", path, std::strerror(errno)));
  std::string names;
  for (auto& c : classes) names += c + '\0';
  uint32_t n = static_cast<uint32_t>(names.size());
  util::write_all(fd_, kMagic, 8, path);
  util::write_all(fd_, &n, 4, path);
  util::write_all(fd_, names.data(), names.size(), path);
  file_bytes_ = 12 + names.size();
  meta_.seq = seq;
  meta_.linktype = 0;
}

FlowFileWriter::~FlowFileWriter() {
  if (fd_ >= 0) {
    try {
      flush_block();
      if (behind_) behind_->finish();
    } catch (const std::exception& e) {  // (close() reports it when called first)
      spdlog::error("{}.flows: {}", base_, e.what());
    }
    ::close(fd_);
  }
}

void FlowFileWriter::write_behind() {
  if (!behind_) behind_ = std::make_unique<Behind>(*this);
}

void FlowFileWriter::add(const FlowRecord& r) {
  uint32_t ord = static_cast<uint32_t>(meta_.packets);
  if (ord == 0 || r.first_ts < meta_.first_ts) meta_.first_ts = r.first_ts;
  if (r.last_ts > meta_.last_ts) meta_.last_ts = r.last_ts;
  builder_.add_packet(ord, as_packet(r));
  pending_.push_back(r);
  meta_.packets++;
  if (pending_.size() >= kBlockRecords) flush_block();
}

void FlowFileWriter::flush_block() {
  if (pending_.empty()) return;
  if (behind_) {
    behind_->push(pending_);
    return;
  }
  write_block(pending_, block_);
  pending_.clear();
}

void FlowFileWriter::write_block(const std::vector<FlowRecord>& records, std::vector<uint8_t>& z) {
  size_t raw = records.size() * sizeof(FlowRecord);
  if (z.size() < ZSTD_compressBound(raw) + 16) z.resize(ZSTD_compressBound(raw) + 16);
  size_t zn = ZSTD_compress(z.data() + 16, z.size() - 16, records.data(), raw, 1);
  if (ZSTD_isError(zn)) throw std::runtime_error("flow block compression failed");
  uint32_t hdr[4] = {kBlockMagic, static_cast<uint32_t>(records.size()), static_cast<uint32_t>(zn),
                     util::crc32(z.data() + 16, zn)};
  std::memcpy(z.data(), hdr, 16);
  util::write_all(fd_, z.data(), zn + 16, base_ + ".flows");
  file_bytes_.fetch_add(zn + 16, std::memory_order_relaxed);
}

uint64_t FlowFileWriter::seal() {
  flush_block();
  if (behind_) {
    behind_->finish();
    behind_.reset();
  }
  ::fdatasync(fd_);
  ::close(fd_);
  fd_ = -1;
  meta_.pcap_bytes = file_bytes_;
  std::vector<uint32_t> offsets(meta_.packets);
  for (uint32_t i = 0; i < meta_.packets; ++i) offsets[i] = i;  // record ordinals
  return store::write_sidecar(base_ + ".idx", meta_, {}, offsets, builder_.finish_postings());
}

FlowFileContents read_flow_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error(fmt::format("cannot open {}", path));
  std::vector<uint8_t> buf((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  FlowFileContents c;
  c.file_size = buf.size();
  if (buf.size() < 12 || std::memcmp(buf.data(), kMagic, 8) != 0)
    throw std::runtime_error(fmt::format("{}: not a tm flow file", path));
  uint32_t n;
  std::memcpy(&n, buf.data() + 8, 4);
  if (12 + static_cast<uint64_t>(n) > buf.size())
    throw std::runtime_error(fmt::format("{}: header cut short", path));
  std::string names(reinterpret_cast<const char*>(buf.data() + 12), n);
  for (size_t s = 0; s < names.size();) {
    size_t e = names.find('\0', s);
    if (e == std::string::npos) break;
    c.classes.push_back(names.substr(s, e - s));
    s = e + 1;
  }
  size_t pos = 12 + n;
  c.valid_end = pos;
  while (pos < buf.size()) {
    uint32_t hdr[4];
    if (pos + 16 > buf.size()) {
      c.problem = fmt::format("{}: incomplete block header at offset {}", path, pos);
      break;
    }
    std::memcpy(hdr, buf.data() + pos, 16);
    if (hdr[0] != kBlockMagic || hdr[1] == 0 || hdr[1] > 1u << 20 || pos + 16 + hdr[2] > buf.size()) {
      c.problem = fmt::format("{}: damaged or incomplete block at offset {}", path, pos);
      break;
    }
    if (util::crc32(buf.data() + pos + 16, hdr[2]) != hdr[3]) {
      c.problem = fmt::format("{}: block checksum mismatch at offset {}", path, pos);
      break;
    }
    size_t old = c.records.size();
    c.records.resize(old + hdr[1]);
    size_t got =
        ZSTD_decompress(c.records.data() + old, hdr[1] * sizeof(FlowRecord), buf.data() + pos + 16, hdr[2]);
    if (ZSTD_isError(got) || got != hdr[1] * sizeof(FlowRecord)) {
      c.records.resize(old);
      c.problem = fmt::format("{}: block at offset {} does not decompress", path, pos);
      break;
    }
    pos += 16 + hdr[2];
    c.valid_end = pos;
  }
  return c;
}

uint64_t recover_flow_file(const std::string& base) {
  FlowFileContents c = read_flow_file(base + ".flows");
  if (c.valid_end < c.file_size &&
      ::truncate((base + ".flows").c_str(), static_cast<off_t>(c.valid_end)) != 0)
    throw std::runtime_error(fmt::format("cannot truncate {}.flows: {}", base, std::strerror(errno)));
  store::SegmentMeta meta;
  store::IndexBuilder b;
  std::vector<uint32_t> offsets;
  for (uint32_t i = 0; i < c.records.size(); ++i) {
    const FlowRecord& r = c.records[i];
    if (i == 0 || r.first_ts < meta.first_ts) meta.first_ts = r.first_ts;
    if (r.last_ts > meta.last_ts) meta.last_ts = r.last_ts;
    b.add_packet(i, as_packet(r));
    offsets.push_back(i);
  }
  meta.packets = c.records.size();
  meta.pcap_bytes = c.valid_end;
  store::write_sidecar(base + ".idx", meta, {}, offsets, b.finish_postings());
  return c.records.size();
}

}  // namespace tmach::flow
