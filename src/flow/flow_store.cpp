#include "flow/flow_store.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <filesystem>

#include "store/layout.h"
#include "store/sidecar.h"
#include "util/file_io.h"
#include "util/timespec.h"

namespace fs = std::filesystem;

namespace tmach::flow {

std::vector<FlowFileInfo> scan_flow_files(const std::string& store_root) {
  std::vector<FlowFileInfo> out;
  fs::path dir = fs::path(store_root) / kFlowDir;
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return out;
  for (const auto& f : fs::directory_iterator(dir)) {
    if (f.path().extension() != ".flows") continue;
    auto name = store::parse_segment_name(f.path().stem().string());
    if (!name) continue;
    FlowFileInfo fi;
    fi.base = (dir / f.path().stem()).string();
    fi.meta.seq = name->seq;
    fi.meta.first_ts = name->first_ns;
    fi.bytes = fs::file_size(f.path(), ec);
    if (fs::exists(fi.base + ".idx")) {
      fi.bytes += fs::file_size(fi.base + ".idx", ec);
      try {
        fi.meta = store::read_sidecar_meta(fi.base + ".idx");
        fi.sealed = true;
      } catch (const std::exception& e) {
        fi.problem = e.what();
      }
    }
    out.push_back(std::move(fi));
  }
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.meta.seq < b.meta.seq; });
  return out;
}

FlowStoreWriter::FlowStoreWriter(FlowOptions opts, std::vector<std::string> class_names,
                                 std::vector<std::string>* problems)
    : cfg_(std::move(opts)),
      dir_((fs::path(cfg_.store) / kFlowDir).string()),
      classes_(std::move(class_names)),
      index_cap_(flow_index_cap(cfg_)) {
  fs::create_directories(dir_);
  for (auto& fi : scan_flow_files(cfg_.store)) {
    // Its number is taken even when it cannot be read: a new file of that name could not be
    // made (O_EXCL), and the one there is left as it is.
    next_seq_ = std::max(next_seq_, fi.meta.seq + 1);
    std::error_code ec;
    if (!fi.sealed && fs::file_size(fi.base + ".flows", ec) == 0 && !ec) {
      // An empty file holds no record: a writer that made it and could write nothing more (a
      // full disk). Removed, else it was warned of at every start and every flow query.
      if (fs::remove(fi.base + ".flows", ec); !ec && problems)
        problems->push_back(
            fmt::format("flow file {}.flows: empty, left by a failed write: removed", fi.base));
      if (!ec) continue;
    }
    if (!fi.sealed) {
      try {
        std::string damage;
        uint64_t n = recover_flow_file(fi.base, &damage);
        if (problems && !fi.problem.empty()) problems->push_back(fi.problem + " (rebuilt)");
        if (problems && !damage.empty()) problems->push_back("flow file " + damage);
        fi.meta = store::read_sidecar_meta(fi.base + ".idx");
        (void)n;
      } catch (const std::exception& e) {
        if (problems) problems->push_back(fmt::format("flow file {}: {} (skipped)", fi.base, e.what()));
        continue;
      }
      fi.bytes = fs::file_size(fi.base + ".flows", ec) + fs::file_size(fi.base + ".idx", ec);
    }
    next_seq_ = std::max(next_seq_, fi.meta.seq + 1);
    newest_ts_ = std::max(newest_ts_, fi.meta.last_ts);
    sealed_.add(store::DiskRing::File{fi.base, fi.bytes, fi.meta.first_ts, fi.meta.last_ts});
  }
  enforce();
}

uint64_t flow_index_cap(const FlowOptions& o) {
  return std::max<uint64_t>(o.file_size * 8, uint64_t{4} << 20);
}

FlowStoreWriter::~FlowStoreWriter() {
  try {
    finish();
  } catch (const std::exception& e) {  // (finish() reports it when called first)
    spdlog::error("flow records: {}", e.what());
  }
}

void FlowStoreWriter::push(std::vector<FlowRecord>& block) {
  if (block.empty()) return;
  std::unique_lock<std::mutex> lk(mu_);
  room_.wait(lk, [&] { return !bounded_ || pending_.size() < kMaxPending; });
  pushed_records_ += block.size();
  pending_.push_back(std::move(block));
  block = spare_.take();
  pushed_.notify_one();
}

void FlowStoreWriter::bound(bool on) {
  {
    std::lock_guard<std::mutex> lk(mu_);
    bounded_ = on;
  }
  room_.notify_all();
}

void FlowStoreWriter::wait_for_push(std::chrono::milliseconds most) {
  std::unique_lock<std::mutex> lk(mu_);
  pushed_.wait_for(lk, most, [&] { return !pending_.empty(); });
}

