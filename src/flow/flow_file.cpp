#include "flow/flow_file.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <pthread.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zstd.h>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

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

#include "flow/block_pool.h"
#include "store/sidecar.h"
#include "util/crc32.h"
#include "util/file_io.h"

namespace tmach::flow {
namespace {

// The last byte is the format's version: 1 = a block holds the records as they are in
// memory; 2 = a block holds them byte-transposed (every record's byte 0, then every
// record's byte 1, ...): each field's bytes side by side, which zstd packs 11% smaller in
// 30% fewer instructions (docs/FORMAT.md); 3 = as 2, the class names followed by their CRC (a
// flipped bit in them changed every record's class, and packets_on_disk with it, unseen). All
// are read; only 3 is written.
constexpr char kMagic[7] = {'T', 'M', 'F', 'L', 'O', 'W', 0};
constexpr uint8_t kVersionRows = 1, kVersionColumns = 2, kVersionNamesCrc = 3;
constexpr uint32_t kBlockMagic = 0x4b4f4c42;  // "BLOK"
constexpr size_t kBlockRecords = 4096;
constexpr size_t kRecordBytes = sizeof(FlowRecord);
constexpr size_t kFrameHeaderMax = 18;  // ZSTD_FRAMEHEADERSIZE_MAX (zstd's static-linking API)

// dst[j * dstride + i] = src[i * sstride + j] for i, j < 16: a 16 x 16 byte matrix turned,
// with SSE2's unpacks where there is SSE2 (a sixth of the byte-by-byte loop's instructions).
inline void transpose16(const uint8_t* src, size_t sstride, uint8_t* dst, size_t dstride) {
#if defined(__SSE2__)
  __m128i a[16], b[16];
  for (size_t i = 0; i < 16; ++i) a[i] = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i * sstride));
  // b[k]: 16-bit lane c = rows 2k, 2k+1 of column c; b[k + 8]: of column 8 + c
  for (size_t k = 0; k < 8; ++k) {
    b[k] = _mm_unpacklo_epi8(a[2 * k], a[2 * k + 1]);
    b[k + 8] = _mm_unpackhi_epi8(a[2 * k], a[2 * k + 1]);
  }
  // a[g + k] (g = 0, 4, 8, 12): 32-bit lane c = rows 4k .. 4k+3 of column g + c
  for (size_t h = 0; h < 16; h += 8)
    for (size_t k = 0; k < 4; ++k) {
      a[h + k] = _mm_unpacklo_epi16(b[h + 2 * k], b[h + 2 * k + 1]);
      a[h + k + 4] = _mm_unpackhi_epi16(b[h + 2 * k], b[h + 2 * k + 1]);
    }
  for (size_t g = 0; g < 16; g += 4) {
    // 64-bit lane c: rows 0..7 (lo) or 8..15 (hi) of column g + c, or g + 2 + c (…2)
    const __m128i lo = _mm_unpacklo_epi32(a[g], a[g + 1]), lo2 = _mm_unpackhi_epi32(a[g], a[g + 1]),
                  hi = _mm_unpacklo_epi32(a[g + 2], a[g + 3]), hi2 = _mm_unpackhi_epi32(a[g + 2], a[g + 3]);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + g * dstride), _mm_unpacklo_epi64(lo, hi));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + (g + 1) * dstride), _mm_unpackhi_epi64(lo, hi));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + (g + 2) * dstride), _mm_unpacklo_epi64(lo2, hi2));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + (g + 3) * dstride), _mm_unpackhi_epi64(lo2, hi2));
  }
#else
  for (size_t i = 0; i < 16; ++i)
    for (size_t j = 0; j < 16; ++j) dst[j * dstride + i] = src[i * sstride + j];
#endif
}

