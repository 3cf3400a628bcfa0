// The flow side of a store: which flow files exist, and the writer that appends records,
// rotates files, keeps them inside their budget and age, and recovers crash leftovers.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "flow/block_pool.h"
#include "flow/flow_file.h"
#include "store/disk_ring.h"
#include "store/segment_meta.h"
#include "util/memory_gauge.h"

namespace tmach::flow {

// The flow writer's options (config/component_options.h maps a config::Config into them).
struct FlowOptions {
  std::string store;                  // the store root; the files go to its flows/ directory
  uint64_t disk_budget = 1ull << 30;  // all flow files
  uint64_t max_age_ns = 0;            // 0: no age limit, only the budget
  uint64_t file_size = 16ull << 20;   // a file is sealed at this size
};

// A flow file is also sealed once the index built for it holds this much memory: 8 times
// its file size, at least 4 MiB. Ordinary traffic reaches the file size first (ingest-small:
// 31 bytes of file and 28 of index a record); records that compress well but each bring new
// addresses (an address scan: 8 bytes of file, ~75 of index) reach this first, and the index
// stays bounded (docs/DESIGN.md, "Memory").
uint64_t flow_index_cap(const FlowOptions& o);

struct FlowFileInfo {
  std::string base;         // path without extension
  store::SegmentMeta meta;  // packets = records; from the sidecar when sealed
  bool sealed = false;
  uint64_t bytes = 0;   // .flows + .idx
  std::string problem;  // sidecar refused (it is then read without its index)
};

// Flow files of a store, oldest first. Missing flows directory: none.
std::vector<FlowFileInfo> scan_flow_files(const std::string& store_root);

class FlowStoreWriter {
 public:
  // Adopts existing flow files (recovering unsealed ones) and applies the budget.
  FlowStoreWriter(FlowOptions opts, std::vector<std::string> class_names, std::vector<std::string>* problems);
  ~FlowStoreWriter();

  // Any thread: hands over a block of records, in the order they ended, and gives `block`
  // back empty, with a recycled block's capacity or else room for kBlockRecords. Records travel in
  // blocks because a recorder's shutdown ends hundreds of thousands of connections at once:
  // one lock and no copy per block, rather than per record into one ever-growing vector.
  // While bounded (below), waits until fewer than kMaxPending blocks are pending.
  void push(std::vector<FlowRecord>& block);
  static constexpr size_t kBlockRecords = 4096;  // what a producer should gather before push()
  // Writer thread: writes what was pushed (returns how many blocks); flushes a block each second.
  size_t drain(uint64_t now_wall_ns);
  // From bound(true) on, push() waits while kMaxPending blocks are pending: for the shutdown,
  // when a thread of its own drains as blocks come (FlowDrain::hold) and the recorder ends
  // every connection at once. The burst then cycles through a few blocks, whose pages are in
  // already, rather than holding every record at once (a connection table's worth: up to
  // connections.max x 128 bytes, all memory never touched before). Never while capturing:
  // a capture thread does not wait. bound(false) (the draining thread's end, by failure too)
  // lets every push through again.
  void bound(bool on);
  static constexpr size_t kMaxPending = 4;  // (kSpareBlocks keeps a whole drained batch for reuse)
  // Waits until a block is pending, at most `most` (the draining thread, between drains).
  void wait_for_push(std::chrono::milliseconds most);
  void finish();  // writer thread or after it stopped: seal the current file
  // The thread that drains from now on indexes while another compresses and writes
  // (FlowFileWriter::write_behind): for the shutdown's burst of records.
  void write_behind();

  uint64_t records_written() const { return written_; }
  // Records pushed that are not in a flow file on disk: after the draining thread ended (a
  // write that failed at the end: the disk full), those it could not write.
  uint64_t records_lost();
  // Flow files whose seal failed (their sidecar not written: a full disk), any thread. Their
  // records stay in the .flows file, which tm flows reads without an index and the next start
  // indexes (recover_flow_file); they count against the budget as other flow files.
  uint64_t files_unsealed() const { return files_unsealed_.load(std::memory_order_relaxed); }
  uint64_t disk_bytes() const { return sealed_.bytes() + (cur_ ? cur_->file_bytes() : 0); }
  // Any thread: the memory of the index of the file being written (as of the last block or
  // seal, the seal's postings included), and the most it held at once: below 3 times
  // flow_index_cap() (measured every kBlockRecords records, it may pass the cap by one growth
  // of its tables meanwhile, and its seal adds the postings: 2.3 times in the unit test).
  uint64_t index_memory() const { return index_mem_.now(); }
  uint64_t index_memory_peak() const { return index_mem_.peak(); }
  uint64_t files_sealed_for_memory() const { return sealed_for_memory_.load(std::memory_order_relaxed); }

 private:
  static constexpr size_t kSpareBlocks = 16;
  void seal_current();
  void enforce();

  FlowOptions cfg_;
  std::string dir_;
  std::vector<std::string> classes_;
  std::mutex mu_;
  std::vector<std::vector<FlowRecord>> pending_;  // blocks pushed, not written yet
  BlockPool spare_{kBlockRecords, kSpareBlocks};  // mu_; written blocks, for push() to reuse
  bool bounded_ = false;                          // mu_
  uint64_t pushed_records_ = 0;                   // mu_
  uint64_t closed_on_disk_ = 0;                   // records on disk of the files closed (sealed or not)
  std::condition_variable room_, pushed_;         // mu_: below kMaxPending, or unbounded; a push
  std::vector<std::vector<FlowRecord>> batch_;
  std::unique_ptr<FlowFileWriter> cur_;
  store::DiskRing sealed_{{".idx", ".flows"}};  // oldest first, inside the budget and age
  uint64_t next_seq_ = 1;
  uint64_t newest_ts_ = 0;
  uint64_t last_block_ns_ = 0;
  uint64_t written_ = 0;
  std::atomic<uint64_t> files_unsealed_{0};
  bool write_behind_ = false;
  const uint64_t index_cap_;                    // flow_index_cap(cfg_)
  util::MemoryGauge index_mem_;                 // part 0: cur_'s index
  std::atomic<uint64_t> sealed_for_memory_{0};  // files sealed at index_cap_ before file_size
};

}  // namespace tmach::flow