size_t FlowStoreWriter::drain(uint64_t now_wall_ns) {
  {
    std::lock_guard<std::mutex> lk(mu_);
    batch_.swap(pending_);
  }
  room_.notify_all();
  const size_t blocks = batch_.size();
  size_t bi = 0, done = 0;  // the block being written, and how many of its records are written
  try {
    for (; bi < batch_.size(); ++bi) {
      auto& block = batch_[bi];
      for (done = 0; done < block.size();) {
        const FlowRecord& r = block[done];
        if (!cur_) {
          store::SegmentName n{next_seq_++, r.first_ts, 0};
          cur_ = std::make_unique<FlowFileWriter>((fs::path(dir_) / store::segment_base_name(n)).string(),
                                                  n.seq, classes_);
          if (write_behind_) cur_->write_behind();
        }
        // Counted done first: once add() has the record it keeps it, and writes it at its next
        // flush, when the flush it starts fails (taken back into the queue, it was written twice).
        ++done;
        ++written_;
        cur_->add(r);
        newest_ts_ = std::max(newest_ts_, r.last_ts);
        if (cur_->file_bytes() >= cfg_.file_size) {
          seal_current();
        } else if (cur_->meta().packets % kBlockRecords == 0) {  // (a sum over the builder's parts)
          const uint64_t m = cur_->index_memory();
          index_mem_.set(0, m);
          if (m >= index_cap_) {
            spdlog::info(
                "flow records: {}.flows sealed at {} records, before its size: its index holds {} bytes "
                "(the cap: 8 x [flows] file_size)",
                cur_->base(), cur_->meta().packets, m);
            sealed_for_memory_.fetch_add(1, std::memory_order_relaxed);
            seal_current();
          }
        }
      }
      block.clear();
    }
  } catch (...) {
    // A failed write or seal (the writer thread goes on recording): what was written stays
    // written, and the rest of the batch goes back before the blocks pushed since, in order,
    // for the next drain (swapped back whole, it was written a second time).
    batch_[bi].erase(batch_[bi].begin(), batch_[bi].begin() + static_cast<std::ptrdiff_t>(done));
    {
      std::lock_guard<std::mutex> lk(mu_);
      pending_.insert(pending_.begin(),
                      std::make_move_iterator(batch_.begin() + static_cast<std::ptrdiff_t>(bi)),
                      std::make_move_iterator(batch_.end()));
      for (size_t k = 0; k < bi; ++k) spare_.give_back(batch_[k]);
    }
    batch_.clear();
    throw;
  }
  if (!batch_.empty()) {
    // A few emptied blocks go back for reuse (their memory is already paged in); the rest,
    // after a burst of endings, are freed.
    std::lock_guard<std::mutex> lk(mu_);
    for (auto& block : batch_) spare_.give_back(block);
  }
  batch_.clear();
  if (cur_) index_mem_.set(0, cur_->index_memory());
  // A block a second keeps recent records readable by `tm flows` (and crash-safe).
  if (cur_ && now_wall_ns - last_block_ns_ > 1000000000ull) {
    cur_->flush_block();
    last_block_ns_ = now_wall_ns;
  }
  return blocks;
}

uint64_t FlowStoreWriter::records_lost() {
  uint64_t pushed;
  {
    std::lock_guard<std::mutex> lk(mu_);
    pushed = pushed_records_;
  }
  const uint64_t on_disk = closed_on_disk_ + (cur_ ? cur_->records_on_disk() : 0);
  return pushed - std::min(pushed, on_disk);
}

void FlowStoreWriter::write_behind() {
  write_behind_ = true;
  if (cur_) cur_->write_behind();
}

void FlowStoreWriter::finish() {
  drain(0);
  seal_current();
}

void FlowStoreWriter::seal_current() {
  if (!cur_) return;
  if (cur_->meta().packets == 0) {
    cur_.reset();
    return;
  }
  // Taken out first: the next record starts a new file whatever happens here (a failed seal
  // left cur_ closed, and finish() in the destructor failed on it a second time).
  std::unique_ptr<FlowFileWriter> f = std::move(cur_);
  index_mem_.set(0, f->index_memory());  // (its last records' share, for the peak)
  uint64_t idx = 0;
  try {
    idx = f->seal();
    closed_on_disk_ += f->records_on_disk();
  } catch (const std::exception& e) {
    closed_on_disk_ += f->records_on_disk();
    // Counted (files_unsealed) and kept as a deletable part of the budget, as a segment whose
    // seal failed is; the failure is still the caller's (a failed write).
    files_unsealed_.fetch_add(1, std::memory_order_relaxed);
    std::error_code ec;
    const uint64_t bytes = fs::file_size(f->base() + ".flows", ec);
    sealed_.add(store::DiskRing::File{f->base(), ec ? 0 : bytes, f->meta().first_ts, f->meta().last_ts});
    index_mem_.set(0, 0);
    // The seal writes the file's last records first, then its sidecar: which of the two failed.
    const uint64_t unwritten = f->meta().packets - std::min(f->meta().packets, f->records_on_disk());
    throw util::IoError(
        unwritten
            ? fmt::format("flow file {}.flows: its last {} records were not written, the rest are stored "
                          "but not indexed (the next start indexes them): {}",
                          f->base(), unwritten, e.what())
            : fmt::format("flow file {}.flows was not sealed (its records are stored, not indexed; "
                          "the next start indexes them): {}",
                          f->base(), e.what()),
        util::error_number_of(e));
  }
  index_mem_.set(0, f->index_memory());  // (with the postings the seal made: its peak)
  index_mem_.set(0, 0);
  sealed_.add(store::DiskRing::File{f->base(), f->file_bytes() + idx, f->meta().first_ts, f->meta().last_ts});
  enforce();
}

void FlowStoreWriter::enforce() {
  sealed_.evict_over(cfg_.disk_budget);
  if (cfg_.max_age_ns) sealed_.evict_older(util::age_clock(newest_ts_), cfg_.max_age_ns);
}

}  // namespace tmach::flow