// Byte j of record i goes to out[j * n + i].
// 64 records at a time per 16 columns, through a staging block, so that each output row gets
// whole 64-byte lines: turned 16 x 16 straight into `out`, the 16-byte stores went to 128 rows
// n bytes apart (4096 in a full block: every row in the same L1 set), each line written in
// four pieces, evicted in between.
void transpose(const FlowRecord* records, size_t n, uint8_t* out) {
  const auto* in = reinterpret_cast<const uint8_t*>(records);
  constexpr size_t kRun = 64;
  alignas(64) uint8_t stage[16 * kRun];
  size_t i = 0;
  for (; i + kRun <= n; i += kRun)
    for (size_t c = 0; c < kRecordBytes; c += 16) {
      for (size_t q = 0; q < kRun; q += 16)
        transpose16(in + (i + q) * kRecordBytes + c, kRecordBytes, stage + q, kRun);
      for (size_t r = 0; r < 16; ++r) std::memcpy(out + (c + r) * n + i, stage + r * kRun, kRun);
    }
  for (; i + 16 <= n; i += 16)
    for (size_t c = 0; c < kRecordBytes; c += 16)
      transpose16(in + i * kRecordBytes + c, kRecordBytes, out + c * n + i, n);
  for (; i < n; ++i)
    for (size_t j = 0; j < kRecordBytes; ++j) out[j * n + i] = in[i * kRecordBytes + j];
}

void untranspose(const uint8_t* in, size_t n, FlowRecord* records) {
  auto* out = reinterpret_cast<uint8_t*>(records);
  size_t i = 0;
  for (; i + 16 <= n; i += 16)
    for (size_t c = 0; c < kRecordBytes; c += 16)
      transpose16(in + c * n + i, n, out + i * kRecordBytes + c, kRecordBytes);
  for (; i < n; ++i)
    for (size_t j = 0; j < kRecordBytes; ++j) out[i * kRecordBytes + j] = in[j * n + i];
}

}  // namespace

// What compressing a block needs, kept from block to block by the thread compressing them.
struct FlowFileWriter::Scratch {
  Scratch() : cctx(ZSTD_createCCtx()) {}  // (write_block() fails when it is null)
  ~Scratch() { ZSTD_freeCCtx(cctx); }
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
  ZSTD_CCtx* cctx;
  std::vector<uint8_t> columns;  // the block transposed
  std::vector<uint8_t> z;        // the block compressed, after its header
};

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
  // Takes `block` (leaving it empty, with a reused block's capacity or else room for kBlockRecords).
  void push(std::vector<FlowRecord>& block) {
    std::unique_lock lk(mu_);
    room_.wait(lk, [&] { return queue_.size() < kMaxQueued || failed_; });
    if (failed_) std::rethrow_exception(failed_);
    queue_.push_back(std::move(block));
    block = spare_.take();
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
    Scratch scratch;
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
      lk.lock();
      spare_.give_back(block);
      room_.notify_one();
    }
  }

  FlowFileWriter& w_;
  std::mutex mu_;
  std::condition_variable work_, room_;
  std::deque<std::vector<FlowRecord>> queue_;
  // Emptied blocks: never more than can be out at once (the queue's and the one being written),
  // so none is freed before the end.
  BlockPool spare_{kBlockRecords, kMaxQueued + 1};
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
  const uint32_t crc = util::crc32(names.data(), names.size());
  util::write_all(fd_, kMagic, 7, path);
  util::write_all(fd_, &kVersionNamesCrc, 1, path);
  util::write_all(fd_, &n, 4, path);
  util::write_all(fd_, names.data(), names.size(), path);
  util::write_all(fd_, &crc, 4, path);
  file_bytes_ = 16 + names.size();
  meta_.seq = seq;
  meta_.linktype = 0;
  pending_.reserve(kBlockRecords);  // (its first block not grown record by record either)
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
  store::IndexKeys keys;
  index_keys(r, keys);
  builder_.add(ord, keys);
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
  if (!scratch_) scratch_ = std::make_unique<Scratch>();
  write_block(pending_, *scratch_);
  pending_.clear();
}

void FlowFileWriter::write_block(const std::vector<FlowRecord>& records, Scratch& s) {
  if (!s.cctx) throw std::runtime_error("flow block compression failed: no memory for its context");
  const size_t raw = records.size() * kRecordBytes;
  if (s.columns.size() < raw) s.columns.resize(raw);
  transpose(records.data(), records.size(), s.columns.data());
  std::vector<uint8_t>& z = s.z;
  if (z.size() < ZSTD_compressBound(raw) + 16) z.resize(ZSTD_compressBound(raw) + 16);
  size_t zn = ZSTD_compressCCtx(s.cctx, z.data() + 16, z.size() - 16, s.columns.data(), raw, 1);
  if (ZSTD_isError(zn)) throw std::runtime_error("flow block compression failed");
  uint32_t hdr[4] = {kBlockMagic, static_cast<uint32_t>(records.size()), static_cast<uint32_t>(zn),
                     util::crc32(z.data() + 16, zn)};
  std::memcpy(z.data(), hdr, 16);
  util::write_all(fd_, z.data(), zn + 16, base_ + ".flows");
  file_bytes_.fetch_add(zn + 16, std::memory_order_relaxed);
  records_on_disk_.fetch_add(records.size(), std::memory_order_relaxed);
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

namespace {

// Adds a problem to `problems` ("; " between them).
void add_problem(std::string& problems, const std::string& p) {
  problems += (problems.empty() ? "" : "; ") + p;
}

// A flow file's header: its version and class names, from its first bytes (`head`, as many
// as there are up to `size`); `body` is set to where the first block starts. Throws
// std::runtime_error naming `path` for what is not a flow file this tm reads. Returns 0 when
// `head` is too short for the class names (the caller reads `body` bytes and asks again).
// Damaged class names (version 3: their CRC) leave `classes` empty, so that each record's class
// is "#N" (not a class of the store's: tm flows says `some` rather than a confident `no`), and
// are said in `problem` (the caller's names_problem: no record is lost).
uint8_t parse_header(const uint8_t* head, size_t n, const std::string& path,
                     std::vector<std::string>& classes, uint64_t& body, std::string& problem) {
  if (n < 12 || std::memcmp(head, kMagic, 7) != 0)
    throw std::runtime_error(fmt::format("{}: not a tm flow file", path));
  const uint8_t version = head[7];
  if (version != kVersionRows && version != kVersionColumns && version != kVersionNamesCrc)
    throw std::runtime_error(
        fmt::format("{}: flow file format version {} (this tm reads {} to {}): written by a newer tm", path,
                    version, kVersionRows, kVersionNamesCrc));
  uint32_t names_size;
  std::memcpy(&names_size, head + 8, 4);
  body = 12 + static_cast<uint64_t>(names_size) + (version == kVersionNamesCrc ? 4 : 0);
  if (body > n) return 0;
  std::string names(reinterpret_cast<const char*>(head + 12), names_size);
  classes.clear();
  if (version == kVersionNamesCrc) {
    uint32_t crc;
    std::memcpy(&crc, head + 12 + names_size, 4);
    if (util::crc32(names.data(), names.size()) != crc) {
      add_problem(problem, fmt::format("{}: its class names are damaged (checksum mismatch): its records' "
                                       "classes are unknown (shown by number, #N)",
                                       path));
      return version;
    }
  }
  for (size_t s = 0; s < names.size();) {
    size_t e = names.find('\0', s);
    if (e == std::string::npos) break;
    classes.push_back(names.substr(s, e - s));
    s = e + 1;
  }
  return version;
}

// Whether a block header at `pos` is one, whole in a file of `size` bytes; else why not.
std::string block_problem(const uint32_t hdr[4], uint64_t pos, uint64_t size, const std::string& path) {
  if (hdr[0] != kBlockMagic || hdr[1] == 0 || hdr[1] > 1u << 20 || pos + 16 + hdr[2] > size)
    return fmt::format("{}: damaged or incomplete block at offset {}", path, pos);
  return {};
}

// Whether the zstd frame that starts a block (`frame`: its first `n` bytes) holds the block
// header's count of records; else why not. A count or frame header damaged would put every
// later record at another ordinal than the index counts, so it ends a reading.
std::string frame_problem(const uint32_t hdr[4], const uint8_t* frame, size_t n, uint64_t pos,
                          const std::string& path) {
  const unsigned long long content = ZSTD_getFrameContentSize(frame, n);
  if (content != ZSTD_CONTENTSIZE_UNKNOWN && content != uint64_t{hdr[1]} * kRecordBytes)
    return fmt::format("{}: damaged block at offset {} (its count of records is not its frame's)", path, pos);
  return {};
}

// Checks and decompresses the block `z` (hdr[2] bytes, after its header `hdr`) into `out`
// (room for hdr[1] records); `columns` is scratch. Returns why it could not, or "".
std::string decode_block(const uint32_t hdr[4], const uint8_t* z, uint8_t version, uint64_t pos,
                         const std::string& path, FlowRecord* out, std::vector<uint8_t>& columns) {
  if (util::crc32(z, hdr[2]) != hdr[3])
    return fmt::format("{}: block checksum mismatch at offset {}", path, pos);
  const size_t raw = size_t{hdr[1]} * kRecordBytes;
  void* to = out;
  if (version >= kVersionColumns) {
    if (columns.size() < raw) columns.resize(raw);
    to = columns.data();
  }
  const size_t got = ZSTD_decompress(to, raw, z, hdr[2]);
  if (ZSTD_isError(got) || got != raw)
    return fmt::format("{}: block at offset {} does not decompress", path, pos);
  if (version >= kVersionColumns) untranspose(columns.data(), hdr[1], out);
  return {};
}

}  // namespace

FlowFileContents read_flow_file(const std::string& path, bool past_damage) {
  util::UniqueFd fd = util::open_file(path, O_RDONLY);  // (IoError with its errno)
  std::vector<uint8_t> buf(util::file_size(fd.get(), path));
  const ssize_t got = util::pread_full(fd.get(), buf.data(), buf.size(), 0);
  if (got < 0) {
    const int e = errno;
    throw util::IoError(fmt::format("cannot read {}: {}", path, std::strerror(e)), e);
  }
  buf.resize(static_cast<size_t>(got));
  FlowFileContents c;
  c.file_size = buf.size();
  uint64_t pos = 0;
  const uint8_t version = parse_header(buf.data(), buf.size(), path, c.classes, pos, c.names_problem);
  if (version == 0) throw std::runtime_error(fmt::format("{}: header cut short", path));
  c.valid_end = pos;
  std::vector<uint8_t> columns;  // a block of version 2, before it is transposed back
  while (pos < buf.size()) {
    uint32_t hdr[4];
    std::string stop = pos + 16 > buf.size()
                           ? fmt::format("{}: incomplete block header at offset {}", path, pos)
                           : std::string();
    if (stop.empty()) {
      std::memcpy(hdr, buf.data() + pos, 16);
      stop = block_problem(hdr, pos, buf.size(), path);
    }
    if (stop.empty()) stop = frame_problem(hdr, buf.data() + pos + 16, hdr[2], pos, path);
    if (!stop.empty()) {  // (no next block to be found)
      add_problem(c.problem, stop + " (the records after it skipped)");
      break;
    }
    const size_t old = c.records.size();
    c.records.resize(old + hdr[1]);
    std::string bad =
        decode_block(hdr, buf.data() + pos + 16, version, pos, path, c.records.data() + old, columns);
    if (!bad.empty()) {
      c.records.resize(old);
      if (!past_damage) {
        add_problem(c.problem, bad);
        break;
      }
      // (Its header is sound: the next block is found past it. Its records are lost.)
      add_problem(c.problem, fmt::format("{} (its {} records skipped)", bad, hdr[1]));
      c.skipped.emplace_back(old, hdr[1]);
    }
    pos += 16 + hdr[2];
    c.valid_end = pos;
  }
  return c;
}

FlowRecordsRead read_flow_records(const std::string& path, const Roaring& wanted) {
  util::UniqueFd fd = util::open_file(path, O_RDONLY);
  FlowRecordsRead c;
  const uint64_t size = util::file_size(fd.get(), path);
  auto read_at = [&](void* dst, size_t n, uint64_t off) {
    const ssize_t got = util::pread_full(fd.get(), dst, n, off);
    if (got < 0) {
      const int e = errno;
      throw util::IoError(fmt::format("cannot read {}: {}", path, std::strerror(e)), e);
    }
    return static_cast<size_t>(got);
  };
  std::vector<uint8_t> head(std::min<uint64_t>(size, 4096));
  uint64_t pos = 0;
  uint8_t version =
      parse_header(head.data(), read_at(head.data(), head.size(), 0), path, c.classes, pos, c.names_problem);
  if (version == 0 && pos <= size) {  // long class names
    head.resize(pos);
    version = parse_header(head.data(), read_at(head.data(), head.size(), 0), path, c.classes, pos,
                           c.names_problem);
  }
  if (version == 0) throw std::runtime_error(fmt::format("{}: header cut short", path));
  std::vector<uint8_t> z, columns;
  std::vector<FlowRecord> block;
  Roaring::const_iterator next = wanted.begin();  // the first wanted ordinal not yet read
  const Roaring::const_iterator end = wanted.end();
  uint64_t first = 0;  // the ordinal of the block's first record
  // A block whose header or frame is damaged ends the reading (what follows cannot be found, or
  // its ordinals trusted); one whose content alone is damaged loses its own records only.
  bool stopped = false;
  auto stop = [&](const std::string& why) {
    add_problem(c.problem, why + " (the records after it skipped)");
    stopped = true;
  };
  while (pos < size && next != end) {
    // The block's header and the start of its zstd frame, whose content size must be the
    // header's count of records: the CRC covers a block only when it is read, and a count
    // damaged in a block passed over would shift the ordinals of every later one.
    uint8_t at[16 + kFrameHeaderMax];
    const size_t got = read_at(at, sizeof at, pos);
    uint32_t hdr[4];
    if (got < 16) {
      stop(fmt::format("{}: incomplete block header at offset {}", path, pos));
      break;
    }
    std::memcpy(hdr, at, 16);
    if (std::string why = block_problem(hdr, pos, size, path); !why.empty()) {
      stop(why);
      break;
    }
    if (std::string why = frame_problem(hdr, at + 16, std::min<size_t>(got - 16, hdr[2]), pos, path);
        !why.empty()) {
      stop(why);
      break;
    }
    if (*next < first + hdr[1]) {  // a wanted record in it: read it
      z.resize(hdr[2]);
      if (read_at(z.data(), hdr[2], pos + 16) < hdr[2]) {
        stop(fmt::format("{}: damaged or incomplete block at offset {}", path, pos));
        break;
      }
      block.resize(hdr[1]);
      if (std::string bad = decode_block(hdr, z.data(), version, pos, path, block.data(), columns);
          !bad.empty()) {
        add_problem(c.problem, fmt::format("{} (its {} records skipped)", bad, hdr[1]));
        while (next != end && *next < first + hdr[1]) ++next;
      }
      for (; next != end && *next < first + hdr[1]; ++next)
        c.records.emplace_back(*next, block[*next - first]);
    }
    first += hdr[1];
    pos += 16 + hdr[2];
  }
  if (!stopped && next != end)
    add_problem(c.problem, fmt::format("{}: ends after {} records, before record {} its index names", path,
                                       first, *next));
  return c;
}

uint64_t recover_flow_file(const std::string& base, std::string* problem) {
  // (Past a damaged block, whose records are lost: cut there, the whole blocks after it would be.)
  FlowFileContents c = read_flow_file(base + ".flows", true);
  if (problem) *problem = c.problem;
  if (c.valid_end < c.file_size &&
      ::truncate((base + ".flows").c_str(), static_cast<off_t>(c.valid_end)) != 0)
    throw std::runtime_error(fmt::format("cannot truncate {}.flows: {}", base, std::strerror(errno)));
  store::SegmentMeta meta;
  store::IndexBuilder b;
  std::vector<uint32_t> offsets;
  uint32_t ord = 0;  // the record's ordinal in the file (a skipped block's records have theirs)
  auto hole = c.skipped.begin();
  for (uint32_t i = 0; i < c.records.size(); ++i, ++ord) {
    for (; hole != c.skipped.end() && hole->first == i; ++hole) ord += hole->second;
    const FlowRecord& r = c.records[i];
    if (i == 0 || r.first_ts < meta.first_ts) meta.first_ts = r.first_ts;
    if (r.last_ts > meta.last_ts) meta.last_ts = r.last_ts;
    store::IndexKeys keys;
    index_keys(r, keys);
    b.add(ord, keys);
  }
  for (; hole != c.skipped.end(); ++hole) ord += hole->second;
  meta.packets = ord;
  for (uint32_t i = 0; i < ord; ++i) offsets.push_back(i);  // (as the writer's seal: one per ordinal)
  meta.pcap_bytes = c.valid_end;
  store::write_sidecar(base + ".idx", meta, {}, offsets, b.finish_postings());
  return c.records.size();
}

}  // namespace tmach::flow
